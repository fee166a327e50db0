//! The whole responder on an arbitrary POSTed PKIMessage: never a panic,
//! always an HTTP answer or a decision, and every decision carried out.
//!
//! The responders hold the captured CAs' keys (`tests/vectors/scep/captured/ca`:
//! micromdm-ca, and rfcku-ca with its RA), so the captured requests in
//! `tests/vectors/scep/captured/` (which `fuzz/smoke.sh` copies into the
//! corpus) decrypt, and their mutations reach CSR parsing, the challenge, the
//! renewal check, issuance, replays and polls rather than stopping at
//! decryption. The clock is fixed inside the captures' validity.
//!
//! Decryption uses the real keys; signing (the issued certificate and every
//! CertRep) goes through [`FixedSigner`], which holds the real public key and
//! answers a constant signature of the right length. Nothing here verifies
//! what the responder signs, and each RSA private operation saved is ~0.3 ms
//! of an execution (the campaign ran at ~840 executions/s with real
//! signatures).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mdm_enroll::crypto::{CryptoError, DigestAlgorithm, KeyUnwrapper, PublicKey, RsaKey, Signer};
use mdm_enroll::http::{Method, Request};
use mdm_enroll::pki::{self, LeafPolicy};
use mdm_enroll::scep::{
    Challenge, ChallengeVerdict, ChallengeVerifier, FailInfo, IssuanceRecord, RequestFingerprint,
    ScepOutcome, ScepResponder,
};

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

/// 2026-11-27T00:00:00Z: after the captures, inside every certificate's validity.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_737_600)
}

/// The captured challenge password.
const SECRET: &[u8] = b"secret123";

/// A one-time store that knows one challenge; stateless, so every run is
/// reproducible.
struct OneChallenge;
impl ChallengeVerifier for OneChallenge {
    fn consume(&self, c: &Challenge, _: &RequestFingerprint, _: SystemTime) -> ChallengeVerdict {
        if c.matches(SECRET) {
            ChallengeVerdict::Accepted
        } else {
            ChallengeVerdict::Refused
        }
    }
}

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/vectors/scep/captured/ca/",
            $name
        ))
        .as_slice()
    };
}

fn key(pem: &[u8]) -> Arc<RsaKey> {
    Arc::new(RsaKey::from_pem_or_der(pem).expect("captured key"))
}

/// A signer with the real public key and a constant signature of the
/// modulus' length: the responder's output is never verified here.
struct FixedSigner(PublicKey);
impl Signer for FixedSigner {
    fn public_key(&self) -> &PublicKey {
        &self.0
    }
    fn sign(&self, _: DigestAlgorithm, _: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(vec![0x5a; self.0.size()])
    }
}

fn fixed_signer(key: &RsaKey) -> Arc<dyn Signer> {
    Arc::new(FixedSigner(Signer::public_key(key).clone()))
}

fn responders() -> &'static [ScepResponder; 2] {
    static R: OnceLock<[ScepResponder; 2]> = OnceLock::new();
    R.get_or_init(|| {
        let micromdm = key(vector!("micromdm-ca.key.pem"));
        let rfc = key(vector!("rfcku-ca.key.pem"));
        let ra = key(vector!("rfcku-ra.key.pem"));
        let ra_der = pem_to_der(vector!("rfcku-ra.pem"));
        [
            ScepResponder::new(
                vector!("micromdm-ca.der"),
                fixed_signer(&micromdm),
                micromdm as Arc<dyn KeyUnwrapper>,
            )
            .expect("micromdm responder"),
            ScepResponder::new(
                vector!("rfcku-ca.der"),
                fixed_signer(&rfc),
                rfc as Arc<dyn KeyUnwrapper>,
            )
            .expect("rfcku responder")
            .with_ra(&ra_der, fixed_signer(&ra), ra as Arc<dyn KeyUnwrapper>)
            .expect("rfcku RA"),
        ]
    })
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let mut certs = mdm_enroll::cms::Certificate::from_pem(pem).expect("captured PEM");
    certs.remove(0).der().to_vec()
}

fn answered(status: u16) {
    assert!(status == 200 || (400..500).contains(&status), "{status}");
}

fn run(responder: &ScepResponder, data: &[u8]) {
    let mut rng = Counter(7);
    let now = now();
    let mut req = Request::new(Method::Post, "/scep");
    req.query = Some("operation=PKIOperation".into());
    req.body = data.to_vec();
    match responder.handle(&req, now, &mut rng) {
        ScepOutcome::Respond(r) => answered(r.status),
        ScepOutcome::Certificate(cr) => {
            let allowed = cr.renewal_of().is_some()
                || cr.check_challenge(&OneChallenge, now) == ChallengeVerdict::Accepted;
            if !allowed {
                answered(cr.reject(FailInfo::BadRequest, now, &mut rng).status);
                return;
            }
            let policy = LeafPolicy::client_auth(cr.csr().subject().clone());
            let validity = pki::validity(now, Duration::from_secs(3600)).expect("validity");
            match cr.issue(
                &policy,
                pki::random_serial(&mut rng),
                validity,
                now,
                &mut rng,
            ) {
                Ok(issued) => {
                    answered(issued.response.status);
                    assert!(cr.is_replay_of(&issued.record));
                    let again = cr.replay(&issued.record, now, &mut rng);
                    answered(again.expect("replay of a fresh issuance").status);
                }
                // A CSR key the issuer refuses is an error, never a panic.
                Err(_) => answered(cr.reject(FailInfo::BadRequest, now, &mut rng).status),
            }
        }
        ScepOutcome::Poll(p) => {
            answered(p.pending(now, &mut rng).status);
            // Issued meanwhile: a record of this transaction is delivered.
            let record = IssuanceRecord {
                transaction_id: p.transaction_id().to_owned(),
                fingerprint: RequestFingerprint([0; 32]),
                certificate: p.signer_certificate().der().to_vec(),
            };
            // Delivery can fail with a typed error (a signer key it cannot
            // encrypt to), never a panic.
            if let Ok(r) = p.issued(&record, now, &mut rng) {
                answered(r.status);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for responder in responders() {
        run(responder, data);
    }
});
