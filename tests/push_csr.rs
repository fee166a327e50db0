//! The `push-csr` example's request for Apple's Push Certificates portal,
//! made with a self-made vendor certificate and checked by independent
//! tools: the plist parses (Rust `plist`, Python `plistlib`), `openssl req
//! -verify` accepts the CSR and `openssl dgst -sha256 -verify` the signature.

#[allow(dead_code)]
#[path = "../examples/push_csr/request.rs"]
mod request;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use base64ct::{Base64, Encoding};
use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey, Signer, verify_rsa};
use mdm_enroll::pki;
use rand_core::UnwrapErr;
use request::Subject;

struct Made {
    csr: Vec<u8>,
    vendor: Certificate,
    vendor_key: RsaKey,
    chain: Vec<Certificate>,
    b64: String,
}

fn self_signed(key: &RsaKey, subject: &str) -> Certificate {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let c = pki::create_ca(
        key,
        subject.parse().unwrap(),
        pki::random_serial(&mut rng),
        pki::validity(SystemTime::now(), Duration::from_secs(86_400)).unwrap(),
    )
    .unwrap();
    Certificate::from_der(&pki::to_der(&c).unwrap()).unwrap()
}

fn make() -> Made {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let push_key = RsaKey::generate(&mut rng, 2048).unwrap();
    let vendor_key = RsaKey::generate(&mut rng, 2048).unwrap();
    let root_key = RsaKey::generate(&mut rng, 2048).unwrap();
    let vendor = self_signed(&vendor_key, "CN=MDM Vendor: Test Corp,O=Test Corp");
    let chain = vec![
        self_signed(&root_key, "CN=Test WWDR Intermediate"),
        self_signed(&root_key, "CN=Test Root"),
    ];
    let subject = Subject {
        common_name: "Test Customer".into(),
        country: "de".into(),
        email: Some("Admin@Example.COM".into()),
    };
    let csr = request::csr(&push_key, &subject).unwrap();
    let b64 = request::signed_request(&csr, &vendor, &vendor_key, &chain).unwrap();
    Made {
        csr,
        vendor,
        vendor_key,
        chain,
        b64,
    }
}

fn strings(b64: &str) -> plist::Dictionary {
    let xml = Base64::decode_vec(b64).unwrap();
    assert!(xml.starts_with(b"<?xml"), "an XML plist");
    plist::from_bytes::<plist::Dictionary>(&xml).unwrap()
}

fn field<'a>(d: &'a plist::Dictionary, k: &str) -> &'a str {
    d.get(k).and_then(|v| v.as_string()).unwrap()
}

#[test]
fn the_request_holds_csr_chain_and_signature() {
    let m = make();
    let d = strings(&m.b64);
    let mut keys: Vec<&str> = d.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "PushCertCertificateChain",
            "PushCertRequestCSR",
            "PushCertSignature"
        ]
    );
    assert_eq!(
        Base64::decode_vec(field(&d, "PushCertRequestCSR")).unwrap(),
        m.csr
    );
    let chain = Certificate::from_pem(field(&d, "PushCertCertificateChain").as_bytes()).unwrap();
    let mut expected = vec![m.vendor.clone()];
    expected.extend(m.chain.clone());
    assert_eq!(chain, expected, "vendor certificate first, then the chain");
    let sig = Base64::decode_vec(field(&d, "PushCertSignature")).unwrap();
    verify_rsa(
        m.vendor_key.public_key(),
        DigestAlgorithm::Sha256,
        &m.csr,
        &sig,
    )
    .unwrap();
    let csr = x509_cert::request::CertReq::try_from(m.csr.as_slice()).unwrap();
    let oids: Vec<String> = csr.info.subject.iter().map(|a| a.oid.to_string()).collect();
    assert_eq!(oids, ["2.5.4.6", "2.5.4.3", "1.2.840.113549.1.9.1"]);
}

#[test]
fn a_vendor_key_that_is_not_the_certificates_is_refused() {
    let m = make();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let other = RsaKey::generate(&mut rng, 2048).unwrap();
    assert!(request::signed_request(&m.csr, &m.vendor, &other, &m.chain).is_err());
}

#[test]
fn subjects_needing_escapes_are_refused() {
    for (cn, country) in [("a,b", "US"), ("", "US"), ("ok", "USA"), ("ok", "1A")] {
        let s = Subject {
            common_name: cn.into(),
            country: country.into(),
            email: None,
        };
        assert!(s.to_name().is_err(), "{cn:?} {country:?}");
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn openssl_verifies_the_csr_and_the_signature() {
    let m = make();
    let dir = tempfile::tempdir().unwrap();
    let d = strings(&m.b64);
    let sig = Base64::decode_vec(field(&d, "PushCertSignature")).unwrap();
    std::fs::write(dir.path().join("csr.der"), &m.csr).unwrap();
    std::fs::write(dir.path().join("sig.bin"), &sig).unwrap();
    std::fs::write(
        dir.path().join("chain.pem"),
        field(&d, "PushCertCertificateChain"),
    )
    .unwrap();

    let out = run(
        dir.path(),
        "openssl",
        &[
            "req", "-inform", "DER", "-in", "csr.der", "-noout", "-verify", "-subject", "-nameopt",
            "RFC2253",
        ],
    );
    assert!(
        out.status.success(),
        "openssl req -verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "subject=emailAddress=admin@example.com,CN=Test Customer,C=DE"
    );

    // The first certificate of the chain is the vendor's: its key verifies.
    let out = run(
        dir.path(),
        "openssl",
        &[
            "x509",
            "-in",
            "chain.pem",
            "-pubkey",
            "-noout",
            "-out",
            "vendor_pub.pem",
        ],
    );
    assert!(out.status.success());
    let verify = |file: &str| {
        run(
            dir.path(),
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-verify",
                "vendor_pub.pem",
                "-signature",
                "sig.bin",
                file,
            ],
        )
    };
    let out = verify("csr.der");
    assert!(
        out.status.success(),
        "openssl dgst -verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");

    // The same signature over other bytes does not verify.
    let mut tampered = m.csr.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(dir.path().join("tampered.der"), &tampered).unwrap();
    assert!(!verify("tampered.der").status.success());
}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3: apt-get install python3"
)]
fn python_plistlib_reads_the_request() {
    let m = make();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("push_request.plist.b64"), &m.b64).unwrap();
    let out = run(
        dir.path(),
        "python3",
        &[
            "-c",
            "import base64, plistlib\n\
             d = plistlib.loads(base64.b64decode(open('push_request.plist.b64','rb').read()))\n\
             print(sorted(d))\n\
             print(base64.b64decode(d['PushCertRequestCSR']).hex())\n\
             print(d['PushCertCertificateChain'].count('-----BEGIN CERTIFICATE-----'))",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "['PushCertCertificateChain', 'PushCertRequestCSR', 'PushCertSignature']"
    );
    let hex: String = m.csr.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(lines[1], hex);
    assert_eq!(lines[2], "3");
}

#[test]
fn a_customers_csr_is_read_back_from_pem_or_der() {
    let m = make();
    let pem = request::csr_pem(&m.csr).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    assert_eq!(request::read_csr(pem.as_bytes()).unwrap(), m.csr);
    assert_eq!(request::read_csr(&m.csr).unwrap(), m.csr);
    assert!(request::read_csr(m.vendor.to_pem().as_bytes()).is_err());
    assert!(request::read_csr(b"\x30\x03\x02\x01\x00").is_err());
}
