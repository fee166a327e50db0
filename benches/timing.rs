//! Timing-leak check in the style of dudect (Reparaz, Balasch, Verbauwhede
//! 2017): measure one operation on two classes of secret-dependent inputs,
//! interleaved at random, and compare the two timing distributions with
//! Welch's t-test. |t| above 4.5 is the usual "a leak is likely" threshold;
//! below it, no difference was detectable with this many measurements.
//! A bench, not a CI gate: run it on a quiet machine and read the figures.
//!
//! ```sh
//! cargo bench --bench timing                  # defaults below, rsa crate
//! cargo bench --bench timing --features aws-lc   # aws-lc-rs and the rsa crate
//! cargo bench --bench timing -- 20000 400000  # RSA / comparison measurements
//! ```
//!
//! Operations, both through the public API:
//! - **SCEP key transport**: `EnvelopedData::decrypt` of a PKCSReq envelope
//!   with the CA key (`RsaKey`, the implicit-rejection `KeyUnwrapper`), on
//!   every backend compiled in (`--features aws-lc` adds aws-lc-rs, which
//!   reports bad padding as an error that `ImplicitRejection` absorbs).
//!   Class A: the content key under valid PKCS#1 v1.5 padding. Class B: a
//!   random value below the modulus (invalid padding). Both fail or succeed
//!   only in the symmetric step after it; the result is discarded.
//! - **Challenge comparison**: `Secret == Secret` (constant-time), and
//!   `ChallengeDigest::matches` (what a store compares). Class A: the
//!   presented challenge equals the stored one. Class B: it differs in its
//!   first byte (an early-exit comparison would be fastest here).
//!
//! The presented value is a fresh copy in every call of both classes, as a
//! request's would be, made from one source buffer in both classes with
//! only its first byte set per class, so the classes differ in the data
//! compared and nothing else (a fixed buffer per class, or copies from two
//! source buffers, measure memory placement instead: an earlier version of
//! this bench showed |t| ≈ 800 for `Secret ==` that way).
//! Each t is printed raw and with the slowest 10% cropped (dudect's
//! percentile crop, against scheduler noise). A positive control, the same
//! strings compared with `str ==` (early exit), shows the check can see a
//! leak of this size.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use mdm_enroll::activation::Secret;
use mdm_enroll::cms::Certificate;
use mdm_enroll::cms::enveloped::{ContentCipher, DecryptPolicy, EnvelopedData, RecipientIdentity};
use mdm_enroll::crypto::{CryptoProvider, KeyUnwrapper};
use mdm_enroll::wire::BerLimits;
use rand_core::{Rng, UnwrapErr};

fn captured(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/scep/captured")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Welch's t of two samples.
fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let var =
        |x: &[f64], m: f64| x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (va, vb) = (var(a, ma), var(b, mb));
    (ma - mb) / (va / a.len() as f64 + vb / b.len() as f64).sqrt()
}

/// Measure `batch` calls of `op(class)` `n` times, the class drawn at random
/// for each measurement; print the t statistic raw and with the slowest 10%
/// cropped. A batch amortises the clock's own cost for cheap operations.
fn compare(name: &str, n: usize, batch: usize, rng: &mut impl Rng, mut op: impl FnMut(bool)) {
    // Warm up both classes.
    for i in 0..(n / 20).max(10) {
        op(i % 2 == 0);
    }
    let mut samples: Vec<(bool, f64)> = Vec::with_capacity(n);
    for _ in 0..n {
        let class = rng.next_u32() & 1 == 1;
        let start = Instant::now();
        for _ in 0..batch {
            op(class);
        }
        samples.push((class, start.elapsed().as_nanos() as f64));
    }
    let split = |limit: f64| -> (Vec<f64>, Vec<f64>) {
        let a = samples.iter().filter(|s| !s.0 && s.1 <= limit).map(|s| s.1);
        let b = samples.iter().filter(|s| s.0 && s.1 <= limit).map(|s| s.1);
        (a.collect(), b.collect())
    };
    let mut sorted: Vec<f64> = samples.iter().map(|s| s.1).collect();
    sorted.sort_by(f64::total_cmp);
    let p90 = sorted[sorted.len() * 9 / 10];
    let (a, b) = split(f64::INFINITY);
    let (ca, cb) = split(p90);
    let median = |x: &[f64]| {
        let mut v = x.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let t_raw = welch_t(&a, &b);
    let t_crop = welch_t(&ca, &cb);
    let verdict = if t_raw.abs().max(t_crop.abs()) > 4.5 {
        "LEAK LIKELY (|t| > 4.5)"
    } else {
        "no leak detected (|t| <= 4.5)"
    };
    println!(
        "{name}: n={n}x{batch} (A {} / B {}), median A {:.0} ns, B {:.0} ns, t raw {t_raw:+.2}, t cropped p90 {t_crop:+.2}: {verdict}",
        a.len(),
        b.len(),
        median(&a),
        median(&b),
    );
}

/// Calls per measurement for the nanosecond-scale comparisons.
const BATCH: usize = 64;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rsa_n = args.first().copied().unwrap_or(4_000);
    let secret_n = args.get(1).copied().unwrap_or(100_000);
    let mut rng = UnwrapErr(getrandom::SysRng);

    // SCEP key transport: the captured Apple-emulator request's envelope,
    // addressed to the RSA-2048 CA whose key the vectors carry.
    for provider in CryptoProvider::all() {
        key_transport(provider, rsa_n, &mut rng);
    }
    challenges(secret_n, &mut rng);
}

