//! [`TenantConfigs`]: the enrollment configuration of each tenant.

use std::collections::HashMap;
use std::sync::Arc;

use super::EnrollmentConfig;
use crate::activation::TenantId;

/// Where [`EnrollmentService`](super::EnrollmentService) finds the
/// configuration of a request's tenant: its push topic, SCEP CA/RA
/// (the [`ScepResponder`](crate::scep::ScepResponder)), profile signer,
/// certificate and chain, identity lifetime and renewal policy.
///
/// One [`EnrollmentConfig`] serves every tenant; a
/// `HashMap<TenantId, Arc<EnrollmentConfig>>` serves the tenants it holds.
/// A tenant without a configuration (`None`) is refused with
/// [`ServiceError::UnknownTenant`](super::ServiceError::UnknownTenant)
/// (404).
pub trait TenantConfigs: std::fmt::Debug + Send + Sync {
    /// The configuration of `tenant`, or `None` when it is not served.
    fn config(&self, tenant: &TenantId) -> Option<&EnrollmentConfig>;
}

impl TenantConfigs for EnrollmentConfig {
    fn config(&self, _tenant: &TenantId) -> Option<&EnrollmentConfig> {
        Some(self)
    }
}

impl TenantConfigs for HashMap<TenantId, Arc<EnrollmentConfig>> {
    fn config(&self, tenant: &TenantId) -> Option<&EnrollmentConfig> {
        self.get(tenant).map(Arc::as_ref)
    }
}

impl<T: TenantConfigs + ?Sized> TenantConfigs for Arc<T> {
    fn config(&self, tenant: &TenantId) -> Option<&EnrollmentConfig> {
        (**self).config(tenant)
    }
}
