//! Trust, device attributes (OTA phases 2/3) and Mdm-Signature / client identity.

mod cms_support;

use std::time::{Duration, SystemTime};

use cms_support::{Pki, openssl, vector};
use mdm_enroll::cms::device_attributes::{APPLE_IPHONE_DEVICE_CA_SHA256, apple_iphone_device_ca};
use mdm_enroll::cms::{
    Certificate, CmsError, DeviceAttributes, DeviceAttributesError, DeviceAttributesVerifier,
    IdentityError, IdentityOptions, IdentitySource, Phase, SignedData, TrustAnchors, TrustError,
    client_identity, verify_chain, verify_mdm_signature,
};
use mdm_enroll::http::{Method, Request};
use mdm_enroll::wire::plist::PlistError;
use mdm_enroll::wire::{BerLimits, Limits};

const ATTRS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CHALLENGE</key><string>abc</string>
	<key>UDID</key><string>0000-TEST</string>
	<key>SERIAL</key><string>C02TEST</string>
	<key>IMEI</key><string>11 111111 111111 1</string>
	<key>DEVICE_NAME</key><string>Test Mac</string>
</dict>
</plist>
"#;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn embedded_apple_device_ca_is_the_pinned_certificate() {
    let ca = apple_iphone_device_ca().unwrap();
    assert_eq!(ca.sha256_fingerprint(), APPLE_IPHONE_DEVICE_CA_SHA256);
    let chain = Certificate::from_pem(&vector(
        "certs/zentral_Apple_iPhone_Device_CA_Fullchain.pem",
    ))
    .unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[0], ca);
    assert_eq!(
        ca.subject_string(),
        "CN=Apple iPhone Device CA,OU=Apple iPhone,O=Apple Inc.,C=US"
    );
    // Real device identity certificates (SHA-1 and SHA-256 signed) verify
    // against the pinned key.
    for f in [
        "certs/micromdm_appleca_signed.pem",
        "certs/micromdm_appleca_signed_newer.pem",
    ] {
        let leaf = Certificate::from_pem(&vector(f)).unwrap().remove(0);
        leaf.verify_issued_by(&ca).unwrap();
        let anchors = TrustAnchors::from_certificates([ca.clone()]);
        let path = verify_chain(&leaf, &[], &anchors, None).unwrap();
        assert_eq!(path.len(), 2);
    }
}

#[test]
fn real_ota_request_is_phase_2() {
    let p7 = vector("ota/zentral_ota_payload_phase_2.p7");
    let v = DeviceAttributesVerifier::new(TrustAnchors::new());
    let got = v.verify(&p7, Some(at(1_900_000_000))).unwrap();
    assert_eq!(got.phase, Phase::DeviceIdentity);
    let a = &got.attributes;
    assert_eq!(
        a.challenge.as_deref(),
        Some("8gLEIttrT7qbLOZs3XzL5XPgNXCliGwRLtn2Lfe4GBsa7g6MGm2sJjicKrLFal4D")
    );
    assert_eq!(a.imei.as_deref(), Some(""));
    assert_eq!(a.meid.as_deref(), Some(""));
    assert_eq!(a.not_on_console, Some(false));
    assert_eq!(a.product.as_deref(), Some("VirtualMac2,1"));
    assert_eq!(a.serial.as_deref(), Some("ZDL2M9PTJ3"));
    assert_eq!(
        a.udid.as_deref(),
        Some("78897E40-F532-5DE0-A7DC-56BAC5CEEB9C")
    );
    assert_eq!(
        a.user_id.as_deref(),
        Some("D9DD912C-1B1E-413F-86A5-3BE29F13AB2D")
    );
    assert_eq!(a.user_long_name.as_deref(), Some("admin"));
    assert_eq!(a.user_short_name.as_deref(), Some("admin"));
    assert_eq!(a.version.as_deref(), Some("22A380"));
    assert!(a.other.is_empty());
    assert_eq!(
        got.signer.subject_string(),
        "CN=0B5938EB-A130-466F-BFA5-BFA950500D03"
    );

    // The full shipped chain reaches Apple Root CA only with dates ignored.
    let sd = SignedData::parse(&p7, &BerLimits::default()).unwrap();
    let chain = Certificate::from_pem(&vector(
        "certs/zentral_Apple_iPhone_Device_CA_Fullchain.pem",
    ))
    .unwrap();
    let root = TrustAnchors::from_certificates([chain[2].clone()]);
    let path = verify_chain(&got.signer, sd.certificates(), &root, None).unwrap();
    assert_eq!(path.len(), 4);
    assert!(matches!(
        verify_chain(
            &got.signer,
            sd.certificates(),
            &root,
            Some(at(1_700_000_000))
        ),
        Err(TrustError::OutsideValidity { .. })
    ));
}

