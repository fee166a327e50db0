//! SignedData reader and builder: real vectors and `openssl cms` interop.

mod cms_support;

use cms_support::{Pki, openssl, vector};
use mdm_enroll::cms::{CmsError, SignedData, SignedDataBuilder, degenerate, oid};
use mdm_enroll::crypto::DigestAlgorithm;
use mdm_enroll::wire::BerLimits;

fn limits() -> BerLimits {
    BerLimits::default()
}

#[test]
fn real_mdm_signature_header2_verifies_over_its_body() {
    let der = vector("signature/nanomdm_mdmSignatureHeader2.der");
    let body = vector("signature/nanomdm_mdmSignatureBody2.plist");
    let sd = SignedData::parse(&der, &limits()).unwrap();
    assert_eq!(sd.content_type(), oid::ID_DATA);
    assert!(sd.content().is_none(), "detached");
    assert_eq!(sd.certificates().len(), 1);
    assert_eq!(sd.signers().len(), 1);
    let signer = &sd.signers()[0];
    assert_eq!(signer.digest_algorithm(), DigestAlgorithm::Sha1);
    assert!(signer.signed_attributes().is_none());
    let cert = sd.verify_signer(0, Some(&body)).unwrap();
    assert_eq!(cert.subject_der(), &[0x30, 0x00], "empty Subject");
    assert_eq!(cert.subject_string(), "");
    assert_eq!(cert.serial(), &[0x22]);
    assert_eq!(cert.issuer_string(), "CN=ca,OU=SCEP CA,O=scep,C=US");

    let mut tampered = body.clone();
    tampered[100] ^= 1;
    assert!(matches!(
        sd.verify_signer(0, Some(&tampered)),
        Err(CmsError::BadSignature)
    ));
    assert!(matches!(
        sd.verify_signer(0, None),
        Err(CmsError::MissingContent)
    ));
}

#[test]
fn real_mdm_signature_header1_parses() {
    let b64 = vector("signature/nanomdm_mdmSignatureHeader1.b64.txt");
    let der = base64ct_decode(&b64);
    let sd = SignedData::parse(&der, &limits()).unwrap();
    assert!(sd.content().is_none());
    assert_eq!(sd.signers()[0].digest_algorithm(), DigestAlgorithm::Sha1);
    assert!(sd.signers()[0].signed_attributes().is_none());
    let cert = sd.signer_certificate(0).unwrap();
    assert_eq!(cert.subject_string(), "");
    assert_eq!(cert.issuer_string(), "CN=MDM CA,DC=Gusto,DC=com");
}

fn base64ct_decode(b64: &[u8]) -> Vec<u8> {
    let text: String = String::from_utf8(b64.to_vec())
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    // Independent of the crate's decoder: a tiny reference decoder.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn real_ota_phase2_payload_parses_and_verifies() {
    let p7 = vector("ota/zentral_ota_payload_phase_2.p7");
    let sd = SignedData::parse(&p7, &limits()).unwrap();
    assert_eq!(sd.content_type(), oid::ID_DATA);
    let content = sd.content().unwrap();
    assert_eq!(content.len(), 790);
    assert!(content.starts_with(b"<?xml"));
    assert_eq!(sd.certificates().len(), 4);
    let signer = &sd.signers()[0];
    assert_eq!(signer.digest_algorithm(), DigestAlgorithm::Sha1);
    assert!(signer.signed_attributes().is_none());
    let cert = sd.verify_signer(0, None).unwrap();
    assert_eq!(
        cert.subject_string(),
        "CN=0B5938EB-A130-466F-BFA5-BFA950500D03"
    );
    assert!(cert.issuer_string().contains("Apple iPhone Device CA"));
    assert!(matches!(
        sd.verify_signer(0, Some(content)),
        Err(CmsError::ContentAlreadyAttached)
    ));
}

