//! The built example programs the integration tests run as child processes.
//!
//! `cargo test` does not always leave them built: an example with
//! `test = true` (the server, whose unit tests run under `cargo test`) is
//! built only as its test harness. So the first call for an example in a
//! test process runs `cargo build --example NAME` itself, with the features
//! this test was compiled with and into the same profile folder
//! (`target/<profile>/examples/`); when everything is fresh that is a no-op.
//! A binary that is still missing, or older than the crate's or the
//! example's sources, is refused rather than tested, so no test passes
//! against yesterday's code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Every crate feature, and whether this test was compiled with it.
pub const FEATURES: [(&str, bool); 6] = [
    ("http", cfg!(feature = "http")),
    ("test-support", cfg!(feature = "test-support")),
    ("sqlite", cfg!(feature = "sqlite")),
    ("postgres", cfg!(feature = "postgres")),
    ("apns", cfg!(feature = "apns")),
    ("aws-lc", cfg!(feature = "aws-lc")),
];

/// The crate features this test was compiled with: the example is built
/// with the same ones.
fn features() -> Vec<&'static str> {
    FEATURES
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
}

/// `cargo build --example name` into `profile_dir` (`<target>/<profile>`),
/// once per test process and example.
fn build(name: &str, profile_dir: &Path) {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if built.iter().any(|b| b == name) {
        return;
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some("release") => "release",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--example",
        name,
        "--profile",
        profile,
    ]);
    let features = features();
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running cargo to build the example {name}: {e}"));
    assert!(
        out.status.success(),
        "cargo build --example {name} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    built.push(name.to_owned());
}

/// Path of the example `name` (sources in `examples/{name}/` or
/// `examples/{name}.rs`), built first if needed; refused when missing or
/// stale.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    build(name, dir);
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let hint = "run `cargo build --all-features --examples`";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} missing after cargo build: {hint}", bin.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = root.join("examples");
    let newest = newest_source(&root.join("src"))
        .max(newest_source(&examples.join(name)))
        .max(modified(&examples.join(format!("{name}.rs"))));
    assert!(
        newest.is_none_or(|t| t <= built),
        "{} is older than its sources: {hint}",
        bin.display()
    );
    bin
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of a `.rs` file under `dir`.
fn newest_source(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_source(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            modified(&path)
        } else {
            None
        };
        newest = newest.max(t);
    }
    newest
}
