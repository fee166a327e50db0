//! Test support (feature `test-support`): a directory and push sender for
//! tests, and simulated devices that walk the thirteen steps.
//!
//! [`EvidenceDevice`] drives the evidence-level
//! [`Engine`] directly (no cryptography), for load tests of stores and the core.
//! [`SimulatedDevice`] walks the same steps through HTTP requests and
//! responses with real cryptography, against a [`TestDeployment`] or any
//! [`Transport`].

mod csr;
mod deployment;
mod device;
mod device_ca;

pub use csr::build_csr;
pub use deployment::TestDeployment;
pub use device::{CommandAnswer, DdmSync, DeviceError, SimulatedDevice, Transport};
pub use device_ca::{Identity, TestDeviceCa};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::activation::{
    ActivationId, AttributesPhase, CertFingerprint, Channel, CheckinEvent, CheckinMessage,
    CommandUuid, IssuedIdentity, LoginAttempt, OsVersion, PushTarget, Report, ReportEvent,
    ReportStatus, Secret, TenantId, VerifiedAttributes,
};
use crate::service::{Engine, EngineConfig, Event, NewCommand, ServiceError};
use crate::store::{Directory, DirectoryError, PushError, PushSender, Store};

/// A [`Directory`] over a table of (tenant, username) → password.
#[derive(Debug, Default)]
pub struct StaticDirectory {
    users: Mutex<HashMap<(TenantId, String), Secret>>,
}

impl StaticDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace a user's password.
    pub fn set_password(&self, tenant: &TenantId, username: &str, password: &str) {
        if let Ok(mut users) = self.users.lock() {
            users.insert((tenant.clone(), username.to_owned()), Secret::new(password));
        }
    }
}

impl Directory for StaticDirectory {
    fn check_credentials(
        &self,
        tenant: &TenantId,
        attempt: &LoginAttempt,
    ) -> Result<bool, DirectoryError> {
        let users = self
            .users
            .lock()
            .map_err(|_| DirectoryError::permanent("lock poisoned"))?;
        Ok(users
            .get(&(tenant.clone(), attempt.username.clone()))
            .is_some_and(|p| {
                crate::crypto::constant_time_eq(
                    p.expose().as_bytes(),
                    attempt.password.expose().as_bytes(),
                )
            }))
    }
}

/// A [`PushSender`] that records pushes (or refuses them, when told to).
#[derive(Debug, Default)]
pub struct RecordingPush {
    pushes: Mutex<Vec<(TenantId, Channel, PushTarget)>>,
    refuse: Mutex<Option<PushError>>,
}

impl RecordingPush {
    /// A sender with no pushes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pushes so far.
    pub fn pushes(&self) -> Vec<(TenantId, Channel, PushTarget)> {
        self.pushes.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Refuse every push with `error` from now on (`None`: accept again).
    pub fn refuse_with(&self, error: Option<PushError>) {
        if let Ok(mut r) = self.refuse.lock() {
            *r = error;
        }
    }
}

impl PushSender for RecordingPush {
    fn push(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        target: &PushTarget,
    ) -> Result<(), PushError> {
        if let Some(e) = self
            .refuse
            .lock()
            .map_err(|_| PushError::Unavailable("lock poisoned".into()))?
            .clone()
        {
            return Err(e);
        }
        self.pushes
            .lock()
            .map_err(|_| PushError::Unavailable("lock poisoned".into()))?
            .push((tenant.clone(), channel.clone(), target.clone()));
        Ok(())
    }
}

/// An engine over `store` with user `alice` (password `pw`, domain `corp`,
/// default policy) provisioned in `tenant`; returns it with alice's login.
pub fn engine_with_alice<S: Store>(
    store: S,
    tenant: &TenantId,
    config: EngineConfig,
) -> Result<(Engine<S, StaticDirectory, RecordingPush>, LoginAttempt), ServiceError> {
    let dir = StaticDirectory::new();
    dir.set_password(tenant, "alice", "pw");
    let engine = Engine::new(store, dir, RecordingPush::new(), config);
    engine.provision_user(&crate::activation::UserAccount {
        tenant: tenant.clone(),
        username: "alice".into(),
        domain: "corp".into(),
        policy: crate::activation::Policy::default(),
    })?;
    let login = LoginAttempt {
        username: "alice".into(),
        password: Secret::new("pw"),
        domain: "corp".into(),
    };
    Ok((engine, login))
}

/// The request types of the initial configuration the evidence-level tests queue.
pub const INITIAL_REQUEST_TYPES: [&str; 4] = [
    "DeviceInformation",
    "SecurityInfo",
    "ProfileList",
    "InstallProfile",
];

/// An initial configuration of [`INITIAL_REQUEST_TYPES`] with fresh uuids
/// and placeholder bodies (the evidence level never parses them).
pub fn placeholder_configuration<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Vec<NewCommand> {
    INITIAL_REQUEST_TYPES
        .iter()
        .map(|t| NewCommand {
            uuid: CommandUuid::random(rng),
            request_type: (*t).to_owned(),
            body: t.as_bytes().to_vec(),
        })
        .collect()
}

/// A simulated Mac at the evidence level: it presents the values the
/// HTTP/CMS/SCEP layers would have verified.
#[derive(Debug, Clone)]
pub struct EvidenceDevice {
    /// `UDID`.
    pub udid: String,
    /// `SERIAL`.
    pub serial: String,
    /// `PRODUCT`.
    pub product: String,
    /// `OS_VERSION`.
    pub os_version: Option<OsVersion>,
    /// `VERSION` (build).
    pub build: Option<String>,
    /// The identity the CA issued, after step 8.
    pub identity: Option<IssuedIdentity>,
    /// The activation, after step 2.
    pub activation: Option<ActivationId>,
}

impl EvidenceDevice {
    /// A Mac with a random UDID and serial running macOS 14.4.
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let id = CommandUuid::random(rng).into_string();
        let mut serial = [0u8; 5];
        rng.fill_bytes(&mut serial);
        Self {
            udid: id,
            serial: crate::wire::hex::upper(&serial),
            product: "MacBookPro18,3".into(),
            os_version: Some(OsVersion::new(14, 4, 0)),
            build: Some("23E214".into()),
            identity: None,
            activation: None,
        }
    }

