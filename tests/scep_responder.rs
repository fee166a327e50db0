//! The responder's decisions: captured client requests in, CertReps out,
//! checked field by field; forged, tampered and replayed requests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use der::Encode;
use mdm_enroll::cms::enveloped::{
    ContentCipher, DecryptPolicy, EnvelopedData, RecipientId, RecipientIdentity,
};
use mdm_enroll::cms::{self, Certificate, SignedDataBuilder};
use mdm_enroll::crypto::{DigestAlgorithm, KeyUnwrapper, RsaKey, Signer};
use mdm_enroll::http::{Method, Request, Response, media_type};
use mdm_enroll::pki::{self, LeafPolicy};
use mdm_enroll::scep::{
    Capabilities, Challenge, ChallengeVerdict, ChallengeVerifier, FailInfo, MessageType,
    PkiMessage, PkiStatus, RequestFingerprint, ScepError, ScepOutcome, ScepResponder, oid,
};
use mdm_enroll::wire::BerLimits;
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;

fn rng() -> Rng {
    UnwrapErr(getrandom::SysRng)
}

fn captured(name: &str) -> Vec<u8> {
    let p = captured_path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn pem_cert(name: &str) -> Certificate {
    Certificate::from_pem(&captured(name)).unwrap().remove(0)
}

fn key(name: &str) -> Arc<RsaKey> {
    Arc::new(RsaKey::from_pem_or_der(&captured(name)).unwrap())
}

/// A responder for the captured CA `ca` (`ca/{ca}.pem` + key).
fn responder(ca: &str) -> ScepResponder {
    let k = key(&format!("ca/{ca}.key.pem"));
    ScepResponder::new(
        pem_cert(&format!("ca/{ca}.pem")).der(),
        k.clone() as Arc<dyn Signer>,
        k as Arc<dyn KeyUnwrapper>,
    )
    .unwrap()
}

/// A time inside the validity of every captured certificate.
fn capture_time() -> SystemTime {
    SystemTime::from(pem_cert("inner/22-signer-cert.pem").not_before()) + Duration::from_secs(600)
}

fn post(body: Vec<u8>) -> Request {
    let mut r = Request::new(Method::Post, "/scep");
    r.query = Some("operation=PKIOperation".into());
    r.body = body;
    r
}

fn get(query: &str) -> Request {
    let mut r = Request::new(Method::Get, "/scep");
    r.query = Some(query.into());
    r
}

fn respond(outcome: ScepOutcome<'_>) -> Response {
    match outcome {
        ScepOutcome::Respond(r) => r,
        other => panic!("expected a ready response, got {other:?}"),
    }
}

fn decode(resp: &Response) -> PkiMessage {
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_type_is(), media_type::PKI_MESSAGE);
    PkiMessage::decode(&resp.body, &BerLimits::default()).unwrap()
}

trait ContentType {
    fn content_type_is(&self) -> &str;
}
impl ContentType for Response {
    fn content_type_is(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }
}

/// Decrypt the certificate out of a SUCCESS CertRep with the client's key.
fn issued_cert(rep: &PkiMessage, client: &RsaKey) -> (Certificate, ContentCipher) {
    let limits = BerLimits::default();
    let env = rep.envelope(&limits).unwrap();
    let RecipientId::IssuerAndSerial { issuer, serial } = env.recipients[0].rid.clone() else {
        panic!("rid")
    };
    let me = RecipientIdentity {
        issuer,
        serial,
        subject_key_id: None,
    };
    let p7 = env.decrypt(&me, client, &DecryptPolicy::default()).unwrap();
    let sd = cms::SignedData::parse(&p7, &limits).unwrap();
    assert!(sd.signers().is_empty());
    (sd.certificates()[0].clone(), env.cipher.unwrap())
}

/// A one-time challenge store: each challenge binds to the first CSR that uses it.
struct OneTime(Mutex<HashMap<Vec<u8>, Option<RequestFingerprint>>>);

