//! The server's push sender: APNs with `--push-cert`/`--push-key`, else a log.
//!
//! [`TenantPush::Apns`] never blocks the engine: it puts each push on a
//! bounded queue ([`QUEUE`]; a full queue is a `PushError` the engine turns
//! into a `PushFailed` event) that a tokio task drains, sending with the
//! crate's `ApnsClient` (at most [`IN_FLIGHT`] at once) and recording every
//! APNs answer through `Engine::push_response`, so a 410 or `BadDeviceToken`
//! marks the token invalid until the device's next TokenUpdate.
//!
//! Each tenant has its own ([`ServerPush`] holds one per tenant). Without a
//! push certificate ([`TenantPush::Log`]) each push is logged; the
//! engine still records it in the channel's push state, so the admin API
//! shows it, and steps 11–13 wait for the device's own next check-in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{Channel, Phase, PushTarget, TenantId};
use mdm_enroll::cms::Certificate;
use mdm_enroll::push::apns::{ApnsClient, ApnsConfig};
use mdm_enroll::push::{PushCertificate, PushIdentity};
use mdm_enroll::store::{PushError, PushSender};
use tokio::sync::{Semaphore, mpsc};

use crate::cli::{Config, DEMO_TOPIC};
use crate::routes::App;

/// Pushes waiting for the APNs task; beyond this the engine gets a `PushError`.
pub const QUEUE: usize = 1024;
/// Pushes sent to APNs at once.
pub const IN_FLIGHT: usize = 100;
/// Warn this long before the push certificate expires.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// One push handed to the APNs task.
pub struct Job {
    tenant: TenantId,
    channel: Channel,
    target: PushTarget,
}

/// How one tenant's pushes go.
pub enum TenantPush {
    /// No push certificate: log each push.
    Log,
    /// Queue each push for the APNs task ([`spawn_apns`]).
    Apns {
        /// The push certificate's topic: a target under another topic is refused.
        topic: String,
        /// The bounded queue the APNs task drains.
        jobs: mpsc::Sender<Job>,
    },
}

/// The engine's push sender: each tenant's own [`TenantPush`] (its push
/// certificate and APNs task, or the log). A tenant without one is refused.
#[derive(Default)]
pub struct ServerPush {
    tenants: HashMap<TenantId, TenantPush>,
}

impl ServerPush {
    /// Send `tenant`'s pushes through `push`.
    pub fn insert(&mut self, tenant: TenantId, push: TenantPush) {
        self.tenants.insert(tenant, push);
    }
}

impl PushSender for ServerPush {
    fn push(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        target: &PushTarget,
    ) -> Result<(), PushError> {
        match self.tenants.get(tenant) {
            Some(push) => push.push(tenant, channel, target),
            None => Err(PushError::NotConfigured(format!(
                "tenant {tenant} has no push sender"
            ))),
        }
    }
}

impl PushSender for TenantPush {
    fn push(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        target: &PushTarget,
    ) -> Result<(), PushError> {
        match self {
            Self::Log => {
                tracing::info!(
                    %tenant,
                    device = %channel.device_id,
                    user = channel.user_id.as_deref().unwrap_or("-"),
                    topic = %target.topic,
                    "push (not sent: no APNs certificate configured)"
                );
                Ok(())
            }
            Self::Apns { topic, jobs } => {
                if target.topic != *topic {
                    return Err(PushError::NotConfigured(format!(
                        "the device's topic {:?} is not the push certificate's {topic:?}",
                        target.topic
                    )));
                }
                let job = Job {
                    tenant: tenant.clone(),
                    channel: channel.clone(),
                    target: target.clone(),
                };
                jobs.try_send(job).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => {
                        PushError::Unavailable(format!("APNs queue full ({QUEUE} pushes waiting)"))
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        PushError::Unavailable("APNs sender stopped".into())
                    }
                })
            }
        }
    }
}

/// The push identity and topic the flags ask for.
pub struct PushSetup {
    /// The push certificate and key, if `--push-p12` or `--push-cert`/`--push-key` were given.
    pub identity: Option<PushIdentity>,
    /// The topic for the enrollment profile: the certificate's, else
    /// `--topic`, else [`DEMO_TOPIC`].
    pub topic: String,
}

/// The environment variable holding the `--push-p12` password (empty if unset).
pub const P12_PASSWORD_ENV: &str = "MDM_PUSH_P12_PASSWORD";

