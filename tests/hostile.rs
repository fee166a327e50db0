//! The hostile-input suite: named attacks on every device-facing endpoint
//! (self-service form, Profile Service, SCEP GET/POST, MDM check-in and
//! connect) through `EnrollmentService::handle`, the code the example
//! server runs. Every case asserts the HTTP status, the typed refusal where
//! the crate has one, that no event was emitted and that the store is
//! byte-for-byte unchanged; no device-facing answer is ever 401 (which
//! unenrolls a Mac) and no refusal body carries error text (an oracle).
//!
//! Slow-loris and per-endpoint oversize against the real example server are
//! in `tests/server_hostile.rs`.
#![cfg(feature = "test-support")]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::ActivationError;
use mdm_enroll::cms::enveloped::{ContentCipher, EnvelopedData, RecipientIdentity};
use mdm_enroll::cms::{self, Certificate, SignedDataBuilder, verify_mdm_signature};
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey};
use mdm_enroll::http::{Method, Request, Response, media_type};
use mdm_enroll::mdm::{CheckinMessage, Error as MdmError, Report};
use mdm_enroll::pki;
use mdm_enroll::profile::{self, PayloadKind, ProfileContent};
use mdm_enroll::scep::{FailInfo, MessageType, PkiMessage, PkiStatus, ScepOutcome, oid};
use mdm_enroll::service::ServiceError;
use mdm_enroll::testing::{Identity, SimulatedDevice, TestDeployment, build_csr};
use mdm_enroll::wire::ber::{BerError, Element, encode_tlv};
use mdm_enroll::wire::plist::PlistError;
use mdm_enroll::wire::{BerLimits, Limits};
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;

fn rng() -> Rng {
    UnwrapErr(getrandom::SysRng)
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// 1024-bit keys generated once per test binary.
fn keys() -> &'static [Arc<RsaKey>] {
    static KEYS: OnceLock<Vec<Arc<RsaKey>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..7)
            .map(|_| Arc::new(RsaKey::generate(&mut rng(), 1024).unwrap()))
            .collect()
    })
}

const ENROLL: &str = "/t/acme/enroll";
const PROFILE_SERVICE: &str = "/t/acme/profile-service";
const SCEP: &str = "/t/acme/scep";

struct Fx {
    d: TestDeployment,
    /// The device's attribute-signing identity (trusted device CA).
    attributes: Identity,
}

fn fixture() -> Fx {
    let mut r = rng();
    let d = TestDeployment::new(
        keys()[0].as_ref().clone(),
        keys()[1].as_ref().clone(),
        t0(),
        &mut r,
    )
    .unwrap();
    let attributes = d.device_ca.issue(keys()[2].clone(), t0(), &mut r).unwrap();
    Fx { d, attributes }
}

impl Fx {
    fn device(&self) -> SimulatedDevice {
        SimulatedDevice::new(
            self.attributes.clone(),
            keys()[3].clone(),
            self.d.server_certificate.clone(),
            &mut rng(),
        )
    }

    fn send(&self, req: Request, now: SystemTime) -> Response {
        let (resp, _) = self.d.service.handle(&req, now, &mut rng());
        resp
    }

    /// Log in and send the attributes: returns the device (ready for SCEP)
    /// and the SCEP challenge the enrollment profile carries.
    fn through_step_6(&self) -> (SimulatedDevice, String) {
        let mut dev = self.device();
        let mut last_profile = None;
        let mut t = |req: Request| {
            let is_ps = req.path == PROFILE_SERVICE;
            let resp = self.send(req, t0());
            if is_ps {
                last_profile = Some(resp.body.clone());
            }
            resp
        };
        let svc = dev
            .self_service(&mut t, ENROLL, "alice", "pw", "corp")
            .unwrap();
        dev.send_attributes(&mut t, &svc).unwrap();
        let parsed = profile::parse(&last_profile.unwrap(), &Limits::default()).unwrap();
        let ProfileContent::Configuration(payloads) = parsed.profile.content else {
            panic!("not a configuration profile");
        };
        let challenge = payloads
            .iter()
            .find_map(|p| match &p.kind {
                PayloadKind::Scep(s) => s.challenge.clone(),
                _ => None,
            })
            .unwrap();
        (dev, challenge)
    }

    /// A device with its SCEP identity (step 8 done), not yet checked in.
    fn enrolled(&self) -> SimulatedDevice {
        let (mut dev, _) = self.through_step_6();
        let mut t = |req: Request| self.send(req, t0());
        dev.scep_enroll(&mut t, t0(), &mut rng()).unwrap();
        dev
    }
}

/// Send `req` at `now`: the answer has `status`, produced no event, left the
/// store as it was, and (unless it is a SCEP CertRep) carries no text.
fn refused_at(fx: &Fx, case: &str, req: Request, now: SystemTime, status: u16) -> Response {
    let before = fx.d.service.engine().store().snapshot();
    let (resp, events) = fx.d.service.handle(&req, now, &mut rng());
    assert_eq!(resp.status, status, "{case}: status");
    assert_ne!(resp.status, 401, "{case}: 401 unenrolls a device");
    assert!(events.is_empty(), "{case}: events {events:?}");
    assert_eq!(
        fx.d.service.engine().store().snapshot(),
        before,
        "{case}: the store changed"
    );
    if resp.status >= 400 {
        let text = String::from_utf8_lossy(&resp.body).to_lowercase();
        for leak in ["error", "store", "panick", "backtrace", "offset"] {
            assert!(!text.contains(leak), "{case}: body says {text:?}");
        }
    }
    resp
}