/// Sign `content` with openssl the way devices do (SHA-1, no signedAttrs, attached).
fn device_sign(pki: &Pki, signer: &str, extra_cert: Option<&str>, content: &[u8]) -> Vec<u8> {
    pki.write("attrs.plist", content);
    let mut args = vec![
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-noattr",
        "-md",
        "sha1",
        "-in",
        "attrs.plist",
        "-signer",
        &format!("{signer}.pem"),
        "-inkey",
        &format!("{signer}.key"),
        "-outform",
        "DER",
        "-out",
        "attrs.p7",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    if let Some(c) = extra_cert {
        args.extend(["-certfile".into(), format!("{c}.pem")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(pki.path(), &args);
    pki.read("attrs.p7")
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn look_alike_apple_ca_is_refused() {
    let pki = Pki::new();
    pki.ca(
        "fakeapple",
        "/C=US/O=Apple Inc./OU=Apple iPhone/CN=Apple iPhone Device CA",
    );
    pki.leaf(
        "device",
        "/CN=0B5938EB-A130-466F-BFA5-BFA950500D03",
        "fakeapple",
    );
    let p7 = device_sign(&pki, "device", Some("fakeapple"), ATTRS.as_bytes());
    // The signature itself is fine; only the issuer is fake.
    SignedData::parse(&p7, &BerLimits::default())
        .unwrap()
        .verify_signer(0, None)
        .unwrap();
    let mut v = DeviceAttributesVerifier::new(TrustAnchors::new());
    match v.verify(&p7, None) {
        Err(DeviceAttributesError::UntrustedSigner { issuer }) => {
            assert!(issuer.contains("Apple iPhone Device CA"))
        }
        other => panic!("expected UntrustedSigner, got {other:?}"),
    }
    // A caller-added device anchor (test devices) is accepted as phase 2.
    v.add_device_anchor(pki.cert("fakeapple"));
    assert_eq!(v.verify(&p7, None).unwrap().phase, Phase::DeviceIdentity);
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn scep_identity_is_phase_3_and_others_are_untrusted() {
    let pki = Pki::new();
    pki.ca("scepca", "/CN=Test SCEP CA");
    pki.leaf("identity", "/CN=device identity", "scepca");
    pki.leaf("stranger", "/CN=device identity", "root");
    let scep = TrustAnchors::from_certificates([pki.cert("scepca")]);
    let v = DeviceAttributesVerifier::new(scep);

    let p7 = device_sign(&pki, "identity", None, ATTRS.as_bytes());
    let now = SystemTime::now();
    let got = v.verify(&p7, Some(now)).unwrap();
    assert_eq!(got.phase, Phase::ScepIdentity);
    assert_eq!(got.attributes.challenge.as_deref(), Some("abc"));
    assert_eq!(got.attributes.imei.as_deref(), Some("11 111111 111111 1"));
    assert_eq!(
        got.attributes
            .other
            .get("DEVICE_NAME")
            .and_then(|v| v.as_string()),
        Some("Test Mac")
    );
    assert_eq!(got.signer, pki.cert("identity"));
    // An expired SCEP identity is refused when a time is given.
    assert!(matches!(
        v.verify(&p7, Some(now + Duration::from_secs(400 * 86_400))),
        Err(DeviceAttributesError::Trust(
            TrustError::OutsideValidity { .. }
        ))
    ));

    // Signed by a certificate from an unrelated CA.
    let p7 = device_sign(&pki, "stranger", None, ATTRS.as_bytes());
    assert!(matches!(
        v.verify(&p7, None),
        Err(DeviceAttributesError::UntrustedSigner { .. })
    ));

    // Tampered content.
    let p7 = device_sign(&pki, "identity", None, ATTRS.as_bytes());
    let pos = p7.windows(3).position(|w| w == b"abc").unwrap();
    let mut bad = p7.clone();
    bad[pos] = b'x';
    assert!(matches!(
        v.verify(&bad, None),
        Err(DeviceAttributesError::Cms(CmsError::BadSignature))
    ));
    // Truncated.
    assert!(matches!(
        v.verify(&p7[..p7.len() - 3], None),
        Err(DeviceAttributesError::Cms(CmsError::Ber(_)))
    ));
}

#[test]
fn attribute_plists_are_bounded_and_typed() {
    let limits = Limits::default();
    let mut deep = String::from("<plist><dict><key>x</key>");
    for _ in 0..10_000 {
        deep.push_str("<array>");
    }
    deep.push_str("</plist>");
    assert!(matches!(
        DeviceAttributes::from_plist(deep.as_bytes(), &limits),
        Err(DeviceAttributesError::Plist(PlistError::TooDeep { .. }))
    ));
    let wrong = b"<plist><dict><key>UDID</key><integer>1</integer></dict></plist>";
    assert!(matches!(
        DeviceAttributes::from_plist(wrong, &limits),
        Err(DeviceAttributesError::WrongType { key: "UDID" })
    ));
    let array = b"<plist><array/></plist>";
    assert!(matches!(
        DeviceAttributes::from_plist(array, &limits),
        Err(DeviceAttributesError::Plist(
            PlistError::UnexpectedRoot { .. }
        ))
    ));
}

#[test]
fn real_mdm_signature_header_verifies() {
    let header =
        String::from_utf8(vector("signature/nanomdm_mdmSignatureHeader2.b64.txt")).unwrap();
    let body = vector("signature/nanomdm_mdmSignatureBody2.plist");
    let limits = BerLimits::default();
    let cert = verify_mdm_signature(&header, &body, &limits).unwrap();
    assert_eq!(cert.serial(), &[0x22]);
    // Line-wrapped header values are accepted.
    let wrapped: String = header
        .trim()
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n ");
    assert_eq!(
        verify_mdm_signature(&wrapped, &body, &limits).unwrap(),
        cert
    );

    let mut tampered = body.clone();
    tampered.push(b'\n');
    assert!(matches!(
        verify_mdm_signature(&header, &tampered, &limits),
        Err(IdentityError::Cms(CmsError::BadSignature))
    ));
    assert!(matches!(
        verify_mdm_signature("not base64!", &body, &limits),
        Err(IdentityError::Base64)
    ));

    let mut req = Request::new(Method::Put, "/mdm/connect");
    req.body = body.clone();
    req.headers.push(("mdm-signature".into(), header.clone()));
    // A TLS certificate is ignored when the header is present.
    req.tls_client_certificate = Some(vec![0x30, 0x00]);
    let id = client_identity(&req, &IdentityOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(id.source, IdentitySource::MdmSignature);
    assert_eq!(id.certificate, cert);
    // A bad signature is an error, never a fall-back to another source.
    req.body = tampered;
    assert!(client_identity(&req, &IdentityOptions::default()).is_err());
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn attached_mdm_signature_is_refused() {
    let pki = Pki::new();
    pki.leaf("identity", "/CN=x", "root");
    let p7 = device_sign(&pki, "identity", None, b"body");
    let b64 = openssl(pki.path(), &["base64", "-A", "-in", "attrs.p7"]);
    let header = String::from_utf8(b64).unwrap();
    assert!(p7.len() > 100);
    assert!(matches!(
        verify_mdm_signature(&header, b"body", &BerLimits::default()),
        Err(IdentityError::AttachedContent)
    ));
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn tls_and_forwarded_client_certificates() {
    let pki = Pki::new();
    pki.leaf("identity", "/CN=device identity", "root");
    let cert = pki.cert("identity");
    let opts = IdentityOptions::default()
        .with_forwarded_certificate_header(Some("X-SSL-Client-Cert".into()));

    let mut req = Request::new(Method::Put, "/mdm/checkin");
    assert_eq!(client_identity(&req, &opts).unwrap(), None);

    req.tls_client_certificate = Some(cert.der().to_vec());
    let id = client_identity(&req, &opts).unwrap().unwrap();
    assert_eq!(
        (id.source, &id.certificate),
        (IdentitySource::TlsClientCertificate, &cert)
    );
    req.tls_client_certificate = None;

    // nginx $ssl_client_escaped_cert: URL-escaped PEM.
    let pem = cert.to_pem();
    let escaped: String = pem
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    req.headers.push(("x-ssl-client-cert".into(), escaped));
    let id = client_identity(&req, &opts).unwrap().unwrap();
    assert_eq!(
        (id.source, &id.certificate),
        (IdentitySource::ForwardedHeader, &cert)
    );
    // Not trusted unless configured.
    assert_eq!(
        client_identity(&req, &IdentityOptions::default()).unwrap(),
        None
    );

    // RFC 9440 Client-Cert: :base64 DER:
    openssl(
        pki.path(),
        &[
            "x509",
            "-in",
            "identity.pem",
            "-outform",
            "DER",
            "-out",
            "identity.der",
        ],
    );
    let b64 = String::from_utf8(openssl(
        pki.path(),
        &["base64", "-A", "-in", "identity.der"],
    ))
    .unwrap();
    let opts =
        IdentityOptions::default().with_forwarded_certificate_header(Some("Client-Cert".into()));
    let mut req = Request::new(Method::Put, "/mdm/checkin");
    req.headers
        .push(("Client-Cert".into(), format!(":{}:", b64.trim())));
    let id = client_identity(&req, &opts).unwrap().unwrap();
    assert_eq!(id.certificate, cert);
    req.headers[0].1 = format!(":{}", b64.trim());
    assert!(matches!(
        client_identity(&req, &opts),
        Err(IdentityError::ForwardedHeader(_))
    ));
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn chains_through_intermediates_and_refuse_non_ca_issuers() {
    let pki = Pki::new();
    pki.intermediate("inter", "/CN=Test Intermediate", "root");
    pki.leaf("leaf", "/CN=leaf", "inter");
    pki.leaf("notca", "/CN=not a CA", "root");
    let (root, inter, leaf) = (pki.cert("root"), pki.cert("inter"), pki.cert("leaf"));
    let anchors = TrustAnchors::from_certificates([root.clone()]);
    let intermediates = [inter.clone()];
    let path = verify_chain(&leaf, &intermediates, &anchors, Some(SystemTime::now())).unwrap();
    assert_eq!(path, vec![&leaf, &inter, &root]);
    assert!(matches!(
        verify_chain(&leaf, &[], &anchors, None),
        Err(TrustError::Untrusted { .. })
    ));
    assert!(matches!(
        verify_chain(&leaf, &intermediates, &TrustAnchors::new(), None),
        Err(TrustError::Untrusted { .. })
    ));
    // A certificate with cA=false cannot act as an intermediate, even if
    // its name and key would fit: issue a leaf "from" the non-CA.
    openssl(
        pki.path(),
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "sub.key", "-out", "sub.csr",
            "-subj", "/CN=sub",
        ],
    );
    openssl(
        pki.path(),
        &[
            "x509",
            "-req",
            "-in",
            "sub.csr",
            "-CA",
            "notca.pem",
            "-CAkey",
            "notca.key",
            "-set_serial",
            "7",
            "-days",
            "30",
            "-out",
            "sub.pem",
        ],
    );
    let sub = pki.cert("sub");
    sub.verify_issued_by(&pki.cert("notca")).unwrap();
    assert!(matches!(
        verify_chain(&sub, &[pki.cert("notca")], &anchors, None),
        Err(TrustError::Untrusted { .. })
    ));
}

/// The certificate cache on `IdentityOptions` skips the decode of a repeat
/// signer's certificate, never the signature check, and stays bounded.
#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn certificate_cache_skips_decoding_not_verification() {
    use mdm_enroll::cms::CertificateCache;
    let header =
        String::from_utf8(vector("signature/nanomdm_mdmSignatureHeader2.b64.txt")).unwrap();
    let body = vector("signature/nanomdm_mdmSignatureBody2.plist");
    let options = IdentityOptions::default().with_certificates(CertificateCache::new(2));
    let mut req = Request::new(Method::Put, "/mdm/connect");
    req.body = body.clone();
    req.headers.push(("Mdm-Signature".into(), header.clone()));

    assert!(options.certificates.is_empty());
    let first = client_identity(&req, &options).unwrap().unwrap();
    assert_eq!(options.certificates.len(), 1);
    let again = client_identity(&req, &options).unwrap().unwrap();
    assert_eq!(again.certificate, first.certificate);
    assert_eq!(options.certificates.len(), 1, "a repeat adds nothing");

    // A cached certificate does not make a tampered body pass.
    req.body.push(b'\n');
    assert!(matches!(
        client_identity(&req, &options),
        Err(IdentityError::Cms(CmsError::BadSignature))
    ));
    req.body = body;

    // mTLS certificates share the cache; the bound holds.
    let pki = Pki::new();
    let mut tls = Request::new(Method::Put, "/mdm/connect");
    for name in ["a", "b", "c"] {
        pki.leaf(name, &format!("/CN={name}"), "root");
        tls.tls_client_certificate = Some(pki.cert(name).der().to_vec());
        let id = client_identity(&tls, &options).unwrap().unwrap();
        assert_eq!(id.certificate, pki.cert(name));
        assert!(options.certificates.len() <= 2);
    }
    assert_eq!(options.certificates.len(), 2);
    // A certificate that does not decode is an error and is not kept.
    tls.tls_client_certificate = Some(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    assert!(client_identity(&tls, &options).is_err());
    assert_eq!(options.certificates.len(), 2);

    // Only a verified signer's certificate gets in: not from a request whose
    // signature fails, nor the other certificates a SignedData carries.
    let fresh = IdentityOptions::default().with_certificates(CertificateCache::new(8));
    let mut tampered = req.clone();
    tampered.body.push(b'\n');
    assert!(client_identity(&tampered, &fresh).is_err());
    assert!(
        fresh.certificates.is_empty(),
        "a failed request added a certificate"
    );
    pki.leaf("signer", "/CN=signer", "root");
    pki.write("body.plist", &req.body);
    openssl(
        pki.path(),
        &[
            "cms",
            "-sign",
            "-binary",
            "-in",
            "body.plist",
            "-signer",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-certfile",
            "a.pem",
            "-outform",
            "DER",
            "-out",
            "sig.der",
        ],
    );
    let with_extra = SignedData::parse(&pki.read("sig.der"), &BerLimits::default()).unwrap();
    assert_eq!(
        with_extra.certificates().len(),
        2,
        "signer and the extra certificate"
    );
    let mut signed = req.clone();
    signed.headers = vec![(
        "Mdm-Signature".into(),
        <base64ct::Base64 as base64ct::Encoding>::encode_string(&pki.read("sig.der")),
    )];
    let id = client_identity(&signed, &fresh).unwrap().unwrap();
    assert_eq!(id.certificate, pki.cert("signer"));
    assert_eq!(fresh.certificates.len(), 1, "only the signer is kept");

    // Capacity 0 caches nothing and still answers.
    let uncached = IdentityOptions::default().with_certificates(CertificateCache::new(0));
    assert!(client_identity(&req, &uncached).unwrap().is_some());
    assert!(uncached.certificates.is_empty());
}
