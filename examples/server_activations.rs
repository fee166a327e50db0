//! Server-side activations in one process, for instruction counting.
//!
//! ```text
//! cargo run --release --features test-support,aws-lc --example server_activations -- 20
//! ```
//!
//! Walks N simulated Macs (every key RSA-2048, real CMS, SCEP envelopes and
//! `Mdm-Signature`s) through steps 2–13 against one `TestDeployment` over
//! the in-memory store, calling `EnrollmentService::handle` directly, and
//! prints the time spent inside it per activation. The figure that matters
//! is not that time (it moves with the machine) but the instructions
//! `benches/instructions.sh` counts inside `handle` under callgrind, which
//! are the same on every run.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mdm_enroll::crypto::RsaKey;
use mdm_enroll::http::Request;
use mdm_enroll::testing::{SimulatedDevice, TestDeployment};
use rand_core::UnwrapErr;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 20,
    };
    let mut rng = UnwrapErr(getrandom::SysRng);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let key = || RsaKey::generate(&mut UnwrapErr(getrandom::SysRng), 2048);
    let d = TestDeployment::new(key()?, key()?, now, &mut rng)?;
    let attributes = d.device_ca.issue(Arc::new(key()?), now, &mut rng)?;
    let scep_key = Arc::new(key()?);
    let enroll = d.enroll_path();
    let mut server = Duration::ZERO;
    for _ in 0..n {
        let mut device = SimulatedDevice::new(
            attributes.clone(),
            scep_key.clone(),
            d.server_certificate.clone(),
            &mut rng,
        );
        let mut r = UnwrapErr(getrandom::SysRng);
        let mut transport = |request: Request| {
            let start = Instant::now();
            let (response, _events) = d.service.handle(&request, now, &mut r);
            server += start.elapsed();
            response
        };
        device.activate(
            &mut transport,
            &enroll,
            ("alice", "pw", "corp"),
            now,
            &mut rng,
        )?;
    }
    let per = server.as_secs_f64() * 1e6 / f64::from(n.max(1));
    println!("{n} activations, {per:.1} µs per activation inside EnrollmentService::handle");
    Ok(())
}