#[test]
fn truncated_and_deep_input_are_typed_errors() {
    let p7 = vector("ota/zentral_ota_payload_phase_2.p7");
    for cut in [1, 10, 100, p7.len() / 2, p7.len() - 1] {
        assert!(matches!(
            SignedData::parse(&p7[..cut], &limits()),
            Err(CmsError::Ber(_))
        ));
    }
    let mut deep = Vec::new();
    for _ in 0..100 {
        deep.extend_from_slice(&[0x30, 0x80]);
    }
    for _ in 0..100 {
        deep.extend_from_slice(&[0x00, 0x00]);
    }
    assert!(matches!(
        SignedData::parse(&deep, &limits()),
        Err(CmsError::Ber(
            mdm_enroll::wire::ber::BerError::TooDeep { .. }
        ))
    ));
    // A ContentInfo of another type.
    let not_sd = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0, 0x00,
    ];
    assert!(matches!(
        SignedData::parse(&not_sd, &limits()),
        Err(CmsError::NotSignedData { .. })
    ));
}

/// Built here, verified by `openssl cms -verify`, content extracted equal.
#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn built_signed_data_verifies_in_openssl() {
    let pki = Pki::new();
    pki.intermediate("inter", "/CN=Test Intermediate", "root");
    pki.leaf("signer", "/CN=Profile Signer", "inter");
    let key = pki.key("signer");
    let cert = pki.cert("signer");
    let chain = [pki.cert("inter")];
    let content = b"<?xml version=\"1.0\"?><plist><dict/></plist>\n".to_vec();
    for (digest, attrs, detached) in [
        (DigestAlgorithm::Sha256, true, false),
        (DigestAlgorithm::Sha1, true, false),
        (DigestAlgorithm::Sha512, false, false),
        (DigestAlgorithm::Sha256, true, true),
        (DigestAlgorithm::Sha256, false, true),
    ] {
        let mut b = SignedDataBuilder::new(oid::ID_DATA, &content, &key, &cert)
            .digest(digest)
            .certificates(&chain)
            .detached(detached)
            .signing_time(
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            );
        if !attrs {
            b = b.without_signed_attributes();
        }
        let der = b.build().unwrap();
        pki.write("signed.der", &der);
        pki.write("content.bin", &content);
        let mut args = vec![
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "signed.der",
            "-CAfile",
            "root.pem",
            "-purpose",
            "any",
            "-out",
            "extracted.bin",
        ];
        if detached {
            args.extend(["-content", "content.bin", "-binary"]);
        }
        openssl(pki.path(), &args);
        assert_eq!(
            pki.read("extracted.bin"),
            content,
            "{digest:?} attrs={attrs}"
        );

        // And by ourselves.
        let sd = SignedData::parse(&der, &limits()).unwrap();
        assert_eq!(sd.certificates().len(), 2);
        let signer = sd
            .verify_signer(0, detached.then_some(content.as_slice()))
            .unwrap();
        assert_eq!(signer, &cert);
        if attrs {
            let sa = sd.signers()[0].signed_attributes().unwrap();
            assert_eq!(
                sa.signing_time().unwrap(),
                Some(
                    std::time::SystemTime::UNIX_EPOCH
                        + std::time::Duration::from_secs(1_700_000_000)
                )
            );
        }
    }
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn extra_signed_attributes_round_trip_and_verify_in_openssl() {
    let pki = Pki::new();
    pki.leaf("signer", "/CN=SCEP Signer", "root");
    let key = pki.key("signer");
    let cert = pki.cert("signer");
    let message_type = const_oid::ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.2");
    let nonce = const_oid::ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.5");
    let der = SignedDataBuilder::new(oid::ID_DATA, b"payload", &key, &cert)
        .signed_attribute(message_type, vec![0x13, 0x02, b'1', b'9'])
        .signed_attribute(nonce, vec![0x04, 0x04, 1, 2, 3, 4])
        .build()
        .unwrap();
    pki.write("signed.der", &der);
    openssl(
        pki.path(),
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "signed.der",
            "-CAfile",
            "root.pem",
            "-purpose",
            "any",
            "-out",
            "out.bin",
        ],
    );
    let sd = SignedData::parse(&der, &limits()).unwrap();
    sd.verify_signer(0, None).unwrap();
    let sa = sd.signers()[0].signed_attributes().unwrap();
    assert_eq!(sa.string(&message_type).unwrap().as_deref(), Some("19"));
    assert_eq!(sa.octet_string(&nonce).unwrap(), Some(vec![1, 2, 3, 4]));
    assert!(matches!(
        SignedDataBuilder::new(oid::ID_DATA, b"x", &key, &cert)
            .signed_attribute(oid::ID_MESSAGE_DIGEST, vec![0x04, 0x00])
            .build(),
        Err(CmsError::DuplicateAttribute { .. })
    ));
    // Signer key must match the certificate.
    let other = pki.key("root");
    assert!(matches!(
        SignedDataBuilder::new(oid::ID_DATA, b"x", &other, &cert).build(),
        Err(CmsError::SignerKeyMismatch)
    ));
}

