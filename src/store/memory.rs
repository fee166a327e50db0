//! A thread-safe in-memory [`Store`](super::Store) over `std::sync::Mutex`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::{
    ActivationStore, Binding, BindingStore, Cancellation, CertificateStore, ChallengeRecord,
    ChallengeStore, IssuedCertificate, PushState, PushStore, QueueStore, StoreError, UserStore,
    Versioned,
};
use crate::activation::{
    Activation, ActivationId, CertFingerprint, ChallengeDigest, CommandResult, CommandUuid,
    QueueKey, QueuedCommand, TenantId, UserAccount,
};

#[derive(Default)]
struct Queue {
    pending: Vec<QueuedCommand>,
    results: Vec<CommandResult>,
    seen: HashSet<CommandUuid>,
}

#[derive(Default)]
struct Certificates {
    by_serial: HashMap<Vec<u8>, IssuedCertificate>,
    by_fingerprint: HashMap<CertFingerprint, Vec<u8>>,
}

type UserKey = (TenantId, String);

/// An in-memory store: every table behind its own mutex, every atomic
/// operation done under one lock. For tests, demos and single-process servers.
#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<UserKey, (UserAccount, BTreeSet<String>)>>,
    activations: Mutex<HashMap<(TenantId, ActivationId), Versioned<Activation>>>,
    devices: Mutex<HashMap<(TenantId, String), ActivationId>>,
    challenges: Mutex<HashMap<(TenantId, ChallengeDigest), ChallengeRecord>>,
    bindings: Mutex<HashMap<CertFingerprint, Binding>>,
    queues: Mutex<HashMap<QueueKey, Queue>>,
    certificates: Mutex<Certificates>,
    push: Mutex<HashMap<QueueKey, PushState>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A canonical dump of every record (sorted), for tests that assert a
    /// refused request changed nothing. It covers every table and index; a
    /// table whose lock was poisoned (a panic while it was held) is still
    /// dumped, after a `poisoned` line, so a refusal that panicked never reads
    /// as "unchanged".
    pub fn snapshot(&self) -> Vec<String> {
        fn open<'a, T>(name: &str, m: &'a Mutex<T>, out: &mut Vec<String>) -> MutexGuard<'a, T> {
            m.lock().unwrap_or_else(|poisoned| {
                out.push(format!("{name} lock poisoned"));
                poisoned.into_inner()
            })
        }
        fn dump<K: std::fmt::Debug, V: std::fmt::Debug>(
            name: &str,
            m: &Mutex<HashMap<K, V>>,
            out: &mut Vec<String>,
        ) {
            let m = open(name, m, out);
            out.extend(m.iter().map(|(k, v)| format!("{name} {k:?} {v:?}")));
        }
        let mut out = Vec::new();
        dump("user", &self.users, &mut out);
        dump("activation", &self.activations, &mut out);
        dump("device", &self.devices, &mut out);
        dump("challenge", &self.challenges, &mut out);
        dump("binding", &self.bindings, &mut out);
        dump("push", &self.push, &mut out);
        let queues = open("queue", &self.queues, &mut out);
        for (k, v) in queues.iter() {
            let mut seen: Vec<_> = v.seen.iter().collect();
            seen.sort();
            out.push(format!(
                "queue {k:?} {:?} {:?} {seen:?}",
                v.pending, v.results
            ));
        }
        drop(queues);
        let certs = open("cert", &self.certificates, &mut out);
        out.extend(
            certs
                .by_serial
                .iter()
                .map(|(k, v)| format!("cert {k:?} {v:?}")),
        );
        out.extend(
            certs
                .by_fingerprint
                .iter()
                .map(|(k, v)| format!("cert-fingerprint {k:?} {v:?}")),
        );
        drop(certs);
        out.sort();
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Backend("lock poisoned".into()))
}

impl UserStore for MemoryStore {
    fn put_user(&self, user: &UserAccount) -> Result<(), StoreError> {
        let mut users = lock(&self.users)?;
        let key = (user.tenant.clone(), user.username.clone());
        match users.get_mut(&key) {
            Some(entry) => entry.0 = user.clone(),
            None => {
                users.insert(key, (user.clone(), BTreeSet::new()));
            }
        }
        Ok(())
    }