/// Read the push identity from `--push-p12` (password from
/// [`P12_PASSWORD_ENV`]) or `--push-cert`/`--push-key`, if given.
fn read_identity(
    config: &Config,
    p12_password: Option<&str>,
) -> Result<Option<PushIdentity>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    if let Some(p12) = &config.push_p12 {
        let password = match p12_password {
            Some(p) => p.to_owned(),
            None => std::env::var(P12_PASSWORD_ENV).unwrap_or_default(),
        };
        return PushIdentity::from_pkcs12(&read(p12)?, &password)
            .map(Some)
            .map_err(|e| {
                format!(
                    "--push-p12 {} (password from {P12_PASSWORD_ENV}): {e}",
                    p12.display()
                )
            });
    }
    let Some((cert, key)) = &config.push_cert else {
        return Ok(None);
    };
    PushIdentity::from_pem_or_der(&read(cert)?, &read(key)?)
        .map(Some)
        .map_err(|e| {
            format!(
                "--push-cert {} / --push-key {}: {e}",
                cert.display(),
                key.display()
            )
        })
}

/// Read the push identity (`--push-p12`, or `--push-cert`/`--push-key`) and
/// settle the topic; refuse a `--topic` that is not the certificate's.
pub fn setup(config: &Config) -> Result<PushSetup, String> {
    setup_with(config, None)
}

/// [`setup`] for a tenant of the tenants file: its `push-p12` (password from
/// `push-p12-password-file`, else empty) or `push-cert`/`push-key`, and its
/// `topic` (default `com.apple.mgmt.External.<id>`).
pub fn setup_tenant(
    config: &Config,
    spec: &crate::tenants::TenantSpec,
) -> Result<PushSetup, String> {
    let fail = |e: String| format!("tenant {}: {e}", spec.id);
    let password = match &spec.push_p12_password_file {
        Some(path) => Some(
            crate::secrets::read_secret_file(path, "push-p12 password")
                .map_err(|e| fail(e.to_string()))?,
        ),
        None => Some(String::new()),
    };
    let mut own = config.clone();
    own.push_p12 = spec.push_p12.clone();
    own.push_cert = spec.push_cert.clone();
    own.topic = spec.topic.clone();
    let mut setup = setup_with(&own, password.as_deref()).map_err(fail)?;
    if setup.identity.is_none() && spec.topic.is_none() {
        setup.topic = format!("com.apple.mgmt.External.{}", spec.id);
    }
    Ok(setup)
}

fn setup_with(config: &Config, p12_password: Option<&str>) -> Result<PushSetup, String> {
    let Some(identity) = read_identity(config, p12_password)? else {
        return Ok(PushSetup {
            identity: None,
            topic: config.topic.clone().unwrap_or_else(|| DEMO_TOPIC.into()),
        });
    };
    let topic = identity.certificate().topic().to_owned();
    if let Some(given) = &config.topic
        && *given != topic
    {
        return Err(format!(
            "--topic {given} is not the push certificate's topic {topic} (its subject UID): \
             devices would enroll under a topic APNs refuses for this certificate. Drop --topic \
             or give the certificate issued for {given}"
        ));
    }
    Ok(PushSetup {
        identity: Some(identity),
        topic,
    })
}

/// Renewal must keep the topic: refuse a push certificate whose topic is not
/// the one the devices already enrolled in `store` use.
pub fn check_enrolled_topic(
    store: &crate::store::ServerStore,
    tenant: &TenantId,
    cert: &PushCertificate,
) -> Result<(), String> {
    let activations = store
        .activations(usize::MAX)
        .map_err(|e| format!("reading enrolled devices: {e}"))?;
    let mut others: Vec<(&str, usize)> = Vec::new();
    for a in activations.iter().filter(|a| a.value.tenant == *tenant) {
        // Devices that checked out (or never finished step 10) hold no
        // enrollment under the old topic.
        let enrolled = matches!(
            a.value.phase,
            Phase::Enrolled | Phase::Configuring | Phase::Complete | Phase::ConfigurationFailed
        );
        let Some(target) = a.value.push.as_ref().filter(|_| enrolled) else {
            continue;
        };
        if target.topic == cert.topic() {
            continue;
        }
        match others.iter_mut().find(|(t, _)| *t == target.topic) {
            Some((_, n)) => *n += 1,
            None => others.push((&target.topic, 1)),
        }
    }
    let Some((enrolled, n)) = others.first() else {
        return Ok(());
    };
    let mismatch = cert
        .ensure_topic(enrolled)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    Err(format!(
        "{mismatch}: {n} enrolled device(s) use topic {enrolled}, and APNs delivers their pushes \
         only under it. Renew the push certificate for the same topic (Apple's Push Certificates \
         portal: Renew, not Create new), or re-enroll those devices"
    ))
}

