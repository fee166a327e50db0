//! The HTTP driver for the enrollment endpoints (steps 2–8) and the router
//! over every per-tenant URL.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Endpoint, Event, MdmService, Outcome, Route, RouteError, ServiceError};
use crate::activation::{
    Activation, ActivationError, ActivationId, CertFingerprint, IssuedIdentity, LoginAttempt,
    Secret, TenantId,
};
use crate::cms::Certificate;
use crate::crypto::Signer;
use crate::http::{Method, Request, Response};
use crate::profile::{
    AccessRights, CertificatePayload, MdmPayload, Payload, PayloadUuid, Profile, ProfileService,
    ScepPayload, Subject, ValidationOptions,
};
use crate::scep::{
    CertificateRequest, Challenge, ChallengeVerdict, ChallengeVerifier, FailInfo, IssuanceRecord,
    Issued, RequestFingerprint, ScepOutcome, ScepResponder,
};
use crate::store::{Directory, PushSender, Store, StoreError};

/// What the enrollment endpoints need besides the engine: where the server
/// is reachable, the key that signs profiles, the SCEP CA and the push topic.
#[derive(Clone)]
#[non_exhaustive]
pub struct EnrollmentConfig {
    /// Public base URL, without a trailing slash (`https://mdm.example.com`).
    pub base_url: String,
    /// Route prefix under the base URL (`/t` gives `/t/<tenant>/mdm`; may be empty).
    pub prefix: String,
    /// A single-tenant layout with paths of the caller's choosing, used
    /// instead of `<prefix>/<tenant>/<endpoint>` (the per-tenant layout
    /// still routes when this is set).
    pub single_tenant: Option<SingleTenantPaths>,
    /// The APNs push topic (`com.apple.mgmt.External.…`).
    pub topic: String,
    /// Reverse-DNS prefix of every `PayloadIdentifier` the server writes.
    pub identifier: String,
    /// `PayloadOrganization` of the profiles.
    pub organization: Option<String>,
    /// The key signing profiles.
    pub profile_signer: Arc<dyn Signer>,
    /// Its certificate.
    pub profile_certificate: Certificate,
    /// The certificates above it (intermediates first).
    pub profile_chain: Vec<Certificate>,
    /// The SCEP CA issuing device identities (its certificate is the
    /// enrollment profile's trust payload).
    pub scep: ScepResponder,
    /// Lifetime of issued identity certificates.
    pub identity_lifetime: Duration,
    /// When and how identities are renewed before they expire.
    pub renewal: RenewalPolicy,
    /// Profile validation (allow `http://` only in tests).
    pub validation: ValidationOptions,
    /// A fixed SCEP challenge accepted beside the one-time ones, for
    /// non-device SCEP clients (interop tests, lab equipment). Certificates
    /// issued under it are bound to no activation, so they cannot check in;
    /// device activations always get their own one-time challenge. Off
    /// (`None`) by default: anyone who learns it gets certificates.
    pub static_scep_challenge: Option<Secret>,
}

/// When and how an enrollment's MDM identity is renewed before it expires
/// (see [`crate::activation::IdentityRenewal`]). Pure arithmetic over plain
/// values; the engine asks [`Self::action`] on the device's `Idle` and in
/// the sweep.
///
/// A renewal is due once the identity expires within [`Self::renew_before`].
/// One attempt is in flight per enrollment: an `InstallProfile` with the
/// enrollment profile and a fresh one-time SCEP challenge that expires after
/// [`Self::challenge_ttl`]. An attempt answered `Error`, `CommandFormatError`
/// or `NotNow` is retried [`Self::retry_delay`] later, one not finished
/// within [`Self::answer_timeout`] is retried then, each time with a fresh
/// challenge and a push, until [`Self::max_attempts`] attempts were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenewalPolicy {
    /// Renew when the identity expires within this (default 60 days).
    pub renew_before: Duration,
    /// Lifetime of a renewal's SCEP challenge (default 1 day).
    pub challenge_ttl: Duration,
    /// An attempt whose certificate was not first seen within this is
    /// retried (default 1 day).
    pub answer_timeout: Duration,
    /// Delay before retrying an attempt the device refused or deferred
    /// (default 1 hour).
    pub retry_delay: Duration,
    /// Attempts before giving up (default 10; the giving up is an event).
    pub max_attempts: u32,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        Self::new(Duration::from_secs(60 * 86400))
    }
}

/// What [`RenewalPolicy::action`] says to do about one enrollment now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenewalAction {
    /// The identity does not expire within the renewal window.
    NotDue,
    /// Queue attempt `attempt` (1 for the first) and push.
    Start {
        /// The attempt's number.
        attempt: u32,
    },
    /// An attempt is in flight; wait.
    InFlight,
    /// The attempt budget just ran out: record it and report it.
    GiveUp,
    /// The budget ran out earlier; nothing more is tried.
    GivenUp,
}

impl RenewalPolicy {
    /// Renew `renew_before` ahead of expiry; the other settings at their
    /// defaults (1-day challenge and answer timeout, 1-hour retry delay, 10
    /// attempts).
    pub fn new(renew_before: Duration) -> Self {
        Self {
            renew_before,
            challenge_ttl: Duration::from_secs(86400),
            answer_timeout: Duration::from_secs(86400),
            retry_delay: Duration::from_secs(3600),
            max_attempts: 10,
        }
    }

    /// The same policy with this retry tuning.
    pub fn with_retries(
        mut self,
        answer_timeout: Duration,
        retry_delay: Duration,
        max_attempts: u32,
    ) -> Self {
        self.answer_timeout = answer_timeout;
        self.retry_delay = retry_delay;
        self.max_attempts = max_attempts;
        self
    }