fn refused(fx: &Fx, case: &str, req: Request, status: u16) -> Response {
    refused_at(fx, case, req, t0(), status)
}

/// A SCEP answer that is a signed FAILURE CertRep with `fail`.
fn assert_failure(case: &str, resp: &Response, fail: FailInfo) {
    assert_eq!(resp.status, 200, "{case}");
    let rep = PkiMessage::decode(&resp.body, &BerLimits::default())
        .unwrap_or_else(|e| panic!("{case}: not a CertRep: {e}"));
    rep.verify().unwrap();
    assert_eq!(rep.message_type(), MessageType::CertRep, "{case}");
    assert_eq!(rep.pki_status(), Some(PkiStatus::Failure), "{case}");
    assert_eq!(rep.fail_info(), Some(fail), "{case}");
}

fn post(path: &str, content_type: &str, body: Vec<u8>) -> Request {
    let mut req = Request::new(Method::Post, path);
    req.headers
        .push(("Content-Type".into(), content_type.into()));
    req.body = body;
    req
}

fn form(body: &[u8]) -> Request {
    post(ENROLL, "application/x-www-form-urlencoded", body.to_vec())
}

fn scep_post(body: Vec<u8>) -> Request {
    let mut req = post(SCEP, media_type::PKI_MESSAGE, body);
    req.query = Some("operation=PKIOperation".into());
    req
}

fn scep_get(query: &str) -> Request {
    let mut req = Request::new(Method::Get, SCEP);
    req.query = Some(query.into());
    req
}

// ---------------------------------------------------------------- inputs

/// `depth` nested arrays around a string, as an XML plist.
fn xml_nesting_bomb(depth: usize) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">");
    s.push_str(&"<array>".repeat(depth));
    s.push_str("<string>x</string>");
    s.push_str(&"</array>".repeat(depth));
    s.push_str("</plist>");
    s.into_bytes()
}

/// A binary plist whose 40 arrays each hold the next one twice: 2^40 nodes
/// once expanded, 400 bytes on the wire.
fn binary_reference_bomb() -> Vec<u8> {
    let n = 41usize;
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::new();
    for i in 0..n - 1 {
        offsets.push(out.len());
        out.extend_from_slice(&[0xa2, (i + 1) as u8, (i + 1) as u8]);
    }
    offsets.push(out.len());
    out.extend_from_slice(&[0x51, b'x']);
    let table = out.len();
    for o in &offsets {
        out.extend_from_slice(&(*o as u16).to_be_bytes());
    }
    let mut trailer = [0u8; 32];
    trailer[6] = 2; // offset size
    trailer[7] = 1; // object reference size
    trailer[8..16].copy_from_slice(&(n as u64).to_be_bytes());
    trailer[24..32].copy_from_slice(&(table as u64).to_be_bytes());
    out.extend_from_slice(&trailer);
    out
}

/// A dictionary plist with a `<data>` element of `n` base64 bytes.
fn huge_data_plist(n: usize) -> Vec<u8> {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
         <key>MessageType</key><string>Authenticate</string><key>Blob</key><data>",
    );
    s.push_str(&"QUFB".repeat(n / 4));
    s.push_str("</data></dict></plist>");
    s.into_bytes()
}

fn invalid_utf8_plist() -> Vec<u8> {
    let mut v = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>"
        .to_vec();
    v.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    v.extend_from_slice(b"</string></dict></plist>");
    v
}

/// `n` nested indefinite-length SEQUENCEs, properly closed.
fn ber_nesting_bomb(n: usize) -> Vec<u8> {
    let mut v = [0x30, 0x80].repeat(n);
    v.extend_from_slice(&[0, 0].repeat(n));
    v
}

/// The parts of a SignedData ContentInfo: (version, digestAlgorithms,
/// encapContentInfo, certificates `[0]` if any, signerInfos).
fn signed_data_parts(ci: &[u8]) -> Vec<Vec<u8>> {
    let l = BerLimits::default();
    let der = mdm_enroll::wire::ber::to_der(ci, &l).unwrap();
    let root = Element::parse(&der, &l).unwrap();
    let explicit = root.children().unwrap()[1];
    let sd = explicit.children().unwrap()[0];
    sd.children()
        .unwrap()
        .iter()
        .map(|e| e.raw.to_vec())
        .collect()
}

fn content_info(signed_data: &[u8]) -> Vec<u8> {
    let oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    encode_tlv(0x30, &[&oid[..], &encode_tlv(0xa0, signed_data)].concat())
}

/// A signed message with its one signer (or certificate) repeated `n` times.
fn multiplied(ci: &[u8], signers: usize, certs: usize) -> Vec<u8> {
    let parts = signed_data_parts(ci);
    let (certificates, signer_infos) = (&parts[3], &parts[4]);
    let l = BerLimits::default();
    let one_cert = Element::parse(certificates, &l).unwrap().contents.to_vec();
    let one_signer = Element::parse(signer_infos, &l).unwrap().contents.to_vec();
    let body = [
        parts[0].clone(),
        parts[1].clone(),
        parts[2].clone(),
        encode_tlv(0xa0, &one_cert.repeat(certs)),
        encode_tlv(0x31, &one_signer.repeat(signers)),
    ]
    .concat();
    content_info(&encode_tlv(0x30, &body))
}

