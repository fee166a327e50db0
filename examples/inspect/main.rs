//! `cargo run --example inspect -- <kind> <file>`: decode one captured
//! message with the crate's bounded decoders and print it as one JSON
//! object on stdout, keyed by Apple's names.
//!
//! The contract, the same for every kind:
//! - exit 0: the file decoded **and**, for a signed kind, its signature
//!   verified: exactly one JSON object on one line on stdout, nothing on
//!   stderr;
//! - exit 1: bad input or anything that does not verify (an `Mdm-Signature`
//!   over a different body, device attributes whose signer does not chain
//!   to a trusted CA, including a look-alike with Apple's CA name, a signed
//!   profile or SCEP message whose signature fails): one line
//!   `error: <reason>` on stderr, nothing on stdout;
//! - exit 2: usage error (unknown kind, wrong arguments): the usage on
//!   stderr, nothing on stdout.
//!
//! Never panics, whatever the file. A script can thus tell a forgery from a
//! valid message by the exit status alone.
//!
//! | kind | arguments | verified against |
//! |---|---|---|
//! | `checkin`, `report` | `<file>` | (unsigned plist) |
//! | `profile` | `<file>` | a signed profile: the signer certificate it carries |
//! | `ota` | `<file> [--device-ca PEM] [--scep-ca PEM]` | Apple's device CA (built in), `--device-ca`, `--scep-ca` |
//! | `signature` | `<header-file> --body <body-file>` | the signer certificate over the body |
//! | `scep` | `<file> [--ca-key KEY]` | the signer certificate it carries |
//!
//! Adding a kind: add `examples/inspect/<kind>.rs`, a `mod <kind>;` line
//! and one arm in [`handler`]. A kind is either
//! - [`Handler::Bytes`]: `pub fn inspect(bytes: &[u8]) -> Result<serde_json::Value, String>`
//!   (the file is read here, the JSON printed here), or
//! - [`Handler::Args`]: `pub fn run(args: &[String]) -> Result<(), String>`
//!   given the arguments after the kind, printing its one JSON object; an error text
//!   starting with `usage:` is a usage error (exit 2), any other is exit 1.

mod checkin;
mod json;
mod ota;
mod profile;
mod report;
mod scep;
mod signature;

use std::io::Write;
use std::process::ExitCode;

/// How a kind is run.
#[derive(Clone, Copy)]
enum Handler {
    /// Decodes one file's bytes into a JSON value, or says what was wrong.
    Bytes(fn(&[u8]) -> Result<serde_json::Value, String>),
    /// Takes the arguments after the kind and prints its own output.
    Args(fn(&[String]) -> Result<(), String>),
}

/// The handler for `kind`.
fn handler(kind: &str) -> Option<Handler> {
    match kind {
        "checkin" => Some(Handler::Bytes(checkin::inspect)),
        "report" => Some(Handler::Bytes(report::inspect)),
        "ota" => Some(Handler::Args(ota::run)),
        "signature" => Some(Handler::Args(signature::run)),
        "profile" => Some(Handler::Bytes(profile::inspect)),
        "scep" => Some(Handler::Args(scep::run)),
        _ => None,
    }
}

const KINDS: &str = "checkin, report, ota, signature, profile, scep";

fn usage(msg: &str) -> ExitCode {
    let _ = writeln!(
        std::io::stderr(),
        "{msg}\nusage: inspect <kind> <file>   (kinds: {KINDS})"
    );
    ExitCode::from(2)
}

/// Print `error: <msg>` as one line on stderr; exit 1.
fn bad_input(msg: &str) -> ExitCode {
    let line = msg.replace(['\n', '\r'], " ");
    let _ = writeln!(std::io::stderr(), "error: {line}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some((kind, rest)) = args.split_first() else {
        return usage("expected a kind and a file");
    };
    let Some(handler) = kind.to_str().and_then(handler) else {
        return usage(&format!("unknown kind {kind:?}"));
    };
    match handler {
        Handler::Bytes(inspect) => {
            let [path] = rest else {
                return usage("expected exactly one file after the kind");
            };
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) => return bad_input(&format!("cannot read {path:?}: {e}")),
            };
            match inspect(&bytes) {
                Ok(value) => {
                    let _ = writeln!(std::io::stdout().lock(), "{value}");
                    ExitCode::SUCCESS
                }
                Err(e) => bad_input(&e),
            }
        }
        Handler::Args(run) => {
            let Some(rest) = rest
                .iter()
                .map(|a| a.to_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
            else {
                return usage("arguments must be UTF-8");
            };
            match run(&rest) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.starts_with("usage:") => usage(&e),
                Err(e) => bad_input(&e),
            }
        }
    }
}
