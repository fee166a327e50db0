//! The command API over the engine (day-2 operations after activation), on
//! the in-memory store and on the SQLite store: enqueue pushes and records
//! the push, the device's next connect fetches the command, its answer lands
//! in the results; cancel wins only before delivery; racing a device's
//! connect loses and duplicates nothing; an invalid token stops pushes until
//! the next TokenUpdate.
#![cfg(feature = "test-support")]

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::mdm::Command;
use mdm_enroll::service::{
    CommandError, Engine, EngineConfig, EventKind, RepushPolicy, ServiceError,
};
use mdm_enroll::store::{MemoryStore, PushError, Store};
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory, engine_with_alice};
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

struct Fx<S: Store> {
    engine: Engine<S, StaticDirectory, RecordingPush>,
    tenant: TenantId,
    device: EvidenceDevice,
    login: LoginAttempt,
    rng: Rng,
}

/// An engine over `store` with one Mac that completed all 13 steps at t0.
fn activated<S: Store>(store: S) -> Fx<S> {
    activated_with(store, EngineConfig::default())
}

fn activated_with<S: Store>(store: S, config: EngineConfig) -> Fx<S> {
    let tenant = TenantId::new("acme").unwrap();
    let (engine, login) = engine_with_alice(store, &tenant, config).unwrap();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let mut device = EvidenceDevice::random(&mut rng);
    let events = device
        .activate(&engine, &tenant, &login, t0(), &mut rng)
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::Reached(Step::ConfigurationApplied))
    );
    Fx {
        engine,
        tenant,
        device,
        login,
        rng,
    }
}

fn sqlite() -> mdm_enroll::store::sqlite::SqliteStore {
    mdm_enroll::store::sqlite::SqliteStore::open_in_memory().unwrap()
}