/// `der` with its outer length replaced by `84 7F FF FF FF` (2 GiB).
fn overlong_length(der: &[u8]) -> Vec<u8> {
    let el = Element::parse(der, &BerLimits::default()).unwrap();
    let mut v = vec![der[0], 0x84, 0x7f, 0xff, 0xff, 0xff];
    v.extend_from_slice(el.contents);
    v
}

/// `der` with its outer element made indefinite and never terminated.
fn unterminated(der: &[u8]) -> Vec<u8> {
    let el = Element::parse(der, &BerLimits::default()).unwrap();
    let mut v = vec![der[0], 0x80];
    v.extend_from_slice(el.contents);
    v
}

/// The attributes plist signed by `id` as macOS signs it.
fn signed_by(id: &Identity, content: &[u8]) -> Vec<u8> {
    SignedDataBuilder::new(cms::oid::ID_DATA, content, id.key.as_ref(), &id.certificate)
        .digest(DigestAlgorithm::Sha256)
        .without_signed_attributes()
        .build()
        .unwrap()
}

fn attributes_request(fx: &Fx, content: &[u8]) -> Request {
    post(
        PROFILE_SERVICE,
        "application/pkcs7-signature",
        signed_by(&fx.attributes, content),
    )
}

fn self_signed(key: &RsaKey, subject: &str, now: SystemTime) -> Certificate {
    let c = pki::create_ca(
        key,
        subject.parse().unwrap(),
        pki::random_serial(&mut rng()),
        pki::validity(now, Duration::from_secs(86400)).unwrap(),
    )
    .unwrap();
    Certificate::from_der(&pki::to_der(&c).unwrap()).unwrap()
}

/// A PKIMessage as Apple's client builds it, with every part chosen:
/// `csr_key` in the CSR, signed by `signer` (key and certificate).
struct ScepReq<'a> {
    message_type: MessageType,
    csr_key: &'a RsaKey,
    challenge: Option<&'a str>,
    signer_key: &'a RsaKey,
    signer: &'a Certificate,
    transaction_id: String,
}

impl ScepReq<'_> {
    fn build(&self, fx: &Fx) -> Vec<u8> {
        let ca = &fx.d.server_certificate;
        let csr = build_csr(
            self.csr_key,
            &"CN=hostile,O=acme".parse().unwrap(),
            self.challenge,
        )
        .unwrap();
        let envelope = EnvelopedData::encrypt(
            &csr,
            &RecipientIdentity::of(ca),
            &ca.public_key().unwrap(),
            ContentCipher::Aes128Cbc,
            &mut rng(),
        )
        .unwrap();
        let string = |tag: u8, s: &[u8]| encode_tlv(tag, s);
        SignedDataBuilder::new(cms::oid::ID_DATA, &envelope, self.signer_key, self.signer)
            .digest(DigestAlgorithm::Sha256)
            .signed_attribute(
                oid::MESSAGE_TYPE,
                string(0x13, self.message_type.number().to_string().as_bytes()),
            )
            .signed_attribute(
                oid::TRANSACTION_ID,
                string(0x13, self.transaction_id.as_bytes()),
            )
            .signed_attribute(oid::SENDER_NONCE, string(0x04, &[7u8; 16]))
            .build()
            .unwrap()
    }
}

/// A well-formed PKCSReq for `key` (self-signed signer, as Apple's client).
fn pkcs_req(fx: &Fx, key: &RsaKey, challenge: &str, tid: &str) -> Vec<u8> {
    let signer = self_signed(key, "CN=hostile,O=acme", t0());
    ScepReq {
        message_type: MessageType::PkcsReq,
        csr_key: key,
        challenge: Some(challenge),
        signer_key: key,
        signer: &signer,
        transaction_id: tid.into(),
    }
    .build(fx)
}

// ------------------------------------------------------- self-service form

/// Whether a driver refusal is the expected one.
type Check = fn(&ServiceError) -> bool;

