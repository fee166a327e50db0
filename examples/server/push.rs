//! The server's push sender: the seam where an APNs client plugs in.
//!
//! Without a push certificate the server logs each push; the engine records
//! it in the channel's push state (`last_push`, attempts, re-push schedule),
//! so the admin API shows it. A real sender hands the push to its APNs
//! client here and reports each answer back through
//! `Engine::push_response` (status, reason, token-invalid flag).

use mdm_enroll::activation::{Channel, PushTarget, TenantId};
use mdm_enroll::store::{PushError, PushSender};

/// A push sender that logs: the demo has no APNs certificate, so steps 11–13
/// wait for the device's own next check-in.
pub struct LogPush;

impl PushSender for LogPush {
    fn push(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        target: &PushTarget,
    ) -> Result<(), PushError> {
        tracing::info!(
            %tenant,
            device = %channel.device_id,
            user = channel.user_id.as_deref().unwrap_or("-"),
            topic = %target.topic,
            "push (not sent: no APNs certificate configured)"
        );
        Ok(())
    }
}

/// Every `every`, re-push the channels whose push went unanswered or whose
/// command the device deferred (`NotNow`), as the engine's `RepushPolicy`
/// schedules them (`Engine::repush_due`, on the blocking pool).
pub fn spawn_repush(app: std::sync::Arc<crate::routes::App>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let app = app.clone();
            let sweep = tokio::task::spawn_blocking(move || {
                let now = std::time::SystemTime::now();
                match app.service.engine().repush_due(&app.tenant, now) {
                    Ok(out) => app.record(&out.events),
                    Err(e) => tracing::warn!(error = %e, "re-push sweep failed"),
                }
            });
            if let Err(e) = sweep.await {
                tracing::error!(error = %e, "re-push sweep panicked");
            }
        }
    });
}