    fn user(&self, tenant: &TenantId, username: &str) -> Result<Option<UserAccount>, StoreError> {
        Ok(lock(&self.users)?
            .get(&(tenant.clone(), username.to_owned()))
            .map(|(u, _)| u.clone()))
    }

    fn claim_device(
        &self,
        tenant: &TenantId,
        username: &str,
        device_id: &str,
        max: Option<u32>,
    ) -> Result<bool, StoreError> {
        let mut users = lock(&self.users)?;
        let (_, devices) = users
            .get_mut(&(tenant.clone(), username.to_owned()))
            .ok_or(StoreError::NotFound)?;
        if devices.contains(device_id) {
            return Ok(false);
        }
        if max.is_some_and(|max| devices.len() >= usize::try_from(max).unwrap_or(usize::MAX)) {
            return Err(StoreError::LimitReached);
        }
        devices.insert(device_id.to_owned());
        Ok(true)
    }

    fn release_device(
        &self,
        tenant: &TenantId,
        username: &str,
        device_id: &str,
    ) -> Result<(), StoreError> {
        if let Some((_, devices)) =
            lock(&self.users)?.get_mut(&(tenant.clone(), username.to_owned()))
        {
            devices.remove(device_id);
        }
        Ok(())
    }

    fn devices(&self, tenant: &TenantId, username: &str) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.users)?
            .get(&(tenant.clone(), username.to_owned()))
            .map(|(_, d)| d.iter().cloned().collect())
            .unwrap_or_default())
    }
}

impl ActivationStore for MemoryStore {
    fn insert_activation(&self, activation: &Activation) -> Result<(), StoreError> {
        let mut map = lock(&self.activations)?;
        let key = (activation.tenant.clone(), activation.id.clone());
        if map.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        map.insert(
            key,
            Versioned {
                value: activation.clone(),
                version: 1,
            },
        );
        Ok(())
    }

    fn activation(
        &self,
        tenant: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<Activation>>, StoreError> {
        Ok(lock(&self.activations)?
            .get(&(tenant.clone(), id.clone()))
            .cloned())
    }

    fn update_activation(&self, activation: &Activation, expected: u64) -> Result<u64, StoreError> {
        let mut map = lock(&self.activations)?;
        let entry = map
            .get_mut(&(activation.tenant.clone(), activation.id.clone()))
            .ok_or(StoreError::NotFound)?;
        if entry.version != expected {
            return Err(StoreError::VersionConflict {
                expected,
                found: entry.version,
            });
        }
        entry.value = activation.clone();
        entry.version += 1;
        Ok(entry.version)
    }

    fn device_activation(
        &self,
        tenant: &TenantId,
        device_id: &str,
    ) -> Result<Option<ActivationId>, StoreError> {
        Ok(lock(&self.devices)?
            .get(&(tenant.clone(), device_id.to_owned()))
            .cloned())
    }

    fn set_device_activation(
        &self,
        tenant: &TenantId,
        device_id: &str,
        id: &ActivationId,
    ) -> Result<Option<ActivationId>, StoreError> {
        Ok(lock(&self.devices)?.insert((tenant.clone(), device_id.to_owned()), id.clone()))
    }

    fn device_activations(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(String, ActivationId)>, StoreError> {
        let mut out: Vec<_> = lock(&self.devices)?
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, d), a)| (d.clone(), a.clone()))
            .collect();
        out.sort();
        Ok(out)
    }
}

impl ChallengeStore for MemoryStore {
    fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        let mut map = lock(&self.challenges)?;
        let key = (record.tenant.clone(), record.grant.digest);
        if map.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        map.insert(key, record.clone());
        Ok(())
    }

    fn challenge(
        &self,
        tenant: &TenantId,
        digest: &ChallengeDigest,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        Ok(lock(&self.challenges)?
            .get(&(tenant.clone(), *digest))
            .cloned())
    }

    fn consume_challenge(
        &self,
        tenant: &TenantId,
        digest: &ChallengeDigest,
        now: SystemTime,
    ) -> Result<ChallengeRecord, StoreError> {
        let mut map = lock(&self.challenges)?;
        let record = map
            .get_mut(&(tenant.clone(), *digest))
            .ok_or(StoreError::NotFound)?;
        if record.consumed {
            return Err(StoreError::ChallengeConsumed);
        }
        if now >= record.grant.expires {
            return Err(StoreError::ChallengeExpired);
        }
        record.consumed = true;
        Ok(record.clone())
    }
}

