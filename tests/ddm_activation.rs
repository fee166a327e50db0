//! Steps 12–13 over declarative device management, at the HTTP level: a
//! simulated Mac acknowledges the `DeclarativeManagement` command of its
//! initial configuration, then runs the macOS sync (tokens →
//! declaration-items → each declaration → status). The activation is
//! complete only after a status report shows every initial declaration
//! active and valid with its current `ServerToken`.
#![cfg(feature = "test-support")]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{Activation, ActivationId, Channel, Phase, Step};
use mdm_enroll::crypto::RsaKey;
use mdm_enroll::ddm::{Declaration, DeclarationKind, DeclarationPayload, DeclarationSet, Validity};
use mdm_enroll::service::{Event, EventKind};
use mdm_enroll::store::{ActivationStore, DeclarationStore, MemoryStore};
use mdm_enroll::testing::{Identity, SimulatedDevice, TestDeployment};
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;

fn rng() -> Rng {
    UnwrapErr(getrandom::SysRng)
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

const ALICE: (&str, &str, &str) = ("alice", "pw", "corp");

fn keys() -> &'static [Arc<RsaKey>] {
    static KEYS: OnceLock<Vec<Arc<RsaKey>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..4)
            .map(|_| Arc::new(RsaKey::generate(&mut rng(), 1024).unwrap()))
            .collect()
    })
}

fn test_config(echo: &str) -> Declaration {
    Declaration::new(
        "demo.test",
        DeclarationPayload::ManagementTest {
            echo: echo.into(),
            return_status: None,
        },
    )
    .unwrap()
}

fn initial_set() -> DeclarationSet {
    let mut set = DeclarationSet::new();
    set.insert(
        Declaration::new(
            "demo.activation",
            DeclarationPayload::ActivationSimple {
                standard_configurations: vec!["demo.test".into()],
                predicate: None,
            },
        )
        .unwrap(),
    );
    set.insert(test_config("hello"));
    set
}

struct Fx {
    d: TestDeployment,
    ddm: Arc<MemoryStore>,
    attributes: Identity,
}

fn fixture() -> Fx {
    let mut r = rng();
    let ddm = Arc::new(MemoryStore::new());
    let d = TestDeployment::with_declarations(
        keys()[0].as_ref().clone(),
        keys()[1].as_ref().clone(),
        t0(),
        &mut r,
        ddm.clone(),
        initial_set(),
    )
    .unwrap();
    let attributes = d.device_ca.issue(keys()[2].clone(), t0(), &mut r).unwrap();
    Fx { d, ddm, attributes }
}

impl Fx {
    fn device(&self) -> SimulatedDevice {
        SimulatedDevice::new(
            self.attributes.clone(),
            keys()[3].clone(),
            self.d.server_certificate.clone(),
            &mut rng(),
        )
    }

    fn load(&self, id: &ActivationId) -> Activation {
        self.d
            .service
            .engine()
            .store()
            .activation(&self.d.tenant, id)
            .unwrap()
            .unwrap()
            .value
    }

    fn key(&self, dev: &SimulatedDevice) -> mdm_enroll::activation::QueueKey {
        mdm_enroll::activation::QueueKey {
            tenant: self.d.tenant.clone(),
            channel: Channel::device(dev.udid.clone()),
        }
    }
}

fn steps(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Reached(s) => Some(s.number()),
            _ => None,
        })
        .collect()
}

