//! [`MdmService`]: the HTTP driver for `ServerURL`/`CheckInURL` (steps 9–13)
//! and the initial configuration it queues at step 10.

use std::time::SystemTime;

use crate::activation::{
    ActivationError, AttributesPhase, Channel, CheckinEvent, CheckinMessage, CommandUuid, Report,
    ReportEvent, Secret, TenantId, VerifiedAttributes,
};
use crate::store::{Directory, PushSender, Store};

use super::{Engine, EnrollmentGrant, Event, NewCommand, Outcome, ServiceError};

/// The commands queued at step 10 as the initial configuration (step 12):
/// a `DeviceInformation` query set, `SecurityInfo`, `ProfileList`, then one
/// `InstallProfile` per caller profile (already signed, as the device should
/// install it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InitialConfiguration {
    /// `DeviceInformation` `Queries`.
    pub queries: Vec<String>,
    /// `.mobileconfig` bytes (signed) to install, in order.
    pub profiles: Vec<Vec<u8>>,
}

impl Default for InitialConfiguration {
    fn default() -> Self {
        Self {
            queries: [
                "UDID",
                "DeviceName",
                "OSVersion",
                "BuildVersion",
                "ModelName",
                "Model",
                "ProductName",
                "SerialNumber",
                "IsAppleSilicon",
                "Languages",
                "Locales",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            profiles: Vec::new(),
        }
    }
}

impl InitialConfiguration {
    /// The commands, with fresh `CommandUUID`s from `rng`; refused when a
    /// query holds U+0000, which a plist body cannot carry.
    pub fn commands<R: rand_core::CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<Vec<NewCommand>, crate::wire::plist::PlistError> {
        use crate::mdm::command::Command;
        let mut out = Vec::new();
        let mut push = |uuid: CommandUuid,
                        command: &dyn Fn(String) -> Command|
         -> Result<(), crate::wire::plist::PlistError> {
            let cmd = command(uuid.as_str().to_owned());
            out.push(NewCommand {
                uuid,
                request_type: cmd.request_type.clone(),
                body: cmd.encode()?,
            });
            Ok(())
        };
        push(CommandUuid::random(rng), &|u| {
            Command::device_information(u, &self.queries)
        })?;
        push(CommandUuid::random(rng), &Command::security_info)?;
        push(CommandUuid::random(rng), &Command::profile_list)?;
        for p in &self.profiles {
            push(CommandUuid::random(rng), &|u| {
                Command::install_profile(u, p.clone())
            })?;
        }
        Ok(out)
    }
}

/// The HTTP driver for `ServerURL`/`CheckInURL` (steps 9–13): one call per
/// request, using the real Mdm-Signature / TLS identity check and the real
/// check-in and report decoders, over an [`Engine`].
#[derive(Debug)]
pub struct MdmService<S, D, P> {
    engine: Engine<S, D, P>,
    attributes: crate::cms::DeviceAttributesVerifier,
    identity: crate::cms::IdentityOptions,
    limits: crate::wire::Limits,
    initial: InitialConfiguration,
    declarations: Option<Declarative>,
}

/// Declarative management for [`MdmService::with_declarations`].
struct Declarative {
    store: std::sync::Arc<dyn crate::store::DeclarationStore>,
    initial: crate::ddm::DeclarationSet,
}

impl std::fmt::Debug for Declarative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declarative")
            .field("initial", &self.initial.len())
            .finish_non_exhaustive()
    }
}

impl<S: Store, D: Directory, P: PushSender> MdmService<S, D, P> {
    /// A driver over `engine` queuing `initial` at step 10.
    pub fn new(engine: Engine<S, D, P>, initial: InitialConfiguration) -> Self {
        Self {
            engine,
            attributes: crate::cms::DeviceAttributesVerifier::new(crate::cms::TrustAnchors::new()),
            identity: crate::cms::IdentityOptions::default(),
            limits: crate::wire::Limits::default(),
            initial,
            declarations: None,
        }
    }