#[test]
fn self_service_form() {
    let fx = fixture();
    let svc = &fx.d.service;
    let tenant = &fx.d.tenant;
    let typed = |req: &Request| svc.self_service(tenant, req, t0(), &mut rng()).unwrap_err();
    let bad = |e: &ServiceError| matches!(e, ServiceError::BadRequest(_));
    let creds = |e: &ServiceError| *e == ServiceError::Activation(ActivationError::BadCredentials);
    let mut long = b"username=alice&password=pw&domain=corp&x=".to_vec();
    long.resize(16 * 1024 + 1, b'a');
    let cases: Vec<(&str, Request, u16, Check)> = vec![
        (
            "form: invalid UTF-8",
            form(b"username=al\xffice&password=pw"),
            400,
            bad,
        ),
        ("form: over 16 KiB", form(&long), 400, bad),
        (
            "form: broken percent escape",
            form(b"username=%zz&password=pw"),
            400,
            bad,
        ),
        (
            "form: markup as a language tag",
            form(b"username=alice&password=pw&domain=corp&language=%3Cscript%3E"),
            400,
            bad,
        ),
        (
            "form: wrong password",
            form(b"username=alice&password=nope&domain=corp"),
            403,
            creds,
        ),
        (
            "form: no password",
            form(b"username=alice&domain=corp"),
            403,
            creds,
        ),
        (
            "form: NUL in the username",
            form(b"username=alice%00&password=pw&domain=corp"),
            403,
            creds,
        ),
        (
            "form: plist instead of a form",
            post(ENROLL, media_type::CHECKIN, xml_nesting_bomb(10_000)),
            400,
            bad,
        ),
        ("form: GET", Request::new(Method::Get, ENROLL), 400, bad),
    ];
    for (case, req, status, check) in cases {
        let resp = refused(&fx, case, req.clone(), status);
        assert!(resp.body.is_empty(), "{case}");
        let e = typed(&req);
        assert!(check(&e), "{case}: {e:?}");
    }
}

// ---------------------------------------------------------- Profile Service

#[test]
fn profile_service() {
    let fx = fixture();
    let svc = &fx.d.service;
    let tenant = &fx.d.tenant;
    // A real signed attributes message to mutate.
    let dev = fx.device();
    let good = signed_by(&fx.attributes, &dev.attributes_plist(Some("c")).unwrap());
    let der = mdm_enroll::wire::ber::to_der(&good, &BerLimits::default()).unwrap();
    let ps = |body: Vec<u8>| post(PROFILE_SERVICE, "application/pkcs7-signature", body);
    let bad = |e: &ServiceError| matches!(e, ServiceError::BadRequest(_));
    let unknown =
        |e: &ServiceError| *e == ServiceError::Activation(ActivationError::UnknownChallenge);
    let cases: Vec<(&str, Request, Check)> = vec![
        ("attributes: not CMS", ps(b"UDID=1234".to_vec()), bad),
        ("attributes: empty body", ps(Vec::new()), bad),
        (
            "attributes: truncated BER",
            ps(der[..der.len() / 2].to_vec()),
            bad,
        ),
        (
            "attributes: over-long BER length",
            ps(overlong_length(&der)),
            bad,
        ),
        (
            "attributes: unterminated indefinite length",
            ps(unterminated(&der)),
            bad,
        ),
        (
            "attributes: 10 000-deep BER nesting",
            ps(ber_nesting_bomb(10_000)),
            bad,
        ),
        (
            "attributes: 1 000 signers",
            ps(multiplied(&der, 1000, 1)),
            bad,
        ),
        // Bounded (well under the BER limits) and verified like one copy:
        // what refuses it is its challenge, which was never issued.
        (
            "attributes: 1 000 certificates",
            ps(multiplied(&der, 1, 1000)),
            unknown,
        ),
        (
            "attributes: signed XML nesting bomb",
            attributes_request(&fx, &xml_nesting_bomb(50_000)),
            bad,
        ),
        (
            "attributes: signed shared-reference binary plist",
            attributes_request(&fx, &binary_reference_bomb()),
            bad,
        ),
        (
            "attributes: signed invalid UTF-8",
            attributes_request(&fx, &invalid_utf8_plist()),
            bad,
        ),
        (
            "attributes: over 8 MiB",
            ps(vec![0x30; 8 * 1024 * 1024 + 1]),
            bad,
        ),
        (
            "attributes: a check-in body, unsigned",
            ps(huge_data_plist(64)),
            bad,
        ),
    ];
    for (case, req, check) in cases {
        refused(&fx, case, req.clone(), 400);
        let e = svc
            .profile_service(tenant, &req, t0(), &mut rng())
            .unwrap_err();
        assert!(check(&e), "{case}: {e:?}");
    }
}

#[test]
fn profile_service_challenges() {
    let fx = fixture();
    let (dev, _) = fx.through_step_6();
    // The Profile Service challenge was consumed at step 6: the same signed
    // attributes again are a replay.
    let mut d2 = fx.device();
    let mut t = |req: Request| fx.send(req, t0());
    let svc2 = d2
        .self_service(&mut t, ENROLL, "alice", "pw", "corp")
        .unwrap();
    let challenge = svc2.challenge.clone().unwrap();
    let body = dev.attributes_plist(Some(&challenge)).unwrap();
    // Expired: a day after it was handed out.
    let late = t0() + Duration::from_secs(86400 * 2);
    let req = attributes_request(&fx, &body);
    refused_at(&fx, "attributes: expired challenge", req.clone(), late, 400);
    let e =
        fx.d.service
            .profile_service(&fx.d.tenant, &req, late, &mut rng())
            .unwrap_err();
    assert_eq!(
        e,
        ServiceError::Activation(ActivationError::ChallengeExpired)
    );
    // Unknown challenge.
    let req = attributes_request(&fx, &dev.attributes_plist(Some("not-issued")).unwrap());
    refused(&fx, "attributes: unknown challenge", req.clone(), 400);
    let e =
        fx.d.service
            .profile_service(&fx.d.tenant, &req, t0(), &mut rng())
            .unwrap_err();
    assert_eq!(
        e,
        ServiceError::Activation(ActivationError::UnknownChallenge)
    );
    // Reused: d2's challenge used once, then again.
    let ok = fx.send(attributes_request(&fx, &body), t0());
    assert_eq!(ok.status, 200);
    let req = attributes_request(&fx, &body);
    let resp = refused(&fx, "attributes: reused challenge", req.clone(), 409);
    assert!(resp.body.is_empty());
    let e =
        fx.d.service
            .profile_service(&fx.d.tenant, &req, t0(), &mut rng())
            .unwrap_err();
    assert_eq!(
        e,
        ServiceError::Activation(ActivationError::ChallengeReplayed)
    );
}

