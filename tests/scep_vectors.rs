//! Captured SCEP messages (`tests/vectors/scep/`): every request decodes,
//! verifies and decrypts with its CA key to the CSR / IssuerAndSubject that
//! OpenSSL extracted (`captured/inner/`); every CertRep decodes to the status
//! PROVENANCE.tsv records; the GET captures decode to the same bytes as the
//! DER files.

use std::path::{Path, PathBuf};

use mdm_enroll::cms::enveloped::{ContentCipher, DecryptPolicy, RecipientId, RecipientIdentity};
use mdm_enroll::cms::{self, Certificate};
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey};
use mdm_enroll::http::{Method, Request};
use mdm_enroll::scep::transport::{Operation, parse_request};
use mdm_enroll::scep::{Csr, FailInfo, IssuerAndSubject, MessageType, PkiMessage, PkiStatus};
use mdm_enroll::wire::BerLimits;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/scep")
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    let p = p.as_ref();
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

struct Row {
    file: String,
    message_type: String,
    transaction_id: String,
    cipher: String,
    digest: String,
    notes: String,
}

fn provenance() -> Vec<Row> {
    let text = String::from_utf8(read(dir().join("captured/PROVENANCE.tsv"))).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 7, "bad PROVENANCE row {l}");
            Row {
                file: c[0].into(),
                message_type: c[2].into(),
                transaction_id: c[3].into(),
                cipher: c[4].into(),
                digest: c[5].into(),
                notes: c[6].into(),
            }
        })
        .collect()
}

/// CA and RA certificates with their keys (captured/ca/).
fn authorities() -> Vec<(Certificate, RsaKey)> {
    let ca = dir().join("captured/ca");
    ["micromdm-ca", "rfcku-ca", "rfcku-ra"]
        .iter()
        .map(|n| {
            let cert = Certificate::from_pem(&read(ca.join(format!("{n}.pem"))))
                .unwrap()
                .remove(0);
            let key = RsaKey::from_pem_or_der(&read(ca.join(format!("{n}.key.pem")))).unwrap();
            (cert, key)
        })
        .collect()
}

fn expected_cipher(col: &str) -> ContentCipher {
    [
        ("DES-CBC", ContentCipher::DesCbc),
        ("DES-EDE3-CBC", ContentCipher::DesEde3Cbc),
        ("AES-128-CBC", ContentCipher::Aes128Cbc),
        ("AES-256-CBC", ContentCipher::Aes256Cbc),
    ]
    .into_iter()
    .find(|(n, _)| col.starts_with(&format!("{n} ")) || col == *n)
    .unwrap_or_else(|| panic!("unknown cipher column {col}"))
    .1
}

fn expected_digest(col: &str) -> DigestAlgorithm {
    match col.split(' ').next().unwrap() {
        "sha1" => DigestAlgorithm::Sha1,
        "sha256" => DigestAlgorithm::Sha256,
        other => panic!("unknown digest {other}"),
    }
}

fn prefix(file: &str) -> &str {
    file.split('-').next().unwrap()
}