    /// Serve declarative device management from `store`: answer the
    /// `DeclarativeManagement` check-ins, and, when `initial` is not empty,
    /// give each device channel that set at its first `TokenUpdate` with a
    /// `DeclarativeManagement` command in the initial configuration, so the
    /// activation completes (step 13) only once the device reports every
    /// initial declaration applied. Change a set later with
    /// [`Engine::set_declarations`].
    pub fn with_declarations(
        mut self,
        store: std::sync::Arc<dyn crate::store::DeclarationStore>,
        initial: crate::ddm::DeclarationSet,
    ) -> Self {
        self.declarations = Some(Declarative { store, initial });
        self
    }

    /// The declaration store given to [`Self::with_declarations`].
    pub fn declaration_store(&self) -> Option<&dyn crate::store::DeclarationStore> {
        self.declarations.as_ref().map(|d| &*d.store)
    }

    /// Read forwarded client certificates from this header (RFC 9440
    /// `Client-Cert` or nginx's escaped PEM) when behind a TLS proxy.
    pub fn with_identity_options(mut self, options: crate::cms::IdentityOptions) -> Self {
        self.identity = options;
        self
    }

    /// Verify device attributes with `verifier` (to trust a test device CA
    /// or your SCEP CA for phase 3) instead of Apple's device CA alone.
    pub fn with_attributes_verifier(
        mut self,
        verifier: crate::cms::DeviceAttributesVerifier,
    ) -> Self {
        self.attributes = verifier;
        self
    }

    /// Steps 5–6 at `tenant`'s Profile Service URL: verify the CMS signature
    /// and signer issuer of the attributes, then check challenge and policy.
    /// Returns what the enrollment profile needs (its SCEP challenge); the
    /// caller builds and signs the profile.
    pub fn device_attributes<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        request: &crate::http::Request,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<EnrollmentGrant>, ServiceError> {
        if request.body.len() > self.limits.max_body_bytes {
            return Err(ServiceError::BadRequest("body too large".into()));
        }
        let verified = self
            .attributes
            .verify(&request.body, Some(now))
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let a = verified.attributes;
        let required = |v: Option<String>, key: &str| {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| ServiceError::BadRequest(format!("attribute {key} missing")))
        };
        let os_version = match a.other.get("OS_VERSION") {
            Some(plist::Value::String(v)) => crate::activation::OsVersion::parse(v),
            _ => None,
        };
        let attributes = VerifiedAttributes {
            udid: required(a.udid, "UDID")?,
            serial: required(a.serial, "SERIAL")?,
            product: required(a.product, "PRODUCT")?,
            os_version,
            build: a.version,
            challenge: a.challenge.map(Secret::new),
            phase: match verified.phase {
                crate::cms::Phase::DeviceIdentity => AttributesPhase::DeviceIdentity,
                crate::cms::Phase::ScepIdentity => AttributesPhase::ScepIdentity,
            },
        };
        self.engine.device_attributes(tenant, attributes, now, rng)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<S, D, P> {
        &self.engine
    }

    /// How the device identity is read from a request.
    pub fn identity_options(&self) -> &crate::cms::IdentityOptions {
        &self.identity
    }

