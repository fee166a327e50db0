//! Signed profiles against the `openssl` CLI: what we sign verifies with
//! `openssl cms -verify`, and what openssl signs parses here.

use std::path::{Path, PathBuf};
use std::process::Command;

use mdm_enroll::cms::{Certificate, CmsError};
use mdm_enroll::crypto::RsaKey;
use mdm_enroll::profile::{
    self, AccessRights, MdmPayload, Payload, PayloadUuid, Profile, ProfileError, ProfileService,
    ScepPayload, SignedProfile, ValidationOptions,
};
use mdm_enroll::wire::Limits;
use mdm_enroll::wire::ber::BerError;

/// Root CA → intermediate CA → profile-signing leaf, made with openssl.
struct Pki {
    dir: tempfile::TempDir,
    key: RsaKey,
    leaf: Certificate,
    intermediate: Certificate,
    root: Certificate,
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl on PATH");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("ca.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .unwrap();
        std::fs::write(
            d.join("leaf.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-days",
                "30",
                "-subj",
                "/O=Example/CN=Example Root CA",
            ],
        );
        for (name, subject, issuer, ext) in [
            (
                "int",
                "/O=Example/CN=Example Intermediate CA",
                "root",
                "ca.ext",
            ),
            (
                "leaf",
                "/O=Example/CN=Example Profile Signer",
                "int",
                "leaf.ext",
            ),
        ] {
            openssl(
                d,
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
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    &format!("{issuer}.pem"),
                    "-CAkey",
                    &format!("{issuer}.key"),
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "30",
                    "-extfile",
                    ext,
                ],
            );
        }
        let cert = |name: &str| {
            let pem = std::fs::read(d.join(format!("{name}.pem"))).unwrap();
            Certificate::from_pem(&pem).unwrap().remove(0)
        };
        Self {
            key: RsaKey::from_pem_or_der(&std::fs::read(d.join("leaf.key")).unwrap()).unwrap(),
            leaf: cert("leaf"),
            intermediate: cert("int"),
            root: cert("root"),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn enrollment() -> Profile {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let scep_uuid = PayloadUuid::random(&mut rng);
    let scep = ScepPayload {
        challenge: Some("challenge".into()),
        key_size: Some(2048),
        key_type: Some("RSA".into()),
        key_usage: Some(5),
        ..ScepPayload::new("https://mdm.example.com/scep")
    };
    let mdm = MdmPayload {
        access_rights: Some(AccessRights::ALL),
        sign_message: Some(true),
        ..MdmPayload::new(
            "https://mdm.example.com/mdm",
            "com.apple.mgmt.External.0a1b2c3d",
            scep_uuid,
        )
    };
    Profile::configuration("com.example.enroll", PayloadUuid::random(&mut rng), vec![])
        .with_display_name("Example enrollment")
        .with_payload(Payload::new("com.example.enroll.scep", scep_uuid, scep))
        .with_payload(Payload::new(
            "com.example.enroll.mdm",
            PayloadUuid::random(&mut rng),
            mdm,
        ))
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn openssl_verifies_our_signed_profile_and_extracts_the_plist() {
    let pki = Pki::new();
    let p = enrollment();
    let xml = p.build(&ValidationOptions::default()).unwrap();
    // Chain: the intermediate only; the root is what the verifier trusts.
    let signed = p
        .sign(
            &ValidationOptions::default(),
            &pki.key,
            &pki.leaf,
            std::slice::from_ref(&pki.intermediate),
        )
        .unwrap();
    assert_eq!(signed.as_bytes().first(), Some(&0x30));
    std::fs::write(pki.path("signed.der"), signed.as_bytes()).unwrap();
    // -CAfile holds only the root: verification needs the intermediate from the message.
    openssl(
        pki.dir.path(),
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "signed.der",
            "-CAfile",
            "root.pem",
            "-out",
            "content.xml",
        ],
    );
    let extracted = std::fs::read(pki.path("content.xml")).unwrap();
    assert_eq!(
        extracted, xml,
        "openssl extracted other bytes than we built"
    );

    // openssl lists the leaf and the intermediate as the message's certificates.
    let out = openssl(
        pki.dir.path(),
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "signed.der",
            "-print_certs",
            "-noout",
        ],
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("Example Profile Signer"), "{listing}");
    assert!(listing.contains("Example Intermediate CA"), "{listing}");

    // A different root does not verify it.
    openssl(
        pki.dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Other Root",
        ],
    );
    let status = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "signed.der",
            "-CAfile",
            "other.pem",
            "-out",
            "/dev/null",
        ])
        .current_dir(pki.dir.path())
        .output()
        .unwrap()
        .status;
    assert!(!status.success(), "verified against an unrelated root");
}