impl BindingStore for MemoryStore {
    fn bind_identity(&self, binding: &Binding) -> Result<(), StoreError> {
        let mut map = lock(&self.bindings)?;
        match map.get(&binding.fingerprint) {
            Some(existing) if existing.retired => Err(StoreError::IdentityRetired),
            Some(existing)
                if existing.tenant == binding.tenant
                    && existing.device_id == binding.device_id
                    && existing.activation == binding.activation =>
            {
                Ok(())
            }
            Some(existing) => Err(StoreError::BindingConflict(Box::new(existing.clone()))),
            None => {
                let mut b = binding.clone();
                b.retired = false;
                map.insert(b.fingerprint, b);
                Ok(())
            }
        }
    }

    fn identity(&self, fingerprint: &CertFingerprint) -> Result<Option<Binding>, StoreError> {
        Ok(lock(&self.bindings)?.get(fingerprint).cloned())
    }

    fn retire_identity(
        &self,
        fingerprint: &CertFingerprint,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        match lock(&self.bindings)?.get_mut(fingerprint) {
            Some(b) if b.tenant == *tenant => {
                b.retired = true;
                Ok(())
            }
            _ => Err(StoreError::NotFound),
        }
    }
}

impl QueueStore for MemoryStore {
    fn enqueue(&self, key: &QueueKey, command: &QueuedCommand) -> Result<(), StoreError> {
        let mut queues = lock(&self.queues)?;
        let q = queues.entry(key.clone()).or_default();
        if !q.seen.insert(command.uuid.clone()) {
            return Err(StoreError::AlreadyExists);
        }
        q.pending.push(command.clone());
        Ok(())
    }

    fn pending(&self, key: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError> {
        Ok(lock(&self.queues)?
            .get(key)
            .map(|q| q.pending.clone())
            .unwrap_or_default())
    }

    fn defer_command(&self, key: &QueueKey, uuid: &CommandUuid) -> Result<u32, StoreError> {
        let mut queues = lock(&self.queues)?;
        let cmd = queues
            .get_mut(key)
            .and_then(|q| q.pending.iter_mut().find(|c| c.uuid == *uuid))
            .ok_or(StoreError::NotFound)?;
        cmd.not_now_count = cmd.not_now_count.saturating_add(1);
        Ok(cmd.not_now_count)
    }

    fn finish_command(&self, key: &QueueKey, result: &CommandResult) -> Result<(), StoreError> {
        let mut queues = lock(&self.queues)?;
        let q = queues.get_mut(key).ok_or(StoreError::NotFound)?;
        let pos = q
            .pending
            .iter()
            .position(|c| c.uuid == result.uuid)
            .ok_or(StoreError::NotFound)?;
        q.pending.remove(pos);
        q.results.push(result.clone());
        Ok(())
    }

    fn mark_delivered(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let mut queues = lock(&self.queues)?;
        let cmd = queues
            .get_mut(key)
            .and_then(|q| q.pending.iter_mut().find(|c| c.uuid == *uuid))
            .ok_or(StoreError::NotFound)?;
        cmd.delivered_at.get_or_insert(at);
        Ok(())
    }

    fn cancel_command(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
    ) -> Result<Cancellation, StoreError> {
        let mut queues = lock(&self.queues)?;
        let Some(q) = queues.get_mut(key) else {
            return Ok(Cancellation::Unknown);
        };
        Ok(match q.pending.iter().position(|c| c.uuid == *uuid) {
            Some(pos) if q.pending.get(pos).is_some_and(|c| c.delivered_at.is_some()) => {
                Cancellation::AlreadyDelivered
            }
            Some(pos) => Cancellation::Cancelled(q.pending.remove(pos)),
            None if q.seen.contains(uuid) => Cancellation::AlreadyFinished,
            None => Cancellation::Unknown,
        })
    }

    fn clear_queue(&self, key: &QueueKey) -> Result<Vec<CommandUuid>, StoreError> {
        Ok(lock(&self.queues)?
            .get_mut(key)
            .map(|q| q.pending.drain(..).map(|c| c.uuid).collect())
            .unwrap_or_default())
    }

    fn results(&self, key: &QueueKey) -> Result<Vec<CommandResult>, StoreError> {
        Ok(lock(&self.queues)?
            .get(key)
            .map(|q| q.results.clone())
            .unwrap_or_default())
    }

    fn prune_results(&self, key: &QueueKey, keep: usize) -> Result<(), StoreError> {
        if let Some(q) = lock(&self.queues)?.get_mut(key) {
            let excess = q.results.len().saturating_sub(keep);
            q.results.drain(..excess);
        }
        Ok(())
    }
}

impl CertificateStore for MemoryStore {
    fn record_certificate(&self, certificate: &IssuedCertificate) -> Result<(), StoreError> {
        let mut certs = lock(&self.certificates)?;
        let serial = certificate.identity.serial.clone();
        if certs.by_serial.contains_key(&serial) {
            return Err(StoreError::DuplicateSerial);
        }
        if certs
            .by_fingerprint
            .contains_key(&certificate.identity.fingerprint)
        {
            return Err(StoreError::AlreadyExists);
        }
        certs
            .by_fingerprint
            .insert(certificate.identity.fingerprint, serial.clone());
        certs.by_serial.insert(serial, certificate.clone());
        Ok(())
    }