/// Signatures made by `openssl cms -sign` in every shape verify here.
#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn openssl_signatures_verify_here() {
    let pki = Pki::new();
    pki.leaf("signer", "/CN=Device Identity", "root");
    let cert = pki.cert("signer");
    let body = b"<plist><dict><key>Status</key><string>Idle</string></dict></plist>\n";
    pki.write("body.bin", body);
    let cases: &[(&str, &[&str])] = &[
        ("sha256 attrs attached", &["-md", "sha256", "-nodetach"]),
        ("sha1 attrs attached", &["-md", "sha1", "-nodetach"]),
        (
            "sha256 noattr attached",
            &["-md", "sha256", "-noattr", "-nodetach"],
        ),
        (
            "sha1 noattr attached",
            &["-md", "sha1", "-noattr", "-nodetach"],
        ),
        ("sha256 attrs detached", &["-md", "sha256"]),
        ("sha1 noattr detached", &["-md", "sha1", "-noattr"]),
        (
            "sha256 stream attached",
            &["-md", "sha256", "-nodetach", "-stream"],
        ),
        (
            "sha1 noattr stream attached",
            &["-md", "sha1", "-noattr", "-nodetach", "-stream"],
        ),
        // (`-stream` with DER output always attaches the content; detached
        // BER is covered by the real Mdm-Signature vector.)
    ];
    for (name, extra) in cases {
        let mut args = vec![
            "cms",
            "-sign",
            "-binary",
            "-in",
            "body.bin",
            "-signer",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-outform",
            "DER",
            "-out",
            "sig.der",
        ];
        args.extend_from_slice(extra);
        openssl(pki.path(), &args);
        let der = pki.read("sig.der");
        if name.contains("stream") {
            assert_eq!(
                &der[..2],
                &[0x30, 0x80],
                "{name}: expected BER indefinite length"
            );
        }
        let sd = SignedData::parse(&der, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let detached = !name.contains("attached");
        let got = sd
            .verify_signer(0, detached.then_some(body.as_slice()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, &cert, "{name}");
        if !detached {
            assert_eq!(sd.content(), Some(body.as_slice()), "{name}");
        }
        assert_eq!(
            sd.signers()[0].signed_attributes().is_some(),
            !name.contains("noattr"),
            "{name}"
        );
        // Tampered content fails with a typed error.
        let mut bad = body.to_vec();
        bad[10] ^= 0x20;
        if detached {
            let err = sd.verify_signer(0, Some(&bad)).unwrap_err();
            assert!(
                matches!(err, CmsError::BadSignature | CmsError::DigestMismatch),
                "{name}: {err}"
            );
        }
    }
}

/// Issue `name` from the root with an explicit serial and the signer's extensions.
fn issue_with_serial(pki: &Pki, name: &str, subject: &str, serial: &str) {
    openssl(
        pki.path(),
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    );
    openssl(
        pki.path(),
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            serial,
            "-days",
            "30",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            "signer.ext",
        ],
    );
}

