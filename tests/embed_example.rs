//! `examples/embed.rs`, the embedding guide's server, does what its docs
//! say: a self-service login answers with a signed Profile Service profile
//! pointing back at it, signed by the CA its SCEP endpoint serves.
#![cfg(feature = "http")]

mod server_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use mdm_enroll::profile::ProfileContent;
use mdm_enroll::wire::Limits;
use server_support::{example_binary, form, http};

struct Embed(Child);

impl Drop for Embed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the built example on a free port; its base URL.
fn start() -> (Embed, SocketAddr) {
    let bin = example_binary::example_binary("embed");
    let mut child = Command::new(bin)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start embed");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").expect("read");
    std::thread::spawn(move || for _ in lines {});
    let addr = first
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    (Embed(child), addr)
}

#[test]
fn embed_example_serves_a_signed_profile_service_profile() {
    let (_embed, addr) = start();
    let login = |password: &str| {
        http(
            addr,
            "POST",
            "/demo/enroll",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form(&[
                ("username", "demo"),
                ("password", password),
                ("domain", "example.com"),
            ]),
        )
    };
    assert_eq!(login("wrong").status, 403);

    let r = login("demo");
    assert_eq!(r.status, 200);
    let parsed = mdm_enroll::profile::parse(&r.body, &Limits::default()).expect("signed profile");
    let signature = parsed.signature.expect("signed");
    let ProfileContent::ProfileService(service) = parsed.profile.content else {
        panic!("not a Profile Service profile");
    };
    assert_eq!(service.url, format!("http://{addr}/demo/profile-service"));
    assert!(service.challenge.is_some(), "a one-time challenge");

    // The SCEP endpoint serves the CA that signed it.
    let ca = http(addr, "GET", "/demo/scep?operation=GetCACert", &[], b"");
    assert_eq!(ca.status, 200);
    assert_eq!(ca.body, signature.signer.der());
    // The portal form posts to the self-service route.
    assert!(
        http(addr, "GET", "/", &[], b"")
            .text()
            .contains("action=/demo/enroll")
    );
}