#[test]
fn step_13_waits_for_the_status_report_of_the_initial_declarations() {
    let fx = fixture();
    let mut dev = fx.device();
    let mut events = Vec::new();
    let mut r = rng();
    let answered = {
        let mut t = fx.d.transport(t0(), &mut r, &mut events);
        dev.activate(&mut t, &fx.d.enroll_path(), ALICE, t0(), &mut rng())
            .unwrap()
    };
    let types: Vec<&str> = answered.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "DeviceInformation",
            "SecurityInfo",
            "ProfileList",
            "DeclarativeManagement"
        ]
    );
    assert!(answered.iter().all(|(_, s)| s == "Acknowledged"));
    // Every command acknowledged, but no status report yet: not step 13.
    assert_eq!(steps(&events), (1..=12).collect::<Vec<u8>>());
    let id = events[0].activation.clone();
    assert_eq!(fx.load(&id).phase, Phase::Configuring);

    let mut later = Vec::new();
    let sync = {
        let mut t = fx.d.transport(t0(), &mut r, &mut later);
        dev.ddm_sync(&mut t).unwrap()
    };
    assert_eq!(sync.status_answer, 200);
    assert_eq!(sync.fetched, ["demo.activation", "demo.test"]);
    assert_eq!(
        sync.declarations_token,
        initial_set().declarations_token().as_str()
    );
    assert_eq!(steps(&later), [13]);
    assert_eq!(fx.load(&id).phase, Phase::Complete);
    assert_eq!(fx.load(&id).last_step, Step::ConfigurationApplied);
    let statuses = fx.ddm.declaration_statuses(&fx.key(&dev)).unwrap();
    assert_eq!(statuses.len(), 2);
    assert!(
        statuses
            .iter()
            .all(|s| s.active && s.valid == Validity::Valid)
    );

    // Statuses of declarations the server never gave the device are not
    // stored: a device cannot grow the stored statuses at will.
    let items: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"identifier":"made.up.{i}","active":true,"valid":"valid","server-token":"t{i}"}}"#
            )
        })
        .collect();
    let report = format!(
        r#"{{"StatusItems":{{"management":{{"declarations":{{"activations":[],"configurations":[{}],"assets":[],"management":[]}}}}}},"Errors":[]}}"#,
        items.join(",")
    );
    let answer = {
        let mut t = fx.d.transport(t0(), &mut r, &mut later);
        dev.ddm_request(&mut t, "status", Some(report.into_bytes()))
            .unwrap()
    };
    assert_eq!(answer.status, 200);
    let after = fx.ddm.declaration_statuses(&fx.key(&dev)).unwrap();
    assert_eq!(after, statuses);
}

#[test]
fn an_invalid_declaration_fails_the_configuration_and_keeps_its_reasons() {
    let fx = fixture();
    let mut dev = fx
        .device()
        .ddm_invalid("demo.test", "Error.ConfigurationCannotBeApplied");
    let mut events = Vec::new();
    let mut r = rng();
    {
        let mut t = fx.d.transport(t0(), &mut r, &mut events);
        dev.activate(&mut t, &fx.d.enroll_path(), ALICE, t0(), &mut rng())
            .unwrap();
        dev.ddm_sync(&mut t).unwrap();
    }
    let id = events[0].activation.clone();
    let a = fx.load(&id);
    assert_eq!(a.phase, Phase::ConfigurationFailed);
    assert!(!steps(&events).contains(&13));
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::DeclarationsInvalid(vec!["demo.test".into()]))
    );
    let progress = a.declarative.unwrap();
    assert_eq!(
        progress.invalid,
        [(
            "demo.test".to_owned(),
            vec!["Error.ConfigurationCannotBeApplied: Simulated failure".to_owned()]
        )]
    );
    let statuses = fx.ddm.declaration_statuses(&fx.key(&dev)).unwrap();
    let t = statuses
        .iter()
        .find(|s| s.identifier == "demo.test")
        .unwrap();
    assert_eq!(t.valid, Validity::Invalid);
    assert!(!t.active);
    assert_eq!(t.reasons[0].code, "Error.ConfigurationCannotBeApplied");
}