    /// The same policy with renewal challenges living `ttl`.
    pub fn with_challenge_ttl(mut self, ttl: Duration) -> Self {
        self.challenge_ttl = ttl;
        self
    }

    /// Whether an identity ending at `not_after` is within the renewal
    /// window at `now` (an expired one is).
    pub fn is_due(&self, not_after: SystemTime, now: SystemTime) -> bool {
        now.checked_add(self.renew_before)
            .is_none_or(|horizon| horizon >= not_after)
    }

    /// Where `activation`'s identity stands at `now`.
    pub fn status(&self, activation: &Activation, now: SystemTime) -> RenewalStatus {
        let Some(identity) = &activation.identity else {
            return RenewalStatus::NotDue;
        };
        if now >= identity.not_after {
            return RenewalStatus::Expired;
        }
        match (
            self.action(identity.not_after, activation.renewal.as_ref(), now),
            &activation.renewal,
        ) {
            (RenewalAction::NotDue, _) => RenewalStatus::NotDue,
            (RenewalAction::GiveUp | RenewalAction::GivenUp, _) => RenewalStatus::GivenUp,
            (RenewalAction::InFlight, Some(r)) => RenewalStatus::InFlight { attempt: r.attempt },
            _ => RenewalStatus::Due,
        }
    }

    /// What to do at `now` for an identity ending at `not_after` whose
    /// renewal state is `renewal`.
    pub fn action(
        &self,
        not_after: SystemTime,
        renewal: Option<&crate::activation::IdentityRenewal>,
        now: SystemTime,
    ) -> RenewalAction {
        let Some(r) = renewal else {
            return if self.is_due(not_after, now) {
                RenewalAction::Start { attempt: 1 }
            } else {
                RenewalAction::NotDue
            };
        };
        if r.exhausted {
            return RenewalAction::GivenUp;
        }
        let retry_at = match r.failed_at {
            Some(failed) => failed.checked_add(self.retry_delay),
            None => r.queued.checked_add(self.answer_timeout),
        };
        if retry_at.is_none_or(|t| now < t) {
            return RenewalAction::InFlight;
        }
        if r.attempt >= self.max_attempts {
            RenewalAction::GiveUp
        } else {
            RenewalAction::Start {
                attempt: r.attempt.saturating_add(1),
            }
        }
    }
}

/// Where an enrollment's identity stands ([`RenewalPolicy::status`]), for
/// listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenewalStatus {
    /// No identity yet, or it does not expire within the renewal window.
    NotDue,
    /// Within the renewal window, no attempt queued yet (or one is due again).
    Due,
    /// Attempt `attempt` is in flight.
    InFlight {
        /// The attempt, from 1.
        attempt: u32,
    },
    /// The attempt budget ran out.
    GivenUp,
    /// The identity has expired.
    Expired,
}

impl RenewalStatus {
    /// A short lowercase name (`not_due`, `due`, `in_flight`, `given_up`, `expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotDue => "not_due",
            Self::Due => "due",
            Self::InFlight { .. } => "in_flight",
            Self::GivenUp => "given_up",
            Self::Expired => "expired",
        }
    }
}

/// What [`EnrollmentService::sweep_renewals`] did, by device id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenewalSweep {
    /// Renewal attempts queued (and pushed): device and attempt.
    pub queued: Vec<(String, u32)>,
    /// Devices whose renewal is in flight.
    pub in_flight: Vec<String>,
    /// Devices whose renewal budget ran out (now or earlier).
    pub given_up: Vec<String>,
    /// Devices whose identity has expired.
    pub expired: Vec<String>,
    /// Devices the sweep could not handle, with the reason (a lost race is
    /// retried by the next sweep).
    pub failed: Vec<(String, String)>,
}

/// Paths (no scheme or host) of one tenant's endpoints on a server that
/// serves a single tenant, e.g. `/enroll`, `/scep`, `/mdm/checkin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleTenantPaths {
    /// The tenant every request on these paths belongs to.
    pub tenant: TenantId,
    /// Steps 2–4: the self-service form.
    pub self_service: String,
    /// Steps 5–6: the Profile Service `URL` (signed device attributes).
    pub profile_service: String,
    /// Steps 7–8: the SCEP `URL`.
    pub scep: String,
    /// Steps 11–13: the MDM payload's `ServerURL`.
    pub server: String,
    /// Steps 9–10: the MDM payload's `CheckInURL`.
    pub check_in: String,
}

impl SingleTenantPaths {
    fn path(&self, endpoint: Endpoint) -> &str {
        match endpoint {
            Endpoint::Enroll => &self.self_service,
            Endpoint::ProfileService => &self.profile_service,
            Endpoint::Scep => &self.scep,
            Endpoint::Mdm => &self.server,
        }
    }

    /// The endpoint served at `path`, if any (`CheckInURL` is [`Endpoint::Mdm`]).
    fn route(&self, path: &str) -> Option<Route> {
        let path = path.trim_end_matches('/');
        let endpoint = if path == self.check_in.trim_end_matches('/') {
            Endpoint::Mdm
        } else {
            [
                Endpoint::Enroll,
                Endpoint::ProfileService,
                Endpoint::Scep,
                Endpoint::Mdm,
            ]
            .into_iter()
            .find(|e| self.path(*e).trim_end_matches('/') == path)?
        };
        Some(Route {
            tenant: self.tenant.clone(),
            endpoint,
        })
    }
}

impl std::fmt::Debug for EnrollmentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentConfig")
            .field("base_url", &self.base_url)
            .field("prefix", &self.prefix)
            .field("single_tenant", &self.single_tenant)
            .field("topic", &self.topic)
            .field("identifier", &self.identifier)
            .field(
                "profile_certificate",
                &self.profile_certificate.subject_string(),
            )
            .field("scep", &self.scep)
            .field(
                "static_scep_challenge",
                &self.static_scep_challenge.is_some(),
            )
            .finish_non_exhaustive()
    }
}

