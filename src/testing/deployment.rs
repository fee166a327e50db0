//! A complete deployment over the in-memory store to walk the thirteen
//! steps against, for tests and benches.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::device::{DeviceError, proto};
use super::device_ca::{TestDeviceCa, cms_cert, name};
use super::{RecordingPush, StaticDirectory};
use crate::activation::{TenantId, UserAccount};
use crate::cms::{Certificate, DeviceAttributesVerifier, TrustAnchors};
use crate::crypto::RsaKey;
use crate::http::{Request, Response};
use crate::scep::ScepResponder;
use crate::service::{
    Endpoint, Engine, EngineConfig, EnrollmentConfig, EnrollmentService, Event,
    InitialConfiguration, MdmService, Route,
};
use crate::store::MemoryStore;

/// A complete single-tenant deployment over the in-memory store for tests
/// and benches: tenant `acme` with user `alice`/`pw`/`corp` (default
/// policy), one server key acting as SCEP CA and profile signer, and a
/// [`TestDeviceCa`] the attribute verifier trusts.
#[derive(Debug)]
pub struct TestDeployment {
    /// The service, routes under `/t` at `https://mdm.example.test`.
    pub service: EnrollmentService<MemoryStore, StaticDirectory, RecordingPush>,
    /// The tenant.
    pub tenant: TenantId,
    /// The device CA the service trusts for attributes.
    pub device_ca: TestDeviceCa,
    /// The server CA certificate (SCEP CA, profile signer).
    pub server_certificate: Certificate,
}

impl TestDeployment {
    /// Build it from two keys (generate them once; 1024-bit keys are fine for tests).
    pub fn new<R: rand_core::CryptoRng + ?Sized>(
        server_key: RsaKey,
        device_ca_key: RsaKey,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Self, DeviceError> {
        Self::build(server_key, device_ca_key, now, rng, None)
    }

    /// [`Self::new`] serving declarative device management from
    /// `declarations`, with `initial` as each device's initial declaration
    /// set ([`MdmService::with_declarations`]).
    pub fn with_declarations<R: rand_core::CryptoRng + ?Sized>(
        server_key: RsaKey,
        device_ca_key: RsaKey,
        now: SystemTime,
        rng: &mut R,
        declarations: Arc<dyn crate::store::DeclarationStore>,
        initial: crate::ddm::DeclarationSet,
    ) -> Result<Self, DeviceError> {
        Self::build(
            server_key,
            device_ca_key,
            now,
            rng,
            Some((declarations, initial)),
        )
    }

    fn build<R: rand_core::CryptoRng + ?Sized>(
        server_key: RsaKey,
        device_ca_key: RsaKey,
        now: SystemTime,
        rng: &mut R,
        declarations: Option<(
            Arc<dyn crate::store::DeclarationStore>,
            crate::ddm::DeclarationSet,
        )>,
    ) -> Result<Self, DeviceError> {
        let tenant = TenantId::new("acme").map_err(proto)?;
        let server_key = Arc::new(server_key);
        let ca = cms_cert(
            &crate::pki::create_ca(
                server_key.as_ref(),
                name("CN=Test MDM CA,O=mdm-enroll tests")?,
                crate::pki::random_serial(rng),
                crate::pki::validity(now, Duration::from_secs(365 * 86400)).map_err(proto)?,
            )
            .map_err(proto)?,
        )?;
        let scep =
            ScepResponder::new(ca.der(), server_key.clone(), server_key.clone()).map_err(proto)?;
        let device_ca = TestDeviceCa::new(device_ca_key, now, rng)?;
        let mut verifier =
            DeviceAttributesVerifier::new(TrustAnchors::from_certificates([ca.clone()]));
        verifier.add_device_anchor(device_ca.certificate().clone());
        let dir = StaticDirectory::new();
        dir.set_password(&tenant, "alice", "pw");
        let engine = Engine::new(
            MemoryStore::new(),
            dir,
            RecordingPush::new(),
            EngineConfig::default(),
        );
        engine
            .provision_user(&UserAccount {
                tenant: tenant.clone(),
                username: "alice".into(),
                domain: "corp".into(),
                policy: crate::activation::Policy::default(),
            })
            .map_err(proto)?;
        let mut mdm = MdmService::new(engine, InitialConfiguration::default())
            .with_attributes_verifier(verifier);
        if let Some((store, initial)) = declarations {
            mdm = mdm.with_declarations(store, initial);
        }
        let mut config = EnrollmentConfig::new(
            "https://mdm.example.test",
            "com.apple.mgmt.External.0e6b4fb1-0000-4000-8000-000000000000",
            server_key,
            ca.clone(),
            scep,
        );
        config.prefix = "/t".into();
        Ok(Self {
            service: EnrollmentService::new(mdm, config),
            tenant,
            device_ca,
            server_certificate: ca,
        })
    }

    /// The tenant's self-service URL path.
    pub fn enroll_path(&self) -> String {
        Route::path("/t", &self.tenant, Endpoint::Enroll)
    }

    /// A transport into [`EnrollmentService::handle`] at `now`, appending
    /// the events each request produced to `events`.
    pub fn transport<'a, R: rand_core::CryptoRng + ?Sized>(
        &'a self,
        now: SystemTime,
        rng: &'a mut R,
        events: &'a mut Vec<Event>,
    ) -> impl FnMut(Request) -> Response + 'a {
        move |req| {
            let (resp, ev) = self.service.handle(&req, now, rng);
            events.extend(ev);
            resp
        }
    }
}
