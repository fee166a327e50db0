//! A thread-safe in-memory [`Store`](super::Store) over `std::sync::Mutex`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{
    ActivationStore, Applied, Binding, BindingStore, Cancellation, CertificateStore,
    ChallengeRecord, ChallengeStore, Claim, IssuedCertificate, PushState, PushStore, QueueRows,
    QueueStore, StepFailed, StepStore, StoreError, UserStore, Versioned, Write,
};
use crate::activation::{
    Activation, ActivationId, CertFingerprint, ChallengeDigest, CommandResult, CommandUuid,
    Connection, QueueKey, QueuedCommand, TenantId, UserAccount,
};

mod queues;
use queues::{
    Queue, QueueLog, QueueUndo, claim_delivery, clear, defer, enqueue, finish, mark, prune, revert,
    set_connection,
};

#[derive(Default)]
struct Certificates {
    by_serial: HashMap<Vec<u8>, IssuedCertificate>,
    by_fingerprint: HashMap<CertFingerprint, Vec<u8>>,
}

type UserKey = (TenantId, String);
type Users = HashMap<UserKey, (UserAccount, BTreeSet<String>)>;
/// Each activation behind an `Arc`: a load for a step
/// ([`ActivationStore::activation_shared`]) shares it instead of copying it.
type Activations = HashMap<(TenantId, ActivationId), StoredActivation>;
type StoredActivation = Versioned<Arc<Activation>>;
type Devices = HashMap<(TenantId, String), ActivationId>;
type Challenges = HashMap<(TenantId, ChallengeDigest), ChallengeRecord>;
type Bindings = HashMap<CertFingerprint, Binding>;
type Queues = HashMap<QueueKey, Queue>;

