//! A simulated Mac that walks the thirteen steps over HTTP requests and
//! responses only, with real cryptography (its DDM sync in [`ddm`]).

mod ddm;

use ddm::DdmState;
pub use ddm::DdmSync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;

use crate::cms::enveloped::{ContentCipher, DecryptPolicy, EnvelopedData, RecipientIdentity};
use crate::cms::{self, Certificate, SignedDataBuilder};
use crate::crypto::{DigestAlgorithm, RsaKey};
use crate::http::{Method, Request, Response, media_type};
use crate::mdm::command::Command;
use crate::profile::{PayloadKind, ProfileContent, ProfileService};
use crate::scep::{FailInfo, MessageType, PkiMessage, PkiStatus, oid};
use crate::wire::Limits;

use super::csr::build_csr;
use super::device_ca::{Identity, cms_cert, name};

/// Why the simulated device stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeviceError {
    /// The server answered with an unexpected HTTP status.
    #[error("step {step}: HTTP {status}")]
    Status {
        /// The step the request belonged to.
        step: u8,
        /// The status received.
        status: u16,
    },
    /// The SCEP CA answered FAILURE.
    #[error("SCEP FAILURE ({0:?})")]
    ScepFailure(Option<FailInfo>),
    /// Something the server sent did not decode or verify, or a step ran out of order.
    #[error("protocol: {0}")]
    Protocol(String),
}

pub(super) fn proto(e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Protocol(e.to_string())
}

/// Something that carries a request to the server and brings back its response.
pub trait Transport {
    /// Send `request`.
    fn send(&mut self, request: Request) -> Response;
}

impl<F: FnMut(Request) -> Response> Transport for F {
    fn send(&mut self, request: Request) -> Response {
        self(request)
    }
}

/// How the device answers a command of some `RequestType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandAnswer {
    /// `Acknowledged` with plausible result keys.
    Acknowledged,
    /// `NotNow` this many times, then `Acknowledged`.
    NotNow(u32),
    /// `Error` with a one-entry `ErrorChain`.
    Error,
}

/// What the enrollment profile told the device.
#[derive(Debug, Clone)]
struct Enrollment {
    /// The profile's root `PayloadIdentifier`.
    identifier: String,
    server_url: String,
    check_in_url: String,
    scep_path: String,
    scep_challenge: String,
    subject: String,
    server_path: String,
    check_in_path: String,
    topic: String,
    root: Option<Certificate>,
}

/// A simulated Mac: walks steps 2–13 through HTTP requests and responses
/// only (no access to the store or the engine), with real signatures,
/// SCEP envelopes and `Mdm-Signature` headers. Cheap to construct (keys are
/// shared `Arc`s, generated once by the caller) and `Send`, for load tests.
#[derive(Debug, Clone)]
pub struct SimulatedDevice {
    /// `UDID`.
    pub udid: String,
    /// `SERIAL`.
    pub serial: String,
    /// `PRODUCT`.
    pub product: String,
    /// `OS_VERSION` as the attributes carry it (`14.4`).
    pub os_version: String,
    /// `VERSION` (build).
    pub build: String,
    /// The device identity signing the attributes (issued by a [`TestDeviceCa`](super::TestDeviceCa)).
    pub attributes_identity: Identity,
    /// The key the device enrolls with over SCEP.
    pub scep_key: Arc<RsaKey>,
    /// The certificate the device expects profiles to be signed with (or by).
    pub server_anchor: Certificate,
    /// Answers by `RequestType` (default: `Acknowledged`).
    pub answers: HashMap<String, CommandAnswer>,
    enrollment: Option<Enrollment>,
    identity: Option<Certificate>,
    not_now: HashMap<String, u32>,
    ddm: DdmState,
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest.get(i..).unwrap_or("/").to_owned(),
        None => "/".to_owned(),
    }
}

fn plist_bytes(dict: plist::Dictionary) -> Result<Vec<u8>, DeviceError> {
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &plist::Value::Dictionary(dict)).map_err(proto)?;
    Ok(out)
}

fn der_string(tag: u8, s: &[u8]) -> Vec<u8> {
    crate::wire::ber::encode_tlv(tag, s)
}