#[test]
fn a_changed_set_is_pushed_synced_and_applied_and_a_removed_declaration_is_404() {
    let fx = fixture();
    let mut dev = fx.device();
    let mut events = Vec::new();
    let mut r = rng();
    {
        let mut t = fx.d.transport(t0(), &mut r, &mut events);
        dev.activate(&mut t, &fx.d.enroll_path(), ALICE, t0(), &mut rng())
            .unwrap();
        dev.ddm_sync(&mut t).unwrap();
    }
    let engine = fx.d.service.engine();
    let channel = Channel::device(dev.udid.clone());
    let pushes_before = engine.push_sender().pushes().len();

    // Change demo.test and drop the activation's companion declaration.
    let mut changed = initial_set();
    let old_token = changed.get("demo.test").unwrap().server_token();
    changed.insert(test_config("changed"));
    let new_token = changed.get("demo.test").unwrap().server_token();
    assert_ne!(old_token, new_token);
    changed.insert(
        Declaration::new(
            "demo.extra",
            DeclarationPayload::ManagementTest {
                echo: "extra".into(),
                return_status: None,
            },
        )
        .unwrap(),
    );
    let later = t0() + Duration::from_secs(60);
    let out = engine
        .set_declarations(
            &*fx.ddm,
            &fx.d.tenant,
            &channel,
            changed.clone(),
            later,
            &mut rng(),
        )
        .unwrap();
    let uuid = out
        .value
        .expect("a DeclarativeManagement command was queued");
    assert!(out.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::CommandQueued { request_type, .. } if request_type == "DeclarativeManagement"
    )));
    assert_eq!(engine.push_sender().pushes().len(), pushes_before + 1);
    // The same set again changes nothing and queues nothing.
    let again = engine
        .set_declarations(
            &*fx.ddm,
            &fx.d.tenant,
            &channel,
            changed.clone(),
            later,
            &mut rng(),
        )
        .unwrap();
    assert_eq!(again.value, None);

    // The device answers its push: the command carries the new tokens.
    let mut ev2 = Vec::new();
    let (answered, sync) = {
        let mut t = fx.d.transport(later, &mut r, &mut ev2);
        let answered = dev.run_commands(&mut t).unwrap();
        (answered, dev.ddm_sync(&mut t).unwrap())
    };
    assert_eq!(
        answered,
        [(
            "DeclarativeManagement".to_owned(),
            "Acknowledged".to_owned()
        )]
    );
    let queued = engine.results(&fx.d.tenant, &channel).unwrap().value;
    assert!(queued.iter().any(|r| r.uuid == uuid));
    assert_eq!(
        sync.declarations_token,
        changed.declarations_token().as_str()
    );
    assert_ne!(
        sync.declarations_token,
        initial_set().declarations_token().as_str()
    );
    assert_eq!(sync.fetched, ["demo.extra", "demo.test"]);
    let statuses = fx.ddm.declaration_statuses(&fx.key(&dev)).unwrap();
    let t = statuses
        .iter()
        .find(|s| s.identifier == "demo.test")
        .unwrap();
    assert!(t.is_applied(&new_token));

    // Remove demo.extra: gone from declaration-items, and 404 when asked for.
    changed.remove("demo.extra");
    engine
        .set_declarations(&*fx.ddm, &fx.d.tenant, &channel, changed, later, &mut rng())
        .unwrap();
    let mut ev3 = Vec::new();
    let mut t = fx.d.transport(later, &mut r, &mut ev3);
    let sync = dev.ddm_sync(&mut t).unwrap();
    assert!(!sync.items.iter().any(|(_, id, _)| id == "demo.extra"));
    assert_eq!(sync.items.len(), 2);
    assert!(
        sync.items
            .iter()
            .any(|(k, id, _)| *k == DeclarationKind::Activation && id == "demo.activation")
    );
    let gone = dev
        .ddm_request(&mut t, "declaration/configuration/demo.extra", None)
        .unwrap();
    assert_eq!(gone.status, 404);
    let bad = dev
        .ddm_request(&mut t, "declaration/nothing/demo.extra", None)
        .unwrap();
    assert_eq!(bad.status, 400);
}

#[test]
fn the_declarative_management_command_carries_the_tokens_response() {
    use mdm_enroll::ddm::TokensResponse;
    use mdm_enroll::mdm::Command;
    use mdm_enroll::wire::Limits;
    let tokens = initial_set().tokens_response(t0());
    let cmd = Command::declarative_management("uuid-1", tokens.encode());
    let back = Command::decode(&cmd.encode().unwrap(), &Limits::default()).unwrap();
    assert_eq!(back.request_type, "DeclarativeManagement");
    assert_eq!(back.command_uuid, "uuid-1");
    let Some(plist::Value::Data(data)) = back.params.get("Data") else {
        panic!("Data is a <data> value: {:?}", back.params)
    };
    assert_eq!(
        TokensResponse::decode(data, &Limits::default()).unwrap(),
        tokens
    );
}