    /// Handle one check-in or connect request to `tenant`'s MDM endpoint.
    /// Returns the response and the events it produced. The push `Topic`
    /// is not checked; see [`Self::handle_for_topic`].
    pub fn handle<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        request: &crate::http::Request,
        now: SystemTime,
        rng: &mut R,
    ) -> (crate::http::Response, Vec<Event>) {
        self.dispatch(tenant, None, request, now, rng)
    }

    /// [`Self::handle`] for a tenant whose push topic is `topic`: an
    /// `Authenticate` or `TokenUpdate` carrying another `Topic` is refused
    /// with [`ServiceError::TopicMismatch`] (400) before anything is stored.
    pub fn handle_for_topic<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        topic: &str,
        request: &crate::http::Request,
        now: SystemTime,
        rng: &mut R,
    ) -> (crate::http::Response, Vec<Event>) {
        self.dispatch(tenant, Some(topic), request, now, rng)
    }

    fn dispatch<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        topic: Option<&str>,
        request: &crate::http::Request,
        now: SystemTime,
        rng: &mut R,
    ) -> (crate::http::Response, Vec<Event>) {
        match self.identify(request) {
            Ok(identity) => self.handle_identified(tenant, topic, request, &identity, now, rng),
            Err(response) => (response, Vec::new()),
        }
    }

    /// The size check and the one identity verification of an MDM request
    /// (the `Mdm-Signature` over the body, or the TLS/forwarded
    /// certificate): the verified identity, or the refusal to answer with
    /// (413 for an oversized body; 400, never 401, which unenrolls, for no
    /// identity or a bad signature).
    pub(crate) fn identify(
        &self,
        request: &crate::http::Request,
    ) -> Result<crate::cms::ClientIdentity, crate::http::Response> {
        use crate::http::Response;
        if request.body.len() > self.limits.max_body_bytes {
            return Err(Response::empty(413));
        }
        match crate::cms::client_identity(request, &self.identity) {
            Ok(Some(id)) => Ok(id),
            Ok(None) | Err(_) => Err(Response::empty(400)),
        }
    }

    /// [`Self::handle`] (or, with the tenant's `topic`,
    /// [`Self::handle_for_topic`]) for a request whose identity
    /// [`Self::identify`] already established (crate-internal: the identity
    /// must come from verifying this very request).
    pub(crate) fn handle_identified<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        topic: Option<&str>,
        request: &crate::http::Request,
        identity: &crate::cms::ClientIdentity,
        now: SystemTime,
        rng: &mut R,
    ) -> (crate::http::Response, Vec<Event>) {
        use crate::http::{MessageKind, classify};
        let identity =
            crate::activation::CertFingerprint(identity.certificate.sha256_fingerprint());
        let result = match classify(request) {
            MessageKind::Checkin => self.checkin(tenant, topic, identity, &request.body, now, rng),
            MessageKind::Connect | MessageKind::Other => {
                self.connect(tenant, identity, &request.body, now)
            }
        };
        match result {
            Ok(pair) => pair,
            Err(e) => (e.response(), Vec::new()),
        }
    }

    fn checkin<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        topic: Option<&str>,
        identity: crate::activation::CertFingerprint,
        body: &[u8],
        now: SystemTime,
        rng: &mut R,
    ) -> Result<(crate::http::Response, Vec<Event>), ServiceError> {
        use crate::mdm::checkin::{CheckinMessage as Wire, CheckinPayload};
        use crate::mdm::response;
        let Ok(msg) = Wire::decode(body, &self.limits) else {
            return Ok((crate::http::Response::empty(400), Vec::new()));
        };
        let channel = channel_of(&msg.channel);
        let presented = match &msg.payload {
            CheckinPayload::Authenticate(a) => Some(&a.topic),
            CheckinPayload::TokenUpdate(t) => Some(&t.topic),
            _ => None,
        };
        if let (Some(expected), Some(presented)) = (topic, presented)
            && presented != expected
        {
            return Err(ServiceError::TopicMismatch {
                expected: expected.to_owned(),
                presented: presented.clone(),
            });
        }
        let message = match msg.payload {
            CheckinPayload::Authenticate(a) => CheckinMessage::Authenticate {
                topic: a.topic,
                serial: a.serial_number,
            },
            CheckinPayload::TokenUpdate(t) => CheckinMessage::TokenUpdate {
                push: crate::activation::PushTarget {
                    topic: t.topic,
                    token: t.token,
                    push_magic: t.push_magic,
                },
                awaiting_configuration: t.awaiting_configuration,
            },
            CheckinPayload::CheckOut(_) => CheckinMessage::CheckOut,
            // Managing network users is declined (410), as peers do.
            CheckinPayload::UserAuthenticate(_) => {
                return Ok((response::decline_user(), Vec::new()));
            }
            // No bootstrap token is stored: the empty 200 of
            // `response::bootstrap_token(None)`.
            CheckinPayload::GetBootstrapToken(_) => {
                return Ok((response::ok(), Vec::new()));
            }
            CheckinPayload::DeclarativeManagement(d) => {
                let Some(ddm) = &self.declarations else {
                    return Ok((crate::http::Response::empty(404), Vec::new()));
                };
                let out = self.engine.declarative_management(
                    &*ddm.store,
                    tenant,
                    &identity,
                    &channel,
                    &d.endpoint,
                    d.data.as_deref(),
                    now,
                    &self.limits,
                )?;
                let response = match out.value {
                    crate::ddm::DdmAnswer::Json(body) => {
                        crate::http::Response::with_body(200, crate::http::media_type::JSON, body)
                    }
                    crate::ddm::DdmAnswer::NotFound => crate::http::Response::empty(404),
                    _ => response::ok(),
                };
                return Ok((response, out.events));
            }
            _ => return Ok((response::ok(), Vec::new())),
        };
        let event = CheckinEvent {
            identity,
            channel,
            message,
        };
        // Built before the engine runs: a configuration that cannot be
        // encoded refuses the TokenUpdate before anything is stored.
        let initial = match &event.message {
            CheckinMessage::TokenUpdate { .. } if event.channel.is_device() => {
                let mut commands = self
                    .initial
                    .commands(rng)
                    .map_err(|e| ServiceError::Internal(format!("initial configuration: {e}")))?;
                if let Some(ddm) = self.declarations.as_ref().filter(|d| !d.initial.is_empty()) {
                    let command = self.engine.initial_declarations(
                        &*ddm.store,
                        tenant,
                        &event.channel,
                        &ddm.initial,
                        now,
                        rng,
                    )?;
                    commands.push(NewCommand {
                        uuid: CommandUuid::new(command.command_uuid.clone())?,
                        request_type: command.request_type.clone(),
                        body: command.encode().map_err(|e| {
                            ServiceError::Internal(format!("initial configuration: {e}"))
                        })?,
                    });
                }
                commands
            }
            _ => Vec::new(),
        };
        let out = self.engine.checkin(tenant, event, now, |_| initial)?;
        Ok((response::ok(), out.events))
    }

    fn connect(
        &self,
        tenant: &TenantId,
        identity: crate::activation::CertFingerprint,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(crate::http::Response, Vec<Event>), ServiceError> {
        use crate::activation::{ErrorInfo, ReportStatus};
        use crate::mdm::report::{Report as Wire, Status};
        let (channel, report) = match Wire::decode(body, &self.limits) {
            Ok(r) => {
                let status = match r.status {
                    Status::Idle => ReportStatus::Idle,
                    Status::Acknowledged => ReportStatus::Acknowledged,
                    Status::Error => ReportStatus::Error,
                    Status::CommandFormatError => ReportStatus::CommandFormatError,
                    Status::NotNow => ReportStatus::NotNow,
                };
                let error_chain = r
                    .error_chain
                    .iter()
                    .map(|e| ErrorInfo {
                        code: e.error_code.unwrap_or_default(),
                        domain: e.error_domain.clone().unwrap_or_default(),
                        description: e.localized_description.clone().unwrap_or_default(),
                    })
                    .collect();
                (
                    channel_of(&r.channel),
                    Report::Status {
                        status,
                        command_uuid: r.command_uuid.map(CommandUuid::new).transpose()?,
                        error_chain,
                        body: body.to_vec(),
                    },
                )
            }
            Err(e) => {
                // Undecodable: it answers the command last sent to the device
                // the identity is bound to (device channel).
                let binding = self
                    .engine
                    .store()
                    .identity(&identity)?
                    .ok_or(ActivationError::UnknownIdentity)?;
                (
                    Channel::device(binding.device_id),
                    Report::Undecodable {
                        reason: e.to_string(),
                    },
                )
            }
        };
        let event = ReportEvent {
            identity,
            channel,
            report,
        };
        let out = match self.engine.connect(tenant, event.clone(), now) {
            // A report for a command we no longer hold: log and carry on with
            // the next command (protocol §2.1), as if the device were idle
            // on this connection.
            Err(ServiceError::Activation(ActivationError::UnknownCommand(_))) => {
                let idle = ReportEvent {
                    report: Report::Status {
                        status: ReportStatus::Idle,
                        command_uuid: None,
                        error_chain: Vec::new(),
                        body: Vec::new(),
                    },
                    ..event
                };
                self.engine.connect(tenant, idle, now)?
            }
            other => other?,
        };
        let response = match out.value {
            // The store, the engine, the state machine and the response
            // share one buffer: delivering a command copies no body.
            Some(cmd) => {
                crate::http::Response::with_body(200, crate::http::media_type::XML, cmd.body)
            }
            None => crate::http::Response::empty(200),
        };
        Ok((response, out.events))
    }
}

fn channel_of(channel: &crate::mdm::channel::Channel) -> Channel {
    Channel {
        device_id: channel.device_id().to_owned(),
        user_id: channel.user_id().map(str::to_owned),
    }
}