#[test]
fn every_captured_request_decrypts_to_its_inner_payload() {
    let limits = BerLimits::default();
    let cas = authorities();
    let mut checked = 0;
    let mut challenges_checked = 0;
    let mut keys_checked = Vec::new();
    for row in provenance() {
        let kind = if row.message_type.starts_with("PKCSReq") {
            MessageType::PkcsReq
        } else if row.message_type.starts_with("RenewalReq") {
            MessageType::RenewalReq
        } else if row.message_type.starts_with("CertPoll") {
            MessageType::CertPoll
        } else {
            continue;
        };
        let bytes = read(dir().join("captured").join(&row.file));
        let msg =
            PkiMessage::decode(&bytes, &limits).unwrap_or_else(|e| panic!("{}: {e}", row.file));
        assert_eq!(msg.message_type(), kind, "{}", row.file);
        assert_eq!(msg.transaction_id(), row.transaction_id, "{}", row.file);
        assert_eq!(msg.digest(), expected_digest(&row.digest), "{}", row.file);
        assert_eq!(
            msg.sender_nonce().map(<[u8]>::len),
            Some(16),
            "{}",
            row.file
        );
        let signer = msg
            .verify()
            .unwrap_or_else(|e| panic!("{}: verify: {e}", row.file));
        let n = prefix(&row.file);
        let signer_pem = dir().join(format!("captured/inner/{n}-signer-cert.pem"));
        if signer_pem.exists() {
            let want = Certificate::from_pem(&read(&signer_pem)).unwrap().remove(0);
            assert_eq!(signer.der(), want.der(), "{}: signer cert", row.file);
        }

        let env = msg.envelope(&limits).unwrap();
        assert_eq!(
            env.cipher,
            Some(expected_cipher(&row.cipher)),
            "{}",
            row.file
        );
        let (cert, key) = cas
            .iter()
            .find(|(c, _)| {
                let id = RecipientIdentity::of(c);
                env.recipients.iter().any(|r| id.matches(&r.rid))
            })
            .unwrap_or_else(|| panic!("{}: no CA matches the recipient", row.file));
        let plain = env
            .decrypt(&RecipientIdentity::of(cert), key, &DecryptPolicy::default())
            .unwrap_or_else(|e| panic!("{}: decrypt: {e}", row.file));

        let inner = dir().join("captured/inner");
        if kind == MessageType::CertPoll {
            let want = read(inner.join(format!("{n}-issuerandsubject.der")));
            assert_eq!(plain, want, "{}", row.file);
            let ias = IssuerAndSubject::decode(&plain, &limits).unwrap();
            assert_eq!(ias.issuer, cert.subject_der(), "{}", row.file);
        } else {
            let csr_file = inner.join(format!("{n}-csr.der"));
            if csr_file.exists() {
                assert_eq!(plain, read(&csr_file), "{}", row.file);
            }
            let csr = Csr::parse(&plain, &limits).unwrap_or_else(|e| panic!("{}: {e}", row.file));
            // The BER captures have no inner/ file: the CSR must be for the
            // client key PROVENANCE names.
            if let Some(key_file) = value_after(&row.notes, "key keys/") {
                let client =
                    RsaKey::from_pem_or_der(&read(dir().join("captured/keys").join(key_file)))
                        .unwrap();
                let spki = mdm_enroll::crypto::rsa_public_key(csr.public_key()).unwrap();
                assert_eq!(
                    &spki,
                    mdm_enroll::crypto::Signer::public_key(&client),
                    "{}",
                    row.file
                );
                keys_checked.push(n.to_owned());
            }
            // Every CSR row names its challengePassword (checked with
            // `openssl req -text` on the decrypted CSR).
            let want = value_after(&row.notes, "challengePassword ")
                .unwrap_or_else(|| panic!("{}: PROVENANCE names no challengePassword", row.file));
            let challenge = csr.challenge_password().expect("challengePassword");
            assert_eq!(challenge.expose(), want.as_bytes(), "{}", row.file);
            challenges_checked += 1;
        }
        checked += 1;
    }
    // 03 05 07 09 11 14 16 18 20 22 24 27 28
    assert_eq!(checked, 13);
    // Every CSR but the poll's IssuerAndSubject (18).
    assert_eq!(challenges_checked, 12);
    // Every row whose notes name the client key ("key keys/…").
    assert_eq!(
        keys_checked,
        ["03", "05", "14", "16", "22", "24", "27", "28"],
        "CSR keys checked"
    );
}

#[test]
fn every_captured_certrep_decodes_with_its_status() {
    let limits = BerLimits::default();
    let client_keys: Vec<RsaKey> = std::fs::read_dir(dir().join("captured/keys"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".key.pem"))
        .map(|e| RsaKey::from_pem_or_der(&read(e.path())).unwrap())
        .collect();
    let mut checked = 0;
    for row in provenance() {
        if !row.message_type.starts_with("CertRep") {
            continue;
        }
        let bytes = read(dir().join("captured").join(&row.file));
        let msg =
            PkiMessage::decode(&bytes, &limits).unwrap_or_else(|e| panic!("{}: {e}", row.file));
        assert_eq!(msg.message_type(), MessageType::CertRep);
        assert_eq!(msg.transaction_id(), row.transaction_id, "{}", row.file);
        msg.verify()
            .unwrap_or_else(|e| panic!("{}: verify: {e}", row.file));
        let success = row.message_type.contains("SUCCESS");
        if success {
            assert_eq!(msg.pki_status(), Some(PkiStatus::Success), "{}", row.file);
            let n = prefix(&row.file);
            let inner = dir().join(format!("captured/inner/{n}.envelopeddata.der"));
            if inner.exists() {
                assert_eq!(msg.content().unwrap(), read(&inner), "{}", row.file);
            }
            // micromdm answers with single DES: decrypt with the client key
            // that the envelope names.
            let env = msg.envelope(&limits).unwrap();
            assert_eq!(env.cipher, Some(ContentCipher::DesCbc), "{}", row.file);
            let RecipientId::IssuerAndSerial { issuer, serial } = env.recipients[0].rid.clone()
            else {
                panic!("{}: rid", row.file)
            };
            let me = RecipientIdentity {
                issuer,
                serial,
                subject_key_id: None,
            };
            // A wrong key can pass the CBC padding check by chance: the
            // right one is the key whose plaintext is a SignedData.
            let (p7, degenerate) = client_keys
                .iter()
                .filter_map(|k| env.decrypt(&me, k, &DecryptPolicy::default()).ok())
                .find_map(|p| cms::SignedData::parse(&p, &limits).ok().map(|d| (p, d)))
                .unwrap_or_else(|| panic!("{}: no client key decrypts", row.file));
            assert_eq!(degenerate.certificates().len(), 1, "{}", row.file);
            let p7_file = dir().join(format!("captured/inner/{n}.degenerate-p7.der"));
            if p7_file.exists() {
                assert_eq!(p7, read(&p7_file), "{}", row.file);
            }
        } else {
            assert!(row.message_type.contains("FAILURE"), "{}", row.file);
            assert_eq!(msg.pki_status(), Some(PkiStatus::Failure), "{}", row.file);
            assert_eq!(msg.fail_info(), Some(FailInfo::BadRequest), "{}", row.file);
            assert_eq!(msg.content(), None, "{}", row.file);
        }
        checked += 1;
    }
    // 04 06 10 12 15 17 21 23 25
    assert_eq!(checked, 9);
}

