//! Shared by the criterion benches: which RSA backend this run measures, and
//! the ratio of a measured operation to the raw crypto it contains, read
//! back from criterion's own estimates once a group has finished.
//!
//! Run a bench once per backend:
//! `cargo bench --bench NAME` (the `rsa` crate) and
//! `cargo bench --bench NAME --features aws-lc` (aws-lc-rs). Group names
//! carry the backend (`scep@aws-lc`), so both runs' figures stay apart.

#![allow(dead_code)]

use std::path::PathBuf;

use mdm_enroll::crypto::CryptoProvider;

/// The backend every key in this run uses (the default provider).
pub fn backend() -> &'static str {
    CryptoProvider::get_default().name()
}

/// When this run started: estimates older than this belong to an earlier run.
static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// `name@backend`: a criterion group name for this run's backend.
pub fn group(name: &str) -> String {
    STARTED.get_or_init(std::time::SystemTime::now);
    format!("{name}@{}", backend())
}

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// Criterion's filename mangling of a group or function id.
fn safe(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '?' | '"' | '/' | '\\' | '*' | '<' | '>' | ':' | '|' | '^' => '_',
            c => c,
        })
        .collect()
}

/// The time per iteration (ns) criterion measured for `group`/`function` in this run.
pub fn time_ns(group: &str, function: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(safe(group))
        .join(safe(function))
        .join("new/estimates.json");
    let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if STARTED.get().is_none_or(|t| written < *t) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    // The figure criterion prints: the slope when it fitted one, else the mean.
    v["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| v["mean"]["point_estimate"].as_f64())
}

/// Print `numerator / denominator` for functions of `group` (after
/// `group.finish()`), with both means and the per-second rate of the
/// numerator. Silent about benchmarks a filter skipped.
pub fn ratio(group: &str, numerator: &str, denominator: &str) {
    let (Some(n), Some(d)) = (time_ns(group, numerator), time_ns(group, denominator)) else {
        return;
    };
    println!(
        "RATIO {group}: {numerator} / {denominator} = {:.3}  ({:.1} µs / {:.1} µs; {:.0}/s per core)",
        n / d,
        n / 1000.0,
        d / 1000.0,
        1e9 / n
    );
}

/// Running sums of a measured operation and its own RSA baseline, the
/// baseline timed right after each measured iteration on the same thread:
/// host-speed drift, which skews a ratio of two criterion functions run
/// minutes apart, moves both sums together.
#[derive(Default)]
pub struct Paired {
    /// Time inside the measured operation.
    pub measured: std::time::Duration,
    /// Time inside the baseline run after each measured iteration.
    pub baseline: std::time::Duration,
    /// Iterations added (criterion's warm-up included): the sums cover
    /// different counts from run to run, the means do not.
    pub iterations: u32,
}

impl Paired {
    /// Time `baseline` once and add it, with `measured`, to the sums.
    pub fn add(&mut self, measured: std::time::Duration, baseline: impl FnOnce()) {
        let start = std::time::Instant::now();
        baseline();
        self.baseline += start.elapsed();
        self.measured += measured;
        self.iterations += 1;
    }

    /// Print `RATIO (paired) group: what = x` (nothing if no iteration ran,
    /// as when a filter skipped the function).
    pub fn print(&self, group: &str, what: &str) {
        if self.baseline.is_zero() {
            return;
        }
        let mean_us = |d: std::time::Duration| d.as_secs_f64() * 1e6 / f64::from(self.iterations);
        println!(
            "RATIO (paired) {group}: {what} = {:.3}  ({:.1} µs / {:.1} µs, means over {} iterations)",
            self.measured.as_secs_f64() / self.baseline.as_secs_f64(),
            mean_us(self.measured),
            mean_us(self.baseline),
            self.iterations,
        );
    }
}