// --------------------------------------------------------------------- SCEP

#[test]
fn scep_transport() {
    let fx = fixture();
    let (dev, challenge) = fx.through_step_6();
    let _ = dev;
    // A well-formed request with a challenge that was never issued.
    let _ = challenge;
    let good = pkcs_req(&fx, &keys()[4], "never-issued", "T1");
    let cases: Vec<(&str, Request, u16)> = vec![
        (
            "SCEP GET: unknown operation",
            scep_get("operation=GetEverything"),
            400,
        ),
        ("SCEP GET: no operation", scep_get("message=x"), 400),
        (
            "SCEP GET: PKIOperation with invalid base64",
            scep_get("operation=PKIOperation&message=%%%%"),
            400,
        ),
        ("SCEP POST: empty body", scep_post(Vec::new()), 400),
        (
            "SCEP POST: garbage",
            scep_post(b"\x30\x03abc garbage".to_vec()),
            400,
        ),
        (
            "SCEP POST: truncated BER",
            scep_post(good[..good.len() - 40].to_vec()),
            400,
        ),
        (
            "SCEP POST: over-long BER length",
            scep_post(overlong_length(&good)),
            400,
        ),
        (
            "SCEP POST: unterminated indefinite length",
            scep_post(unterminated(&good)),
            400,
        ),
        (
            "SCEP POST: 10 000-deep BER nesting",
            scep_post(ber_nesting_bomb(10_000)),
            400,
        ),
        (
            "SCEP POST: 1 000 signers",
            scep_post(multiplied(&good, 1000, 1)),
            400,
        ),
        (
            "SCEP POST: over 4 MiB",
            scep_post(vec![0x30; 4 * 1024 * 1024 + 1]),
            413,
        ),
        (
            "SCEP POST: a signed attributes message (wrong content)",
            scep_post(signed_by(&fx.attributes, b"<plist/>")),
            400,
        ),
    ];
    for (case, req, status) in cases {
        refused(&fx, case, req.clone(), status);
        let outcome = fx.d.service.config().scep.handle(&req, t0(), &mut rng());
        assert!(
            matches!(&outcome, ScepOutcome::Respond(r) if r.status == status),
            "{case}: the responder itself answers {status}"
        );
        if case.contains("signers") {
            assert!(matches!(
                PkiMessage::decode(&req.body, &BerLimits::default()),
                Err(mdm_enroll::scep::MessageError::SignerCount(1000))
            ));
        }
        if case.contains("nesting") {
            assert!(matches!(
                mdm_enroll::cms::SignedData::parse(&req.body, &BerLimits::default()),
                Err(mdm_enroll::cms::CmsError::Ber(BerError::TooDeep { .. }))
            ));
        }
    }
}

#[test]
fn scep_requests() {
    let fx = fixture();
    let (_, challenge) = fx.through_step_6();
    let k = |i: usize| keys()[i].as_ref();
    let selfsigned5 = self_signed(k(5), "CN=renewal,O=acme", t0());
    let foreign_ca =
        fx.d.device_ca
            .issue(keys()[5].clone(), t0(), &mut rng())
            .unwrap();
    let signer4 = self_signed(k(4), "CN=hostile,O=acme", t0());
    let cases: Vec<(&str, Vec<u8>, FailInfo)> = vec![
        (
            "SCEP: UpdateReq",
            ScepReq {
                message_type: MessageType::UpdateReq,
                csr_key: k(4),
                challenge: Some(&challenge),
                signer_key: k(4),
                signer: &signer4,
                transaction_id: "U1".into(),
            }
            .build(&fx),
            FailInfo::BadRequest,
        ),
        (
            "SCEP: RenewalReq signed by a self-signed certificate",
            ScepReq {
                message_type: MessageType::RenewalReq,
                csr_key: k(5),
                challenge: None,
                signer_key: k(5),
                signer: &selfsigned5,
                transaction_id: "R1".into(),
            }
            .build(&fx),
            FailInfo::BadRequest,
        ),
        (
            "SCEP: RenewalReq signed by an identity from another CA",
            ScepReq {
                message_type: MessageType::RenewalReq,
                csr_key: k(5),
                challenge: None,
                signer_key: k(5),
                signer: &foreign_ca.certificate,
                transaction_id: "R2".into(),
            }
            .build(&fx),
            FailInfo::BadRequest,
        ),
        (
            "SCEP: CSR key differs from the signer's",
            ScepReq {
                message_type: MessageType::PkcsReq,
                csr_key: k(5),
                challenge: Some(&challenge),
                signer_key: k(4),
                signer: &signer4,
                transaction_id: "K1".into(),
            }
            .build(&fx),
            FailInfo::BadRequest,
        ),
        (
            "SCEP: CertPoll carrying a CSR, not IssuerAndSubject",
            ScepReq {
                message_type: MessageType::CertPoll,
                csr_key: k(4),
                challenge: None,
                signer_key: k(4),
                signer: &signer4,
                transaction_id: "P1".into(),
            }
            .build(&fx),
            FailInfo::BadRequest,
        ),
        (
            "SCEP: no challenge",
            ScepReq {
                message_type: MessageType::PkcsReq,
                csr_key: k(4),
                challenge: None,
                signer_key: k(4),
                signer: &signer4,
                transaction_id: "N1".into(),
            }
            .build(&fx),
            FailInfo::BadRequest,
        ),
        (
            "SCEP: 1 000 certificates (bounded; refused on its challenge)",
            multiplied(&pkcs_req(&fx, k(4), "guessed-challenge", "M1"), 1, 1000),
            FailInfo::BadRequest,
        ),
        (
            "SCEP: wrong challenge",
            pkcs_req(&fx, k(4), "guessed-challenge", "W1"),
            FailInfo::BadRequest,
        ),
    ];
    for (case, body, fail) in cases {
        let resp = refused(&fx, case, scep_post(body), 200);
        assert_failure(case, &resp, fail);
    }
    // Expired: the challenge presented a day and more after it was issued.
    let late = t0() + Duration::from_secs(86400 * 2);
    let resp = refused_at(
        &fx,
        "SCEP: expired challenge",
        scep_post(pkcs_req(&fx, k(4), &challenge, "E1")),
        late,
        200,
    );
    assert_failure("SCEP: expired challenge", &resp, FailInfo::BadRequest);
}

