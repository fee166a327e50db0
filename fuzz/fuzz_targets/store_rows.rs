//! SQL store rows on arbitrary bytes: the SQLite store reads an activation,
//! a queued command and a command result whose stored value is the input
//! (as if the database were damaged or written by another build); the
//! command's body is kept beside its record (schema 5) or, for inputs of
//! odd length, not (a command queued before).
//!
//! Properties:
//! - never a panic or runaway allocation, whatever the row holds;
//! - a row this build cannot read is a permanent error (never transient:
//!   a retry would read the same bytes), and the other reads of the same
//!   queue agree on it (`pending`, `pending_head`, `queued_command`).
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mdm_enroll::activation::{
    Activation, ActivationId, Channel, CommandOutcome, CommandResult, CommandUuid, Policy,
    QueueKey, QueuedCommand, TenantId, UserAccount,
};
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::store::{ActivationStore, QueueStore, StoreError};

fn permanent<T: std::fmt::Debug>(what: &str, r: &Result<T, StoreError>) {
    if let Err(e) = r {
        assert!(
            !e.is_transient(),
            "{what}: a damaged row is not transient: {e:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let store = SqliteStore::open_in_memory().expect("in-memory store");
    let tenant = TenantId::new("fuzz").expect("tenant");
    let user = UserAccount {
        tenant: tenant.clone(),
        username: "alice".into(),
        domain: "example.com".into(),
        policy: Policy::default(),
    };
    let id = ActivationId::new("act-1").expect("id");
    let activation: Activation = Activation::start(id.clone(), &user, now)
        .expect("start")
        .state;
    store.insert_activation(&activation).expect("insert");
    let key = QueueKey {
        tenant: tenant.clone(),
        channel: Channel::device("UDID-1"),
    };
    let uuid = CommandUuid::new("cmd-1").expect("uuid");
    for n in ["cmd-0", "cmd-1"] {
        let command = QueuedCommand {
            uuid: CommandUuid::new(n).expect("uuid"),
            request_type: "ProfileList".into(),
            // Over 2 KiB: kept beside the record, not in it.
            body: vec![b'x'; 4096].into(),
            activation: None,
            not_now_count: 0,
            queued_at: now,
            delivered_at: None,
        };
        store.enqueue(&key, &command).expect("enqueue");
    }
    let result = CommandResult {
        uuid: CommandUuid::new("cmd-0").expect("uuid"),
        request_type: "ProfileList".into(),
        outcome: CommandOutcome::Acknowledged,
        body: Vec::new(),
        at: now,
    };
    store.finish_command(&key, &result).expect("finish");
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    // Inputs of odd length stand for a command queued before schema 5,
    // whose record carried its body (no row in `command_bodies`).
    let bodies = if data.len() % 2 == 1 {
        "DELETE FROM command_bodies;"
    } else {
        ""
    };
    store
        .execute_batch(&format!(
            "UPDATE activations SET value = X'{hex}';
             UPDATE commands SET value = X'{hex}';
             UPDATE results SET value = X'{hex}';
             {bodies}"
        ))
        .expect("damage the rows");

    let read = store.activation(&tenant, &id);
    permanent("activation", &read);
    let all = store.pending(&key);
    permanent("pending", &all);
    let head = store.pending_head(&key, 1);
    permanent("pending_head", &head);
    let one = store.queued_command(&key, &uuid);
    permanent("queued_command", &one);
    assert_eq!(all.is_ok(), head.is_ok(), "pending and its head disagree");
    assert_eq!(all.is_ok(), one.is_ok(), "pending and the lookup disagree");
    if let (Ok(all), Ok(head), Ok(one)) = (&all, &head, &one) {
        assert_eq!(all.get(..1), Some(&head[..]));
        assert_eq!(one.as_ref(), all.first());
    }
    permanent("results", &store.results(&key));
});
