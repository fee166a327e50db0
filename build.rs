//! Tells the integration tests which system programs they can use.
//!
//! Some tests prove interop against independent implementations installed
//! from Debian's packages (`openssl`, Python's `plistlib`, `curl`, micromdm's
//! `scepclient`, certmonger, Chromium). A test whose program is missing must
//! not pass silently: it is compiled with `#[ignore = "needs …: apt-get
//! install …"]`, so `cargo test` lists it as ignored with the package to
//! install, and counts it in the summary. Under `CI=true` every probe is taken
//! as present, so a missing package fails its tests instead of hiding them.
//!
//! The probes run only when the `test-support` feature is on (the crate's own
//! test builds turn it on); a dependent's ordinary build probes nothing.

use std::path::{Path, PathBuf};

/// `cfg` name, programs that must all be on `PATH`, Python modules, needs root.
const PROBES: &[(&str, &[&str], &[&str], bool)] = &[
    ("mdm_have_openssl", &["openssl"], &[], false),
    ("mdm_have_python3", &["python3"], &[], false),
    ("mdm_have_curl", &["curl"], &[], false),
    ("mdm_have_chromium", &["chromium"], &[], false),
    (
        "mdm_have_scep_clients",
        &[
            "scepclient",
            "openssl",
            "curl",
            "ip",
            "unshare",
            "dbus-daemon",
            "certmonger",
        ],
        &["cryptography", "asn1crypto"],
        true,
    ),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CARGO_FEATURE_TEST_SUPPORT");
    println!("cargo::rerun-if-env-changed=MDM_TEST_POSTGRES");
    for (cfg, _, _, _) in PROBES {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    println!("cargo::rustc-check-cfg=cfg(mdm_have_postgres)");
    if std::env::var_os("CARGO_FEATURE_TEST_SUPPORT").is_none() {
        return;
    }
    for dir in WATCHED.iter().filter(|d| Path::new(d).is_dir()) {
        println!("cargo::rerun-if-changed={dir}");
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    for (cfg, programs, modules, root) in PROBES {
        let found = programs.iter().all(|p| on_path(p))
            && modules.iter().all(|m| python_module(m))
            && (!root || is_root());
        if found || ci {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    // PostgreSQL: a server named by MDM_TEST_POSTGRES, or Debian's
    // `postgresql` binaries to start a throwaway cluster with.
    if ci || std::env::var_os("MDM_TEST_POSTGRES").is_some() || postgres_bin().is_some() {
        println!("cargo::rustc-cfg=mdm_have_postgres");
    }
}

/// Where Debian's packages put the programs and modules probed: watched, so
/// that installing or removing a package re-runs the probes.
const WATCHED: &[&str] = &[
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib/certmonger",
    "/usr/lib/python3/dist-packages",
    "/usr/lib/postgresql",
];

/// The directory holding `initdb` and `pg_ctl` (on `PATH`, or Debian's
/// `/usr/lib/postgresql/*/bin`).
fn postgres_bin() -> Option<PathBuf> {
    if on_path("initdb") && on_path("pg_ctl") {
        return Some(PathBuf::new());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| executable(&d.join("initdb")) && executable(&d.join("pg_ctl")))
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Whether `program` is an executable file in a `PATH` directory (or in
/// `/usr/sbin` and `/usr/lib/certmonger`, where Debian puts daemons).
fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/lib/certmonger"].map(PathBuf::from));
    dirs.iter().any(|d| executable(&d.join(program)))
}

#[cfg(unix)]
fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn executable(p: &Path) -> bool {
    p.is_file()
}

/// Whether Debian's Python (`/usr/bin/python3`, which the interop scripts
/// run) imports `module`.
fn python_module(module: &str) -> bool {
    std::process::Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}