impl EnrollmentConfig {
    /// A configuration with no route prefix, identifier `com.example.mdm`,
    /// one-year identities and `https://`-only validation.
    pub fn new(
        base_url: impl Into<String>,
        topic: impl Into<String>,
        profile_signer: Arc<dyn Signer>,
        profile_certificate: Certificate,
        scep: ScepResponder,
    ) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            prefix: String::new(),
            single_tenant: None,
            topic: topic.into(),
            identifier: "com.example.mdm".into(),
            organization: None,
            profile_signer,
            profile_certificate,
            profile_chain: Vec::new(),
            scep,
            identity_lifetime: Duration::from_secs(365 * 86400),
            renewal: RenewalPolicy::default(),
            validation: ValidationOptions::default(),
            static_scep_challenge: None,
        }
    }

    /// The absolute URL of `tenant`'s `endpoint` (for [`Endpoint::Mdm`],
    /// the `ServerURL`).
    pub fn url(&self, tenant: &TenantId, endpoint: Endpoint) -> String {
        match &self.single_tenant {
            Some(paths) if paths.tenant == *tenant => {
                format!("{}{}", self.base_url, paths.path(endpoint))
            }
            _ => format!(
                "{}{}",
                self.base_url,
                Route::path(&self.prefix, tenant, endpoint)
            ),
        }
    }

    /// The absolute `CheckInURL` of `tenant` (the `ServerURL` unless a
    /// single-tenant layout names another path).
    pub fn check_in_url(&self, tenant: &TenantId) -> String {
        match &self.single_tenant {
            Some(paths) if paths.tenant == *tenant => {
                format!("{}{}", self.base_url, paths.check_in)
            }
            _ => self.url(tenant, Endpoint::Mdm),
        }
    }

    /// Resolve a request path: the single-tenant paths first, then
    /// `<prefix>/<tenant>/<endpoint>`.
    pub fn route(&self, path: &str) -> Result<Route, RouteError> {
        if let Some(route) = self.single_tenant.as_ref().and_then(|p| p.route(path)) {
            return Ok(route);
        }
        Route::parse(&self.prefix, path)
    }
}

/// The complete HTTP driver: one call per request for every step.
///
/// | URL | Steps | Method |
/// |---|---|---|
/// | `POST <prefix>/<tenant>/enroll` (form `username`, `password`, `domain`, optional `accept_notice`, `language`) | 2–4 | [`Self::self_service`] |
/// | `POST <prefix>/<tenant>/profile-service` (signed attributes) | 5–6 | [`Self::profile_service`] |
/// | `GET/POST <prefix>/<tenant>/scep?operation=…` | 7–8 | [`Self::scep`] |
/// | `PUT <prefix>/<tenant>/mdm` (check-in and connect) | 9–13 | [`MdmService::handle`] |
///
/// [`Self::handle`] routes a request to the right one. Every call is
/// synchronous and IO-free apart from the store; the RSA operations (profile
/// signing, SCEP decryption, issuing) happen inside the call, so run it on a
/// blocking pool from an async server.
#[derive(Debug)]
pub struct EnrollmentService<S, D, P> {
    mdm: MdmService<S, D, P>,
    config: EnrollmentConfig,
    tenants: Option<Box<dyn super::TenantConfigs>>,
}

/// Fields of the self-service form (steps 2–3).
#[derive(Debug, Default)]
struct Form {
    username: Option<String>,
    password: Option<String>,
    domain: Option<String>,
    accept_notice: bool,
    language: Option<String>,
}