/// A check-in body from the macOS user channel `user` of `dev`.
fn user_checkin(dev: &SimulatedDevice, user: &str, fields: &[(&str, plist::Value)]) -> Vec<u8> {
    let mut d = plist::Dictionary::new();
    d.insert("UDID".into(), dev.udid.clone().into());
    d.insert("UserID".into(), user.into());
    d.insert("UserShortName".into(), "alice".into());
    for (k, v) in fields {
        d.insert((*k).into(), v.clone());
    }
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &plist::Value::Dictionary(d)).unwrap();
    out
}

#[test]
fn the_macos_user_channel_has_its_own_declarations() {
    use mdm_enroll::ddm::TokensResponse;
    use mdm_enroll::http::media_type;
    use mdm_enroll::testing::Transport;
    use mdm_enroll::wire::Limits;
    let fx = fixture();
    let mut dev = fx.device();
    let mut events = Vec::new();
    let mut r = rng();
    let mut t = fx.d.transport(t0(), &mut r, &mut events);
    dev.activate(&mut t, &fx.d.enroll_path(), ALICE, t0(), &mut rng())
        .unwrap();
    dev.ddm_sync(&mut t).unwrap();
    let user = "6A4B0C0F-1111-4222-8333-444455556666";
    let topic = "com.apple.mgmt.External.0e6b4fb1-0000-4000-8000-000000000000";
    let token_update = user_checkin(
        &dev,
        user,
        &[
            ("MessageType", "TokenUpdate".into()),
            ("Topic", topic.into()),
            ("Token", plist::Value::Data(b"user-token".to_vec())),
            ("PushMagic", "user-magic".into()),
        ],
    );
    let resp = t.send(dev.mdm_request(media_type::CHECKIN, token_update).unwrap());
    assert_eq!(resp.status, 200);
    let ddm = |t: &mut dyn Transport, endpoint: &str| {
        let body = user_checkin(
            &dev,
            user,
            &[
                ("MessageType", "DeclarativeManagement".into()),
                ("Endpoint", endpoint.into()),
            ],
        );
        t.send(dev.mdm_request(media_type::CHECKIN, body).unwrap())
    };
    // Nothing set for the user channel yet: an empty set, not the device's.
    let tokens = ddm(&mut t, "tokens");
    assert_eq!(tokens.status, 200);
    let empty = TokensResponse::decode(&tokens.body, &Limits::default()).unwrap();
    assert_eq!(
        empty.declarations_token,
        DeclarationSet::new().declarations_token()
    );
    assert_eq!(
        ddm(&mut t, "declaration/configuration/demo.test").status,
        404
    );
    drop(t);

    let channel = Channel {
        device_id: dev.udid.clone(),
        user_id: Some(user.into()),
    };
    let mut set = DeclarationSet::new();
    set.insert(test_config("for the user"));
    let out =
        fx.d.service
            .engine()
            .set_declarations(
                &*fx.ddm,
                &fx.d.tenant,
                &channel,
                set.clone(),
                t0(),
                &mut rng(),
            )
            .unwrap();
    assert!(out.value.is_some(), "queued on the user channel");
    let mut ev = Vec::new();
    let mut t = fx.d.transport(t0(), &mut r, &mut ev);
    let tokens = ddm(&mut t, "tokens");
    let now = TokensResponse::decode(&tokens.body, &Limits::default()).unwrap();
    assert_eq!(now.declarations_token, set.declarations_token());
    let d = ddm(&mut t, "declaration/configuration/demo.test");
    assert_eq!(d.status, 200);
    assert_eq!(d.body, set.get("demo.test").unwrap().encode());
    // The device channel still serves its own set.
    let device_tokens = dev.ddm_request(&mut t, "tokens", None).unwrap();
    let device = TokensResponse::decode(&device_tokens.body, &Limits::default()).unwrap();
    assert_eq!(
        device.declarations_token,
        initial_set().declarations_token()
    );
}
