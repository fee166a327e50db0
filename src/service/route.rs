//! The per-tenant URLs: `<prefix>/<tenant>/<endpoint>`.

use thiserror::Error;

use crate::activation::{ActivationError, TenantId};

/// The HTTP endpoints of one tenant. Every URL the profiles give a device
/// (Profile Service `URL`, SCEP `URL`, `ServerURL`, `CheckInURL`) is
/// `<prefix>/<tenant>/<endpoint>`, so the tenant travels with every request
/// and is checked against every record the request touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `enroll`: self-service login and activation request (steps 2–4).
    Enroll,
    /// `profile-service`: signed device attributes (steps 5–6).
    ProfileService,
    /// `scep`: SCEP GetCACaps / GetCACert / PKIOperation (steps 7–8).
    Scep,
    /// `mdm`: check-in and connect, told apart by `Content-Type` (steps 9–13).
    Mdm,
}

impl Endpoint {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::ProfileService => "profile-service",
            Self::Scep => "scep",
            Self::Mdm => "mdm",
        }
    }

    fn parse(segment: &str) -> Option<Self> {
        [Self::Enroll, Self::ProfileService, Self::Scep, Self::Mdm]
            .into_iter()
            .find(|e| e.as_str() == segment)
    }
}

/// A request path resolved to a tenant and an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// The tenant from the path.
    pub tenant: TenantId,
    /// The endpoint.
    pub endpoint: Endpoint,
}

/// Why a path is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The path is not under the prefix or has the wrong shape.
    #[error("no such endpoint")]
    NotFound,
    /// The tenant segment is not a valid tenant id.
    #[error(transparent)]
    Tenant(#[from] ActivationError),
}

impl Route {
    /// Resolve `path` (without query) under `prefix` (e.g. `/t`, or `` for the root).
    pub fn parse(prefix: &str, path: &str) -> Result<Self, RouteError> {
        let rest = path
            .strip_prefix(prefix.trim_end_matches('/'))
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(RouteError::NotFound)?;
        let (tenant, endpoint) = rest.split_once('/').ok_or(RouteError::NotFound)?;
        let endpoint =
            Endpoint::parse(endpoint.trim_end_matches('/')).ok_or(RouteError::NotFound)?;
        Ok(Self {
            tenant: TenantId::new(tenant)?,
            endpoint,
        })
    }

    /// The path of `endpoint` for `tenant` under `prefix`.
    pub fn path(prefix: &str, tenant: &TenantId, endpoint: Endpoint) -> String {
        format!(
            "{}/{}/{}",
            prefix.trim_end_matches('/'),
            tenant,
            endpoint.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip_and_reject_foreign_paths() {
        let t = TenantId::new("acme-eu").unwrap();
        for e in [
            Endpoint::Enroll,
            Endpoint::ProfileService,
            Endpoint::Scep,
            Endpoint::Mdm,
        ] {
            let p = Route::path("/t/", &t, e);
            assert_eq!(
                Route::parse("/t", &p),
                Ok(Route {
                    tenant: t.clone(),
                    endpoint: e
                })
            );
        }
        assert_eq!(
            Route::parse("/t", "/t/acme/other"),
            Err(RouteError::NotFound)
        );
        assert_eq!(Route::parse("/t", "/x/acme/mdm"), Err(RouteError::NotFound));
        assert_eq!(Route::parse("/t", "/t/mdm"), Err(RouteError::NotFound));
        assert_eq!(
            Route::parse("/t", "/t/a%2Fb/mdm"),
            Err(RouteError::Tenant(ActivationError::InvalidTenant))
        );
        assert_eq!(
            Route::parse("", "/acme/scep").map(|r| r.endpoint),
            Ok(Endpoint::Scep)
        );
    }
}
