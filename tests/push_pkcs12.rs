//! The push identity read from PKCS#12: files made at test time by
//! `openssl pkcs12 -export` (default PBES2/AES-256 with a SHA-256 MAC,
//! `-legacy` 3DES + RC2-40 with a SHA-1 MAC, unencrypted bags, 3DES under
//! PBES2, RC2-128, no MAC, an empty password, a chain) give the identity the
//! PEM files give; a wrong password, a truncated file and garbage are typed
//! errors.

use std::path::PathBuf;

#[path = "cms_support/mod.rs"]
mod cms_support;
use cms_support::openssl;

use mdm_enroll::push::pkcs12::{self, Pkcs12Error};
use mdm_enroll::push::{PushCertificateError, PushIdentity};
use mdm_enroll::wire::ber::encode_tlv;

const TOPIC: &str = "com.apple.mgmt.External.9d1c7a3e-p12-test";

/// A CA, a push certificate (UID = topic) it signed, and the push key, as PEM files.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=Test Push CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
            ],
        );
        let subject = format!("/CN=APSP:test/UID={TOPIC}");
        openssl(
            d,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", "push.key",
                "-out", "push.csr",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "push.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-out",
                "push.pem",
            ],
        );
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `openssl pkcs12 -export` of the push certificate and key with `extra` flags.
    fn export(&self, name: &str, password: &str, extra: &[&str]) -> Vec<u8> {
        let pass = format!("pass:{password}");
        let mut args = vec![
            "pkcs12", "-export", "-in", "push.pem", "-inkey", "push.key", "-passout", &pass,
            "-out", name,
        ];
        args.extend_from_slice(extra);
        openssl(self.dir.path(), &args);
        std::fs::read(self.path(name)).expect("read p12")
    }

    fn pem_identity(&self) -> PushIdentity {
        PushIdentity::from_pem_or_der(
            &std::fs::read(self.path("push.pem")).unwrap(),
            &std::fs::read(self.path("push.key")).unwrap(),
        )
        .expect("identity from PEM")
    }
}