impl SimulatedDevice {
    /// A Mac with a random UDID and serial running macOS 14.4 (23E214).
    pub fn new<R: rand_core::CryptoRng + ?Sized>(
        attributes_identity: Identity,
        scep_key: Arc<RsaKey>,
        server_anchor: Certificate,
        rng: &mut R,
    ) -> Self {
        let base = super::EvidenceDevice::random(rng);
        Self {
            udid: base.udid,
            serial: base.serial,
            product: base.product,
            os_version: "14.4".into(),
            build: "23E214".into(),
            attributes_identity,
            scep_key,
            server_anchor,
            answers: HashMap::new(),
            enrollment: None,
            identity: None,
            not_now: HashMap::new(),
            ddm: DdmState::default(),
        }
    }

    /// Answer commands of `request_type` with `answer`.
    pub fn answering(mut self, request_type: &str, answer: CommandAnswer) -> Self {
        self.answers.insert(request_type.to_owned(), answer);
        self
    }

    /// The identity certificate issued over SCEP (after step 8).
    pub fn identity(&self) -> Option<&Certificate> {
        self.identity.as_ref()
    }

    /// Walk steps 2–13: log in at `enroll_url` (a path or URL), install the
    /// Profile Service profile, send attributes, enroll over SCEP, check in
    /// and answer every command. Returns `(RequestType, Status)` per answer.
    pub fn activate<T: Transport + ?Sized, R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        t: &mut T,
        enroll_url: &str,
        (username, password, domain): (&str, &str, &str),
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Vec<(String, String)>, DeviceError> {
        let service = self.self_service(t, enroll_url, username, password, domain)?;
        self.send_attributes(t, &service)?;
        self.scep_enroll(t, now, rng)?;
        self.check_in(t, "Authenticate")?;
        self.check_in(t, "TokenUpdate")?;
        self.run_commands(t)
    }

    fn verify_profile(&self, resp: &Response, step: u8) -> Result<ProfileContent, DeviceError> {
        Ok(self.verified_profile_response(resp, step)?.content)
    }

    /// The signed profile a response carries, checked.
    fn verified_profile_response(
        &self,
        resp: &Response,
        step: u8,
    ) -> Result<crate::profile::Profile, DeviceError> {
        if resp.status != 200 {
            return Err(DeviceError::Status {
                step,
                status: resp.status,
            });
        }
        if resp.header("content-type") != Some(media_type::CONFIG) {
            return Err(proto("profile is not application/x-apple-aspen-config"));
        }
        self.verify_signed_profile(&resp.body)
    }

    /// A signed profile whose signer is (or is issued by) the server anchor.
    fn verify_signed_profile(&self, bytes: &[u8]) -> Result<crate::profile::Profile, DeviceError> {
        let parsed = crate::profile::parse(bytes, &Limits::default()).map_err(proto)?;
        let sig = parsed
            .signature
            .ok_or_else(|| proto("profile is not signed"))?;
        if sig.signer.der() != self.server_anchor.der()
            && sig.signer.verify_issued_by(&self.server_anchor).is_err()
        {
            return Err(proto("profile signer is not trusted"));
        }
        Ok(parsed.profile)
    }