/// Run `check` on a fresh activated fixture over each store.
macro_rules! over_stores {
    ($($name:ident => $check:ident;)*) => {
        mod memory {
            $(#[test] fn $name() { super::$check(super::activated(super::MemoryStore::new())); })*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(#[test] fn $name() { super::$check(super::activated(super::sqlite())); })*
        }
    };
}

over_stores! {
    first_token_update_pushed => first_token_update_pushed;
    enqueue_push_fetch_acknowledge => enqueue_push_fetch_acknowledge;
    cancel_before_connect_is_never_delivered => cancel_before_connect_is_never_delivered;
    raw_plist_is_validated_and_sent_verbatim => raw_plist_is_validated_and_sent_verbatim;
    enqueue_racing_connect_loses_nothing => enqueue_racing_connect_loses_nothing;
    cancel_racing_connect_never_both => cancel_racing_connect_never_both;
    invalid_token_stops_pushes_until_token_update => invalid_token_stops_pushes_until_token_update;
    unanswered_push_is_repushed_with_backoff => unanswered_push_is_repushed_with_backoff;
    enrollments_list_the_device => enrollments_list_the_device;
    refused_push_is_an_event_and_the_command_stays => refused_push_is_an_event_and_the_command_stays;
    initial_configuration_is_not_cancellable => initial_configuration_is_not_cancellable;
}

fn idle<S: Store>(fx: &Fx<S>, at: SystemTime) -> Option<QueuedCommand> {
    fx.engine
        .connect(&fx.tenant, fx.device.report(ReportStatus::Idle, None), at)
        .unwrap()
        .value
}

fn answer<S: Store>(
    fx: &Fx<S>,
    status: ReportStatus,
    uuid: &CommandUuid,
    at: SystemTime,
) -> Option<QueuedCommand> {
    fx.engine
        .connect(&fx.tenant, fx.device.report(status, Some(uuid.clone())), at)
        .unwrap()
        .value
}

fn push_state<S: Store>(fx: &Fx<S>) -> mdm_enroll::store::PushState {
    fx.engine
        .store()
        .push_state(&QueueKey {
            tenant: fx.tenant.clone(),
            channel: fx.device.channel(),
        })
        .unwrap()
        .unwrap_or_default()
}

fn first_token_update_pushed<S: Store>(fx: Fx<S>) {
    let pushes = fx.engine.push_sender().pushes();
    assert_eq!(pushes.len(), 1, "step 10 pushes once: {pushes:?}");
    assert_eq!(pushes[0].1, fx.device.channel());
    assert_eq!(pushes[0].2, fx.device.push_target());
    let st = push_state(&fx);
    assert_eq!(st.last_push, Some(t0()));
    // The device answered (it connected for the initial configuration).
    assert_eq!(st.attempts, 0);
    assert_eq!(st.next_due, None);
}

fn enqueue_push_fetch_acknowledge<S: Store>(mut fx: Fx<S>) {
    let at = t0() + Duration::from_secs(600);
    let cmd =
        Command::installed_application_list(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    let out = fx
        .engine
        .enqueue_command(&fx.tenant, &fx.device.channel(), &cmd, at)
        .unwrap();
    let uuid = out.value.clone();
    assert_eq!(
        uuid.as_str(),
        cmd.command_uuid,
        "the uuid comes from the command"
    );
    assert!(out.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::CommandQueued { uuid: u, request_type, .. }
            if *u == uuid && request_type == "InstalledApplicationList"
    )));
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Pushed { attempt: 1, .. }))
    );
    assert_eq!(fx.engine.push_sender().pushes().len(), 2);
    let st = push_state(&fx);
    assert_eq!((st.last_push, st.attempts), (Some(at), 1));
    assert!(st.next_due.is_some_and(|d| d > at), "re-push scheduled");

    let queue = fx
        .engine
        .queue(&fx.tenant, &fx.device.channel())
        .unwrap()
        .value;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].delivered_at, None);

    let sent = idle(&fx, at).expect("the connect fetches the command");
    assert_eq!(sent.uuid, uuid);
    assert_eq!(*sent.body, *cmd.encode().unwrap());
    assert_eq!(
        fx.engine
            .cancel(&fx.tenant, &fx.device.channel(), &uuid)
            .unwrap_err(),
        ServiceError::Command(CommandError::AlreadyDelivered(uuid.clone()))
    );
    assert!(answer(&fx, ReportStatus::Acknowledged, &uuid, at).is_none());
    let results = fx
        .engine
        .results(&fx.tenant, &fx.device.channel())
        .unwrap()
        .value;
    let r = results.iter().find(|r| r.uuid == uuid).expect("in results");
    assert_eq!(r.outcome, CommandOutcome::Acknowledged);
    assert_eq!(r.request_type, "InstalledApplicationList");
    // The device's answer is kept as it came: what a caller reads the
    // application list (or any query's result) from.
    let Report::Status { body: reported, .. } = fx
        .device
        .report(ReportStatus::Acknowledged, Some(uuid.clone()))
        .report
    else {
        unreachable!("EvidenceDevice::report is a status report")
    };
    assert_eq!(r.body, reported);
    let st = push_state(&fx);
    assert_eq!((st.attempts, st.next_due), (0, None), "answered: {st:?}");
    assert_eq!(
        fx.engine
            .cancel(&fx.tenant, &fx.device.channel(), &uuid)
            .unwrap_err(),
        ServiceError::Command(CommandError::AlreadyFinished(uuid.clone()))
    );
}