/// Largest self-service form body (credentials and a few flags).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A BCP 47 language tag as far as it matters here: 1–35 ASCII letters,
/// digits and hyphens (`en`, `fr-CA`, `zh-Hant-TW`).
fn is_language_tag(tag: &str) -> bool {
    (1..=35).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Form {
    fn parse(body: &[u8]) -> Result<Self, ServiceError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| ServiceError::BadRequest("form is not UTF-8".into()))?;
        let mut form = Self::default();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                crate::http::percent_decode(&s.replace('+', " "))
                    .ok_or_else(|| ServiceError::BadRequest("malformed form escape".into()))
            };
            let (k, v) = (decode(k)?, decode(v)?);
            match k.as_str() {
                "username" => form.username = Some(v),
                "password" => form.password = Some(v),
                "domain" => form.domain = Some(v),
                "accept_notice" => {
                    form.accept_notice = matches!(v.as_str(), "1" | "true" | "on" | "yes")
                }
                "language" if v.is_empty() => {}
                "language" if is_language_tag(&v) => form.language = Some(v),
                "language" => {
                    return Err(ServiceError::BadRequest(
                        "language is not a language tag".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(form)
    }
}

impl<S: Store, D: Directory, P: PushSender> EnrollmentService<S, D, P> {
    /// The driver over `mdm` (engine, attribute verifier, initial
    /// configuration) with `config`.
    pub fn new(mdm: MdmService<S, D, P>, config: EnrollmentConfig) -> Self {
        Self {
            mdm,
            config,
            tenants: None,
        }
    }

    /// The driver over `mdm` with a configuration per tenant: `routing`
    /// resolves request paths (its base URL, prefix and single-tenant
    /// paths); everything else (topic, SCEP CA/RA, profile signer, URLs in
    /// the profiles, identity lifetime, renewal policy) comes from
    /// `tenants` for the request's tenant. A tenant `tenants` does not
    /// serve is [`ServiceError::UnknownTenant`] (404).
    pub fn with_tenants(
        mdm: MdmService<S, D, P>,
        routing: EnrollmentConfig,
        tenants: impl super::TenantConfigs + 'static,
    ) -> Self {
        Self {
            mdm,
            config: routing,
            tenants: Some(Box::new(tenants)),
        }
    }

    /// The configuration serving `tenant`: its entry in the
    /// [`TenantConfigs`](super::TenantConfigs) given to
    /// [`Self::with_tenants`], or else [`Self::config`].
    pub fn tenant_config(&self, tenant: &TenantId) -> Result<&EnrollmentConfig, ServiceError> {
        match &self.tenants {
            None => Ok(&self.config),
            Some(t) => t
                .config(tenant)
                .ok_or_else(|| ServiceError::UnknownTenant(tenant.clone())),
        }
    }

    /// The check-in/connect driver.
    pub fn mdm(&self) -> &MdmService<S, D, P> {
        &self.mdm
    }

    /// The engine.
    pub fn engine(&self) -> &super::Engine<S, D, P> {
        self.mdm.engine()
    }

    /// The configuration given to [`Self::new`] (with
    /// [`Self::with_tenants`], the routing configuration).
    pub fn config(&self) -> &EnrollmentConfig {
        &self.config
    }

    /// The configuration, to change (e.g. the identity lifetime or the
    /// renewal policy) before serving.
    pub fn config_mut(&mut self) -> &mut EnrollmentConfig {
        &mut self.config
    }

    /// Route `request` by its path (`<prefix>/<tenant>/<endpoint>`) and
    /// handle it. Unknown paths are 404; refusals carry
    /// [`ServiceError::http_status`].
    pub fn handle<R: rand_core::CryptoRng + ?Sized>(
        &self,
        request: &Request,
        now: SystemTime,
        rng: &mut R,
    ) -> (Response, Vec<Event>) {
        let route = match self.config.route(&request.path) {
            Ok(r) => r,
            Err(RouteError::NotFound) => return (Response::empty(404), Vec::new()),
            Err(RouteError::Tenant(_)) => return (Response::empty(400), Vec::new()),
        };
        let tenant = &route.tenant;
        let topic = match self.tenant_config(tenant) {
            Ok(c) => &c.topic,
            Err(e) => return (e.response(), Vec::new()),
        };
        let result = match route.endpoint {
            Endpoint::Enroll => self.self_service(tenant, request, now, rng),
            Endpoint::ProfileService => self.profile_service(tenant, request, now, rng),
            Endpoint::Scep => return self.scep(tenant, request, now, rng),
            Endpoint::Mdm => {
                let identity = match self.mdm.identify(request) {
                    Ok(identity) => identity,
                    Err(response) => return (response, Vec::new()),
                };
                let mut events = self.renew_on_connect(tenant, request, &identity, now, rng);
                let (response, more) =
                    self.mdm
                        .handle_identified(tenant, Some(topic), request, &identity, now, rng);
                events.extend(more);
                return (response, events);
            }
        };
        match result {
            Ok(out) => (out.value, out.events),
            Err(e) => (e.response(), Vec::new()),
        }
    }

    /// Steps 2–4: the self-service form (`application/x-www-form-urlencoded`
    /// `username`, `password`, `domain`; `accept_notice` when the user's
    /// policy has a notice; optional `language`, a language tag; at most
    /// 16 KiB). Logs in, requests the
    /// activation and answers with the signed Profile Service profile
    /// carrying the one-time challenge. Wrong credentials are
    /// [`ActivationError::BadCredentials`] (403) and store nothing.
    pub fn self_service<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        request: &Request,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<Response>, ServiceError> {
        let c = self.tenant_config(tenant)?;
        if request.method != Method::Post {
            return Err(ServiceError::BadRequest("self-service expects POST".into()));
        }
        if request.body.len() > MAX_FORM_BYTES {
            return Err(ServiceError::BadRequest("form body too large".into()));
        }
        let form = Form::parse(&request.body)?;
        let attempt = LoginAttempt {
            username: form.username.ok_or(ActivationError::BadCredentials)?,
            password: Secret::new(form.password.ok_or(ActivationError::BadCredentials)?),
            domain: form.domain.unwrap_or_default(),
        };
        let engine = self.mdm.engine();
        let login = engine.login(tenant, &attempt, now, rng)?;
        let mut events = login.events;
        let challenge = engine.request_activation(
            tenant,
            &login.value.activation,
            form.accept_notice,
            form.language,
            now,
            rng,
        )?;
        events.extend(challenge.events);
        let service = ProfileService::new(
            c.url(tenant, Endpoint::ProfileService),
            ProfileService::DEFAULT_ATTRIBUTES,
            Some(challenge.value.expose().to_owned()),
        );
        let mut profile = Profile::profile_service(
            format!("{}.profile-service", c.identifier),
            PayloadUuid::random(rng).to_string(),
            service,
        )
        .with_display_name("Device Enrollment")
        .with_description("Sends this Mac's identifying attributes to enroll it.");
        if let Some(org) = &c.organization {
            profile = profile.with_organization(org.clone());
        }
        Ok(Outcome {
            value: sign(c, &profile)?,
            events,
        })
    }

    /// Steps 5–6: the device's signed attributes at the Profile Service URL;
    /// answers with the signed enrollment profile: a `com.apple.security.root`
    /// payload with the SCEP CA, a SCEP payload with the activation's
    /// one-time SCEP challenge, and the `com.apple.mdm` payload (ServerURL =
    /// CheckInURL = the tenant's MDM URL, `SignMessage`, identity = the SCEP
    /// payload).
    pub fn profile_service<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        request: &Request,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<Response>, ServiceError> {
        let c = self.tenant_config(tenant)?;
        let grant = self.mdm.device_attributes(tenant, request, now, rng)?;
        let profile = self.enrollment_profile(
            c,
            tenant,
            &grant.value.activation,
            &grant.value.scep_challenge,
            rng,
        );
        Ok(Outcome {
            value: sign(c, &profile)?,
            events: grant.events,
        })
    }

    /// The enrollment profile of `activation` with SCEP `challenge`: the
    /// same root `PayloadIdentifier`, `Topic`, `ServerURL` and `CheckInURL`
    /// every time, so that a renewal replaces the installed one.
    fn enrollment_profile<R: rand_core::CryptoRng + ?Sized>(
        &self,
        c: &EnrollmentConfig,
        tenant: &TenantId,
        activation: &ActivationId,
        challenge: &Secret,
        rng: &mut R,
    ) -> Profile {
        let scep_uuid = PayloadUuid::random(rng).to_string();
        let mut scep = ScepPayload::new(c.url(tenant, Endpoint::Scep));
        scep.challenge = Some(challenge.expose().to_owned());
        scep.subject = Some(
            Subject::new()
                .with("O", tenant.as_str())
                .with("CN", activation.as_str()),
        );
        scep.key_size = Some(2048);
        scep.key_type = Some("RSA".into());
        scep.key_usage = Some(5);
        let mut mdm = MdmPayload::new(
            c.url(tenant, Endpoint::Mdm),
            c.topic.clone(),
            scep_uuid.clone(),
        );
        mdm.check_in_url = Some(c.check_in_url(tenant));
        mdm.sign_message = Some(true);
        mdm.access_rights = Some(AccessRights::ALL);
        mdm.check_out_when_removed = Some(true);
        let id = &c.identifier;
        let payloads = vec![
            Payload::new(
                format!("{id}.ca"),
                PayloadUuid::random(rng).to_string(),
                CertificatePayload::root(c.scep.ca_certificate().der().to_vec()),
            )
            .with_display_name("Server CA"),
            Payload::new(format!("{id}.scep"), scep_uuid, scep)
                .with_display_name("Device Identity"),
            Payload::new(
                format!("{id}.mdm"),
                PayloadUuid::random(rng).to_string(),
                mdm,
            )
            .with_display_name("Device Management"),
        ];
        let mut profile = Profile::configuration(
            format!("{id}.enrollment"),
            PayloadUuid::random(rng).to_string(),
            payloads,
        )
        .with_display_name("MDM Enrollment");
        if let Some(org) = &c.organization {
            profile = profile.with_organization(org.clone());
        }
        profile
    }

    /// Identity renewal of one enrollment at `now`, as
    /// [`RenewalPolicy::action`] says: queue the next attempt (the signed
    /// enrollment profile with a fresh one-time SCEP challenge, as an
    /// `InstallProfile` on the device channel, and a push), record that the
    /// budget ran out, or nothing. An expired identity is reported once.
    /// Returns the action taken.
    pub fn renew_identity<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<RenewalAction>, ServiceError> {
        let c = self.tenant_config(tenant)?;
        let engine = self.mdm.engine();
        let current = engine.load(tenant, activation)?.value;
        let Some(identity) = current.identity.as_ref().filter(|_| enrolled(&current)) else {
            return Ok(Outcome {
                value: RenewalAction::NotDue,
                events: Vec::new(),
            });
        };
        let policy = &c.renewal;
        let action = policy.action(identity.not_after, current.renewal.as_ref(), now);
        let expired = now >= identity.not_after;
        let mut events = Vec::new();
        match action {
            RenewalAction::Start { attempt } => {
                let challenge = Secret::random(rng);
                let profile = self.enrollment_profile(c, tenant, activation, &challenge, rng);
                let signed = sign(c, &profile)?.body.into_vec();
                let command = crate::mdm::command::Command::install_profile(
                    crate::activation::CommandUuid::random(rng).into_string(),
                    signed,
                );
                let body = command
                    .encode()
                    .map_err(|e| ServiceError::Internal(format!("renewal command: {e}")))?;
                let new = super::NewCommand {
                    uuid: crate::activation::CommandUuid::new(command.command_uuid.clone())?,
                    request_type: command.request_type.clone(),
                    body,
                };
                let out = engine.queue_renewal(
                    tenant,
                    activation,
                    attempt,
                    &challenge,
                    policy.challenge_ttl,
                    new,
                    now,
                )?;
                events.extend(out.events);
            }
            RenewalAction::GiveUp => {
                events.extend(engine.give_up_renewal(tenant, activation, now)?.events)
            }
            RenewalAction::NotDue | RenewalAction::InFlight | RenewalAction::GivenUp => {}
        }
        // Re-read: the attempt just queued (or given up) carries the flag.
        let reported = || -> Result<bool, ServiceError> {
            Ok(engine
                .load(tenant, activation)?
                .value
                .renewal
                .as_ref()
                .is_none_or(|r| r.expiry_reported))
        };
        if expired && !reported()? {
            events.extend(
                engine
                    .report_identity_expired(tenant, activation, now)?
                    .events,
            );
        }
        Ok(Outcome {
            value: action,
            events,
        })
    }

    /// The renewal sweep (caller-driven, e.g. every few minutes): every
    /// enrolled device of `tenant` whose identity is due gets its renewal
    /// queued and a push ([`Self::renew_identity`]), whether or not it
    /// connects; exhausted budgets and expired identities are reported.
    pub fn sweep_renewals<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<RenewalSweep>, ServiceError> {
        let mut sweep = RenewalSweep::default();
        let mut events = Vec::new();
        let engine = self.mdm.engine();
        for (device, activation) in engine.store().device_activations(tenant)? {
            match self.renew_identity(tenant, &activation, now, rng) {
                Ok(out) => {
                    events.extend(out.events);
                    match out.value {
                        RenewalAction::Start { attempt } => {
                            sweep.queued.push((device.clone(), attempt));
                        }
                        RenewalAction::InFlight => sweep.in_flight.push(device.clone()),
                        RenewalAction::GiveUp | RenewalAction::GivenUp => {
                            sweep.given_up.push(device.clone());
                        }
                        RenewalAction::NotDue => {}
                    }
                }
                // A racing renewal (the device's own Idle) won: one in flight.
                Err(
                    ServiceError::Activation(ActivationError::RenewalInFlight)
                    | ServiceError::Store(StoreError::VersionConflict { .. }),
                ) => sweep.in_flight.push(device.clone()),
                Err(e) => sweep.failed.push((device.clone(), e.to_string())),
            }
            if let Ok(a) = engine.load(tenant, &activation)
                && enrolled(&a.value)
                && a.value
                    .identity
                    .as_ref()
                    .is_some_and(|i| now >= i.not_after)
            {
                sweep.expired.push(device);
            }
        }
        Ok(Outcome {
            value: sweep,
            events,
        })
    }

    /// On a device's connect: queue its renewal first if it is due (so this
    /// very connection gets the `InstallProfile`). Failures are left to the
    /// sweep: the connect itself goes on. `id` is the request's identity
    /// as the MDM service verified it (verified once per request).
    fn renew_on_connect<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        request: &Request,
        id: &crate::cms::ClientIdentity,
        now: SystemTime,
        rng: &mut R,
    ) -> Vec<Event> {
        if !matches!(
            crate::http::classify(request),
            crate::http::MessageKind::Connect
        ) {
            return Vec::new();
        }
        let not_after = id.certificate.not_after().to_system_time();
        let Ok(c) = self.tenant_config(tenant) else {
            return Vec::new();
        };
        if !c.renewal.is_due(not_after, now) {
            return Vec::new();
        }
        let fingerprint = CertFingerprint(id.certificate.sha256_fingerprint());
        let engine = self.mdm.engine();
        let Ok(Some(cert)) = engine.store().certificate_by_fingerprint(&fingerprint) else {
            return Vec::new();
        };
        if cert.tenant != *tenant {
            return Vec::new();
        }
        self.renew_identity(tenant, &cert.activation, now, rng)
            .map(|o| o.events)
            .unwrap_or_default()
    }

    /// Steps 7–8: the tenant's SCEP URL. GetCACaps/GetCACert are answered by
    /// the responder; a PKCSReq's challenge is consumed through the engine
    /// (one-time, bound to its activation, this tenant and this request's
    /// CSR), the certificate issued with
    /// [`LeafPolicy::client_auth`](crate::pki::LeafPolicy::client_auth)
    /// and a random serial (a serial the store already holds is retried with
    /// a fresh one) and recorded ([`super::Engine::certificate_issued`]).
    /// A resend of the same request (the same CSR, so the same key, subject
    /// and challenge, e.g. after a lost answer) gets the same certificate
    /// again, enveloped to the resend's signer, or, if the first attempt
    /// never issued it, the certificate now.
    /// Every refusal after the message verified is a signed FAILURE
    /// `badRequest` CertRep; renewals and polls are refused the same way.
    pub fn scep<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        request: &Request,
        now: SystemTime,
        rng: &mut R,
    ) -> (Response, Vec<Event>) {
        let c = match self.tenant_config(tenant) {
            Ok(c) => c,
            Err(e) => return (e.response(), Vec::new()),
        };
        let req = match c.scep.handle(request, now, rng) {
            ScepOutcome::Respond(r) => return (r, Vec::new()),
            ScepOutcome::Poll(p) => return (p.reject(FailInfo::BadCertId, now, rng), Vec::new()),
            ScepOutcome::Certificate(req) => req,
        };
        if req.renewal_of().is_some() {
            return (req.reject(FailInfo::BadRequest, now, rng), Vec::new());
        }
        // The static challenge (if configured) first: it needs no store
        // lookup, and no one-time challenge can equal it.
        let is_static = match (&c.static_scep_challenge, req.challenge()) {
            (Some(expected), Some(presented)) => presented.matches(expected.expose().as_bytes()),
            _ => false,
        };
        if is_static {
            return (issue_unbound(c, &req, now, rng), Vec::new());
        }
        let verifier = EngineChallenge {
            engine: self.mdm.engine(),
            tenant,
            granted: RefCell::new(None),
            resend: RefCell::new(None),
        };
        match req.check_challenge(&verifier, now) {
            ChallengeVerdict::Accepted => match verifier.granted.into_inner() {
                Some(granted) => {
                    self.issue_for(c, tenant, &granted.value.id, &req, granted.events, now, rng)
                }
                None => (req.reject(FailInfo::BadRequest, now, rng), Vec::new()),
            },
            ChallengeVerdict::Retry => match verifier.resend.into_inner() {
                Some(activation) => self.answer_resend(c, tenant, &activation, &req, now, rng),
                None => (req.reject(FailInfo::BadRequest, now, rng), Vec::new()),
            },
            ChallengeVerdict::Refused => (req.reject(FailInfo::BadRequest, now, rng), Vec::new()),
        }
    }

    /// Issue the certificate of `activation` for `req` and record it.
    #[allow(clippy::too_many_arguments)]
    fn issue_for<R: rand_core::CryptoRng + ?Sized>(
        &self,
        c: &EnrollmentConfig,
        tenant: &TenantId,
        activation: &ActivationId,
        req: &CertificateRequest<'_>,
        mut events: Vec<Event>,
        now: SystemTime,
        rng: &mut R,
    ) -> (Response, Vec<Event>) {
        for _ in 0..3 {
            let Some(issued) = issue_leaf(c, req, now, rng) else {
                break;
            };
            let identity = IssuedIdentity {
                serial: issued
                    .certificate
                    .tbs_certificate()
                    .serial_number()
                    .as_bytes()
                    .to_vec(),
                fingerprint: CertFingerprint::of_der(&issued.record.certificate),
                not_after: now + c.identity_lifetime,
                certificate: issued.record.certificate.clone(),
            };
            match self
                .mdm
                .engine()
                .certificate_issued(tenant, activation, identity, now)
            {
                Ok(out) => {
                    events.extend(out.events);
                    return (issued.response, events);
                }
                Err(ServiceError::Store(StoreError::DuplicateSerial)) => continue,
                Err(_) => break,
            }
        }
        (req.reject(FailInfo::BadRequest, now, rng), events)
    }

    /// A resend of the request that consumed the challenge: the certificate
    /// again, or the certificate now if the first attempt stopped before
    /// issuing it.
    fn answer_resend<R: rand_core::CryptoRng + ?Sized>(
        &self,
        c: &EnrollmentConfig,
        tenant: &TenantId,
        activation: &Activation,
        req: &CertificateRequest<'_>,
        now: SystemTime,
        rng: &mut R,
    ) -> (Response, Vec<Event>) {
        match &activation.identity {
            Some(identity) if !identity.certificate.is_empty() => {
                // The CSR fingerprint was matched by `Engine::scep_resend`;
                // the transactionID is not kept (it follows from the key),
                // so the record takes this request's. `replay` still refuses
                // a request signed by the issued certificate (a renewal).
                let record = IssuanceRecord {
                    transaction_id: req.transaction_id().to_owned(),
                    fingerprint: req.fingerprint(),
                    certificate: identity.certificate.clone(),
                };
                let response = req
                    .replay(&record, now, rng)
                    .unwrap_or_else(|_| req.reject(FailInfo::BadRequest, now, rng));
                (response, Vec::new())
            }
            Some(_) => (req.reject(FailInfo::BadRequest, now, rng), Vec::new()),
            None => self.issue_for(c, tenant, &activation.id, req, Vec::new(), now, rng),
        }
    }
}