/// A warning when the push certificate expires within [`EXPIRY_WARNING`]
/// of `now` (or has expired).
pub fn expiry_warning(cert: &PushCertificate, now: SystemTime) -> Option<String> {
    let end = crate::admin::rfc3339(cert.not_after());
    if !cert.expires_within(now, EXPIRY_WARNING) {
        return None;
    }
    Some(if cert.expires_within(now, Duration::ZERO) {
        format!(
            "the push certificate for {} expired at {end}: APNs refuses every push; renew it \
             (same topic) in Apple's Push Certificates portal",
            cert.topic()
        )
    } else {
        let days = cert
            .not_after()
            .duration_since(now)
            .unwrap_or_default()
            .as_secs()
            / 86_400;
        format!(
            "the push certificate for {} expires at {end} (in {days} day(s)): renew it (same \
             topic) in Apple's Push Certificates portal before then",
            cert.topic()
        )
    })
}

/// An APNs client for `identity` under the `--apns-url` and `--apns-ca` flags.
pub fn client(identity: PushIdentity, config: &Config) -> Result<ApnsClient, String> {
    let mut apns = ApnsConfig::default();
    apns.base_url = config.apns_url.clone();
    apns.max_concurrent = IN_FLIGHT;
    for path in &config.apns_cas {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs = Certificate::from_pem(&pem)
            .map_err(|e| format!("--apns-ca {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--apns-ca {}: no CERTIFICATE block",
                path.display()
            ));
        }
        apns.extra_roots.extend(certs);
    }
    ApnsClient::new(identity, apns).map_err(|e| e.to_string())
}

/// The APNs sender's queue: the engine's sender end and the receiver for
/// [`spawn_apns`].
pub fn apns_queue(topic: String) -> (TenantPush, mpsc::Receiver<Job>) {
    let (jobs, rx) = mpsc::channel(QUEUE);
    (TenantPush::Apns { topic, jobs }, rx)
}

/// Drain `jobs`: send each push with `client` (at most [`IN_FLIGHT`] at
/// once) and record APNs' answer through `Engine::push_response`.
pub fn spawn_apns(app: Arc<App>, client: ApnsClient, mut jobs: mpsc::Receiver<Job>) {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Some(job) = jobs.recv().await else {
                return;
            };
            let (app, client) = (app.clone(), client.clone());
            tokio::spawn(async move {
                deliver(app, &client, job).await;
                drop(slot);
            });
        }
    });
}

async fn deliver(app: Arc<App>, client: &ApnsClient, job: Job) {
    let device = job.channel.device_id.clone();
    let outcome = match client.push(&job.target.token, &job.target.push_magic).await {
        Ok(o) => o,
        Err(e) => {
            // Not an APNs answer: nothing to record; the re-push sweep tries
            // again while the device has not answered.
            tracing::warn!(%device, error = %e, "push not sent");
            return;
        }
    };
    let reason = outcome
        .reason()
        .map(|r| r.as_str().to_owned())
        .filter(|r| !r.is_empty());
    if outcome.is_delivered() {
        tracing::info!(%device, "push delivered to APNs");
    } else {
        tracing::warn!(
            %device,
            status = outcome.status(),
            reason = reason.as_deref().unwrap_or("-"),
            token_invalid = outcome.token_invalid(),
            "APNs refused the push"
        );
    }
    let record = tokio::task::spawn_blocking(move || {
        app.service.engine().push_response(
            &job.tenant,
            &job.channel,
            outcome.status(),
            reason.as_deref(),
            outcome.token_invalid(),
            SystemTime::now(),
        )
    })
    .await;
    match record {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(%device, error = %e, "recording the APNs answer failed"),
        Err(e) => tracing::error!(%device, error = %e, "recording the APNs answer panicked"),
    }
}

/// Every `every`, re-push the channels whose push went unanswered or whose
/// command the device deferred (`NotNow`), as the engine's `RepushPolicy`
/// schedules them (`Engine::repush_due`, on the blocking pool), through the
/// same sender.
pub fn spawn_repush(app: Arc<App>, every: Duration) {
    spawn_every(app, every, "re-push sweep", |app, now| {
        for tenant in app.tenant_ids() {
            match app.service.engine().repush_due(tenant, now) {
                Ok(out) => app.record(tenant, &out.events),
                Err(e) => tracing::warn!(%tenant, error = %e, "re-push sweep failed"),
            }
        }
    });
}