fn splice(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(
        from.len(),
        to.len(),
        "same-length certificates keep the framing valid"
    );
    let pos = der.windows(from.len()).position(|w| w == from).unwrap();
    let mut out = der[..pos].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&der[pos + from.len()..]);
    out
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn swapped_certificate_is_rejected() {
    let pki = Pki::new();
    pki.leaf("signer", "/CN=Real Signer", "root");
    issue_with_serial(&pki, "real", "/CN=Real Signer", "0x4242");
    issue_with_serial(&pki, "other", "/CN=Fake Signer", "0x4343");
    issue_with_serial(&pki, "evil", "/CN=Real Signer", "0x4242");
    pki.write("body.bin", b"hello");
    openssl(
        pki.path(),
        &[
            "cms", "-sign", "-binary", "-noattr", "-md", "sha256", "-in", "body.bin", "-signer",
            "real.pem", "-inkey", "real.key", "-outform", "DER", "-out", "sig.der",
        ],
    );
    let der = pki.read("sig.der");
    let real = pki.cert("real");
    SignedData::parse(&der, &limits())
        .unwrap()
        .verify_signer(0, Some(b"hello"))
        .unwrap();

    // Another certificate in its place: the SignerInfo names a certificate that is not there.
    let swapped = splice(&der, real.der(), pki.cert("other").der());
    let sd = SignedData::parse(&swapped, &limits()).unwrap();
    assert!(matches!(
        sd.verify_signer(0, Some(b"hello")),
        Err(CmsError::SignerCertificateNotFound)
    ));

    // Same issuer, serial and subject but another key: the signature fails.
    let evil = pki.cert("evil");
    assert_eq!(evil.serial(), real.serial());
    let swapped = splice(&der, real.der(), evil.der());
    let sd = SignedData::parse(&swapped, &limits()).unwrap();
    assert!(matches!(
        sd.verify_signer(0, Some(b"hello")),
        Err(CmsError::BadSignature)
    ));
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn degenerate_certs_only_parses_in_openssl() {
    let pki = Pki::new();
    pki.leaf("ra", "/CN=RA", "root");
    let certs = [pki.cert("root"), pki.cert("ra")];
    let der = degenerate(&certs).unwrap();
    pki.write("certs.p7", &der);
    let out = openssl(
        pki.path(),
        &["pkcs7", "-inform", "DER", "-in", "certs.p7", "-print_certs"],
    );
    let pem = String::from_utf8(out).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    let sd = SignedData::parse(&der, &limits()).unwrap();
    assert_eq!(sd.certificates(), &certs);
    assert!(sd.signers().is_empty());
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn lenient_certificates_v1_and_long_serials() {
    let pki = Pki::new();
    openssl(
        pki.path(),
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "v1.key",
            "-out",
            "v1.csr",
            "-subj",
            "/CN=legacy",
        ],
    );
    // No extensions: openssl writes an X.509 v1 certificate. 30-byte serial.
    let serial = "0x0102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E";
    openssl(
        pki.path(),
        &[
            "x509",
            "-req",
            "-in",
            "v1.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            serial,
            "-days",
            "30",
            "-out",
            "v1.pem",
        ],
    );
    let cert = pki.cert("v1");
    assert_eq!(cert.version(), 1);
    assert!(cert.extensions().is_empty());
    assert_eq!(cert.serial_hex(), serial.trim_start_matches("0x"));
    assert_eq!(cert.serial().len(), 30);
    cert.verify_issued_by(&pki.cert("root")).unwrap();
    assert!(matches!(
        cert.verify_issued_by(&cert),
        Err(mdm_enroll::cms::CertificateError::BadSignature)
    ));
    // And it signs and verifies like any other.
    let key = pki.key("v1");
    let der = SignedDataBuilder::new(oid::ID_DATA, b"x", &key, &cert)
        .build()
        .unwrap();
    pki.write("s.der", &der);
    openssl(
        pki.path(),
        &[
            "cms", "-verify", "-inform", "DER", "-in", "s.der", "-CAfile", "root.pem", "-purpose",
            "any", "-out", "o.bin",
        ],
    );
    assert_eq!(pki.read("o.bin"), b"x");
    assert_eq!(
        SignedData::parse(&der, &limits())
            .unwrap()
            .verify_signer(0, None)
            .unwrap(),
        &cert
    );
}

/// A self-signed certificate from openssl with `subject` and `serial` (hex).
fn self_signed(pki: &Pki, name: &str, subject: &str, serial_hex: &str) -> Vec<u8> {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    let der = format!("{name}.der");
    let serial = format!("0x{serial_hex}");
    openssl(
        pki.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            subject,
            "-days",
            "1",
            "-set_serial",
            &serial,
        ],
    );
    openssl(
        pki.path(),
        &["x509", "-in", &pem, "-outform", "DER", "-out", &der],
    );
    pki.read(&der)
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn lenient_profile_empty_subject_serial_bound_and_ber_input() {
    use mdm_enroll::cms::{Certificate, CertificateError, certificate::MAX_SERIAL_OCTETS};
    let pki = Pki::new();
    let octets = MAX_SERIAL_OCTETS;

    // An empty Subject and a serial at the bound: accepted, and refused by
    // x509-cert's strict RFC 5280 profile (so the leniency is the profile's).
    let at_bound = format!("7f{}", "01".repeat(octets - 1));
    let der = self_signed(&pki, "empty", "/", &at_bound);
    let cert = Certificate::from_der(&der).unwrap();
    assert_eq!(cert.subject_string(), "");
    assert_eq!(cert.subject_der(), &[0x30, 0x00]);
    assert_eq!(cert.serial().len(), octets);
    assert_eq!(cert.serial_hex(), at_bound.to_uppercase());
    assert_eq!(cert.der(), der.as_slice());
    cert.verify_issued_by(&cert).unwrap();
    assert!(cert.to_x509().is_err());

    // One octet over the bound: a typed X.509 error, not a panic.
    let over = format!("7f{}", "01".repeat(octets));
    let der = self_signed(&pki, "over", "/CN=over", &over);
    assert!(matches!(
        Certificate::from_der(&der),
        Err(CertificateError::X509(_))
    ));

    // BER input: the outer SEQUENCE with an indefinite length is normalised
    // to the original DER, and the signature still verifies over the
    // TBSCertificate as encoded.
    let der = self_signed(&pki, "ber", "/CN=ber", "01");
    let (header, body) = match der[1] {
        0x82 => (4, &der[4..]),
        0x81 => (3, &der[3..]),
        _ => (2, &der[2..]),
    };
    assert!(header > 2, "a 2048-bit certificate needs a long length");
    let mut ber = vec![0x30, 0x80];
    ber.extend_from_slice(body);
    ber.extend_from_slice(&[0, 0]);
    let cert = Certificate::from_der(&ber).unwrap();
    assert_eq!(cert.der(), der.as_slice());
    cert.verify_issued_by(&cert).unwrap();

    // A non-minimal INTEGER inside the DER (x509-cert's rule) is a typed error.
    let mut padded = der.clone();
    let serial_at = padded
        .windows(3)
        .position(|w| w == [0x02, 0x01, 0x01])
        .unwrap();
    padded.splice(serial_at..serial_at + 3, [0x02, 0x02, 0x00, 0x01]);
    // Fix the two enclosing lengths (certificate and TBSCertificate), both long-form 2-byte.
    for at in [2usize, 6] {
        let len = u16::from_be_bytes([padded[at], padded[at + 1]]) + 1;
        padded[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }
    assert!(matches!(
        Certificate::from_der(&padded),
        Err(CertificateError::X509(_))
    ));
}
