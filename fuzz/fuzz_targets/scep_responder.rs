//! The whole responder on an arbitrary POSTed PKIMessage: never a panic,
//! always an HTTP answer or a decision.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mdm_enroll::crypto::{KeyUnwrapper, RsaKey, Signer};
use mdm_enroll::http::{Method, Request};
use mdm_enroll::pki;
use mdm_enroll::scep::{FailInfo, ScepOutcome, ScepResponder};

/// A fixed-seed RNG: fuzzing must be reproducible.
struct Counter(u64);
impl rand_core::TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Counter {}

fn responder() -> &'static ScepResponder {
    static R: OnceLock<ScepResponder> = OnceLock::new();
    R.get_or_init(|| {
        let mut rng = Counter(1);
        let key = Arc::new(RsaKey::generate(&mut rng, 1024).expect("key"));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ca = pki::create_ca(
            key.as_ref(),
            "CN=fuzz CA".parse().expect("name"),
            pki::random_serial(&mut rng),
            pki::validity(now, Duration::from_secs(86400)).expect("validity"),
        )
        .expect("ca");
        ScepResponder::new(
            &pki::to_der(&ca).expect("der"),
            key.clone() as Arc<dyn Signer>,
            key as Arc<dyn KeyUnwrapper>,
        )
        .expect("responder")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut rng = Counter(7);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut req = Request::new(Method::Post, "/scep");
    req.query = Some("operation=PKIOperation".into());
    req.body = data.to_vec();
    match responder().handle(&req, now, &mut rng) {
        ScepOutcome::Respond(r) => assert!(r.status == 200 || (400..500).contains(&r.status)),
        ScepOutcome::Certificate(cr) => {
            let _ = cr.reject(FailInfo::BadRequest, now, &mut rng);
        }
        ScepOutcome::Poll(p) => {
            let _ = p.pending(now, &mut rng);
        }
    }
});