fn cancel_before_connect_is_never_delivered<S: Store>(mut fx: Fx<S>) {
    let ch = fx.device.channel();
    let keep = Command::certificate_list(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    let drop = Command::profile_list(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    let drop_uuid = fx
        .engine
        .enqueue_command(&fx.tenant, &ch, &drop, t0())
        .unwrap()
        .value;
    let keep_uuid = fx
        .engine
        .enqueue_command(&fx.tenant, &ch, &keep, t0())
        .unwrap()
        .value;
    let out = fx.engine.cancel(&fx.tenant, &ch, &drop_uuid).unwrap();
    assert_eq!(out.value.uuid, drop_uuid);
    assert!(out.events.iter().any(
        |e| matches!(&e.kind, EventKind::CommandCancelled { uuid, .. } if *uuid == drop_uuid)
    ));
    let sent = idle(&fx, t0()).expect("the other command");
    assert_eq!(sent.uuid, keep_uuid);
    assert!(answer(&fx, ReportStatus::Acknowledged, &keep_uuid, t0()).is_none());
    let results = fx.engine.results(&fx.tenant, &ch).unwrap().value;
    assert!(results.iter().all(|r| r.uuid != drop_uuid));
    assert!(idle(&fx, t0()).is_none(), "nothing left to deliver");
    assert_eq!(
        fx.engine.cancel(&fx.tenant, &ch, &drop_uuid).unwrap_err(),
        ServiceError::Command(CommandError::AlreadyFinished(drop_uuid.clone()))
    );
    let unknown = CommandUuid::new("NO-SUCH-COMMAND").unwrap();
    let err = fx.engine.cancel(&fx.tenant, &ch, &unknown).unwrap_err();
    assert_eq!(err, ServiceError::Command(CommandError::Unknown(unknown)));
    assert_eq!(err.http_status(), 404);
    // A cancelled uuid cannot be queued again.
    assert_eq!(
        fx.engine
            .enqueue_command(&fx.tenant, &ch, &drop, t0())
            .unwrap_err(),
        ServiceError::Command(CommandError::Duplicate(drop_uuid))
    );
}

fn raw_plist_is_validated_and_sent_verbatim<S: Store>(fx: Fx<S>) {
    let ch = fx.device.channel();
    let raw = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Command</key>
	<dict>
		<key>RequestType</key>
		<string>DeviceLock</string>
		<key>PIN</key>
		<string>123456</string>
	</dict>
	<key>CommandUUID</key>
	<string>0001-DeviceLock</string>
</dict>
</plist>
"#;
    let out = fx.engine.enqueue_raw(&fx.tenant, &ch, raw, t0()).unwrap();
    assert_eq!(out.value, CommandUuid::new("0001-DeviceLock").unwrap());
    let queued = fx.engine.queue(&fx.tenant, &ch).unwrap().value;
    assert_eq!(queued[0].request_type, "DeviceLock");
    let sent = idle(&fx, t0()).unwrap();
    assert_eq!(*sent.body, *raw, "sent byte for byte");

    let bad: [(&[u8], &str); 5] = [
        (b"not a plist", ""),
        (
            b"<plist version=\"1.0\"><array/></plist>",
            "",
        ),
        (
            b"<plist version=\"1.0\"><dict><key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict></dict></plist>",
            "CommandUUID",
        ),
        (
            b"<plist version=\"1.0\"><dict><key>CommandUUID</key><string>x</string><key>Command</key><dict/></dict></plist>",
            "RequestType",
        ),
        (
            b"<plist version=\"1.0\"><dict><key>CommandUUID</key><string>x</string></dict></plist>",
            "Command",
        ),
    ];
    for (body, names) in bad {
        match fx.engine.enqueue_raw(&fx.tenant, &ch, body, t0()) {
            Err(ServiceError::Command(CommandError::Invalid(why))) => {
                assert!(why.contains(names), "{why:?} should name {names}")
            }
            other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(body)),
        }
    }
    // A CommandUUID longer than the limit is refused like a missing one.
    let long = format!(
        "<plist version=\"1.0\"><dict><key>CommandUUID</key><string>{}</string>\
         <key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict>\
         </dict></plist>",
        "U".repeat(CommandUuid::MAX_LEN + 1)
    );
    match fx
        .engine
        .enqueue_raw(&fx.tenant, &ch, long.as_bytes(), t0())
    {
        Err(ServiceError::Command(CommandError::Invalid(why))) => {
            assert!(why.contains("CommandUUID"), "{why:?}")
        }
        other => panic!("an over-long CommandUUID was accepted: {other:?}"),
    }
    let huge = vec![b' '; mdm_enroll::wire::Limits::default().max_body_bytes + 1];
    assert!(matches!(
        fx.engine.enqueue_raw(&fx.tenant, &ch, &huge, t0()),
        Err(ServiceError::Command(CommandError::TooLarge { .. }))
    ));
    assert_eq!(
        fx.engine.queue(&fx.tenant, &ch).unwrap().value.len(),
        1,
        "refused plists queue nothing"
    );
    // An unknown device: not enrolled.
    let stranger = Channel::device("NOT-ENROLLED");
    assert!(matches!(
        fx.engine.enqueue_raw(&fx.tenant, &stranger, raw, t0()),
        Err(ServiceError::Activation(ActivationError::NotEnrolled))
    ));
}

/// One thread enqueues while another plays the device (Idle, then
/// acknowledging every command it gets): every command is delivered and
/// answered exactly once.
fn enqueue_racing_connect_loses_nothing<S: Store>(fx: Fx<S>) {
    const N: usize = 40;
    let ch = fx.device.channel();
    let enqueued = Mutex::new(Vec::new());
    let delivered = Mutex::new(Vec::new());
    let drain = |fx: &Fx<S>| {
        let mut next = idle(fx, t0());
        while let Some(cmd) = next {
            delivered.lock().unwrap().push(cmd.uuid.clone());
            next = answer(fx, ReportStatus::Acknowledged, &cmd.uuid, t0());
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            for n in 0..N {
                let cmd = Command::security_info(format!("RACE-{n}"));
                let uuid = fx
                    .engine
                    .enqueue_command(&fx.tenant, &ch, &cmd, t0())
                    .unwrap()
                    .value;
                enqueued.lock().unwrap().push(uuid);
            }
        });
        s.spawn(|| {
            for _ in 0..N {
                drain(&fx);
            }
        });
    });
    drain(&fx);
    let delivered = delivered.into_inner().unwrap();
    let unique: HashSet<_> = delivered.iter().collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "a command was delivered twice"
    );
    let enqueued: HashSet<_> = enqueued.into_inner().unwrap().into_iter().collect();
    assert_eq!(enqueued.len(), N);
    assert_eq!(
        unique,
        enqueued.iter().collect(),
        "lost or invented commands"
    );
    let results = fx.engine.results(&fx.tenant, &ch).unwrap().value;
    let answered: Vec<_> = results
        .iter()
        .filter(|r| enqueued.contains(&r.uuid))
        .collect();
    assert_eq!(answered.len(), N, "each answered exactly once");
}