fn assert_same(p12: &PushIdentity, pem: &PushIdentity) {
    assert_eq!(p12.certificate(), pem.certificate());
    assert_eq!(p12.certificate().topic(), TOPIC);
    assert_eq!(
        p12.key().to_pkcs8_pem().unwrap(),
        pem.key().to_pkcs8_pem().unwrap()
    );
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn every_openssl_export_gives_the_pem_identity() {
    let files = Files::new();
    let pem = files.pem_identity();
    let variants: &[(&str, &[&str])] = &[
        // OpenSSL 3 default: PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC), SHA-256 MAC.
        ("default.p12", &[]),
        // macOS Keychain style: RC2-40 certificates, 3DES key, SHA-1 MAC.
        ("legacy.p12", &["-legacy"]),
        ("plain.p12", &["-certpbe", "NONE", "-keypbe", "NONE"]),
        (
            "des3-pbes2.p12",
            &[
                "-certpbe",
                "AES-128-CBC",
                "-keypbe",
                "DES-EDE3-CBC",
                "-macalg",
                "sha512",
            ],
        ),
        (
            "rc2-128.p12",
            &[
                "-legacy",
                "-certpbe",
                "PBE-SHA1-RC2-128",
                "-keypbe",
                "PBE-SHA1-RC2-128",
            ],
        ),
        (
            "aes192.p12",
            &[
                "-certpbe",
                "AES-192-CBC",
                "-keypbe",
                "AES-192-CBC",
                "-iter",
                "5000",
            ],
        ),
    ];
    for (name, extra) in variants {
        let bytes = files.export(name, "s3cret pässword", extra);
        let p12 = PushIdentity::from_pkcs12(&bytes, "s3cret pässword")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same(&p12, &pem);
    }
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn an_empty_password_and_no_mac_are_read() {
    let files = Files::new();
    let pem = files.pem_identity();
    let empty = files.export("empty.p12", "", &[]);
    assert_same(&PushIdentity::from_pkcs12(&empty, "").unwrap(), &pem);
    let legacy_empty = files.export("legacy-empty.p12", "", &["-legacy"]);
    assert_same(&PushIdentity::from_pkcs12(&legacy_empty, "").unwrap(), &pem);
    let nomac = files.export("nomac.p12", "pw", &["-nomac"]);
    assert_same(&PushIdentity::from_pkcs12(&nomac, "pw").unwrap(), &pem);
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn with_a_chain_the_keys_certificate_is_the_identity() {
    let files = Files::new();
    let pem = files.pem_identity();
    let ca = std::fs::read(files.path("ca.pem")).unwrap();
    for extra in [
        &["-certfile", "ca.pem"][..],
        &["-legacy", "-certfile", "ca.pem"],
    ] {
        let bytes = files.export("chain.p12", "pw", extra);
        let read = pkcs12::parse(&bytes, "pw").expect("parse");
        assert_eq!(read.chain.len(), 1, "{extra:?}");
        assert_eq!(
            read.chain[0],
            mdm_enroll::cms::Certificate::from_pem(&ca).unwrap()[0]
        );
        assert_same(&PushIdentity::from_pkcs12(&bytes, "pw").unwrap(), &pem);
    }
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn a_wrong_password_is_a_typed_error() {
    let files = Files::new();
    for (name, extra) in [("d.p12", &[][..]), ("l.p12", &["-legacy"][..])] {
        let bytes = files.export(name, "right", extra);
        assert_eq!(
            pkcs12::parse(&bytes, "wrong").unwrap_err(),
            Pkcs12Error::WrongPassword,
            "{name}"
        );
        assert_eq!(
            pkcs12::parse(&bytes, "").unwrap_err(),
            Pkcs12Error::WrongPassword,
            "{name}"
        );
        assert_eq!(
            PushIdentity::from_pkcs12(&bytes, "wrong").unwrap_err(),
            PushCertificateError::Pkcs12(Pkcs12Error::WrongPassword)
        );
    }
    // Without a MAC the wrong password shows when the key does not decrypt.
    let nomac = files.export("nomac.p12", "right", &["-nomac", "-certpbe", "NONE"]);
    assert!(
        matches!(
            pkcs12::parse(&nomac, "wrong").unwrap_err(),
            // Garbage that happens to end in valid padding fails as BER or as a key.
            Pkcs12Error::Decrypt(_) | Pkcs12Error::Ber(_) | Pkcs12Error::Key(_)
        ),
        "{:?}",
        pkcs12::parse(&nomac, "wrong").unwrap_err()
    );
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn truncated_altered_and_garbage_input_are_typed_errors() {
    let files = Files::new();
    let bytes = files.export("d.p12", "pw", &[]);
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        let err = pkcs12::parse(&bytes[..cut], "pw").unwrap_err();
        assert!(matches!(err, Pkcs12Error::Ber(_)), "cut {cut}: {err:?}");
    }
    // A flipped byte in the middle: decoding or the MAC catches it.
    let mut altered = bytes.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x55;
    assert!(pkcs12::parse(&altered, "pw").is_err());
    // A certificate is not a PFX.
    let der =
        mdm_enroll::cms::Certificate::from_pem(&std::fs::read(files.path("push.pem")).unwrap())
            .unwrap()[0]
            .der()
            .to_vec();
    assert!(matches!(
        pkcs12::parse(&der, "pw").unwrap_err(),
        Pkcs12Error::Malformed { .. }
    ));
    assert!(pkcs12::parse(b"not a p12 at all", "pw").is_err());
    let huge = vec![0x30; pkcs12::MAX_PKCS12_BYTES + 1];
    assert!(matches!(
        pkcs12::parse(&huge, "pw").unwrap_err(),
        Pkcs12Error::TooLarge { .. }
    ));
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn an_iteration_count_past_the_limit_is_refused_before_deriving() {
    let files = Files::new();
    let bytes = files.export("slow.p12", "pw", &["-iter", "2000000", "-maciter"]);
    assert!(matches!(
        pkcs12::parse(&bytes, "pw").unwrap_err(),
        Pkcs12Error::TooManyIterations {
            count: 2_000_000,
            ..
        }
    ));
}

/// Re-encode DER as BER the way some exporters write PKCS#12: indefinite
/// lengths on every constructed element and OCTET STRINGs in 5-byte chunks.
/// With `deep`, also inside the `data` contents (the authenticated safe and
/// its safe contents, which changes the MAC'd octets: use a file without MAC)
/// and with `encryptedContent` sent as a constructed `[0]`.
fn berify(der: &[u8], deep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (tag, contents, after) = tlv(rest);
        rest = after;
        if tag & 0x20 != 0 {
            out.extend_from_slice(&[tag, 0x80]);
            if tag == 0x30 && deep && starts_with_data_oid(contents) {
                out.extend(berify_data_sequence(contents));
            } else {
                out.extend(berify(contents, deep));
            }
            out.extend_from_slice(&[0, 0]);
        } else if tag == 0x04 {
            out.extend(chunked(0x24, contents));
        } else {
            out.extend_from_slice(&encode_tlv(tag, contents));
        }
    }
    out
}

const DATA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

fn starts_with_data_oid(contents: &[u8]) -> bool {
    contents.starts_with(DATA_OID)
}

/// The children of a `SEQUENCE { id-data, ... }`: a `ContentInfo` (whose
/// `[0] { OCTET STRING }` holds DER to re-encode too) or an
/// `EncryptedContentInfo` (whose `[0] IMPLICIT` ciphertext becomes constructed).
fn berify_data_sequence(contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = contents;
    while !rest.is_empty() {
        let (tag, inner, after) = tlv(rest);
        rest = after;
        if tag == 0xa0 {
            let (octet_tag, value, _) = tlv(inner);
            assert_eq!(octet_tag, 0x04);
            out.extend_from_slice(&[0xa0, 0x80]);
            out.extend(chunked(0x24, &berify(value, true)));
            out.extend_from_slice(&[0, 0]);
        } else if tag == 0x80 {
            out.extend(chunked(0xa0, inner));
        } else {
            out.extend(berify(&encode_tlv(tag, inner), true));
        }
    }
    out
}

/// `tag` (constructed) with indefinite length around 5-byte OCTET STRING chunks.
fn chunked(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for chunk in value.chunks(5) {
        out.extend(encode_tlv(0x04, chunk));
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// One DER TLV (single-byte tag): (tag, contents, the bytes after it).
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, header) = if der[1] < 0x80 {
        (usize::from(der[1]), 2)
    } else {
        let n = usize::from(der[1] & 0x7f);
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (tag, &der[header..header + len], &der[header + len..])
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn ber_encoded_files_are_read() {
    let files = Files::new();
    let pem = files.pem_identity();
    // Outer BER: the MAC covers the authenticated safe's value octets, which
    // chunking does not change.
    for extra in [&[][..], &["-legacy"][..]] {
        let der = files.export("outer.p12", "pw", extra);
        let ber = berify(&der, false);
        assert_ne!(ber, der);
        assert_same(&PushIdentity::from_pkcs12(&ber, "pw").unwrap(), &pem);
    }
    // BER all the way down (indefinite safe contents, a constructed
    // encryptedContent), in files without MAC.
    for extra in [&["-nomac"][..], &["-nomac", "-legacy"][..]] {
        let der = files.export("deep.p12", "pw", extra);
        let ber = berify(&der, true);
        assert!(ber.windows(2).any(|w| w == [0xa0, 0x80]));
        assert_same(&PushIdentity::from_pkcs12(&ber, "pw").unwrap(), &pem);
    }
}
