//! The store behind `--store`: SQLite (one process) or PostgreSQL (feature
//! `postgres`: any number of replicas over one database).

use std::time::SystemTime;

use mdm_enroll::activation::{
    Activation, ActivationId, CertFingerprint, ChallengeDigest, CommandResult, CommandUuid,
    Connection, QueueKey, QueuedCommand, Step, TenantId, UserAccount,
};
#[cfg(feature = "postgres")]
use mdm_enroll::store::postgres::PostgresStore;
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::store::{
    ActivationStore, Applied, Binding, BindingStore, Cancellation, CertificateStore,
    ChallengeRecord, ChallengeStore, Claim, IssuedCertificate, PushState, PushStore, QueueStore,
    StepFailed, StepStore, StoreError, UserStore, Versioned, Write,
};

/// Connections each server process opens to PostgreSQL.
#[cfg(feature = "postgres")]
const POSTGRES_CONNECTIONS: usize = 8;

/// One of the crate's SQL stores.
#[derive(Debug)]
pub enum ServerStore {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

impl ServerStore {
    /// The store `--store` names (PostgreSQL migrations are applied here,
    /// once even when replicas start together).
    pub fn open(config: &crate::cli::Config) -> Result<Self, StoreError> {
        #[cfg(feature = "postgres")]
        if let Some(url) = &config.postgres {
            return tokio::task::block_in_place(|| {
                PostgresStore::connect(url, POSTGRES_CONNECTIONS).map(Self::Postgres)
            });
        }
        SqliteStore::open(config.store_path()).map(Self::Sqlite)
    }
}

/// `$body` with `$s` bound to whichever store this is. The PostgreSQL
/// client blocks on the network (and runs its own runtime): on a runtime
/// worker its calls go through `block_in_place`.
macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            ServerStore::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            ServerStore::Postgres($s) => tokio::task::block_in_place(|| $body),
        }
    };
}

macro_rules! delegate {
    ($($tr:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* })*) => {
        $(impl $tr for ServerStore {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret { each!(self, s => s.$name($($arg),*)) })*
        })*
    };
}