fn request_from_capture(file: &str) -> Request {
    let text = String::from_utf8(read(dir().join("captured").join(file))).unwrap();
    let line = text.lines().next().unwrap();
    let target = line.split_whitespace().nth(1).unwrap();
    let (path, query) = target.split_once('?').unwrap();
    let mut r = Request::new(Method::Get, path);
    r.query = Some(query.to_owned());
    r
}

#[test]
fn captured_get_requests_decode_to_the_der_files() {
    for (http, der) in [
        // micromdm scepclient: URL-safe base64, message before operation
        (
            "07-pkcsreq.micromdm-scepclient.get.http.txt",
            "07-pkcsreq.micromdm-scepclient.get.der",
        ),
        // certmonger: standard base64, percent-encoded
        (
            "14-pkcsreq.certmonger.get.http.txt",
            "14-pkcsreq.certmonger.get.der",
        ),
        // Apple emulator fallback: standard base64, percent-encoded
        (
            "24-pkcsreq.apple-emu.get-des3-sha1.http.txt",
            "24-pkcsreq.apple-emu.get-des3-sha1.der",
        ),
    ] {
        let req = request_from_capture(http);
        let want = read(dir().join("captured").join(der));
        assert_eq!(
            parse_request(&req, 1 << 20),
            Ok(Operation::PkiOperation(want)),
            "{http}"
        );
    }
    let req = request_from_capture("13-getcacaps.certmonger.http.txt");
    assert_eq!(parse_request(&req, 1 << 20), Ok(Operation::GetCaCaps));
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn smallstep_pkcsreq_decrypts_with_its_ca_key() {
    // The key is a legacy encrypted PEM (Proc-Type/DEK-Info, empty
    // passphrase): let OpenSSL unwrap it, as an independent tool.
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-passin", "pass:", "-in"])
        .arg(dir().join("smallstep_testca_ca.key"))
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = RsaKey::from_pem_or_der(&out.stdout).unwrap();
    let ca = Certificate::from_pem(&read(dir().join("smallstep_testca_ca.pem")))
        .unwrap()
        .remove(0);
    let limits = BerLimits::default();
    let msg = PkiMessage::decode(&read(dir().join("smallstep_PKCSReq.der")), &limits).unwrap();
    assert_eq!(msg.message_type(), MessageType::PkcsReq);
    msg.verify().unwrap();
    let plain = msg
        .envelope(&limits)
        .unwrap()
        .decrypt(&RecipientIdentity::of(&ca), &key, &DecryptPolicy::default())
        .unwrap();
    let csr = Csr::parse(&plain, &limits).unwrap();
    let req = expected("smallstep_PKCSReq.der");
    assert_eq!(
        Some(msg.transaction_id()),
        value_after(&req, "transactionID=")
    );
    let cn = value_after(&req, "CSR CN=").expect("PROVENANCE names the CSR's CN");
    assert_eq!(csr.subject().to_string(), format!("CN={cn}"));

    for rep in [
        "smallstep_CertRep.der",
        "smallstep_CertRep_NoCertificatesForSigners.der",
    ] {
        let want = expected(rep);
        let m = PkiMessage::decode(&read(dir().join(rep)), &limits).unwrap();
        assert_eq!(m.message_type(), MessageType::CertRep, "{rep}");
        assert_eq!(value_after(&want, "pkiStatus="), Some("0"), "{rep}");
        assert_eq!(m.pki_status(), Some(PkiStatus::Success), "{rep}");
        if let Some(id) = value_after(&want, "transactionID=") {
            assert_eq!(m.transaction_id(), id, "{rep}");
            // It answers the PKCSReq above.
            assert_eq!(m.transaction_id(), msg.transaction_id(), "{rep}");
        }
    }
}

/// What `tests/vectors/PROVENANCE.tsv` says parsing `scep/{file}` gives.
fn expected(file: &str) -> String {
    let tsv = String::from_utf8(read(dir().join("../PROVENANCE.tsv"))).unwrap();
    tsv.lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|c| c[0] == format!("scep/{file}"))
        .unwrap_or_else(|| panic!("no PROVENANCE row for scep/{file}"))[6]
        .to_owned()
}

/// The value after `key` in a PROVENANCE note, up to the next space, comma
/// or semicolon.
fn value_after<'a>(notes: &'a str, key: &str) -> Option<&'a str> {
    let rest = &notes[notes.find(key)? + key.len()..];
    rest.split([' ', ',', ';']).next()
}