/// Cancels race the device's connects: each command is either cancelled
/// (and never delivered) or delivered (and the cancel refused), never both.
fn cancel_racing_connect_never_both<S: Store>(fx: Fx<S>) {
    const N: usize = 30;
    let ch = fx.device.channel();
    let uuids: Vec<_> = (0..N)
        .map(|n| {
            fx.engine
                .enqueue_command(
                    &fx.tenant,
                    &ch,
                    &Command::profile_list(format!("C-{n}")),
                    t0(),
                )
                .unwrap()
                .value
        })
        .collect();
    let cancelled = Mutex::new(HashSet::new());
    let delivered = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            for u in uuids.iter().rev() {
                match fx.engine.cancel(&fx.tenant, &ch, u) {
                    Ok(_) => {
                        cancelled.lock().unwrap().insert(u.clone());
                    }
                    Err(ServiceError::Command(
                        CommandError::AlreadyDelivered(_) | CommandError::AlreadyFinished(_),
                    )) => {}
                    Err(e) => panic!("cancel: {e:?}"),
                }
            }
        });
        s.spawn(|| {
            let mut next = idle(&fx, t0());
            while let Some(cmd) = next {
                delivered.lock().unwrap().push(cmd.uuid.clone());
                next = answer(&fx, ReportStatus::Acknowledged, &cmd.uuid, t0());
            }
        });
    });
    let mut next = idle(&fx, t0());
    while let Some(cmd) = next {
        delivered.lock().unwrap().push(cmd.uuid.clone());
        next = answer(&fx, ReportStatus::Acknowledged, &cmd.uuid, t0());
    }
    let cancelled = cancelled.into_inner().unwrap();
    let delivered = delivered.into_inner().unwrap();
    let once: HashSet<_> = delivered.iter().cloned().collect();
    assert_eq!(once.len(), delivered.len(), "delivered twice");
    assert!(
        cancelled.is_disjoint(&once),
        "cancelled and delivered: {:?}",
        cancelled.intersection(&once).collect::<Vec<_>>()
    );
    assert_eq!(cancelled.len() + once.len(), N, "a command was lost");
}