#[test]
fn our_signed_profile_parses_back_with_its_signer() {
    let pki = Pki::new();
    let p = enrollment();
    let signed = p
        .sign(
            &ValidationOptions::default(),
            &pki.key,
            &pki.leaf,
            &[pki.intermediate.clone(), pki.root.clone()],
        )
        .unwrap();
    let parsed = profile::parse(signed.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(parsed.profile, p);
    let sig = parsed.signature.expect("signed");
    assert_eq!(sig.signer, pki.leaf);
    assert!(
        sig.signer
            .subject_string()
            .contains("Example Profile Signer")
    );
    assert_eq!(sig.certificates.len(), 3);
    assert!(sig.certificates.contains(&pki.intermediate));
    assert!(sig.certificates.contains(&pki.root));

    let response = signed.into_response(Some("enroll.mobileconfig"));
    assert_eq!(
        response.header("Content-Type"),
        Some("application/x-apple-aspen-config")
    );
    assert_eq!(response.body.first(), Some(&0x30));
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn openssl_signed_profiles_parse_der_and_streamed_ber() {
    let pki = Pki::new();
    let p = enrollment();
    std::fs::write(pki.path("profile.xml"), p.to_xml().unwrap()).unwrap();
    for (name, extra) in [
        ("der.p7", &[][..]),
        ("stream.p7", &["-stream"][..]),
        ("sha1-noattr.p7", &["-md", "sha1", "-noattr"][..]),
    ] {
        let mut args = vec![
            "cms",
            "-sign",
            "-nodetach",
            "-binary",
            "-in",
            "profile.xml",
            "-signer",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "int.pem",
            "-outform",
            "DER",
            "-out",
            name,
        ];
        args.extend_from_slice(extra);
        openssl(pki.dir.path(), &args);
        let bytes = std::fs::read(pki.path(name)).unwrap();
        let parsed =
            profile::parse(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.profile, p, "{name}");
        assert_eq!(parsed.signature.unwrap().signer, pki.leaf, "{name}");
    }
}

#[test]
fn tampered_signed_profile_is_refused() {
    let pki = Pki::new();
    let p = enrollment();
    let signed = p
        .sign(&ValidationOptions::default(), &pki.key, &pki.leaf, &[])
        .unwrap()
        .into_bytes();
    // Change one character of the attached plist (the display name).
    let needle = b"Example enrollment";
    let at = signed
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("content is attached");
    let mut tampered = signed.clone();
    tampered[at] = b'X';
    let changed = profile::parse(&tampered, &Limits::default());
    assert!(
        matches!(changed, Err(ProfileError::Signed(CmsError::DigestMismatch))),
        "{changed:?}"
    );
    // Truncated CMS is a typed error too.
    let truncated = profile::parse(&signed[..signed.len() / 2], &Limits::default());
    assert!(
        matches!(
            truncated,
            Err(ProfileError::Signed(CmsError::Ber(
                BerError::Truncated { .. }
            )))
        ),
        "{truncated:?}"
    );
}

#[test]
fn signing_refuses_invalid_profiles_and_mismatched_keys() {
    let pki = Pki::new();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let ota = Profile::profile_service(
        "com.example.ota",
        PayloadUuid::random(&mut rng),
        ProfileService::new("http://insecure/ota", ["UDID"], Some("c".into())),
    );
    assert!(matches!(
        ota.sign(&ValidationOptions::default(), &pki.key, &pki.leaf, &[]),
        Err(ProfileError::InvalidValue { .. })
    ));
    // The intermediate's certificate does not match the leaf key.
    let mismatch = SignedProfile::sign_xml(
        &enrollment().to_xml().unwrap(),
        &pki.key,
        &pki.intermediate,
        &[],
    );
    assert!(
        matches!(
            mismatch,
            Err(ProfileError::Signed(CmsError::SignerKeyMismatch))
        ),
        "{:?}",
        mismatch.err()
    );
}

#[test]
fn signed_profile_service_round_trips() {
    let pki = Pki::new();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let ota = Profile::profile_service(
        "com.example.ota",
        PayloadUuid::random(&mut rng),
        ProfileService::new(
            "https://mdm.example.com/ota",
            ProfileService::DEFAULT_ATTRIBUTES,
            Some("one-time".into()),
        ),
    );
    let signed = ota
        .sign(&ValidationOptions::default(), &pki.key, &pki.leaf, &[])
        .unwrap();
    let parsed = profile::parse(signed.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(parsed.profile, ota);
}
