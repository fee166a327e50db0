//! Shared helpers for the CMS integration tests: vector paths and an
//! `openssl` CLI driver working in a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::RsaKey;

/// Path of a captured vector (`tests/vectors/<rel>`).
pub fn vector_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel)
}

/// Read a captured vector; a missing file names its path.
pub fn vector(rel: &str) -> Vec<u8> {
    let p = vector_path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Run `openssl` with `args` in `dir`; panic with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = openssl_result(dir, args);
    match out {
        Ok(stdout) => stdout,
        Err(stderr) => panic!("openssl {args:?} failed: {stderr}"),
    }
}

/// Run `openssl`, returning stdout on success and stderr on failure.
pub fn openssl_result(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A test PKI made with the openssl CLI: a root CA and a leaf it issued.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// Root CA `name` (self-signed, `cA=true`) in `<name>.pem` / `<name>.key`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Self { dir };
        pki.ca("root", "/CN=Test Root CA/O=mdm-enroll tests");
        pki
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A self-signed CA certificate and key.
    pub fn ca(&self, name: &str, subject: &str) {
        openssl(
            self.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "3650",
                "-subj",
                subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    /// A leaf certificate `name` issued by CA `issuer`.
    pub fn leaf(&self, name: &str, subject: &str, issuer: &str) {
        let dir = self.path();
        openssl(
            dir,
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
        std::fs::write(
            dir.join(format!("{name}.ext")),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=clientAuth,emailProtection\nsubjectKeyIdentifier=hash\n",
        )
        .expect("write ext");
        openssl(
            dir,
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
                "-days",
                "365",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }

    /// An intermediate CA `name` issued by `issuer`.
    pub fn intermediate(&self, name: &str, subject: &str, issuer: &str) {
        let dir = self.path();
        openssl(
            dir,
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
        std::fs::write(
            dir.join(format!("{name}.ext")),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .expect("write ext");
        openssl(
            dir,
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
                "-days",
                "3650",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }

    pub fn cert(&self, name: &str) -> Certificate {
        let pem = std::fs::read(self.path().join(format!("{name}.pem"))).expect("read cert");
        Certificate::from_pem(&pem).expect("parse cert").remove(0)
    }

    pub fn key(&self, name: &str) -> RsaKey {
        let pem = std::fs::read(self.path().join(format!("{name}.key"))).expect("read key");
        RsaKey::from_pem_or_der(&pem).expect("parse key")
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path().join(name), bytes).expect("write");
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path().join(name)).expect("read")
    }
}