fn invalid_token_stops_pushes_until_token_update<S: Store>(mut fx: Fx<S>) {
    let ch = fx.device.channel();
    let at = t0() + Duration::from_secs(60);
    fx.engine
        .push_response(&fx.tenant, &ch, 410, Some("Unregistered"), true, at)
        .unwrap();
    let before = fx.engine.push_sender().pushes().len();
    let cmd = Command::device_configured(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    let out = fx
        .engine
        .enqueue_command(&fx.tenant, &ch, &cmd, at)
        .unwrap();
    assert_eq!(
        fx.engine.push_sender().pushes().len(),
        before,
        "pushed anyway"
    );
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PushSkippedTokenInvalid { .. })),
        "{:?}",
        out.events
    );
    let out = fx.engine.push_now(&fx.tenant, &ch, at).unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PushSkippedTokenInvalid { .. }))
    );
    assert_eq!(fx.engine.push_sender().pushes().len(), before);
    let st = push_state(&fx);
    assert!(st.token_invalid);
    assert_eq!(st.last_status, Some(410));
    assert_eq!(st.last_reason.as_deref(), Some("Unregistered"));
    // Nothing is due for a re-push either.
    let later = at + Duration::from_secs(86_400);
    assert!(
        fx.engine
            .repush_due(&fx.tenant, later)
            .unwrap()
            .value
            .is_empty()
    );
    // A new TokenUpdate makes the channel pushable again.
    fx.engine
        .checkin(
            &fx.tenant,
            fx.device.checkin(CheckinMessage::TokenUpdate {
                push: fx.device.push_target(),
                awaiting_configuration: None,
            }),
            later,
            |_| Vec::new(),
        )
        .unwrap();
    assert!(!push_state(&fx).token_invalid);
    let out = fx.engine.push_now(&fx.tenant, &ch, later).unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Pushed { .. }))
    );
    assert_eq!(fx.engine.push_sender().pushes().len(), before + 1);
}

fn unanswered_push_is_repushed_with_backoff<S: Store>(mut fx: Fx<S>) {
    let ch = fx.device.channel();
    let policy = fx.engine.config().repush;
    let at = t0() + Duration::from_secs(3600);
    let cmd = Command::security_info(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    let uuid = fx
        .engine
        .enqueue_command(&fx.tenant, &ch, &cmd, at)
        .unwrap()
        .value;
    let first = at + policy.first_delay;
    assert!(
        fx.engine
            .repush_due(&fx.tenant, first - Duration::from_secs(1))
            .unwrap()
            .value
            .is_empty(),
        "re-pushed too early"
    );
    let out = fx.engine.repush_due(&fx.tenant, first).unwrap();
    assert_eq!(out.value, vec![ch.clone()]);
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Pushed { attempt: 2, .. }))
    );
    // Backoff doubles.
    assert_eq!(
        push_state(&fx).next_due,
        Some(first + policy.first_delay * 2)
    );
    // The device answers NotNow: a re-push after the NotNow delay, count reset.
    let now = first + Duration::from_secs(5);
    let sent = idle(&fx, now).unwrap();
    assert_eq!(sent.uuid, uuid);
    assert!(answer(&fx, ReportStatus::NotNow, &uuid, now).is_none());
    let st = push_state(&fx);
    assert_eq!(st.attempts, 0);
    assert_eq!(st.next_due, Some(now + policy.not_now_delay));
    // Acknowledged: nothing more to push.
    let later = now + policy.not_now_delay;
    assert_eq!(
        fx.engine.repush_due(&fx.tenant, later).unwrap().value,
        vec![ch.clone()]
    );
    let sent = idle(&fx, later).unwrap();
    assert!(answer(&fx, ReportStatus::Acknowledged, &sent.uuid, later).is_none());
    assert_eq!(push_state(&fx).next_due, None);
    assert!(
        fx.engine
            .repush_due(&fx.tenant, later + Duration::from_secs(86_400))
            .unwrap()
            .value
            .is_empty()
    );
}