/// A certificate under the static challenge: bound to no activation
/// (and so useless for check-in).
fn issue_unbound<R: rand_core::CryptoRng + ?Sized>(
    c: &EnrollmentConfig,
    req: &CertificateRequest<'_>,
    now: SystemTime,
    rng: &mut R,
) -> Response {
    match issue_leaf(c, req, now, rng) {
        Some(issued) => issued.response,
        None => req.reject(FailInfo::BadRequest, now, rng),
    }
}

/// One certificate for the request's key and subject: client auth, the
/// tenant's identity lifetime from `now`, a random serial.
fn issue_leaf<R: rand_core::CryptoRng + ?Sized>(
    c: &EnrollmentConfig,
    req: &CertificateRequest<'_>,
    now: SystemTime,
    rng: &mut R,
) -> Option<Issued> {
    let validity = crate::pki::validity(now, c.identity_lifetime).ok()?;
    let policy = crate::pki::LeafPolicy::client_auth(req.csr().subject().clone());
    req.issue(&policy, crate::pki::random_serial(rng), validity, now, rng)
        .ok()
}

/// `profile` signed with the tenant's profile signer.
fn sign(c: &EnrollmentConfig, profile: &Profile) -> Result<Response, ServiceError> {
    profile
        .sign(
            &c.validation,
            c.profile_signer.as_ref(),
            &c.profile_certificate,
            &c.profile_chain,
        )
        .map(|p| p.into_response(None))
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

/// Whether the activation has an enrolled device (renewals apply to those).
fn enrolled(a: &Activation) -> bool {
    use crate::activation::Phase;
    matches!(
        a.phase,
        Phase::Enrolled | Phase::Configuring | Phase::Complete | Phase::ConfigurationFailed
    )
}

/// [`ChallengeVerifier`] over [`super::Engine::authorize_scep`]: the SCEP
/// challenge is consumed atomically in the store, for this tenant only.
struct EngineChallenge<'a, S, D, P> {
    engine: &'a super::Engine<S, D, P>,
    tenant: &'a TenantId,
    granted: RefCell<Option<Outcome<Activation>>>,
    /// A resend of the request the challenge was consumed for.
    resend: RefCell<Option<Activation>>,
}