    /// Steps 2–4: post the self-service form; returns the verified Profile
    /// Service payload.
    pub fn self_service<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        enroll_url: &str,
        username: &str,
        password: &str,
        domain: &str,
    ) -> Result<ProfileService, DeviceError> {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let mut req = Request::new(Method::Post, path_of(enroll_url));
        req.headers.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        req.body = format!(
            "username={}&password={}&domain={}&accept_notice=1",
            enc(username),
            enc(password),
            enc(domain)
        )
        .into_bytes();
        match self.verify_profile(&t.send(req), 4)? {
            ProfileContent::ProfileService(s) => Ok(s),
            _ => Err(proto("expected a Profile Service profile")),
        }
    }

    /// The attributes plist this device sends for `challenge`.
    pub fn attributes_plist(&self, challenge: Option<&str>) -> Result<Vec<u8>, DeviceError> {
        let mut d = plist::Dictionary::new();
        d.insert("UDID".into(), self.udid.clone().into());
        d.insert("SERIAL".into(), self.serial.clone().into());
        d.insert("PRODUCT".into(), self.product.clone().into());
        d.insert("VERSION".into(), self.build.clone().into());
        d.insert("OS_VERSION".into(), self.os_version.clone().into());
        if let Some(c) = challenge {
            d.insert("CHALLENGE".into(), c.into());
        }
        plist_bytes(d)
    }

    /// Steps 5–6: sign the attributes (SHA-256, no signed attributes, as
    /// macOS does) and post them; reads the enrollment profile.
    pub fn send_attributes<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        service: &ProfileService,
    ) -> Result<(), DeviceError> {
        let plist = self.attributes_plist(service.challenge.as_deref())?;
        let id = &self.attributes_identity;
        let body =
            SignedDataBuilder::new(cms::oid::ID_DATA, &plist, id.key.as_ref(), &id.certificate)
                .digest(DigestAlgorithm::Sha256)
                .without_signed_attributes()
                .build()
                .map_err(proto)?;
        let mut req = Request::new(Method::Post, path_of(&service.url));
        req.headers
            .push(("Content-Type".into(), "application/pkcs7-signature".into()));
        req.body = body;
        let profile = self.verified_profile_response(&t.send(req), 6)?;
        self.enrollment = Some(self.read_enrollment(profile)?);
        Ok(())
    }

    /// What an enrollment profile tells the device.
    fn read_enrollment(&self, profile: crate::profile::Profile) -> Result<Enrollment, DeviceError> {
        let ProfileContent::Configuration(payloads) = profile.content else {
            return Err(proto("expected a Configuration profile"));
        };
        let mut scep = None;
        let mut mdm = None;
        let mut root = None;
        for p in &payloads {
            match &p.kind {
                PayloadKind::Scep(s) => scep = Some((p.uuid.clone(), s.clone())),
                PayloadKind::Mdm(m) => mdm = Some(m.clone()),
                PayloadKind::Certificate(c) => root = Certificate::from_der(&c.content).ok(),
                _ => {}
            }
        }
        let (scep_uuid, scep) = scep.ok_or_else(|| proto("no SCEP payload"))?;
        let mdm = mdm.ok_or_else(|| proto("no MDM payload"))?;
        if mdm.identity_certificate_uuid != scep_uuid || mdm.sign_message != Some(true) {
            return Err(proto("MDM payload does not use the SCEP identity"));
        }
        let subject = scep
            .subject
            .as_ref()
            .map(|s| {
                s.0.iter()
                    .rev()
                    .flatten()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_else(|| format!("CN={}", self.udid));
        Ok(Enrollment {
            identifier: profile.identifier,
            server_url: mdm.server_url.clone(),
            check_in_url: mdm
                .check_in_url
                .clone()
                .unwrap_or_else(|| mdm.server_url.clone()),
            scep_path: path_of(&scep.url),
            scep_challenge: scep.challenge.ok_or_else(|| proto("no SCEP challenge"))?,
            subject,
            check_in_path: path_of(mdm.check_in_url.as_deref().unwrap_or(&mdm.server_url)),
            server_path: path_of(&mdm.server_url),
            topic: mdm.topic,
            root,
        })
    }

    /// Identity renewal as macOS does it: `payload` (an `InstallProfile`'s
    /// profile) is a signed enrollment profile replacing the installed one
    /// (the same root `PayloadIdentifier`, `Topic`, `ServerURL` and
    /// `CheckInURL`, or it is refused); enroll a new identity over SCEP
    /// with its challenge and sign with it from then on. On any failure the
    /// device keeps its enrollment and identity.
    pub fn install_enrollment_update<T: Transport + ?Sized, R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        t: &mut T,
        payload: &[u8],
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Certificate, DeviceError> {
        let old = self.enrollment()?.clone();
        let new = self.read_enrollment(self.verify_signed_profile(payload)?)?;
        if (
            &new.identifier,
            &new.topic,
            &new.server_url,
            &new.check_in_url,
        ) != (
            &old.identifier,
            &old.topic,
            &old.server_url,
            &old.check_in_url,
        ) {
            return Err(proto(
                "the update changes the PayloadIdentifier, Topic, ServerURL or CheckInURL",
            ));
        }
        let identity = self.identity.clone();
        self.enrollment = Some(new);
        match self.scep_enroll(t, now, rng) {
            Ok(cert) => Ok(cert),
            Err(e) => {
                self.enrollment = Some(old);
                self.identity = identity;
                Err(e)
            }
        }
    }

    /// The SCEP challenge of the installed enrollment profile.
    pub fn scep_challenge(&self) -> Option<&str> {
        self.enrollment.as_ref().map(|e| e.scep_challenge.as_str())
    }

    /// Present `challenge` at SCEP instead of the one the enrollment
    /// profile carried (to test wrong, replayed or static challenges).
    pub fn override_scep_challenge(&mut self, challenge: &str) -> Result<(), DeviceError> {
        let e = self
            .enrollment
            .as_mut()
            .ok_or_else(|| proto("no enrollment profile yet"))?;
        e.scep_challenge = challenge.to_owned();
        Ok(())
    }

    /// The push `Topic` of the installed enrollment profile's MDM payload.
    pub fn enrollment_topic(&self) -> Option<&str> {
        self.enrollment.as_ref().map(|e| e.topic.as_str())
    }

    /// The root certificate (the SCEP CA) the installed enrollment profile
    /// carries.
    pub fn enrollment_root(&self) -> Option<&Certificate> {
        self.enrollment.as_ref().and_then(|e| e.root.as_ref())
    }

    fn enrollment(&self) -> Result<&Enrollment, DeviceError> {
        self.enrollment
            .as_ref()
            .ok_or_else(|| proto("no enrollment profile yet"))
    }

    /// Steps 7–8: GetCACert, then a PKCSReq (CSR with the profile's
    /// challenge, AES-128 envelope to the CA, signed by a self-signed
    /// certificate for the SCEP key, transactionID = hex SHA-1 of the
    /// public key as Apple's client does); decrypts the issued certificate.
    /// When GetCACert answers `[RA, CA]` (`application/x-x509-ca-ra-cert`)
    /// the request is encrypted to the RA and the CertRep must be signed by
    /// it, as a real client does. Calling it again resends the same request.
    pub fn scep_enroll<T: Transport + ?Sized, R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        t: &mut T,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Certificate, DeviceError> {
        let e = self.enrollment()?.clone();
        let mut get = Request::new(Method::Get, e.scep_path.clone());
        get.query = Some("operation=GetCACert&message=ca".into());
        let resp = t.send(get);
        if resp.status != 200 {
            return Err(DeviceError::Status {
                step: 7,
                status: resp.status,
            });
        }
        let limits = Limits::default().ber;
        let (ca, ra) = if resp.header("content-type") == Some(media_type::CA_RA_CERT) {
            let bag = cms::SignedData::parse(&resp.body, &limits).map_err(proto)?;
            let certs = bag.certificates();
            let ca = certs
                .iter()
                .find(|c| c.verify_issued_by(c).is_ok())
                .cloned()
                .ok_or_else(|| proto("no CA in the GetCACert answer"))?;
            let ra = certs
                .iter()
                .find(|c| c.der() != ca.der() && c.verify_issued_by(&ca).is_ok())
                .cloned()
                .ok_or_else(|| proto("no RA issued by the CA in the GetCACert answer"))?;
            (ca, Some(ra))
        } else {
            (Certificate::from_der(&resp.body).map_err(proto)?, None)
        };
        let recipient = ra.as_ref().unwrap_or(&ca);
        if let Some(root) = &e.root
            && root.der() != ca.der()
            && ca.verify_issued_by(root).is_err()
        {
            return Err(proto("SCEP CA is not the profile's trusted root"));
        }
        let key = self.scep_key.as_ref();
        let subject = name(&e.subject)?;
        let csr = build_csr(key, &subject, Some(&e.scep_challenge))?;
        let temp = cms_cert(
            &crate::pki::create_ca(
                key,
                subject,
                crate::pki::random_serial(rng),
                crate::pki::validity(now, Duration::from_secs(86400)).map_err(proto)?,
            )
            .map_err(proto)?,
        )?;
        let recipient_key = recipient.public_key().map_err(proto)?;
        let envelope = EnvelopedData::encrypt(
            &csr,
            &RecipientIdentity::of(recipient),
            &recipient_key,
            ContentCipher::Aes128Cbc,
            rng,
        )
        .map_err(proto)?;
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        // As Apple's client: the transactionID is the hex SHA-1 of the
        // public key, so a resend of the same request carries the same one.
        let tid = {
            use sha1::Digest;
            crate::wire::hex::upper(&sha1::Sha1::digest(temp.spki_der()))
        };
        let body = SignedDataBuilder::new(cms::oid::ID_DATA, &envelope, key, &temp)
            .digest(DigestAlgorithm::Sha256)
            .signed_attribute(
                oid::MESSAGE_TYPE,
                der_string(0x13, MessageType::PkcsReq.number().to_string().as_bytes()),
            )
            .signed_attribute(oid::TRANSACTION_ID, der_string(0x13, tid.as_bytes()))
            .signed_attribute(oid::SENDER_NONCE, der_string(0x04, &nonce))
            .build()
            .map_err(proto)?;
        let mut post = Request::new(Method::Post, e.scep_path.clone());
        post.query = Some("operation=PKIOperation".into());
        post.headers
            .push(("Content-Type".into(), media_type::PKI_MESSAGE.into()));
        post.body = body;
        let resp = t.send(post);
        if resp.status != 200 {
            return Err(DeviceError::Status {
                step: 8,
                status: resp.status,
            });
        }
        let rep = PkiMessage::decode(&resp.body, &limits).map_err(proto)?;
        rep.verify().map_err(proto)?;
        if rep.signer_certificate().map_err(proto)?.der() != recipient.der() {
            return Err(proto("CertRep not signed by the CA (or its RA)"));
        }
        if rep.recipient_nonce() != Some(&nonce[..]) || rep.transaction_id() != tid {
            return Err(proto("CertRep does not answer this request"));
        }
        match rep.pki_status() {
            Some(PkiStatus::Success) => {}
            Some(PkiStatus::Failure) => return Err(DeviceError::ScepFailure(rep.fail_info())),
            other => return Err(proto(format!("unexpected pkiStatus {other:?}"))),
        }
        let p7 = rep
            .envelope(&limits)
            .map_err(proto)?
            .decrypt(
                &RecipientIdentity::of(&temp),
                key,
                &DecryptPolicy::default(),
            )
            .map_err(proto)?;
        let certs = cms::SignedData::parse(&p7, &limits).map_err(proto)?;
        let cert = certs
            .certificates()
            .first()
            .cloned()
            .ok_or_else(|| proto("CertRep carries no certificate"))?;
        cert.verify_issued_by(&ca).map_err(proto)?;
        if cert.spki_der() != temp.spki_der() {
            return Err(proto("issued certificate is not for our key"));
        }
        self.identity = Some(cert.clone());
        Ok(cert)
    }

    /// The check-in body of `message_type` (`Authenticate`, `TokenUpdate`, `CheckOut`).
    pub fn checkin_body(&self, message_type: &str) -> Result<Vec<u8>, DeviceError> {
        let topic = self.enrollment()?.topic.clone();
        let mut d = plist::Dictionary::new();
        d.insert("MessageType".into(), message_type.into());
        d.insert("Topic".into(), topic.into());
        d.insert("UDID".into(), self.udid.clone().into());
        match message_type {
            "Authenticate" => {
                d.insert("SerialNumber".into(), self.serial.clone().into());
                d.insert("Model".into(), self.product.clone().into());
                d.insert("ModelName".into(), "MacBook Pro".into());
                d.insert("ProductName".into(), self.product.clone().into());
                d.insert("OSVersion".into(), self.os_version.clone().into());
                d.insert("BuildVersion".into(), self.build.clone().into());
                d.insert("DeviceName".into(), format!("Mac {}", self.serial).into());
            }
            "TokenUpdate" => {
                d.insert(
                    "Token".into(),
                    plist::Value::Data(self.udid.as_bytes().to_vec()),
                );
                d.insert("PushMagic".into(), format!("magic-{}", self.udid).into());
                d.insert("AwaitingConfiguration".into(), false.into());
            }
            _ => {}
        }
        plist_bytes(d)
    }

    /// A request to the MDM endpoint carrying `body`, signed with this
    /// device's SCEP identity in a detached `Mdm-Signature` header.
    pub fn mdm_request(&self, content_type: &str, body: Vec<u8>) -> Result<Request, DeviceError> {
        use base64ct::Encoding;
        let e = self.enrollment()?;
        let identity = self
            .identity
            .as_ref()
            .ok_or_else(|| proto("no identity yet"))?;
        let path = if content_type == media_type::CHECKIN {
            e.check_in_path.clone()
        } else {
            e.server_path.clone()
        };
        let sig =
            SignedDataBuilder::new(cms::oid::ID_DATA, &body, self.scep_key.as_ref(), identity)
                .detached(true)
                .digest(DigestAlgorithm::Sha256)
                .build()
                .map_err(proto)?;
        let mut req = Request::new(Method::Put, path);
        req.headers = vec![
            ("Content-Type".into(), content_type.into()),
            (
                "Mdm-Signature".into(),
                base64ct::Base64::encode_string(&sig),
            ),
        ];
        req.body = body;
        Ok(req)
    }

    /// Steps 9–10: send a signed check-in; expects 200.
    pub fn check_in<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        message_type: &str,
    ) -> Result<(), DeviceError> {
        let req = self.mdm_request(media_type::CHECKIN, self.checkin_body(message_type)?)?;
        let resp = t.send(req);
        if resp.status != 200 {
            let step = if message_type == "Authenticate" {
                9
            } else {
                10
            };
            return Err(DeviceError::Status {
                step,
                status: resp.status,
            });
        }
        Ok(())
    }

    fn report(
        &mut self,
        status: &str,
        cmd: Option<&Command>,
    ) -> Result<(String, Vec<u8>), DeviceError> {
        let mut d = plist::Dictionary::new();
        d.insert("UDID".into(), self.udid.clone().into());
        let mut status = status.to_owned();
        if let Some(cmd) = cmd {
            d.insert("CommandUUID".into(), cmd.command_uuid.clone().into());
            let answer = self
                .answers
                .get(&cmd.request_type)
                .copied()
                .unwrap_or(CommandAnswer::Acknowledged);
            let seen = self.not_now.entry(cmd.command_uuid.clone()).or_insert(0);
            status = match answer {
                CommandAnswer::NotNow(n) if *seen < n => {
                    *seen += 1;
                    "NotNow".into()
                }
                CommandAnswer::Error => "Error".into(),
                _ => "Acknowledged".into(),
            };
            match (status.as_str(), cmd.request_type.as_str()) {
                ("Error", _) => {
                    let mut e = plist::Dictionary::new();
                    e.insert("ErrorCode".into(), 12021.into());
                    e.insert("ErrorDomain".into(), "MCMDMErrorDomain".into());
                    e.insert("LocalizedDescription".into(), "Simulated failure".into());
                    d.insert(
                        "ErrorChain".into(),
                        plist::Value::Array(vec![plist::Value::Dictionary(e)]),
                    );
                }
                ("Acknowledged", "DeviceInformation") => {
                    let mut q = plist::Dictionary::new();
                    q.insert("UDID".into(), self.udid.clone().into());
                    q.insert("SerialNumber".into(), self.serial.clone().into());
                    q.insert("OSVersion".into(), self.os_version.clone().into());
                    q.insert("BuildVersion".into(), self.build.clone().into());
                    q.insert("ProductName".into(), self.product.clone().into());
                    q.insert("Model".into(), self.product.clone().into());
                    q.insert("ModelName".into(), "MacBook Pro".into());
                    q.insert("DeviceName".into(), format!("Mac {}", self.serial).into());
                    q.insert("IsAppleSilicon".into(), true.into());
                    d.insert("QueryResponses".into(), q.into());
                }
                ("Acknowledged", "SecurityInfo") => {
                    let mut s = plist::Dictionary::new();
                    s.insert("FDE_Enabled".into(), true.into());
                    s.insert("SystemIntegrityProtectionEnabled".into(), true.into());
                    d.insert("SecurityInfo".into(), s.into());
                }
                ("Acknowledged", "ProfileList") => {
                    d.insert("ProfileList".into(), plist::Value::Array(Vec::new()));
                }
                _ => {}
            }
        }
        d.insert("Status".into(), status.clone().into());
        Ok((status, plist_bytes(d)?))
    }

    /// Steps 11–13: connect with `Idle` and answer each command until the
    /// server has nothing more; reconnects (at most 16 times) while commands
    /// were answered `NotNow`. Returns `(RequestType, Status)` per answer.
    pub fn run_commands<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
    ) -> Result<Vec<(String, String)>, DeviceError> {
        self.command_loop(t, &mut |_, _, _| None)
    }

    /// As [`Self::run_commands`], and an `InstallProfile` of an enrollment
    /// profile update (answered `Acknowledged` by [`Self::answers`]) is
    /// installed with [`Self::install_enrollment_update`]: the device
    /// enrolls its new identity and signs the acknowledgement and
    /// everything after it with that one; a failed update is answered
    /// `Error`.
    pub fn run_commands_renewing<T: Transport + ?Sized, R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        t: &mut T,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Vec<(String, String)>, DeviceError> {
        self.command_loop(t, &mut |device, t, cmd| {
            let plist::Value::Data(payload) = cmd.params.get("Payload")? else {
                return None;
            };
            let wanted = device
                .answers
                .get("InstallProfile")
                .is_none_or(|a| *a == CommandAnswer::Acknowledged);
            let is_update = cmd.request_type == "InstallProfile"
                && device
                    .verify_signed_profile(payload)
                    .ok()
                    .and_then(|p| device.read_enrollment(p).ok())
                    .is_some();
            if !(wanted && is_update) {
                return None;
            }
            let payload = payload.clone();
            match device.install_enrollment_update(t, &payload, now, rng) {
                Ok(_) => None,
                Err(_) => Some(CommandAnswer::Error),
            }
        })
    }

    /// The connect loop; `handle` may act on a command first and override
    /// the answer.
    fn command_loop<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        handle: &mut dyn FnMut(&mut Self, &mut T, &Command) -> Option<CommandAnswer>,
    ) -> Result<Vec<(String, String)>, DeviceError> {
        let mut answered = Vec::new();
        for _ in 0..16 {
            let (_, idle) = self.report("Idle", None)?;
            let mut resp = t.send(self.mdm_request(media_type::CONNECT, idle)?);
            let mut deferred = false;
            loop {
                if resp.status != 200 {
                    return Err(DeviceError::Status {
                        step: 12,
                        status: resp.status,
                    });
                }
                if resp.body.is_empty() {
                    break;
                }
                let cmd = Command::decode(&resp.body, &Limits::default()).map_err(proto)?;
                let forced = handle(self, t, &cmd);
                let configured = self.answers.get(&cmd.request_type).copied();
                if let Some(answer) = forced {
                    self.answers.insert(cmd.request_type.clone(), answer);
                }
                let report = self.report("", Some(&cmd));
                match configured {
                    Some(answer) => self.answers.insert(cmd.request_type.clone(), answer),
                    None => self.answers.remove(&cmd.request_type),
                };
                let (status, body) = report?;
                deferred |= status == "NotNow";
                answered.push((cmd.request_type.clone(), status));
                resp = t.send(self.mdm_request(media_type::CONNECT, body)?);
            }
            if !deferred {
                return Ok(answered);
            }
        }
        Ok(answered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ber::{BerLimits, Element};

    #[test]
    fn der_string_lengths_of_64_kib_and_more_round_trip() {
        for len in [0x7F, 0x80, 0xFFFF, 0x1_0000, 0x1_2345] {
            let contents = vec![0xA5u8; len];
            let der = der_string(0x04, &contents);
            let el = Element::parse(&der, &BerLimits::default()).expect("one whole element");
            assert_eq!(el.contents.len(), len, "length {len:#x}");
            assert_eq!(el.contents, &contents[..]);
        }
    }
}