fn enrollments_list_the_device<S: Store>(mut fx: Fx<S>) {
    let ch = fx.device.channel();
    let cmd = Command::profile_list(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    fx.engine
        .enqueue_command(&fx.tenant, &ch, &cmd, t0())
        .unwrap();
    let list = fx.engine.enrollments(&fx.tenant).unwrap();
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!(e.device_id, fx.device.udid);
    assert_eq!(e.serial.as_deref(), Some(fx.device.serial.as_str()));
    assert_eq!(e.user, "alice");
    assert_eq!(e.step, Step::ConfigurationApplied);
    assert!(e.complete && e.enrolled && e.has_push_token);
    assert_eq!(e.queued, 1);
    assert_eq!(e.push.last_push, Some(t0()));
    assert_eq!(
        fx.engine.enrollment(&fx.tenant, &fx.device.udid).unwrap(),
        Some(e.clone())
    );
    assert_eq!(fx.engine.enrollment(&fx.tenant, "NO-SUCH").unwrap(), None);
    let other = TenantId::new("other").unwrap();
    assert!(fx.engine.enrollments(&other).unwrap().is_empty());
    // The device's pending queue is listed without delivery marks.
    let q = fx.engine.store().pending(&QueueKey {
        tenant: fx.tenant.clone(),
        channel: ch,
    });
    assert_eq!(q.unwrap()[0].delivered_at, None);
}

fn refused_push_is_an_event_and_the_command_stays<S: Store>(mut fx: Fx<S>) {
    let ch = fx.device.channel();
    let at = t0() + Duration::from_secs(60);
    let before = fx.engine.push_sender().pushes().len();
    let refusal = PushError::Unavailable("APNs queue full".into());
    fx.engine.push_sender().refuse_with(Some(refusal.clone()));
    let cmd = Command::profile_list(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    let out = fx
        .engine
        .enqueue_command(&fx.tenant, &ch, &cmd, at)
        .unwrap();
    assert!(
        out.events.iter().any(|e| e.kind
            == EventKind::PushFailed {
                channel: ch.clone(),
                error: refusal.clone()
            }),
        "{:?}",
        out.events
    );
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Pushed { .. }))
    );
    assert_eq!(fx.engine.push_sender().pushes().len(), before);
    let st = push_state(&fx);
    assert_eq!(st.last_push, Some(t0()), "a refused push is not recorded");
    assert_eq!(st.attempts, 0);
    assert_eq!(fx.engine.queue(&fx.tenant, &ch).unwrap().value.len(), 1);
    fx.engine.push_sender().refuse_with(None);
    let out = fx.engine.push_now(&fx.tenant, &ch, at).unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Pushed { attempt: 1, .. }))
    );
    assert_eq!(
        idle(&fx, at).map(|c| c.uuid.into_string()),
        Some(cmd.command_uuid)
    );
}

fn initial_configuration_is_not_cancellable<S: Store>(fx: Fx<S>) {
    // A second Mac stops after TokenUpdate: its initial configuration is queued.
    let ch = fx.device.channel();
    let results = fx.engine.results(&fx.tenant, &ch).unwrap().value;
    let initial = results
        .first()
        .expect("initial configuration results")
        .uuid
        .clone();
    assert_eq!(
        fx.engine.cancel(&fx.tenant, &ch, &initial).unwrap_err(),
        ServiceError::Command(CommandError::AlreadyFinished(initial))
    );
    let mut rng = UnwrapErr(getrandom::SysRng);
    let mut mac = EvidenceDevice::random(&mut rng);
    let t = &fx.tenant;
    let e = &fx.engine;
    let id = e
        .login(t, &fx.login, t0(), &mut rng)
        .unwrap()
        .value
        .activation;
    let challenge = e
        .request_activation(t, &id, true, None, t0(), &mut rng)
        .unwrap()
        .value;
    let grant = e
        .device_attributes(t, mac.attributes(&challenge), t0(), &mut rng)
        .unwrap()
        .value;
    e.authorize_scep(t, &grant.scep_challenge, t0()).unwrap();
    let identity = EvidenceDevice::fresh_identity(&mut rng, t0());
    mac.identity = Some(identity.clone());
    e.certificate_issued(t, &id, identity, t0()).unwrap();
    e.checkin(
        t,
        mac.checkin(CheckinMessage::Authenticate {
            topic: mac.push_target().topic,
            serial: Some(mac.serial.clone()),
        }),
        t0(),
        |_| Vec::new(),
    )
    .unwrap();
    let config = mdm_enroll::testing::placeholder_configuration(&mut rng);
    let first = config[0].uuid.clone();
    e.checkin(
        t,
        mac.checkin(CheckinMessage::TokenUpdate {
            push: mac.push_target(),
            awaiting_configuration: None,
        }),
        t0(),
        move |_| config,
    )
    .unwrap();
    let err = e.cancel(t, &mac.channel(), &first).unwrap_err();
    assert_eq!(
        err,
        ServiceError::Command(CommandError::InitialConfiguration(first))
    );
    assert_eq!(err.http_status(), 409);
    assert_eq!(
        e.queue(t, &mac.channel()).unwrap().value.len(),
        4,
        "still queued"
    );
}