#[test]
fn scep_replays() {
    let fx = fixture();
    let (mut dev, challenge) = fx.through_step_6();
    let mut t = |req: Request| fx.send(req, t0());
    dev.scep_enroll(&mut t, t0(), &mut rng()).unwrap();
    let k = |i: usize| keys()[i].as_ref();
    // The consumed challenge in a new request (another key).
    let resp = refused(
        &fx,
        "SCEP: reused challenge",
        scep_post(pkcs_req(&fx, k(4), &challenge, "X1")),
        200,
    );
    assert_failure("SCEP: reused challenge", &resp, FailInfo::BadRequest);
    // A replayed transaction ID with another key and the consumed challenge.
    let tid = {
        use sha1::Digest;
        let c = self_signed(k(3), "CN=x", t0());
        sha1::Sha1::digest(c.spki_der())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    };
    let resp = refused(
        &fx,
        "SCEP: replayed transaction ID, other key",
        scep_post(pkcs_req(&fx, k(5), &challenge, &tid)),
        200,
    );
    assert_failure("SCEP: replayed transaction ID", &resp, FailInfo::BadRequest);
    // A renewal signed by the issued identity: refused, nothing issued.
    let issued = dev.identity().unwrap().clone();
    let body = ScepReq {
        message_type: MessageType::RenewalReq,
        csr_key: k(3),
        challenge: None,
        signer_key: k(3),
        signer: &issued,
        transaction_id: "RR".into(),
    }
    .build(&fx);
    let resp = refused(
        &fx,
        "SCEP: renewal by the issued identity",
        scep_post(body),
        200,
    );
    assert_failure("SCEP: renewal", &resp, FailInfo::BadRequest);
}

// ---------------------------------------------------------------------- MDM