impl OneTime {
    fn new(challenges: &[&str]) -> Self {
        Self(Mutex::new(
            challenges
                .iter()
                .map(|c| (c.as_bytes().to_vec(), None))
                .collect(),
        ))
    }
}

impl ChallengeVerifier for OneTime {
    fn consume(
        &self,
        c: &Challenge,
        fp: &RequestFingerprint,
        _now: SystemTime,
    ) -> ChallengeVerdict {
        let mut map = self.0.lock().unwrap();
        let Some(slot) = map.iter_mut().find(|(k, _)| c.matches(k)).map(|(_, v)| v) else {
            return ChallengeVerdict::Refused;
        };
        match slot {
            None => {
                *slot = Some(*fp);
                ChallengeVerdict::Accepted
            }
            Some(used) if used == fp => ChallengeVerdict::Retry,
            Some(_) => ChallengeVerdict::Refused,
        }
    }
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn getcacaps_and_getcacert() {
    let r = responder("rfcku-ca");
    let now = capture_time();
    let caps = respond(r.handle(&get("operation=GetCACaps&message=0"), now, &mut rng()));
    assert_eq!(caps.status, 200);
    assert_eq!(caps.content_type_is(), "text/plain");
    assert_eq!(
        caps.body,
        b"POSTPKIOperation\nSHA-256\nSHA-512\nAES\nDES3\nSCEPStandard\nRenewal\n"
    );
    let custom = r.clone().with_capabilities(Capabilities(vec![
        mdm_enroll::scep::Capability::Sha1,
        mdm_enroll::scep::Capability::Des3,
    ]));
    let caps = respond(custom.handle(&get("operation=GetCACaps"), now, &mut rng()));
    assert_eq!(caps.body, b"SHA-1\nDES3\n");

    let ca = respond(r.handle(&get("operation=GetCACert&message=0"), now, &mut rng()));
    assert_eq!(ca.content_type_is(), media_type::CA_CERT);
    assert_eq!(ca.body, captured("ca/rfcku-ca.der"));

    // RA mode: [RA, CA] as a degenerate PKCS#7, readable by OpenSSL.
    let ra_key = key("ca/rfcku-ra.key.pem");
    let with_ra = r
        .clone()
        .with_ra(
            pem_cert("ca/rfcku-ra.pem").der(),
            ra_key.clone() as Arc<dyn Signer>,
            ra_key as Arc<dyn KeyUnwrapper>,
        )
        .unwrap();
    let bag = respond(with_ra.handle(&get("operation=GetCACert"), now, &mut rng()));
    assert_eq!(bag.content_type_is(), media_type::CA_RA_CERT);
    let dir = std::env::temp_dir().join(format!("scep-ra-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bag.der"), &bag.body).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"])
        .arg(dir.join("bag.der"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("CN = Test SCEP RA") && text.contains("Test SCEP CA"),
        "{text}"
    );

    // Unknown operation and wrong method: plain HTTP errors, not CertReps.
    assert_eq!(
        respond(r.handle(&get("operation=Nope"), now, &mut rng())).status,
        400
    );
    let mut put = get("operation=GetCACaps");
    put.method = Method::Put;
    assert_eq!(respond(r.handle(&put, now, &mut rng())).status, 405);
}

#[test]
fn apple_emu_request_is_issued_in_its_own_cipher_with_fresh_nonce() {
    let r = responder("rfcku-ca");
    let now = capture_time();
    let body = captured("22-pkcsreq.apple-emu.post-aes128-sha256.der");
    let req = PkiMessage::decode(&body, &BerLimits::default()).unwrap();
    let ScepOutcome::Certificate(cr) = r.handle(&post(body.clone()), now, &mut rng()) else {
        panic!("expected a certificate request")
    };
    assert_eq!(cr.message_type(), MessageType::PkcsReq);
    assert_eq!(
        cr.transaction_id(),
        "D4E5CB7965D4183838F736F40C8D9F19026BE19B"
    );
    assert!(cr.challenge().unwrap().matches(b"secret123"));
    assert!(cr.renewal_of().is_none());
    assert_eq!(cr.cipher(), ContentCipher::Aes128Cbc);
    assert_eq!(
        cr.signer_certificate().der(),
        pem_cert("inner/22-signer-cert.pem").der()
    );

    // Caller policy decides the subject and SANs, not the CSR.
    let mut policy = LeafPolicy::client_auth("CN=device-42,O=Example MDM".parse().unwrap());
    policy.subject_alt_names = vec![x509_cert::ext::pkix::name::GeneralName::DnsName(
        der::asn1::Ia5String::new("device-42.example").unwrap(),
    )];
    let serial = pki::random_serial(&mut rng());
    let issued = cr
        .issue(
            &policy,
            serial.clone(),
            pki::validity(now, Duration::from_secs(3600)).unwrap(),
            now,
            &mut rng(),
        )
        .unwrap();
    let rep = decode(&issued.response);
    rep.verify().unwrap();
    assert_eq!(
        rep.signer_certificate().unwrap().der(),
        r.ca_certificate().der()
    );
    assert_eq!(rep.message_type(), MessageType::CertRep);
    assert_eq!(rep.pki_status(), Some(PkiStatus::Success));
    assert_eq!(rep.fail_info(), None);
    assert_eq!(rep.transaction_id(), req.transaction_id());
    assert_eq!(rep.recipient_nonce(), req.sender_nonce());
    assert_eq!(rep.sender_nonce().map(<[u8]>::len), Some(16));
    assert_ne!(rep.sender_nonce(), req.sender_nonce());
    assert_eq!(rep.digest(), DigestAlgorithm::Sha256);

    let (cert, cipher) = issued_cert(&rep, &key("keys/apple-emu-10.key.pem"));
    assert_eq!(cipher, ContentCipher::Aes128Cbc);
    assert_eq!(cert.der(), issued.record.certificate);
    assert_eq!(cert.serial(), serial.as_bytes());
    assert!(serial.as_bytes().len() >= 9);
    cert.verify_issued_by(r.ca_certificate()).unwrap();
    assert_eq!(cert.subject_string(), "CN=device-42,O=Example MDM");
    let x = cert.to_x509().unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert_eq!(eku, vec![const_oid::db::rfc5280::ID_KP_CLIENT_AUTH]);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    assert_eq!(
        x.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
        cr.csr().public_key().to_der().unwrap()
    );
}

#[test]
fn replies_use_the_request_cipher_des_and_aes256() {
    let now = capture_time();
    // micromdm scepclient: single DES + SHA-1 → the reply is DES + SHA-1.
    let r = responder("micromdm-ca");
    let body = captured("03-pkcsreq.micromdm-scepclient.post.der");
    let ScepOutcome::Certificate(cr) = r.handle(&post(body), now, &mut rng()) else {
        panic!()
    };
    let policy = LeafPolicy::client_auth(cr.csr().subject().clone());
    let validity = pki::validity(now, Duration::from_secs(3600)).unwrap();
    let issued = cr
        .issue(
            &policy,
            pki::random_serial(&mut rng()),
            validity,
            now,
            &mut rng(),
        )
        .unwrap();
    let rep = decode(&issued.response);
    assert_eq!(rep.digest(), DigestAlgorithm::Sha1);
    let (_, cipher) = issued_cert(&rep, &key("keys/micromdm-client1.key.pem"));
    assert_eq!(cipher, ContentCipher::DesCbc);

    // certmonger over GET: AES-256 + SHA-256.
    let r = responder("rfcku-ca");
    let line = String::from_utf8(captured("14-pkcsreq.certmonger.get.http.txt")).unwrap();
    let target = line.split_whitespace().nth(1).unwrap();
    let req = get(target.split_once('?').unwrap().1);
    let ScepOutcome::Certificate(cr) = r.handle(&req, now, &mut rng()) else {
        panic!()
    };
    let issued = cr
        .issue(
            &policy,
            pki::random_serial(&mut rng()),
            validity,
            now,
            &mut rng(),
        )
        .unwrap();
    let rep = decode(&issued.response);
    assert_eq!(rep.digest(), DigestAlgorithm::Sha256);
    let (_, cipher) = issued_cert(&rep, &key("keys/certmonger-cm6.key.pem"));
    assert_eq!(cipher, ContentCipher::Aes256Cbc);

    // With single DES refused by policy, the same micromdm request is badAlg.
    let strict = responder("micromdm-ca")
        .with_decrypt_policy(DecryptPolicy::default().with_single_des(false));
    let body = captured("03-pkcsreq.micromdm-scepclient.post.der");
    let rep = decode(&respond(strict.handle(&post(body), now, &mut rng())));
    assert_eq!(rep.pki_status(), Some(PkiStatus::Failure));
    assert_eq!(rep.fail_info(), Some(FailInfo::BadAlg));
}

#[test]
fn replay_returns_the_same_certificate_and_used_challenge_is_refused() {
    let r = responder("rfcku-ca");
    let now = capture_time();
    let store = OneTime::new(&["secret123"]);
    let mut records = HashMap::new();
    let serials = std::cell::RefCell::new(Vec::new());
    let mut handle = |body: Vec<u8>| -> Response {
        match r.handle(&post(body), now, &mut rng()) {
            ScepOutcome::Respond(resp) => resp,
            ScepOutcome::Certificate(cr) => {
                if let Some(rec) = records
                    .get(cr.transaction_id())
                    .filter(|x| cr.is_replay_of(x))
                {
                    return cr.replay(rec, now, &mut rng()).unwrap();
                }
                if cr.check_challenge(&store, now) != ChallengeVerdict::Accepted {
                    return cr.reject(FailInfo::BadRequest, now, &mut rng());
                }
                let serial = pki::random_serial(&mut rng());
                serials.borrow_mut().push(serial.clone());
                let issued = cr
                    .issue(
                        &LeafPolicy::client_auth(cr.csr().subject().clone()),
                        serial,
                        pki::validity(now, Duration::from_secs(3600)).unwrap(),
                        now,
                        &mut rng(),
                    )
                    .unwrap();
                records.insert(cr.transaction_id().to_owned(), issued.record);
                issued.response
            }
            ScepOutcome::Poll(_) => panic!("poll"),
        }
    };
    let client = key("keys/apple-emu-10.key.pem");
    let body = captured("22-pkcsreq.apple-emu.post-aes128-sha256.der");
    let first = decode(&handle(body.clone()));
    let second = decode(&handle(body.clone()));
    let third = decode(&handle(body));
    let (c1, _) = issued_cert(&first, &client);
    let (c2, _) = issued_cert(&second, &client);
    let (c3, _) = issued_cert(&third, &client);
    assert_eq!(c1.der(), c2.der());
    assert_eq!(c1.der(), c3.der());
    assert_eq!(serials.borrow().len(), 1, "a replay must not issue again");
    assert_ne!(first.sender_nonce(), second.sender_nonce());

    // Another CSR (the BER capture, also "secret123") after the challenge was used.
    let other = decode(&handle(captured("27-pkcsreq.apple-emu.ber-indefinite.der")));
    assert_eq!(other.pki_status(), Some(PkiStatus::Failure));
    assert_eq!(other.fail_info(), Some(FailInfo::BadRequest));
    assert_eq!(serials.borrow().len(), 1);
}

/// Sign `content` as a SCEP request from the captured apple-emu-10 client.
fn client_message(
    content: &[u8],
    signer_key: &RsaKey,
    signer_cert: &Certificate,
    message_type: MessageType,
    tid: &str,
) -> Vec<u8> {
    let printable = |s: &str| {
        let mut v = vec![0x13, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    };
    let mut nonce = vec![0x04, 16];
    nonce.extend_from_slice(&[7u8; 16]);
    SignedDataBuilder::new(cms::oid::ID_DATA, content, signer_key, signer_cert)
        .digest(DigestAlgorithm::Sha256)
        .signed_attribute(
            oid::MESSAGE_TYPE,
            printable(&message_type.number().to_string()),
        )
        .signed_attribute(oid::TRANSACTION_ID, printable(tid))
        .signed_attribute(oid::SENDER_NONCE, nonce)
        .build()
        .unwrap()
}

/// A minimal PKCS#10 request for `key`, optionally with a challengePassword.
fn csr(key: &RsaKey, cn: &str, challenge: Option<&str>) -> Vec<u8> {
    fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let body = parts.concat();
        let mut out = vec![tag];
        match body.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(body);
        out
    }
    let name: x509_cert::name::Name = format!("CN={cn}").parse().unwrap();
    let spki = spki::SubjectPublicKeyInfoOwned::from_key(Signer::public_key(key))
        .unwrap()
        .to_der()
        .unwrap();
    let attrs = match challenge {
        Some(c) => tlv(
            0xa0,
            &[&tlv(
                0x30,
                &[
                    &[
                        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07,
                    ],
                    &tlv(0x31, &[&tlv(0x0c, &[c.as_bytes()])]),
                ],
            )],
        ),
        None => vec![0xa0, 0x00],
    };
    let info = tlv(
        0x30,
        &[&[0x02, 0x01, 0x00], &name.to_der().unwrap(), &spki, &attrs],
    );
    let sig = key.sign(DigestAlgorithm::Sha256, &info).unwrap();
    let alg = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
    ];
    tlv(0x30, &[&info, &alg, &tlv(0x03, &[&[0], &sig])])
}

fn to_ca(r: &ScepResponder, content: &[u8], cipher: ContentCipher) -> Vec<u8> {
    let ca = r.ca_certificate();
    EnvelopedData::encrypt(
        content,
        &RecipientIdentity::of(ca),
        &ca.public_key().unwrap(),
        cipher,
        &mut rng(),
    )
    .unwrap()
}

#[test]
fn every_failure_after_parsing_is_the_same_signed_certrep() {
    let r = responder("rfcku-ca");
    let now = capture_time();
    let client = key("keys/apple-emu-10.key.pem");
    let signer = pem_cert("inner/22-signer-cert.pem");
    let good_csr = captured("inner/22-csr.der");
    let tid = "UNIFORM";
    let send = |content: &[u8]| {
        let body = client_message(content, &client, &signer, MessageType::PkcsReq, tid);
        r.handle(&post(body), now, &mut rng())
    };
    // Sanity: the well-formed request goes through.
    assert!(matches!(
        send(&to_ca(&r, &good_csr, ContentCipher::Aes128Cbc)),
        ScepOutcome::Certificate(_)
    ));

    let good = to_ca(&r, &good_csr, ContentCipher::Aes128Cbc);
    let env = EnvelopedData::parse(&good, &BerLimits::default()).unwrap();
    let ek = env.recipients[0].encrypted_key.clone();
    let pos = good
        .windows(ek.len())
        .position(|w| w == ek.as_slice())
        .unwrap();
    // 1. random RSA block (bad PKCS#1 padding)
    let mut bad_rsa = good.clone();
    bad_rsa[pos..pos + ek.len()].fill(0x5a);
    // 2. valid key transport, broken CBC padding
    let mut bad_cbc = good.clone();
    let last = bad_cbc.len() - 1;
    bad_cbc[last] ^= 0xff;
    bad_cbc[last - 20] ^= 0xff;
    // 3. decrypts fine, but not a CSR
    let not_csr = to_ca(&r, b"definitely not a CSR", ContentCipher::Aes128Cbc);
    // 4. a CSR whose self-signature is broken
    let mut forged = good_csr.clone();
    let n = forged.len() - 5;
    forged[n] ^= 1;
    let bad_sig_csr = to_ca(&r, &forged, ContentCipher::Aes128Cbc);
    // 5. the wrong challenge, refused by the caller
    let wrong = to_ca(
        &r,
        &csr(&client, "x", Some("wrong")),
        ContentCipher::Aes128Cbc,
    );

    let mut shapes = Vec::new();
    for (what, content) in [
        ("bad RSA padding", &bad_rsa),
        ("bad CBC padding", &bad_cbc),
        ("not a CSR", &not_csr),
        ("bad CSR signature", &bad_sig_csr),
        ("wrong challenge", &wrong),
    ] {
        let resp = match send(content) {
            ScepOutcome::Respond(resp) => resp,
            ScepOutcome::Certificate(cr) => {
                assert_eq!(what, "wrong challenge", "{what} was accepted");
                let store = OneTime::new(&["secret123"]);
                assert_eq!(cr.check_challenge(&store, now), ChallengeVerdict::Refused);
                cr.reject(FailInfo::BadRequest, now, &mut rng())
            }
            ScepOutcome::Poll(_) => panic!("{what}"),
        };
        assert_eq!(resp.status, 200, "{what}");
        let rep = decode(&resp);
        rep.verify().unwrap();
        assert_eq!(rep.pki_status(), Some(PkiStatus::Failure), "{what}");
        assert_eq!(rep.fail_info(), Some(FailInfo::BadRequest), "{what}");
        assert_eq!(rep.transaction_id(), tid, "{what}");
        assert_eq!(rep.recipient_nonce(), Some(&[7u8; 16][..]), "{what}");
        assert_eq!(rep.content(), None, "{what}");
        let attrs: Vec<_> = rep.signed_data().signers()[0]
            .signed_attributes()
            .unwrap()
            .iter()
            .map(|a| a.oid)
            .collect();
        shapes.push((resp.body.len(), attrs));
    }
    assert!(
        shapes.windows(2).all(|w| w[0] == w[1]),
        "failure replies differ in shape: {shapes:?}"
    );
}

#[test]
fn message_types_and_signatures_are_enforced() {
    let r = responder("rfcku-ca");
    let now = capture_time();
    let client = key("keys/apple-emu-10.key.pem");
    let signer = pem_cert("inner/22-signer-cert.pem");
    let content = to_ca(&r, &captured("inner/22-csr.der"), ContentCipher::Aes128Cbc);
    for t in [
        MessageType::UpdateReq,
        MessageType::GetCert,
        MessageType::GetCrl,
        MessageType::CertRep,
        MessageType::Other(99),
    ] {
        let body = client_message(&content, &client, &signer, t, "T");
        let rep = decode(&respond(r.handle(&post(body), now, &mut rng())));
        assert_eq!(rep.fail_info(), Some(FailInfo::BadRequest), "{t:?}");
    }
    // A broken outer signature: badMessageCheck, still a signed CertRep.
    let mut body = captured("22-pkcsreq.apple-emu.post-aes128-sha256.der");
    let n = body.len() - 1;
    body[n] ^= 1;
    let rep = decode(&respond(r.handle(&post(body), now, &mut rng())));
    assert_eq!(rep.fail_info(), Some(FailInfo::BadMessageCheck));
    assert_eq!(
        rep.transaction_id(),
        "D4E5CB7965D4183838F736F40C8D9F19026BE19B"
    );
    // Garbage: plain HTTP 400, no CertRep possible.
    for junk in [
        vec![],
        vec![0x30, 0x80],
        b"hello".to_vec(),
        vec![0x30; 5000],
    ] {
        assert_eq!(respond(r.handle(&post(junk), now, &mut rng())).status, 400);
    }
    // Over the size limit.
    let mut limits = mdm_enroll::wire::Limits::default();
    limits.ber.max_size = 100;
    let small = r.clone().with_limits(limits);
    let resp = respond(small.handle(&post(vec![0; 101]), now, &mut rng()));
    assert_eq!(resp.status, 413);
}

#[test]
fn renewal_needs_a_certificate_from_this_ca_or_a_challenge() {
    let r = responder("rfcku-ca");
    let ca_key = key("ca/rfcku-ca.key.pem");
    let now = capture_time();
    let client = key("keys/apple-emu-10.key.pem");
    let no_challenge = to_ca(
        &r,
        &csr(&client, "renew-me", None),
        ContentCipher::Aes256Cbc,
    );

    // Self-signed signer, no challenge: refused, whatever the type.
    let self_signed = pem_cert("inner/22-signer-cert.pem");
    for t in [MessageType::RenewalReq, MessageType::PkcsReq] {
        let body = client_message(&no_challenge, &client, &self_signed, t, "R1");
        let rep = decode(&respond(r.handle(&post(body), now, &mut rng())));
        assert_eq!(rep.fail_info(), Some(FailInfo::BadRequest), "{t:?}");
    }

    // Signed by a certificate this CA issued, valid now: a renewal.
    let x509_ca = r.ca_certificate().to_x509().unwrap();
    let spki =
        spki::SubjectPublicKeyInfoOwned::from_key(Signer::public_key(client.as_ref())).unwrap();
    let old = pki::issue(
        &x509_ca,
        ca_key.as_ref(),
        spki.clone(),
        &LeafPolicy::client_auth("CN=renew-me".parse().unwrap()),
        pki::random_serial(&mut rng()),
        pki::validity(now, Duration::from_secs(3600)).unwrap(),
    )
    .unwrap();
    let old = Certificate::from_der(&old.to_der().unwrap()).unwrap();
    let body = client_message(&no_challenge, &client, &old, MessageType::RenewalReq, "R2");
    match r.handle(&post(body.clone()), now, &mut rng()) {
        ScepOutcome::Certificate(cr) => {
            assert_eq!(cr.message_type(), MessageType::RenewalReq);
            assert_eq!(cr.renewal_of().unwrap().der(), old.der());
            assert!(cr.challenge().is_none());
        }
        other => panic!("{other:?}"),
    }
    // The same certificate once expired: refused.
    let later = now + Duration::from_secs(2 * 3600);
    let rep = decode(&respond(r.handle(&post(body), later, &mut rng())));
    assert_eq!(rep.fail_info(), Some(FailInfo::BadRequest));

    // A certificate from another CA (micromdm's) is not ours.
    let foreign = pem_cert("keys/micromdm-client1.cert-serial02.pem");
    let foreign_key = key("keys/micromdm-client1.key.pem");
    let body = client_message(
        &no_challenge,
        &foreign_key,
        &foreign,
        MessageType::RenewalReq,
        "R3",
    );
    let rep = decode(&respond(r.handle(&post(body), now, &mut rng())));
    assert_eq!(rep.fail_info(), Some(FailInfo::BadRequest));
}

#[test]
fn pending_then_getcertinitial_delivers() {
    let r = responder("rfcku-ca");
    let now = capture_time();
    let line = String::from_utf8(captured("14-pkcsreq.certmonger.get.http.txt")).unwrap();
    let target = line.split_whitespace().nth(1).unwrap();
    let ScepOutcome::Certificate(cr) =
        r.handle(&get(target.split_once('?').unwrap().1), now, &mut rng())
    else {
        panic!()
    };
    let pending = decode(&cr.pending(now, &mut rng()));
    assert_eq!(pending.pki_status(), Some(PkiStatus::Pending));
    assert_eq!(pending.fail_info(), None);
    assert_eq!(pending.content(), None);
    // Approved later.
    let issued = cr
        .issue(
            &LeafPolicy::client_auth(cr.csr().subject().clone()),
            pki::random_serial(&mut rng()),
            pki::validity(now, Duration::from_secs(3600)).unwrap(),
            now,
            &mut rng(),
        )
        .unwrap();
    // certmonger's GetCertInitial for the same transaction.
    let poll_body = captured("18-getcertinitial.certmonger.der");
    let ScepOutcome::Poll(poll) = r.handle(&post(poll_body), now, &mut rng()) else {
        panic!()
    };
    assert_eq!(poll.transaction_id(), cr.transaction_id());
    assert_eq!(
        poll.issuer_and_subject().issuer,
        r.ca_certificate().subject_der()
    );
    let rep = decode(&poll.issued(&issued.record, now, &mut rng()).unwrap());
    assert_eq!(rep.pki_status(), Some(PkiStatus::Success));
    let (cert, cipher) = issued_cert(&rep, &key("keys/certmonger-cm6.key.pem"));
    assert_eq!(cert.der(), issued.record.certificate);
    assert_eq!(cipher, ContentCipher::Aes256Cbc);
    // A record whose certificate the caller's store damaged is an error,
    // not a SUCCESS carrying bytes that are no certificate.
    let mut damaged = issued.record.clone();
    damaged.certificate.truncate(damaged.certificate.len() / 2);
    assert!(matches!(
        poll.issued(&damaged, now, &mut rng()),
        Err(ScepError::Certificate(_))
    ));
    let none = decode(&poll.reject(FailInfo::BadCertId, now, &mut rng()));
    assert_eq!(none.fail_info(), Some(FailInfo::BadCertId));
}

/// `EnvelopedData::encrypt` as the device receives it, checked by an
/// independent implementation: OpenSSL decrypts each SUCCESS CertRep's
/// envelope with the requester's key, in every cipher a client asked for,
/// and finds the certificate the responder issued.
#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn openssl_decrypts_the_certrep_envelope_in_every_cipher() {
    let now = capture_time();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // (request, requester's key, its signer certificate, cipher)
        (
            "03-pkcsreq.micromdm-scepclient.post.der",
            "keys/micromdm-client1.key.pem",
            "inner/03-signer-cert.pem",
            ContentCipher::DesCbc,
        ),
        (
            "24-pkcsreq.apple-emu.get-des3-sha1.der",
            "keys/apple-emu-8.key.pem",
            "inner/24-signer-cert.pem",
            ContentCipher::DesEde3Cbc,
        ),
        (
            "22-pkcsreq.apple-emu.post-aes128-sha256.der",
            "keys/apple-emu-10.key.pem",
            "inner/22-signer-cert.pem",
            ContentCipher::Aes128Cbc,
        ),
        (
            "14-pkcsreq.certmonger.get.der",
            "keys/certmonger-cm6.key.pem",
            "inner/14-signer-cert.pem",
            ContentCipher::Aes256Cbc,
        ),
    ];
    let responders = [responder("micromdm-ca"), responder("rfcku-ca")];
    for (request, client_key, signer, cipher) in cases {
        // The responder of the CA the request is encrypted to.
        let cr = responders
            .iter()
            .find_map(
                |r| match r.handle(&post(captured(request)), now, &mut rng()) {
                    ScepOutcome::Certificate(cr) => Some(cr),
                    _ => None,
                },
            )
            .unwrap_or_else(|| panic!("{request}: no responder issues"));
        assert_eq!(cr.cipher(), cipher, "{request}");
        let issued = cr
            .issue(
                &LeafPolicy::client_auth(cr.csr().subject().clone()),
                pki::random_serial(&mut rng()),
                pki::validity(now, Duration::from_secs(3600)).unwrap(),
                now,
                &mut rng(),
            )
            .unwrap();
        let rep = decode(&issued.response);
        let envelope = dir.path().join("envelope.der");
        std::fs::write(&envelope, rep.content().unwrap()).unwrap();
        let p7 = dir.path().join("p7.der");
        let mut cmd = std::process::Command::new("openssl");
        cmd.arg("cms");
        if cipher == ContentCipher::DesCbc {
            // Single DES lives in OpenSSL 3's legacy provider.
            cmd.args(["-provider", "legacy", "-provider", "default"]);
        }
        let out = cmd
            .args(["-decrypt", "-binary", "-inform", "DER", "-in"])
            .arg(&envelope)
            .arg("-recip")
            .arg(captured_path(signer))
            .arg("-inkey")
            .arg(captured_path(client_key))
            .arg("-out")
            .arg(&p7)
            .output()
            .expect("openssl CLI");
        assert!(
            out.status.success(),
            "{request}: openssl cms -decrypt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let certs = std::process::Command::new("openssl")
            .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
            .arg(&p7)
            .output()
            .expect("openssl CLI");
        assert!(certs.status.success(), "{request}: openssl pkcs7");
        let found = Certificate::from_pem(&certs.stdout).unwrap();
        assert_eq!(found.len(), 1, "{request}");
        assert_eq!(found[0].der(), issued.record.certificate, "{request}");
    }
}

fn captured_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/scep/captured")
        .join(name)
}