impl<S: Store, D: Directory, P: PushSender> ChallengeVerifier for EngineChallenge<'_, S, D, P> {
    fn consume(
        &self,
        challenge: &Challenge,
        fingerprint: &RequestFingerprint,
        now: SystemTime,
    ) -> ChallengeVerdict {
        let Ok(text) = std::str::from_utf8(challenge.expose()) else {
            return ChallengeVerdict::Refused;
        };
        let secret = Secret::new(text);
        match self
            .engine
            .authorize_scep_request(self.tenant, &secret, Some(fingerprint.0), now)
        {
            Ok(out) => {
                *self.granted.borrow_mut() = Some(out);
                ChallengeVerdict::Accepted
            }
            // Not an enrollment's SCEP challenge: a renewal's, perhaps.
            Err(ServiceError::Activation(ActivationError::WrongChallenge)) => match self
                .engine
                .authorize_renewal_request(self.tenant, &secret, Some(fingerprint.0), now)
            {
                Ok(out) => {
                    *self.granted.borrow_mut() = Some(out);
                    ChallengeVerdict::Accepted
                }
                Err(_) => ChallengeVerdict::Refused,
            },
            Err(ServiceError::Activation(ActivationError::ChallengeReplayed)) => match self
                .engine
                .scep_resend(self.tenant, &secret, &fingerprint.0, now)
            {
                Ok(Some(activation)) => {
                    *self.resend.borrow_mut() = Some(activation);
                    ChallengeVerdict::Retry
                }
                _ => ChallengeVerdict::Refused,
            },
            Err(_) => ChallengeVerdict::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::IdentityRenewal;

    fn paths() -> SingleTenantPaths {
        SingleTenantPaths {
            tenant: TenantId::new("demo").unwrap(),
            self_service: "/self-service/activate".into(),
            profile_service: "/enroll".into(),
            scep: "/scep".into(),
            server: "/mdm/connect".into(),
            check_in: "/mdm/checkin".into(),
        }
    }

    fn renewal(attempt: u32, queued: SystemTime, failed_at: Option<SystemTime>) -> IdentityRenewal {
        IdentityRenewal {
            attempt,
            challenge: crate::activation::ChallengeGrant {
                kind: crate::activation::ChallengeKind::Renewal,
                digest: Secret::new("c").digest(),
                expires: queued + Duration::from_secs(86400),
            },
            command: crate::activation::CommandUuid::new("c").unwrap(),
            queued,
            failed_at,
            scep_request: None,
            issued: Vec::new(),
            exhausted: false,
            expiry_reported: false,
        }
    }

    #[test]
    fn renewal_is_due_within_the_window_and_retried_on_a_budget() {
        let d = |n: u64| Duration::from_secs(n * 86400);
        let h = |n: u64| Duration::from_secs(n * 3600);
        let t0 = SystemTime::UNIX_EPOCH + d(20_000);
        let not_after = t0 + d(100);
        let p = RenewalPolicy::new(d(30)).with_retries(d(1), h(2), 3);
        assert_eq!(p.action(not_after, None, t0), RenewalAction::NotDue);
        assert_eq!(p.action(not_after, None, t0 + d(69)), RenewalAction::NotDue);
        let due = t0 + d(70);
        assert!(p.is_due(not_after, due));
        assert_eq!(
            p.action(not_after, None, due),
            RenewalAction::Start { attempt: 1 }
        );
        // Expired identities are still due.
        assert_eq!(
            p.action(not_after, None, not_after + d(5)),
            RenewalAction::Start { attempt: 1 }
        );
        // One attempt in flight: no answer within the timeout, then a retry.
        let r = renewal(1, due, None);
        assert_eq!(
            p.action(not_after, Some(&r), due + h(23)),
            RenewalAction::InFlight
        );
        assert_eq!(
            p.action(not_after, Some(&r), due + d(1)),
            RenewalAction::Start { attempt: 2 }
        );
        // Refused or deferred: the retry delay, not the timeout.
        let r = renewal(2, due, Some(due + h(1)));
        assert_eq!(
            p.action(not_after, Some(&r), due + h(2)),
            RenewalAction::InFlight
        );
        assert_eq!(
            p.action(not_after, Some(&r), due + h(3)),
            RenewalAction::Start { attempt: 3 }
        );
        // The budget: after the third attempt, give up (once), then nothing.
        let mut r = renewal(3, due, Some(due));
        assert_eq!(
            p.action(not_after, Some(&r), due + h(2)),
            RenewalAction::GiveUp
        );
        r.exhausted = true;
        assert_eq!(
            p.action(not_after, Some(&r), due + d(9)),
            RenewalAction::GivenUp
        );
        // No overflow at the ends of time.
        let far = SystemTime::UNIX_EPOCH + d(365 * 100_000);
        let huge = RenewalPolicy::new(Duration::MAX);
        assert!(huge.is_due(far, t0));
        let r = renewal(1, t0, None);
        assert_eq!(
            RenewalPolicy::new(d(1))
                .with_retries(Duration::MAX, h(1), 3)
                .action(not_after, Some(&r), far),
            RenewalAction::InFlight
        );
    }

    #[test]
    fn form_language_must_be_a_language_tag() {
        let parse = |body: &str| Form::parse(body.as_bytes()).map(|f| f.language);
        assert_eq!(parse("language=fr-CA").unwrap().as_deref(), Some("fr-CA"));
        assert_eq!(parse("language=").unwrap(), None);
        for bad in ["language=%3Cscript%3E", "language=en%20US", "language=*"] {
            assert!(
                matches!(parse(bad), Err(ServiceError::BadRequest(_))),
                "{bad}"
            );
        }
        let long = format!("language={}", "a".repeat(36));
        assert!(matches!(parse(&long), Err(ServiceError::BadRequest(_))));
    }

    #[test]
    fn single_tenant_paths_route_to_their_endpoints() {
        let p = paths();
        let route = |path: &str| p.route(path).map(|r| (r.tenant.to_string(), r.endpoint));
        let demo = || "demo".to_owned();
        assert_eq!(
            route("/self-service/activate"),
            Some((demo(), Endpoint::Enroll))
        );
        assert_eq!(route("/enroll"), Some((demo(), Endpoint::ProfileService)));
        assert_eq!(route("/scep/"), Some((demo(), Endpoint::Scep)));
        assert_eq!(route("/mdm/connect"), Some((demo(), Endpoint::Mdm)));
        assert_eq!(route("/mdm/checkin"), Some((demo(), Endpoint::Mdm)));
        assert_eq!(route("/mdm"), None);
        assert_eq!(route("/demo/scep"), None);
        assert_eq!(route(""), None);
        assert_eq!(p.path(Endpoint::Mdm), "/mdm/connect");
        assert_eq!(p.path(Endpoint::ProfileService), "/enroll");
    }
}