/// Every `every`: the identity renewal sweep (devices whose identity is
/// due get the renewal queued and a push; given-up renewals and expired
/// identities are logged).
pub fn spawn_renewal_sweep(app: Arc<App>, every: Duration) {
    spawn_every(app, every, "renewal sweep", |app, now| {
        for tenant in app.tenant_ids() {
            match app
                .service
                .sweep_renewals(tenant, now, &mut crate::routes::rng())
            {
                Ok(out) => {
                    for device in &out.value.expired {
                        tracing::warn!(%tenant, %device, "device identity expired");
                    }
                    for (device, error) in &out.value.failed {
                        tracing::warn!(%tenant, %device, %error, "identity renewal failed");
                    }
                    app.record(tenant, &out.events);
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "renewal sweep failed"),
            }
        }
    });
}

/// Run `sweep` on the blocking pool every `every`, with the time of the tick.
fn spawn_every(app: Arc<App>, every: Duration, name: &'static str, sweep: fn(&App, SystemTime)) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let app = app.clone();
            let run = tokio::task::spawn_blocking(move || sweep(&app, SystemTime::now()));
            if let Err(e) = run.await {
                tracing::error!(error = %e, "{name} panicked");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_warns_within_thirty_days_and_after() {
        let pem = include_bytes!("../../tests/vectors/certs/micromdm_mock_push_cert.pem");
        let cert = PushCertificate::from_pem(pem).unwrap();
        let end = cert.not_after();
        let day = Duration::from_secs(86_400);
        assert_eq!(expiry_warning(&cert, end - 31 * day), None);
        let soon = expiry_warning(&cert, end - 29 * day).expect("warned");
        assert!(
            soon.contains("in 29 day(s)") && soon.contains(cert.topic()),
            "{soon}"
        );
        let gone = expiry_warning(&cert, end + day).expect("warned");
        assert!(gone.contains("expired"), "{gone}");
    }

    #[test]
    fn apns_sender_queues_without_blocking_and_refuses_when_full_or_off_topic() {
        let tenant = TenantId::new("t".to_owned()).unwrap();
        let channel = Channel::device("UDID-1".to_owned());
        let target = |topic: &str| PushTarget {
            topic: topic.to_owned(),
            token: vec![1, 2, 3],
            push_magic: "magic".to_owned(),
        };
        let (sender, mut rx) = apns_queue("com.apple.mgmt.External.a".into());
        let on = target("com.apple.mgmt.External.a");
        for _ in 0..QUEUE {
            sender.push(&tenant, &channel, &on).unwrap();
        }
        assert!(matches!(
            sender.push(&tenant, &channel, &on),
            Err(PushError::Unavailable(m)) if m.contains("full")
        ));
        let job = rx.try_recv().unwrap();
        assert_eq!((job.channel, job.target), (channel.clone(), on.clone()));
        sender.push(&tenant, &channel, &on).unwrap();
        assert!(matches!(
            sender.push(&tenant, &channel, &target("com.apple.mgmt.External.b")),
            Err(PushError::NotConfigured(m)) if m.contains("External.b")
        ));
        drop(rx);
        assert!(matches!(
            sender.push(&tenant, &channel, &on),
            Err(PushError::Unavailable(m)) if m.contains("stopped")
        ));
        assert_eq!(TenantPush::Log.push(&tenant, &channel, &on), Ok(()));
    }

    #[test]
    fn each_tenant_pushes_through_its_own_sender() {
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let channel = Channel::device("UDID-1".to_owned());
        let target = |topic: &str| PushTarget {
            topic: topic.to_owned(),
            token: vec![1],
            push_magic: "m".to_owned(),
        };
        let (qa, mut rx_a) = apns_queue("com.apple.mgmt.External.a".into());
        let (qb, mut rx_b) = apns_queue("com.apple.mgmt.External.b".into());
        let mut sender = ServerPush::default();
        sender.insert(a.clone(), qa);
        sender.insert(b.clone(), qb);
        sender
            .push(&b, &channel, &target("com.apple.mgmt.External.b"))
            .unwrap();
        assert!(rx_a.try_recv().is_err(), "a's APNs task got b's push");
        assert_eq!(rx_b.try_recv().unwrap().tenant, b);
        // b's device topic under a's certificate is refused, not sent.
        assert!(matches!(
            sender.push(&a, &channel, &target("com.apple.mgmt.External.b")),
            Err(PushError::NotConfigured(_))
        ));
        let unknown = TenantId::new("c").unwrap();
        assert!(matches!(
            sender.push(&unknown, &channel, &target("x")),
            Err(PushError::NotConfigured(m)) if m.contains("tenant c")
        ));
    }
}
