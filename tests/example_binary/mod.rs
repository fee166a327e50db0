//! The built example programs the integration tests run as child processes.
//! `cargo test` builds examples next to the test executables
//! (`target/<profile>/examples/`); a binary that is missing, or older than
//! the crate's or the example's sources, is refused rather than tested, so
//! no test passes against yesterday's code.

use std::path::{Path, PathBuf};

/// Path of the example `name` (sources in `examples/{name}/` or
/// `examples/{name}.rs`), refused when missing or stale.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let hint = "run `cargo test --all-features` (or `cargo build --all-features --examples`)";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} missing: {hint}", bin.display()));
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