    fn certificate_by_fingerprint(
        &self,
        fingerprint: &CertFingerprint,
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        let certs = lock(&self.certificates)?;
        Ok(certs
            .by_fingerprint
            .get(fingerprint)
            .and_then(|s| certs.by_serial.get(s))
            .cloned())
    }

    fn certificate_by_serial(
        &self,
        serial: &[u8],
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        Ok(lock(&self.certificates)?.by_serial.get(serial).cloned())
    }
}

impl MemoryStore {
    fn update_push(
        &self,
        key: &QueueKey,
        f: impl FnOnce(&mut PushState),
    ) -> Result<PushState, StoreError> {
        let mut map = lock(&self.push)?;
        let state = map.entry(key.clone()).or_default();
        f(state);
        Ok(state.clone())
    }
}

impl PushStore for MemoryStore {
    fn push_state(&self, key: &QueueKey) -> Result<Option<PushState>, StoreError> {
        Ok(lock(&self.push)?.get(key).cloned())
    }

    fn record_push(
        &self,
        key: &QueueKey,
        at: SystemTime,
        next_due: Option<SystemTime>,
    ) -> Result<PushState, StoreError> {
        self.update_push(key, |s| s.pushed(at, next_due))
    }

    fn record_push_response(
        &self,
        key: &QueueKey,
        status: u16,
        reason: Option<&str>,
        token_invalid: bool,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.update_push(key, |s| s.responded(status, reason, token_invalid, at))
            .map(drop)
    }

    fn record_answer(
        &self,
        key: &QueueKey,
        next_due: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.update_push(key, |s| s.answered(next_due)).map(drop)
    }

    fn record_token_update(&self, key: &QueueKey) -> Result<(), StoreError> {
        self.update_push(key, PushState::token_updated).map(drop)
    }

    fn due_pushes(&self, tenant: &TenantId, now: SystemTime) -> Result<Vec<QueueKey>, StoreError> {
        let mut due: Vec<_> = lock(&self.push)?
            .iter()
            .filter(|(k, s)| k.tenant == *tenant && s.due(now))
            .map(|(k, s)| (s.next_due, k.clone()))
            .collect();
        due.sort();
        Ok(due.into_iter().map(|(_, k)| k).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sees_the_fingerprint_index() {
        let store = MemoryStore::new();
        let before = store.snapshot();
        lock(&store.certificates)
            .unwrap()
            .by_fingerprint
            .insert(CertFingerprint([7; 32]), vec![1]);
        assert_ne!(store.snapshot(), before);
    }

    #[test]
    fn snapshot_reports_a_poisoned_table() {
        let store = MemoryStore::new();
        let before = store.snapshot();
        let poisoner = std::thread::scope(|s| {
            s.spawn(|| {
                let _held = store.bindings.lock().unwrap();
                panic!("poison the bindings table");
            })
            .join()
        });
        assert!(poisoner.is_err());
        let after = store.snapshot();
        assert_ne!(after, before);
        assert_eq!(after, ["binding lock poisoned"]);
    }
}