/// After `max_attempts` unanswered pushes the engine stops re-pushing and says so.
fn repush_gives_up_at_the_cap<S: Store>(mut fx: Fx<S>) {
    let ch = fx.device.channel();
    let s = Duration::from_secs;
    let cmd = Command::security_info(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    let at = t0() + s(100);
    fx.engine
        .enqueue_command(&fx.tenant, &ch, &cmd, at)
        .unwrap();
    let out = fx.engine.repush_due(&fx.tenant, at + s(1)).unwrap();
    assert_eq!(out.value, vec![ch.clone()]);
    let out = fx.engine.repush_due(&fx.tenant, at + s(3)).unwrap();
    assert_eq!(out.value, vec![ch.clone()]);
    assert!(
        out.events.iter().any(|e| e.kind
            == EventKind::RepushGaveUp {
                channel: ch.clone(),
                attempts: 3
            }),
        "{:?}",
        out.events
    );
    assert_eq!(push_state(&fx).next_due, None);
    assert!(
        fx.engine
            .repush_due(&fx.tenant, at + s(86_400))
            .unwrap()
            .value
            .is_empty()
    );
    // A new command is still pushed once (the count runs on until the device answers).
    let cmd = Command::profile_list(mdm_enroll::mdm::command::random_uuid(&mut fx.rng));
    let out = fx
        .engine
        .enqueue_command(&fx.tenant, &ch, &cmd, at + s(200))
        .unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Pushed { attempt: 4, .. }))
    );
}

fn capped() -> EngineConfig {
    let s = Duration::from_secs;
    EngineConfig::default().with_repush(RepushPolicy::new(s(1), s(2), 3, s(5)))
}

#[test]
fn memory_repush_gives_up_at_the_cap() {
    repush_gives_up_at_the_cap(activated_with(MemoryStore::new(), capped()));
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_repush_gives_up_at_the_cap() {
    repush_gives_up_at_the_cap(activated_with(sqlite(), capped()));
}

/// A large command is not copied on its way from the in-memory store to the
/// caller: the delivered body is the stored buffer itself, and a second
/// connection that is handed the same command again (its delivery lost)
/// still shares it. What an `InstallProfile` of megabytes relies on.
#[test]
fn memory_delivery_shares_the_stored_body() {
    let fx = activated_with(
        MemoryStore::new(),
        EngineConfig::default()
            .with_queue(QueuePolicy::default().with_delivery_lease(Duration::ZERO)),
    );
    let payload = vec![0x5a; 256 << 10];
    let cmd = Command::install_profile("BIG-1", payload);
    let channel = fx.device.channel();
    let uuid = fx
        .engine
        .enqueue_command(&fx.tenant, &channel, &cmd, t0())
        .unwrap()
        .value;
    let stored = |fx: &Fx<MemoryStore>| {
        let key = QueueKey {
            tenant: fx.tenant.clone(),
            channel: channel.clone(),
        };
        mdm_enroll::store::QueueStore::pending(fx.engine.store(), &key)
            .unwrap()
            .remove(0)
    };
    let first = idle(&fx, t0()).expect("delivered");
    assert_eq!(first.uuid, uuid);
    assert_eq!(*first.body, *cmd.encode().unwrap());
    assert!(std::sync::Arc::ptr_eq(&first.body, &stored(&fx).body));
    let again = idle(&fx, t0()).expect("delivered again: no lease holds it");
    assert!(std::sync::Arc::ptr_eq(&again.body, &first.body));
}