#[test]
fn mdm_checkin_and_connect() {
    let fx = fixture();
    let dev = fx.enrolled();
    // A second device, enrolled with its own identity.
    let mut other = fx.device();
    other.scep_key = keys()[6].clone();
    {
        let mut t = |req: Request| fx.send(req, t0());
        let svc = other
            .self_service(&mut t, ENROLL, "alice", "pw", "corp")
            .unwrap();
        other.send_attributes(&mut t, &svc).unwrap();
        other.scep_enroll(&mut t, t0(), &mut rng()).unwrap();
    }
    let signed = |ct: &str, body: Vec<u8>| dev.mdm_request(ct, body).unwrap();
    let auth = dev.checkin_body("Authenticate").unwrap();
    let limits = Limits::default();

    let mut unsigned = signed(media_type::CHECKIN, auth.clone());
    unsigned.headers.retain(|(k, _)| k != "Mdm-Signature");
    let mut bad_b64 = signed(media_type::CHECKIN, auth.clone());
    bad_b64.headers.retain(|(k, _)| k != "Mdm-Signature");
    bad_b64
        .headers
        .push(("Mdm-Signature".into(), "!!!not base64".into()));
    let mut tampered = signed(media_type::CHECKIN, auth.clone());
    tampered.body = dev.checkin_body("CheckOut").unwrap();
    // Device A's identity over device B's UDID.
    let other_udid = String::from_utf8(auth.clone())
        .unwrap()
        .replace(&dev.udid, &other.udid)
        .into_bytes();
    // An identity from another CA (the device CA) signing a check-in.
    let mut foreign = dev.clone();
    foreign.scep_key = keys()[2].clone();
    let foreign_req = {
        let sig = SignedDataBuilder::new(
            cms::oid::ID_DATA,
            &auth,
            fx.attributes.key.as_ref(),
            &fx.attributes.certificate,
        )
        .detached(true)
        .digest(DigestAlgorithm::Sha256)
        .build()
        .unwrap();
        let mut r = signed(media_type::CHECKIN, auth.clone());
        r.headers.retain(|(k, _)| k != "Mdm-Signature");
        use base64ct::Encoding;
        r.headers.push((
            "Mdm-Signature".into(),
            base64ct::Base64::encode_string(&sig),
        ));
        r
    };
    let report = {
        let mut d = plist::Dictionary::new();
        d.insert("Status".into(), "Idle".into());
        d.insert("UDID".into(), dev.udid.clone().into());
        let mut v = Vec::new();
        plist::to_writer_xml(&mut v, &plist::Value::Dictionary(d)).unwrap();
        v
    };

    type Typed = Box<dyn Fn() -> bool>;
    let plist_err = |body: Vec<u8>, f: fn(&PlistError) -> bool| -> Typed {
        Box::new(move || {
            matches!(CheckinMessage::decode(&body, &Limits::default()), Err(MdmError::Plist(ref e)) if f(e))
                && matches!(Report::decode(&body, &Limits::default()), Err(MdmError::Plist(ref e)) if f(e))
        })
    };
    let sig_err = |req: Request| -> Typed {
        Box::new(move || {
            let h = req
                .headers
                .iter()
                .find(|(k, _)| k == "Mdm-Signature")
                .map(|(_, v)| v.clone());
            match h {
                None => true,
                Some(h) => verify_mdm_signature(&h, &req.body, &Limits::default().ber).is_err(),
            }
        })
    };
    let _ = limits;
    // The body decodes to this typed refusal (check-in decoder, or report
    // decoder when the check-in one is not the question).
    let decoded = |body: Vec<u8>, f: fn(&MdmError) -> bool| -> Typed {
        Box::new(
            move || match CheckinMessage::decode(&body, &Limits::default()) {
                Err(ref e) => f(e),
                Ok(_) => false,
            },
        )
    };
    // The signature verifies: what refuses the request is whose it is.
    let sig_ok = |req: Request| -> Typed {
        Box::new(move || {
            let h = req
                .headers
                .iter()
                .find(|(k, _)| k == "Mdm-Signature")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            verify_mdm_signature(&h, &req.body, &Limits::default().ber).is_ok()
        })
    };
    let other_udid_req = signed(media_type::CHECKIN, other_udid);
    let teleport = String::from_utf8(auth.clone())
        .unwrap()
        .replace(">Authenticate<", ">Teleport<")
        .into_bytes();
    let whatever = String::from_utf8(report.clone())
        .unwrap()
        .replace(">Idle<", ">Whatever<")
        .into_bytes();
    let whatever_body = whatever.clone();
    let cases: Vec<(&str, Request, u16, Typed)> = vec![
        (
            "check-in: no Mdm-Signature",
            unsigned.clone(),
            400,
            sig_err(unsigned),
        ),
        (
            "check-in: Mdm-Signature not base64",
            bad_b64.clone(),
            400,
            sig_err(bad_b64),
        ),
        (
            "check-in: signature over another body",
            tampered.clone(),
            400,
            sig_err(tampered),
        ),
        (
            "check-in: signed nesting bomb",
            signed(media_type::CHECKIN, xml_nesting_bomb(50_000)),
            400,
            plist_err(xml_nesting_bomb(50_000), |e| {
                matches!(e, PlistError::TooDeep { .. })
            }),
        ),
        (
            "check-in: signed shared-reference binary plist",
            signed(media_type::CHECKIN, binary_reference_bomb()),
            400,
            plist_err(binary_reference_bomb(), |e| {
                matches!(e, PlistError::BinaryNotAllowed)
            }),
        ),
        (
            "check-in: signed invalid UTF-8",
            signed(media_type::CHECKIN, invalid_utf8_plist()),
            400,
            plist_err(invalid_utf8_plist(), |e| {
                matches!(e, PlistError::NotUtf8 { .. })
            }),
        ),
        (
            "check-in: signed 6 MiB <data>",
            signed(media_type::CHECKIN, huge_data_plist(6 << 20)),
            400,
            decoded(huge_data_plist(6 << 20), |e| {
                matches!(e, MdmError::NoIdentity)
            }),
        ),
        (
            "check-in: over 8 MiB",
            signed(media_type::CHECKIN, vec![b' '; 8 * 1024 * 1024 + 1]),
            413,
            plist_err(vec![b' '; 8 * 1024 * 1024 + 1], |e| {
                matches!(e, PlistError::TooLarge { .. })
            }),
        ),
        (
            "check-in: identity bound to another UDID",
            other_udid_req.clone(),
            400,
            sig_ok(other_udid_req.clone()),
        ),
        (
            "check-in: identity from another CA",
            foreign_req.clone(),
            400,
            sig_ok(foreign_req),
        ),
        (
            "check-in: unknown MessageType",
            signed(media_type::CHECKIN, teleport.clone()),
            400,
            decoded(
                teleport.clone(),
                |e| matches!(e, MdmError::UnknownMessageType(t) if t == "Teleport"),
            ),
        ),
        (
            "connect: report under the check-in content type",
            signed(media_type::CHECKIN, report.clone()),
            400,
            decoded(report.clone(), |e| {
                matches!(e, MdmError::MissingKey("MessageType"))
            }),
        ),
        (
            "connect: signed nesting bomb",
            signed("application/x-apple-aspen-mdm", xml_nesting_bomb(50_000)),
            400,
            plist_err(xml_nesting_bomb(50_000), |e| {
                matches!(e, PlistError::TooDeep { .. })
            }),
        ),
        (
            "connect: unknown Status",
            signed("application/x-apple-aspen-mdm", whatever.clone()),
            400,
            Box::new(move || {
                matches!(
                    Report::decode(&whatever_body, &Limits::default()),
                    Err(MdmError::UnknownStatus(s)) if s == "Whatever"
                )
            }),
        ),
    ];
    for (case, req, status, typed) in cases {
        refused(&fx, case, req, status);
        assert!(typed(), "{case}: typed refusal");
    }
}

