//! Short-lived sign-in tokens: after a portal login the activation form
//! carries an opaque token instead of the user's password, so the password
//! is never written back into HTML. A token is valid for [`LoginTokens::TTL`]
//! and is forgotten once its activation succeeds. Memory is bounded: expired
//! tokens are evicted, and at [`LoginTokens::MAX`] the oldest makes room.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{LoginAttempt, TenantId};

/// A sign-in: the tenant it was made at, its credentials, when.
type Entry = (TenantId, LoginAttempt, SystemTime);

/// The sign-ins waiting for their activation.
#[derive(Default)]
pub struct LoginTokens {
    entries: Mutex<HashMap<String, Entry>>,
}

impl LoginTokens {
    /// How long a token is valid.
    pub const TTL: Duration = Duration::from_secs(600);
    /// Tokens held at most.
    pub const MAX: usize = 10_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Each update is one insert or remove: a poisoned map is consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new token (128 random bits, hex) for the verified `attempt` at `tenant`.
    pub fn issue(&self, tenant: &TenantId, attempt: &LoginAttempt, now: SystemTime) -> String {
        let mut bytes = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut crate::routes::rng(), &mut bytes);
        let token = mdm_enroll::wire::hex::lower(&bytes);
        let mut entries = self.lock();
        crate::throttle::make_room(
            &mut entries,
            Self::MAX,
            |(_, _, issued)| Self::valid(*issued, now),
            |(_, _, issued)| *issued,
        );
        entries.insert(token.clone(), (tenant.clone(), attempt.clone(), now));
        token
    }

    fn valid(issued: SystemTime, now: SystemTime) -> bool {
        now.duration_since(issued).unwrap_or_default() < Self::TTL
    }

    /// The sign-in behind `token`, if it is known, was made at `tenant` and
    /// has not expired.
    pub fn get(&self, tenant: &TenantId, token: &str, now: SystemTime) -> Option<LoginAttempt> {
        let entries = self.lock();
        let (at, attempt, issued) = entries.get(token)?;
        (at == tenant && Self::valid(*issued, now)).then(|| attempt.clone())
    }

    /// Forget `token` (its activation is done).
    pub fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Tokens held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdm_enroll::activation::Secret;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn ann() -> LoginAttempt {
        LoginAttempt {
            username: "ann".into(),
            password: Secret::new("pw"),
            domain: "corp.example".into(),
        }
    }

    fn demo() -> TenantId {
        TenantId::new("demo").unwrap()
    }

    #[test]
    fn tokens_expire_and_are_forgotten() {
        let tokens = LoginTokens::default();
        let t = tokens.issue(&demo(), &ann(), at(0));
        assert_eq!(t.len(), 32);
        assert_ne!(t, tokens.issue(&demo(), &ann(), at(0)));
        assert!(tokens.get(&demo(), &t, at(599)) == Some(ann()));
        assert!(tokens.get(&demo(), &t, at(600)).is_none());
        assert!(tokens.get(&demo(), "unknown", at(1)).is_none());
        tokens.forget(&t);
        assert!(tokens.get(&demo(), &t, at(1)).is_none());
    }

    #[test]
    fn a_token_works_only_at_its_tenant() {
        let tokens = LoginTokens::default();
        let t = tokens.issue(&demo(), &ann(), at(0));
        assert!(
            tokens
                .get(&TenantId::new("other").unwrap(), &t, at(1))
                .is_none()
        );
        assert!(tokens.get(&demo(), &t, at(1)).is_some());
    }

    #[test]
    fn memory_is_bounded() {
        let tokens = LoginTokens::default();
        for _ in 0..LoginTokens::MAX + 5 {
            tokens.issue(&demo(), &ann(), at(0));
        }
        assert_eq!(tokens.len(), LoginTokens::MAX);
        tokens.issue(&demo(), &ann(), at(601));
        assert_eq!(tokens.len(), 1);
    }
}