    /// The device channel.
    pub fn channel(&self) -> Channel {
        Channel::device(self.udid.clone())
    }

    /// Verified attributes presenting `challenge`.
    pub fn attributes(&self, challenge: &Secret) -> VerifiedAttributes {
        VerifiedAttributes {
            udid: self.udid.clone(),
            serial: self.serial.clone(),
            product: self.product.clone(),
            os_version: self.os_version,
            build: self.build.clone(),
            challenge: Some(challenge.clone()),
            phase: AttributesPhase::DeviceIdentity,
        }
    }

    /// A fresh identity as a CA would issue it (random serial and fingerprint).
    pub fn fresh_identity<R: rand_core::CryptoRng + ?Sized>(
        rng: &mut R,
        now: SystemTime,
    ) -> IssuedIdentity {
        let mut serial = vec![0u8; 16];
        rng.fill_bytes(&mut serial);
        if let Some(first) = serial.first_mut() {
            *first &= 0x7f;
        }
        let mut fp = [0u8; 32];
        rng.fill_bytes(&mut fp);
        IssuedIdentity {
            serial,
            fingerprint: CertFingerprint(fp),
            not_after: now + std::time::Duration::from_secs(365 * 86400),
            certificate: Vec::new(),
        }
    }

    /// A check-in from this device's identity.
    pub fn checkin(&self, message: CheckinMessage) -> CheckinEvent {
        CheckinEvent {
            identity: self.fingerprint(),
            channel: self.channel(),
            message,
        }
    }

    /// A report from this device's identity.
    pub fn report(&self, status: ReportStatus, uuid: Option<CommandUuid>) -> ReportEvent {
        ReportEvent {
            identity: self.fingerprint(),
            channel: self.channel(),
            report: Report::Status {
                status,
                command_uuid: uuid,
                error_chain: Vec::new(),
                body: format!("{status:?}").into_bytes(),
            },
        }
    }

    /// The push target this device announces in `TokenUpdate`.
    pub fn push_target(&self) -> PushTarget {
        PushTarget {
            topic: "com.apple.mgmt.External.test".into(),
            token: self.udid.as_bytes().to_vec(),
            push_magic: format!("magic-{}", self.udid),
        }
    }

    fn fingerprint(&self) -> CertFingerprint {
        self.identity
            .as_ref()
            .map(|i| i.fingerprint)
            .unwrap_or(CertFingerprint([0; 32]))
    }

    /// Walk all thirteen steps with `login`'s credentials at `tenant`,
    /// acknowledging every command. Returns the events in order.
    pub fn activate<S: Store, D: Directory, P: PushSender, R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        engine: &Engine<S, D, P>,
        tenant: &TenantId,
        login: &LoginAttempt,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Vec<Event>, ServiceError> {
        let mut events = Vec::new();
        let login = engine.login(tenant, login, now, rng)?;
        events.extend(login.events);
        let id = login.value.activation;
        self.activation = Some(id.clone());
        let challenge = engine.request_activation(tenant, &id, true, None, now, rng)?;
        events.extend(challenge.events);
        let grant =
            engine.device_attributes(tenant, self.attributes(&challenge.value), now, rng)?;
        events.extend(grant.events);
        let scep = engine.authorize_scep(tenant, &grant.value.scep_challenge, now)?;
        events.extend(scep.events);
        let identity = Self::fresh_identity(rng, now);
        self.identity = Some(identity.clone());
        events.extend(
            engine
                .certificate_issued(tenant, &id, identity, now)?
                .events,
        );
        let auth = engine.checkin(
            tenant,
            self.checkin(CheckinMessage::Authenticate {
                topic: self.push_target().topic,
                serial: Some(self.serial.clone()),
            }),
            now,
            |_| Vec::new(),
        )?;
        events.extend(auth.events);
        let config = placeholder_configuration(rng);
        let token = engine.checkin(
            tenant,
            self.checkin(CheckinMessage::TokenUpdate {
                push: self.push_target(),
                awaiting_configuration: None,
            }),
            now,
            move |_| config,
        )?;
        events.extend(token.events);
        let mut reply = engine.connect(tenant, self.report(ReportStatus::Idle, None), now)?;
        events.extend(std::mem::take(&mut reply.events));
        while let Some(cmd) = reply.value {
            reply = engine.connect(
                tenant,
                self.report(ReportStatus::Acknowledged, Some(cmd.uuid)),
                now,
            )?;
            events.extend(std::mem::take(&mut reply.events));
        }
        Ok(events)
    }
}