// ------------------------------------------- absurd certificate extensions

/// `cert` with 2 000 critical extensions of an unknown OID and one 40 KB
/// subjectAltName added (its own signature no longer matches).
fn absurd_extensions(cert: &Certificate) -> Vec<u8> {
    let l = BerLimits::default();
    let root = Element::parse(cert.der(), &l).unwrap();
    let parts = root.children().unwrap();
    let tbs = parts[0];
    let mut fields: Vec<Vec<u8>> = tbs
        .children()
        .unwrap()
        .iter()
        .map(|e| e.raw.to_vec())
        .collect();
    let unknown = |i: u16| {
        let oid = [
            0x06,
            0x05,
            0x2b,
            0x06,
            0x01,
            (i >> 7) as u8 | 0x80,
            (i & 0x7f) as u8,
        ];
        let critical = [0x01, 0x01, 0xff];
        encode_tlv(
            0x30,
            &[&oid[..], &critical, &encode_tlv(0x04, &[0x05, 0x00])].concat(),
        )
    };
    let mut exts: Vec<u8> = (0..2000).flat_map(unknown).collect();
    let huge_name = encode_tlv(0x82, &vec![b'a'; 40_000]);
    exts.extend(encode_tlv(
        0x30,
        &[
            &[0x06, 0x03, 0x55, 0x1d, 0x11][..],
            &encode_tlv(0x04, &encode_tlv(0x30, &huge_name)),
        ]
        .concat(),
    ));
    let ext_index = fields.iter().position(|f| f[0] == 0xa3);
    let old = match ext_index {
        Some(i) => {
            let seq = Element::parse(&fields[i], &l).unwrap().children().unwrap()[0];
            seq.contents.to_vec()
        }
        None => Vec::new(),
    };
    let block = encode_tlv(0xa3, &encode_tlv(0x30, &[old, exts].concat()));
    match ext_index {
        Some(i) => fields[i] = block,
        None => fields.push(block),
    }
    let tbs = encode_tlv(0x30, &fields.concat());
    encode_tlv(
        0x30,
        &[tbs, parts[1].raw.to_vec(), parts[2].raw.to_vec()].concat(),
    )
}

#[test]
fn absurd_certificate_extensions() {
    let fx = fixture();
    let (_, challenge) = fx.through_step_6();
    let k4 = keys()[4].as_ref();
    // As the signer of a SCEP request (self-signed: nothing vouches for it).
    let signer = self_signed(k4, "CN=absurd,O=acme", t0());
    let absurd = absurd_extensions(&signer);
    // Bounded (under the BER limits), so it parses; nothing vouches for a
    // self-signed signer, so only the challenge decides.
    let cert = Certificate::from_der(&absurd).expect("absurd but bounded");
    let body = ScepReq {
        message_type: MessageType::PkcsReq,
        csr_key: k4,
        challenge: Some("never-issued"),
        signer_key: k4,
        signer: &cert,
        transaction_id: "A1".into(),
    }
    .build(&fx);
    let resp = refused(
        &fx,
        "SCEP: signer with absurd extensions",
        scep_post(body),
        200,
    );
    assert_failure(
        "SCEP: signer with absurd extensions",
        &resp,
        FailInfo::BadRequest,
    );
    // As the device identity signing the attributes: its CA's signature no
    // longer matches, so it is not a device identity.
    let ps_absurd = absurd_extensions(&fx.attributes.certificate);
    {
        let cert = Certificate::from_der(&ps_absurd).expect("absurd but bounded");
        let dev = fx.device();
        let body = SignedDataBuilder::new(
            cms::oid::ID_DATA,
            &dev.attributes_plist(Some(&challenge)).unwrap(),
            fx.attributes.key.as_ref(),
            &cert,
        )
        .digest(DigestAlgorithm::Sha256)
        .without_signed_attributes()
        .build()
        .unwrap();
        let req = post(PROFILE_SERVICE, "application/pkcs7-signature", body);
        refused(
            &fx,
            "attributes: identity with absurd extensions",
            req.clone(),
            400,
        );
        let e =
            fx.d.service
                .profile_service(&fx.d.tenant, &req, t0(), &mut rng())
                .unwrap_err();
        assert!(matches!(e, ServiceError::BadRequest(_)), "{e:?}");
    }
}