delegate! {
    UserStore {
        fn put_user(&self, u: &UserAccount) -> Result<(), StoreError>;
        fn user(&self, t: &TenantId, u: &str) -> Result<Option<UserAccount>, StoreError>;
        fn claim_device(&self, t: &TenantId, u: &str, d: &str, m: Option<u32>) -> Result<bool, StoreError>;
        fn release_device(&self, t: &TenantId, u: &str, d: &str) -> Result<(), StoreError>;
        fn devices(&self, t: &TenantId, u: &str) -> Result<Vec<String>, StoreError>;
    }
    ActivationStore {
        fn insert_activation(&self, a: &Activation) -> Result<(), StoreError>;
        fn activation(&self, t: &TenantId, i: &ActivationId) -> Result<Option<Versioned<Activation>>, StoreError>;
        fn update_activation(&self, a: &Activation, v: u64) -> Result<u64, StoreError>;
        fn device_activation(&self, t: &TenantId, d: &str) -> Result<Option<ActivationId>, StoreError>;
        fn set_device_activation(&self, t: &TenantId, d: &str, i: &ActivationId) -> Result<Option<ActivationId>, StoreError>;
        fn device_activations(&self, t: &TenantId) -> Result<Vec<(String, ActivationId)>, StoreError>;
    }
    ChallengeStore {
        fn insert_challenge(&self, r: &ChallengeRecord) -> Result<(), StoreError>;
        fn challenge(&self, t: &TenantId, d: &ChallengeDigest) -> Result<Option<ChallengeRecord>, StoreError>;
        fn consume_challenge(&self, t: &TenantId, d: &ChallengeDigest, n: SystemTime) -> Result<ChallengeRecord, StoreError>;
    }
    BindingStore {
        fn bind_identity(&self, b: &Binding) -> Result<(), StoreError>;
        fn identity(&self, f: &CertFingerprint) -> Result<Option<Binding>, StoreError>;
        fn retire_identity(&self, f: &CertFingerprint, t: &TenantId) -> Result<(), StoreError>;
    }
    QueueStore {
        fn enqueue(&self, k: &QueueKey, c: &QueuedCommand) -> Result<(), StoreError>;
        fn pending(&self, k: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError>;
        fn defer_command(&self, k: &QueueKey, u: &CommandUuid) -> Result<u32, StoreError>;
        fn finish_command(&self, k: &QueueKey, r: &CommandResult) -> Result<(), StoreError>;
        fn mark_delivered(&self, k: &QueueKey, u: &CommandUuid, a: SystemTime) -> Result<(), StoreError>;
        fn claim_delivery(&self, k: &QueueKey, u: &CommandUuid, a: SystemTime, l: std::time::Duration) -> Result<Claim, StoreError>;
        fn cancel_command(&self, k: &QueueKey, u: &CommandUuid) -> Result<Cancellation, StoreError>;
        fn clear_queue(&self, k: &QueueKey) -> Result<Vec<CommandUuid>, StoreError>;
        fn connection(&self, k: &QueueKey) -> Result<Connection, StoreError>;
        fn set_connection(&self, k: &QueueKey, c: &Connection) -> Result<(), StoreError>;
        fn results(&self, k: &QueueKey) -> Result<Vec<CommandResult>, StoreError>;
        fn prune_results(&self, k: &QueueKey, n: usize) -> Result<(), StoreError>;
    }
    CertificateStore {
        fn record_certificate(&self, c: &IssuedCertificate) -> Result<(), StoreError>;
        fn certificate_by_fingerprint(&self, f: &CertFingerprint) -> Result<Option<IssuedCertificate>, StoreError>;
        fn certificate_by_serial(&self, s: &[u8]) -> Result<Option<IssuedCertificate>, StoreError>;
    }
    PushStore {
        fn push_state(&self, k: &QueueKey) -> Result<Option<PushState>, StoreError>;
        fn record_push(&self, k: &QueueKey, a: SystemTime, n: Option<SystemTime>) -> Result<PushState, StoreError>;
        fn record_push_response(&self, k: &QueueKey, s: u16, r: Option<&str>, i: bool, a: SystemTime) -> Result<(), StoreError>;
        fn record_answer(&self, k: &QueueKey, n: Option<SystemTime>) -> Result<(), StoreError>;
        fn record_token_update(&self, k: &QueueKey) -> Result<(), StoreError>;
        fn due_pushes(&self, t: &TenantId, n: SystemTime) -> Result<Vec<QueueKey>, StoreError>;
    }
    StepStore {
        fn apply(&self, w: &[Write]) -> Result<Vec<Applied>, StepFailed>;
    }
}

impl mdm_enroll::store::DeclarationStore for ServerStore {
    fn ddm_document(
        &self,
        key: &QueueKey,
        slot: mdm_enroll::store::DdmSlot,
    ) -> Result<Option<String>, StoreError> {
        each!(self, s => s.ddm_document(key, slot))
    }

    fn put_ddm_document(
        &self,
        key: &QueueKey,
        slot: mdm_enroll::store::DdmSlot,
        document: &str,
    ) -> Result<(), StoreError> {
        each!(self, s => s.put_ddm_document(key, slot, document))
    }
}

impl ServerStore {
    /// Record that `activation` reached `step` at `at` (first time only).
    pub fn record_step(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        step: Step,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        each!(self, s => s.record_step(tenant, activation, step, at))
    }

    /// The steps `activation` reached, with when, in step order.
    pub fn steps(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
    ) -> Result<Vec<(Step, SystemTime)>, StoreError> {
        each!(self, s => s.steps(tenant, activation))
    }

    /// Every activation, newest first, at most `limit`.
    pub fn activations(&self, limit: usize) -> Result<Vec<Versioned<Activation>>, StoreError> {
        each!(self, s => s.activations(limit))
    }
}