/// An in-memory store: every table behind its own mutex, every atomic
/// operation done under one lock. For tests, demos and single-process servers.
#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<Users>,
    activations: Mutex<Activations>,
    devices: Mutex<Devices>,
    challenges: Mutex<Challenges>,
    bindings: Mutex<Bindings>,
    queues: Mutex<Queues>,
    certificates: Mutex<Certificates>,
    push: Mutex<HashMap<QueueKey, PushState>>,
    ddm: Mutex<HashMap<(QueueKey, super::DdmSlot), String>>,
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

    /// How many command records and results the store holds ([`QueueRows`]).
    pub fn queue_rows(&self) -> Result<QueueRows, StoreError> {
        let queues = lock(&self.queues)?;
        let mut rows = QueueRows::default();
        for q in queues.values() {
            let results = q.results.len();
            rows.commands += q.seen.len().saturating_sub(results) as u64;
            rows.results += results as u64;
        }
        Ok(rows)
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
            let mut claims: Vec<_> = v.claims.iter().collect();
            claims.sort();
            out.push(format!(
                "queue {k:?} {:?} {:?} {:?} {seen:?} {claims:?}",
                v.connection, v.pending, v.results
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
    m.lock().map_err(|_| StoreError::permanent("lock poisoned"))
}

// The write operations, each over the tables it touches: the single
// operations below run one under its table's lock, `StepStore::apply` runs
// a step's under all locks at once.

fn claim(
    users: &mut Users,
    tenant: &TenantId,
    username: &str,
    device_id: &str,
    max: Option<u32>,
) -> Result<bool, StoreError> {
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

/// Whether the device was in the user's set.
fn release(users: &mut Users, tenant: &TenantId, username: &str, device_id: &str) -> bool {
    users
        .get_mut(&(tenant.clone(), username.to_owned()))
        .is_some_and(|(_, devices)| devices.remove(device_id))
}

/// Keep `activation` itself (a step's [`Write`] lends its `Arc`: no copy).
fn insert_activation(map: &mut Activations, activation: Arc<Activation>) -> Result<(), StoreError> {
    let key = (activation.tenant.clone(), activation.id.clone());
    if map.contains_key(&key) {
        return Err(StoreError::AlreadyExists);
    }
    map.insert(
        key,
        Versioned {
            value: activation,
            version: 1,
        },
    );
    Ok(())
}

/// Replace the stored activation if it is at version `expected`; returns its
/// key and the record it replaced (a step's undo keeps it, moved, not copied).
fn update_activation(
    map: &mut Activations,
    activation: Arc<Activation>,
    expected: u64,
) -> Result<((TenantId, ActivationId), StoredActivation), StoreError> {
    let key = (activation.tenant.clone(), activation.id.clone());
    let entry = map.get_mut(&key).ok_or(StoreError::NotFound)?;
    if entry.version != expected {
        return Err(StoreError::VersionConflict {
            expected,
            found: entry.version,
        });
    }
    let next = Versioned {
        value: activation,
        version: expected + 1,
    };
    Ok((key, std::mem::replace(entry, next)))
}

fn insert_challenge(map: &mut Challenges, record: &ChallengeRecord) -> Result<(), StoreError> {
    let key = (record.tenant.clone(), record.grant.digest);
    if map.contains_key(&key) {
        return Err(StoreError::AlreadyExists);
    }
    map.insert(key, record.clone());
    Ok(())
}

fn consume(
    map: &mut Challenges,
    tenant: &TenantId,
    digest: &ChallengeDigest,
    now: SystemTime,
) -> Result<ChallengeRecord, StoreError> {
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

fn bind(map: &mut Bindings, binding: &Binding) -> Result<(), StoreError> {
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

fn retire(
    map: &mut Bindings,
    fingerprint: &CertFingerprint,
    tenant: &TenantId,
) -> Result<(), StoreError> {
    match map.get_mut(fingerprint) {
        Some(b) if b.tenant == *tenant => {
            b.retired = true;
            Ok(())
        }
        _ => Err(StoreError::NotFound),
    }
}

fn record(certs: &mut Certificates, certificate: &IssuedCertificate) -> Result<(), StoreError> {
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
        claim(&mut *lock(&self.users)?, tenant, username, device_id, max)
    }

    fn release_device(
        &self,
        tenant: &TenantId,
        username: &str,
        device_id: &str,
    ) -> Result<(), StoreError> {
        release(&mut *lock(&self.users)?, tenant, username, device_id);
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
        insert_activation(&mut *lock(&self.activations)?, Arc::new(activation.clone()))
    }

    fn activation(
        &self,
        tenant: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<Activation>>, StoreError> {
        Ok(lock(&self.activations)?
            .get(&(tenant.clone(), id.clone()))
            .map(|v| Versioned {
                value: Activation::clone(&v.value),
                version: v.version,
            }))
    }

    fn activation_shared(
        &self,
        tenant: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<Arc<Activation>>>, StoreError> {
        Ok(lock(&self.activations)?
            .get(&(tenant.clone(), id.clone()))
            .cloned())
    }

    fn update_activation(&self, activation: &Activation, expected: u64) -> Result<u64, StoreError> {
        update_activation(
            &mut *lock(&self.activations)?,
            Arc::new(activation.clone()),
            expected,
        )
        .map(|(_, replaced)| replaced.version + 1)
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
        insert_challenge(&mut *lock(&self.challenges)?, record)
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
        consume(&mut *lock(&self.challenges)?, tenant, digest, now)
    }
}

impl BindingStore for MemoryStore {
    fn bind_identity(&self, binding: &Binding) -> Result<(), StoreError> {
        bind(&mut *lock(&self.bindings)?, binding)
    }

    fn identity(&self, fingerprint: &CertFingerprint) -> Result<Option<Binding>, StoreError> {
        Ok(lock(&self.bindings)?.get(fingerprint).cloned())
    }

    fn retire_identity(
        &self,
        fingerprint: &CertFingerprint,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        retire(&mut *lock(&self.bindings)?, fingerprint, tenant)
    }
}

impl QueueStore for MemoryStore {
    fn enqueue(&self, key: &QueueKey, command: &QueuedCommand) -> Result<(), StoreError> {
        enqueue(&mut *lock(&self.queues)?, key, command, &mut QueueLog(None))
    }

    fn pending(&self, key: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError> {
        Ok(lock(&self.queues)?
            .get(key)
            .map(|q| q.pending.clone())
            .unwrap_or_default())
    }

    fn pending_head(&self, key: &QueueKey, limit: usize) -> Result<Vec<QueuedCommand>, StoreError> {
        Ok(lock(&self.queues)?
            .get(key)
            .map(|q| q.pending.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    fn pending_count(&self, key: &QueueKey) -> Result<usize, StoreError> {
        Ok(lock(&self.queues)?.get(key).map_or(0, |q| q.pending.len()))
    }

    fn queued_command(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
    ) -> Result<Option<QueuedCommand>, StoreError> {
        Ok(lock(&self.queues)?
            .get(key)
            .and_then(|q| q.pending.iter().find(|c| c.uuid == *uuid).cloned()))
    }

    fn defer_command(&self, key: &QueueKey, uuid: &CommandUuid) -> Result<u32, StoreError> {
        defer(&mut *lock(&self.queues)?, key, uuid, &mut QueueLog(None))
    }

    fn finish_command(&self, key: &QueueKey, result: &CommandResult) -> Result<(), StoreError> {
        finish(&mut *lock(&self.queues)?, key, result, &mut QueueLog(None))
    }

    fn mark_delivered(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        mark(
            &mut *lock(&self.queues)?,
            key,
            uuid,
            at,
            &mut QueueLog(None),
        )
    }

    fn claim_delivery(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: SystemTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        Ok(claim_delivery(
            &mut *lock(&self.queues)?,
            key,
            uuid,
            at,
            lease,
            &mut QueueLog(None),
        ))
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
        Ok(clear(&mut *lock(&self.queues)?, key, &mut QueueLog(None)))
    }

    fn connection(&self, key: &QueueKey) -> Result<Connection, StoreError> {
        Ok(lock(&self.queues)?
            .get(key)
            .map(|q| q.connection.clone())
            .unwrap_or_default())
    }

    fn set_connection(&self, key: &QueueKey, connection: &Connection) -> Result<(), StoreError> {
        set_connection(
            &mut *lock(&self.queues)?,
            key,
            connection,
            &mut QueueLog(None),
        );
        Ok(())
    }

    fn results(&self, key: &QueueKey) -> Result<Vec<CommandResult>, StoreError> {
        Ok(lock(&self.queues)?
            .get(key)
            .map(|q| q.results.clone())
            .unwrap_or_default())
    }

    fn prune_results(&self, key: &QueueKey, keep: usize) -> Result<(), StoreError> {
        prune(&mut *lock(&self.queues)?, key, keep, &mut QueueLog(None));
        Ok(())
    }
}

impl CertificateStore for MemoryStore {
    fn record_certificate(&self, certificate: &IssuedCertificate) -> Result<(), StoreError> {
        record(&mut *lock(&self.certificates)?, certificate)
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

/// The prior content of one entry a step's write touched.
enum Undo {
    /// The step added this device to the user's set: remove it.
    Claimed(UserKey, String),
    /// The step removed this device from the user's set: put it back.
    Released(UserKey, String),
    Activation((TenantId, ActivationId), Option<StoredActivation>),
    Device((TenantId, String), Option<ActivationId>),
    Challenge((TenantId, ChallengeDigest), Option<ChallengeRecord>),
    Binding(CertFingerprint, Option<Binding>),
    /// The step created this queue: remove it.
    QueueCreated(QueueKey),
    Queue(QueueKey, QueueUndo),
    Serial(Vec<u8>, Option<IssuedCertificate>),
    Fingerprint(CertFingerprint, Option<Vec<u8>>),
}

fn saved<K: Clone + Eq + std::hash::Hash, V: Clone>(
    map: &HashMap<K, V>,
    key: &K,
) -> (K, Option<V>) {
    (key.clone(), map.get(key).cloned())
}

fn restore<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, (key, value): (K, Option<V>)) {
    match value {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    };
}

/// Every table a step writes, locked in one fixed order.
struct Locked<'a> {
    users: MutexGuard<'a, Users>,
    activations: MutexGuard<'a, Activations>,
    devices: MutexGuard<'a, Devices>,
    challenges: MutexGuard<'a, Challenges>,
    bindings: MutexGuard<'a, Bindings>,
    queues: MutexGuard<'a, Queues>,
    certificates: MutexGuard<'a, Certificates>,
}

impl Locked<'_> {
    /// Save what `write` will touch, then apply it.
    fn apply(&mut self, write: &Write, undo: &mut Vec<Undo>) -> Result<Applied, StoreError> {
        let user = |t: &TenantId, u: &str| (t.clone(), u.to_owned());
        Ok(match write {
            Write::InsertActivation(a) => {
                let (k, v) = saved(&self.activations, &(a.tenant.clone(), a.id.clone()));
                undo.push(Undo::Activation(k, v));
                insert_activation(&mut self.activations, Arc::clone(a))?;
                Applied::Done
            }
            Write::UpdateActivation {
                activation,
                expected,
            } => {
                let (key, replaced) =
                    update_activation(&mut self.activations, Arc::clone(activation), *expected)?;
                undo.push(Undo::Activation(key, Some(replaced)));
                Applied::Version(expected + 1)
            }
            Write::SetDeviceActivation {
                tenant,
                device_id,
                activation,
            } => {
                let (k, v) = saved(&self.devices, &(tenant.clone(), device_id.clone()));
                undo.push(Undo::Device(k.clone(), v));
                Applied::Previous(self.devices.insert(k, activation.clone()))
            }
            Write::InsertChallenge(r) => {
                let (k, v) = saved(&self.challenges, &(r.tenant.clone(), r.grant.digest));
                undo.push(Undo::Challenge(k, v));
                insert_challenge(&mut self.challenges, r)?;
                Applied::Done
            }
            Write::ConsumeChallenge {
                tenant,
                digest,
                now,
            } => {
                let (k, v) = saved(&self.challenges, &(tenant.clone(), *digest));
                undo.push(Undo::Challenge(k, v));
                Applied::Consumed(consume(&mut self.challenges, tenant, digest, *now)?)
            }
            Write::ClaimDevice {
                tenant,
                username,
                device_id,
                max,
            } => {
                // The undo names the one device added, not a copy of the
                // user's whole set (which grows with the user's devices).
                let added = claim(&mut self.users, tenant, username, device_id, *max)?;
                if added {
                    undo.push(Undo::Claimed(user(tenant, username), device_id.clone()));
                }
                Applied::Claimed(added)
            }
            Write::ReleaseDevice {
                tenant,
                username,
                device_id,
            } => {
                if release(&mut self.users, tenant, username, device_id) {
                    undo.push(Undo::Released(user(tenant, username), device_id.clone()));
                }
                Applied::Done
            }
            Write::RecordCertificate(c) => {
                let (k, v) = saved(&self.certificates.by_serial, &c.identity.serial);
                undo.push(Undo::Serial(k, v));
                let (k, v) = saved(&self.certificates.by_fingerprint, &c.identity.fingerprint);
                undo.push(Undo::Fingerprint(k, v));
                record(&mut self.certificates, c)?;
                Applied::Done
            }
            Write::BindIdentity(b) => {
                let (k, v) = saved(&self.bindings, &b.fingerprint);
                undo.push(Undo::Binding(k, v));
                bind(&mut self.bindings, b)?;
                Applied::Done
            }
            Write::RetireIdentity {
                fingerprint,
                tenant,
            } => {
                let (k, v) = saved(&self.bindings, fingerprint);
                undo.push(Undo::Binding(k, v));
                Applied::Retired(retire(&mut self.bindings, fingerprint, tenant).is_ok())
            }
            Write::Enqueue(key, c) => {
                enqueue(&mut self.queues, key, c, &mut QueueLog(Some(undo)))?;
                Applied::Done
            }
            Write::FinishCommand(key, r) => {
                finish(&mut self.queues, key, r, &mut QueueLog(Some(undo)))?;
                Applied::Done
            }
            Write::PruneResults(key, keep) => {
                prune(&mut self.queues, key, *keep, &mut QueueLog(Some(undo)));
                Applied::Done
            }
            Write::DeferCommand(key, uuid) => Applied::Deferred(defer(
                &mut self.queues,
                key,
                uuid,
                &mut QueueLog(Some(undo)),
            )?),
            Write::MarkDelivered(key, uuid, at) => Applied::Delivered(
                mark(&mut self.queues, key, uuid, *at, &mut QueueLog(Some(undo))).is_ok(),
            ),
            Write::ClaimDelivery {
                key,
                uuid,
                at,
                lease,
            } => Applied::Claim(claim_delivery(
                &mut self.queues,
                key,
                uuid,
                *at,
                *lease,
                &mut QueueLog(Some(undo)),
            )),
            Write::ClearQueue(key) => {
                Applied::Cleared(clear(&mut self.queues, key, &mut QueueLog(Some(undo))))
            }
            Write::SetConnection(key, connection) => {
                set_connection(&mut self.queues, key, connection, &mut QueueLog(Some(undo)));
                Applied::Done
            }
        })
    }

    /// Put back what the step changed, newest first.
    fn undo(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Claimed(k, device) => {
                    if let Some((_, devices)) = self.users.get_mut(&k) {
                        devices.remove(&device);
                    }
                }
                Undo::Released(k, device) => {
                    if let Some((_, devices)) = self.users.get_mut(&k) {
                        devices.insert(device);
                    }
                }
                Undo::Activation(k, v) => restore(&mut self.activations, (k, v)),
                Undo::Device(k, v) => restore(&mut self.devices, (k, v)),
                Undo::Challenge(k, v) => restore(&mut self.challenges, (k, v)),
                Undo::Binding(k, v) => restore(&mut self.bindings, (k, v)),
                Undo::QueueCreated(k) => drop(self.queues.remove(&k)),
                Undo::Queue(k, u) => revert(&mut self.queues, &k, u),
                Undo::Serial(k, v) => restore(&mut self.certificates.by_serial, (k, v)),
                Undo::Fingerprint(k, v) => restore(&mut self.certificates.by_fingerprint, (k, v)),
            }
        }
    }
}

impl StepStore for MemoryStore {
    fn apply(&self, writes: &[Write]) -> Result<Vec<Applied>, StepFailed> {
        let failed = |error| StepFailed {
            index: writes.len(),
            error,
        };
        let mut tables = Locked {
            users: lock(&self.users).map_err(failed)?,
            activations: lock(&self.activations).map_err(failed)?,
            devices: lock(&self.devices).map_err(failed)?,
            challenges: lock(&self.challenges).map_err(failed)?,
            bindings: lock(&self.bindings).map_err(failed)?,
            queues: lock(&self.queues).map_err(failed)?,
            certificates: lock(&self.certificates).map_err(failed)?,
        };
        let mut undo = Vec::new();
        let mut applied = Vec::with_capacity(writes.len());
        for (index, write) in writes.iter().enumerate() {
            match tables.apply(write, &mut undo) {
                Ok(a) => applied.push(a),
                Err(error) => {
                    tables.undo(undo);
                    return Err(StepFailed { index, error });
                }
            }
        }
        Ok(applied)
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

impl super::DeclarationStore for MemoryStore {
    fn ddm_document(
        &self,
        key: &QueueKey,
        slot: super::DdmSlot,
    ) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.ddm)?.get(&(key.clone(), slot)).cloned())
    }

    fn put_ddm_document(
        &self,
        key: &QueueKey,
        slot: super::DdmSlot,
        document: &str,
    ) -> Result<(), StoreError> {
        lock(&self.ddm)?.insert((key.clone(), slot), document.to_owned());
        Ok(())
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

    /// Panic in a thread holding the bindings lock.
    fn poison_bindings(store: &MemoryStore) {
        let poisoner = std::thread::scope(|s| {
            s.spawn(|| {
                let _held = store.bindings.lock().unwrap();
                panic!("poison the bindings table");
            })
            .join()
        });
        assert!(poisoner.is_err());
    }

    #[test]
    fn snapshot_reports_a_poisoned_table() {
        let store = MemoryStore::new();
        let before = store.snapshot();
        poison_bindings(&store);
        let after = store.snapshot();
        assert_ne!(after, before);
        assert_eq!(after, ["binding lock poisoned"]);
    }

    #[test]
    fn a_poisoned_table_is_a_permanent_failure() {
        use crate::store::BindingStore;
        let store = MemoryStore::new();
        poison_bindings(&store);
        let err = store.identity(&CertFingerprint([1; 32])).unwrap_err();
        assert!(!err.is_transient(), "{err:?}");
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    kind: crate::store::FailureKind::Permanent,
                    ..
                }
            ),
            "{err:?}"
        );
        let source = std::error::Error::source(&err).expect("a source");
        assert_eq!(source.to_string(), "lock poisoned");
    }

    /// A step of random queue writes that fails at its end (or on its own)
    /// leaves every queue exactly as it was, claims and forgotten uuids
    /// included; one that succeeds leaves what the same writes leave one by
    /// one outside a step (the queue writes log their inverses only in a
    /// step).
    #[test]
    fn a_failed_step_takes_back_every_queue_write() {
        use crate::activation::{Channel, CommandOutcome};
        use crate::store::QueueStore;
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let tenant = TenantId::new("t").unwrap();
        let keys: Vec<QueueKey> = [None, Some("u")]
            .iter()
            .map(|user| QueueKey {
                tenant: tenant.clone(),
                channel: Channel {
                    device_id: "dev".into(),
                    user_id: user.map(str::to_owned),
                },
            })
            .collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let uuid = |n: usize| CommandUuid::new(format!("cmd-{n}")).unwrap();
        let at = |s: usize| t0 + Duration::from_secs(s as u64);
        let write = |next: &mut dyn FnMut(usize) -> usize| {
            let key = keys[next(keys.len())].clone();
            let n = next(6);
            match next(9) {
                0 | 1 => Write::Enqueue(
                    key,
                    QueuedCommand {
                        uuid: uuid(n),
                        request_type: "DeviceInformation".into(),
                        body: vec![n as u8; 3].into(),
                        activation: None,
                        not_now_count: 0,
                        queued_at: t0,
                        delivered_at: None,
                    },
                ),
                2 => Write::FinishCommand(
                    key,
                    CommandResult {
                        uuid: uuid(n),
                        request_type: "DeviceInformation".into(),
                        outcome: CommandOutcome::Acknowledged,
                        body: b"ack".to_vec(),
                        at: t0,
                    },
                ),
                3 => Write::PruneResults(key, next(3)),
                4 => Write::DeferCommand(key, uuid(n)),
                5 => Write::MarkDelivered(key, uuid(n), at(next(100))),
                6 => Write::ClaimDelivery {
                    key,
                    uuid: uuid(n),
                    at: at(next(100)),
                    lease: Duration::from_secs(30),
                },
                7 => Write::ClearQueue(key),
                _ => Write::SetConnection(
                    key,
                    Connection {
                        skip: vec![uuid(n)],
                        last_sent: Some(uuid(next(6))),
                    },
                ),
            }
        };
        // The same writes one by one, outside a step.
        let single = |store: &MemoryStore, w: &Write| match w {
            Write::Enqueue(k, c) => drop(store.enqueue(k, c)),
            Write::FinishCommand(k, r) => drop(store.finish_command(k, r)),
            Write::PruneResults(k, keep) => store.prune_results(k, *keep).unwrap(),
            Write::DeferCommand(k, u) => drop(store.defer_command(k, u)),
            Write::MarkDelivered(k, u, at) => drop(store.mark_delivered(k, u, *at)),
            Write::ClaimDelivery {
                key,
                uuid,
                at,
                lease,
            } => drop(store.claim_delivery(key, uuid, *at, *lease).unwrap()),
            Write::ClearQueue(k) => drop(store.clear_queue(k).unwrap()),
            Write::SetConnection(k, c) => store.set_connection(k, c).unwrap(),
            other => panic!("not a queue write: {other:?}"),
        };
        let failing = Write::UpdateActivation {
            activation: Arc::new(
                Activation::start(
                    ActivationId::new("absent").unwrap(),
                    &UserAccount {
                        tenant: tenant.clone(),
                        username: "alice".into(),
                        domain: "corp".into(),
                        policy: Default::default(),
                    },
                    t0,
                )
                .unwrap()
                .state,
            ),
            expected: 1,
        };
        let (store, reference) = (MemoryStore::new(), MemoryStore::new());
        let (mut failed, mut applied) = (0, 0);
        for round in 0..3_000 {
            let mut step: Vec<Write> = (0..1 + next(8)).map(|_| write(&mut next)).collect();
            let before = store.snapshot();
            if round % 2 == 0 {
                step.push(failing.clone());
            }
            match store.apply(&step) {
                Err(_) => {
                    failed += 1;
                    assert_eq!(store.snapshot(), before, "round {round}: {step:?}");
                }
                Ok(_) => {
                    applied += 1;
                    step.iter().for_each(|w| single(&reference, w));
                    assert_eq!(store.snapshot(), reference.snapshot(), "round {round}");
                }
            }
        }
        // Both paths ran often, and the queues were not left empty.
        assert!(
            failed > 1_000 && applied > 150,
            "{failed} failed, {applied} applied"
        );
        assert!(store.snapshot().iter().any(|l| l.contains("cmd-")));
    }
}