/// SCEP key transport on `provider`, valid vs invalid padding.
fn key_transport(provider: CryptoProvider, rsa_n: usize, rng: &mut UnwrapErr<getrandom::SysRng>) {
    let key = provider
        .load_private_key(&captured("ca/rfcku-ca.key.pem"))
        .expect("CA key");
    let ca = Certificate::from_pem(&captured("ca/rfcku-ca.pem"))
        .expect("CA certificate")
        .remove(0);
    let me = RecipientIdentity::of(&ca);
    let csr = captured("inner/22-csr.der");
    let valid_der =
        EnvelopedData::encrypt(&csr, &me, key.public_key(), ContentCipher::Aes128Cbc, rng)
            .expect("encrypt");
    let valid = EnvelopedData::parse(&valid_der, &BerLimits::default()).expect("parse");
    let mut invalid = valid.clone();
    let len = invalid.recipients[0].encrypted_key.len();
    let mut random = vec![0u8; len];
    rng.fill_bytes(&mut random);
    random[0] = 0x00;
    random[1] |= 0x03; // PKCS#1 v1.5 needs 00 02: this never parses as padding
    invalid.recipients[0].encrypted_key = random;
    let policy = DecryptPolicy::default();
    assert!(
        valid.decrypt(&me, &key, &policy).is_ok(),
        "class A decrypts"
    );
    assert!(
        invalid.decrypt(&me, &key, &policy).is_err(),
        "class B fails"
    );
    compare(
        &format!(
            "SCEP key transport on {} (RSA-2048 PKCS#1 v1.5, valid vs invalid padding)",
            provider.name()
        ),
        rsa_n,
        1,
        rng,
        |class| {
            let env = if class { &invalid } else { &valid };
            let _ = black_box(env.decrypt(&me, &key, &policy));
        },
    );
}

/// Challenge comparisons (no RSA).
fn challenges(secret_n: usize, rng: &mut UnwrapErr<getrandom::SysRng>) {
    // Challenge comparison: 64 hex digits, as the crate mints them.
    let stored = Secret::random(rng);
    let same = Secret::new(stored.expose().to_owned());
    let mut other = stored.expose().to_owned().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let other = Secret::new(String::from_utf8(other).expect("hex"));
    // Both classes build the presented value the same way, from the same
    // source buffer, and differ only in the first byte written into it
    // (copying from two different buffers measured their placement).
    let (equal_first, other_first) = (same.expose().as_bytes()[0], other.expose().as_bytes()[0]);
    let present = |class: bool| {
        let mut bytes = same.expose().as_bytes().to_vec();
        bytes[0] = black_box(if class { other_first } else { equal_first });
        Secret::new(String::from_utf8(bytes).expect("hex"))
    };
    compare(
        "challenge comparison (Secret ==, equal vs first byte differs)",
        secret_n,
        BATCH,
        rng,
        |class| {
            let presented = present(class);
            black_box(black_box(&stored) == black_box(&presented));
        },
    );
    // Positive control: the same strings with an early-exit comparison
    // (`str ==`). The check must be able to see this one.
    compare(
        "control: str == (early exit), equal vs first byte differs",
        secret_n,
        BATCH,
        rng,
        |class| {
            let presented = present(class);
            black_box(black_box(stored.expose()) == black_box(presented.expose()));
        },
    );
    // What the stores match: the SHA-256 digest of the challenge.
    let (stored_digest, same_digest, other_digest) =
        (stored.digest(), same.digest(), other.digest());
    compare(
        "challenge digest match (ChallengeDigest::matches, equal vs differing)",
        secret_n,
        BATCH,
        rng,
        |class| {
            let presented = if class { &other_digest } else { &same_digest };
            black_box(black_box(&stored_digest).matches(black_box(presented)));
        },
    );
}
