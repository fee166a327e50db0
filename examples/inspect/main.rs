//! `cargo run --example inspect -- <kind> <file>`: decode one captured
//! message with the crate's bounded decoders and print it as one JSON
//! object on stdout, keyed by Apple's names.
//!
//! Exit status: 0 decoded; 1 the file is bad (one line on stderr naming
//! what was wrong); 2 usage error. Never panics, whatever the file.
//!
//! Adding a kind: add `examples/inspect/<kind>.rs` with
//! `pub fn inspect(bytes: &[u8]) -> Result<serde_json::Value, String>`, a
//! `mod <kind>;` line and one arm in [`handler`].

mod checkin;
mod json;
mod report;

use std::io::Write;
use std::process::ExitCode;

/// Decodes a file's bytes into a JSON value, or says what was wrong.
type Handler = fn(&[u8]) -> Result<serde_json::Value, String>;

/// The decoder for `kind`.
fn handler(kind: &str) -> Option<Handler> {
    match kind {
        "checkin" => Some(checkin::inspect),
        "report" => Some(report::inspect),
        _ => None,
    }
}

const KINDS: &str = "checkin, report";

fn usage(msg: &str) -> ExitCode {
    let _ = writeln!(
        std::io::stderr(),
        "{msg}\nusage: inspect <kind> <file>   (kinds: {KINDS})"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let [kind, path] = args.as_slice() else {
        return usage("expected exactly two arguments");
    };
    let Some(handler) = kind.to_str().and_then(handler) else {
        return usage(&format!("unknown kind {kind:?}"));
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot read {path:?}: {e}");
            return ExitCode::from(1);
        }
    };
    match handler(&bytes) {
        Ok(value) => {
            let _ = writeln!(std::io::stdout().lock(), "{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line, whatever the error text holds.
            let line = e.replace(['\n', '\r'], " ");
            let _ = writeln!(std::io::stderr(), "error: {line}");
            ExitCode::from(1)
        }
    }
}
