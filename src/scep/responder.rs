//! The SCEP responder: one call per HTTP request, decisions handed back.
//!
//! ```text
//! handle(request, now, rng) ─┬─ Respond(Response)           GetCACaps, GetCACert, FAILURE CertRep, HTTP 4xx
//!                            ├─ Certificate(CertificateRequest)  PKCSReq / RenewalReq: verified CSR
//!                            │     .issue(..) | .replay(record) | .reject(failInfo) | .pending()
//!                            └─ Poll(PollRequest)           GetCertInitial: .issued(record) | .pending() | .reject()
//! ```
//!
//! What the responder decides itself, before a caller sees anything: the
//! PKIMessage signature, the message type (UpdateReq, GetCert, GetCRL and
//! unknown types get FAILURE badRequest), decryption and CSR validity, and the
//! presence of *some* authorization (a challenge, or a signer certificate this
//! CA issued that is valid at `now`). Every failure once the transactionID
//! could be read is a signed CertRep with HTTP 200; decryption, envelope,
//! CSR and challenge failures all produce the same FAILURE (badRequest), so
//! nothing about the key transport leaks (no padding oracle).
//!
//! What the caller decides: whether the challenge is valid (one-time,
//! unexpired, bound to its activation; see [`ChallengeVerifier`]), replays
//! (see [`IssuanceRecord`]), the subject and SANs, the serial, the validity.

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use crate::cms::enveloped::{
    ContentCipher, DecryptPolicy, EnvelopedData, EnvelopedError, RecipientIdentity,
};
use crate::cms::{self, CmsError};
use crate::crypto::{KeyUnwrapper, Signer};
use crate::http::{Request, Response, media_type};
use crate::pki::{self, LeafPolicy, PkiError};
use crate::wire::Limits;

use super::message::{CertRep, IssuerAndSubject, PkiMessage};
use super::transport::{self, Operation, TransportError};
use super::{Capabilities, Challenge, Csr, FailInfo, MessageType, PkiStatus};

/// Errors from configuring the responder or issuing.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ScepError {
    /// A certificate could not be parsed or does not match its key.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Building the certificate failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Signing the CertRep failed.
    #[error(transparent)]
    Cms(#[from] CmsError),
    /// Encrypting the reply failed.
    #[error(transparent)]
    Envelope(#[from] EnvelopedError),
}

/// A key pair held by the caller: its certificate and the two operations.
#[derive(Clone)]
struct KeyHolder {
    cert: cms::Certificate,
    signer: Arc<dyn Signer>,
    unwrapper: Arc<dyn KeyUnwrapper>,
    identity: RecipientIdentity,
}

impl KeyHolder {
    fn new(
        cert_der: &[u8],
        signer: Arc<dyn Signer>,
        unwrapper: Arc<dyn KeyUnwrapper>,
    ) -> Result<Self, ScepError> {
        let cert = cms::Certificate::from_der(cert_der)
            .map_err(|e| ScepError::Certificate(e.to_string()))?;
        if !cert.has_public_key(signer.public_key()) || !cert.has_public_key(unwrapper.public_key())
        {
            return Err(ScepError::Certificate(
                "key does not match the certificate".into(),
            ));
        }
        let identity = RecipientIdentity::of(&cert);
        Ok(Self {
            cert,
            signer,
            unwrapper,
            identity,
        })
    }
}

/// The SCEP server component. Immutable once built; share it behind an `Arc`.
#[derive(Clone)]
pub struct ScepResponder {
    ca: KeyHolder,
    ca_x509: x509_cert::Certificate,
    ra: Option<KeyHolder>,
    caps: Capabilities,
    decrypt_policy: DecryptPolicy,
    limits: Limits,
    ca_cert_response: Response,
}

impl std::fmt::Debug for ScepResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScepResponder")
            .field("ca", &self.ca.cert.subject_string())
            .field("ra", &self.ra.as_ref().map(|r| r.cert.subject_string()))
            .field("caps", &self.caps)
            .field("decrypt_policy", &self.decrypt_policy)
            .finish_non_exhaustive()
    }
}

impl ScepResponder {
    /// A responder for the CA certificate `ca_cert_der`, whose key signs
    /// certificates and CertReps (`signer`) and decrypts requests (`unwrapper`).
    /// Defaults: [`Capabilities::default`], [`DecryptPolicy::default`]
    /// (single DES accepted), [`Limits::default`].
    pub fn new(
        ca_cert_der: &[u8],
        signer: Arc<dyn Signer>,
        unwrapper: Arc<dyn KeyUnwrapper>,
    ) -> Result<Self, ScepError> {
        use der::Decode;
        let ca = KeyHolder::new(ca_cert_der, signer, unwrapper)?;
        let ca_x509 = x509_cert::Certificate::from_der(ca.cert.der())
            .map_err(|e| ScepError::Certificate(e.to_string()))?;
        let ca_cert_response =
            Response::with_body(200, media_type::CA_CERT, ca.cert.der().to_vec());
        Ok(Self {
            ca,
            ca_x509,
            ra: None,
            caps: Capabilities::default(),
            decrypt_policy: DecryptPolicy::default(),
            limits: Limits::default(),
            ca_cert_response,
        })
    }

    /// Use a separate RA certificate (issued by the CA) to receive requests
    /// and sign CertReps; GetCACert then serves `[RA, CA]` as
    /// `application/x-x509-ca-ra-cert`. Requests encrypted to the CA are
    /// still accepted.
    pub fn with_ra(
        mut self,
        ra_cert_der: &[u8],
        signer: Arc<dyn Signer>,
        unwrapper: Arc<dyn KeyUnwrapper>,
    ) -> Result<Self, ScepError> {
        let ra = KeyHolder::new(ra_cert_der, signer, unwrapper)?;
        ra.cert
            .verify_issued_by(&self.ca.cert)
            .map_err(|e| ScepError::Certificate(format!("RA not issued by the CA: {e}")))?;
        let bag = cms::degenerate(&[ra.cert.clone(), self.ca.cert.clone()])?;
        self.ca_cert_response = Response::with_body(200, media_type::CA_RA_CERT, bag);
        self.ra = Some(ra);
        Ok(self)
    }

    /// Advertise `caps` in GetCACaps.
    pub fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Set what content encryption is accepted.
    pub fn with_decrypt_policy(mut self, policy: DecryptPolicy) -> Self {
        self.decrypt_policy = policy;
        self
    }

    /// Set the size limits (`limits.ber.max_size` bounds a PKIMessage).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The CA certificate.
    pub fn ca_certificate(&self) -> &cms::Certificate {
        &self.ca.cert
    }

    /// The certificate that signs CertReps (the RA if there is one, else the CA).
    pub fn reply_signer_certificate(&self) -> &cms::Certificate {
        &self.reply_keys().cert
    }

    fn reply_keys(&self) -> &KeyHolder {
        self.ra.as_ref().unwrap_or(&self.ca)
    }

    /// Handle one HTTP request to the SCEP endpoint. `rng` supplies nonces
    /// for CertReps the responder answers itself.
    pub fn handle<R: rand_core::CryptoRng + ?Sized>(
        &self,
        request: &Request,
        now: SystemTime,
        rng: &mut R,
    ) -> ScepOutcome<'_> {
        let op = match transport::parse_request(request, self.limits.ber.max_size) {
            Ok(op) => op,
            Err(e) => return ScepOutcome::Respond(transport_error(&e)),
        };
        match op {
            Operation::GetCaCaps => ScepOutcome::Respond(Response::with_body(
                200,
                "text/plain",
                self.caps.to_body().into_bytes(),
            )),
            Operation::GetCaCert => ScepOutcome::Respond(self.ca_cert_response.clone()),
            Operation::GetNextCaCert => ScepOutcome::Respond(Response::with_body(
                501,
                "text/plain",
                b"GetNextCACert not supported\n".to_vec(),
            )),
            Operation::PkiOperation(bytes) => self.pki_operation(&bytes, now, rng),
        }
    }

    fn pki_operation<R: rand_core::CryptoRng + ?Sized>(
        &self,
        bytes: &[u8],
        now: SystemTime,
        rng: &mut R,
    ) -> ScepOutcome<'_> {
        let message = match PkiMessage::decode(bytes, &self.limits.ber) {
            Ok(m) => m,
            // Without a transactionID there is nothing a CertRep could answer.
            Err(_) => {
                return ScepOutcome::Respond(Response::with_body(
                    400,
                    "text/plain",
                    b"malformed PKIMessage\n".to_vec(),
                ));
            }
        };
        let fail = |info: FailInfo, rng: &mut R| {
            ScepOutcome::Respond(self.reply(
                &message,
                PkiStatus::Failure,
                Some(info),
                None,
                now,
                rng,
            ))
        };
        let signer = match message.verify() {
            Ok(cert) => cert.clone(),
            Err(_) => return fail(FailInfo::BadMessageCheck, rng),
        };
        let Ok(signer_key) = signer.public_key() else {
            return fail(FailInfo::BadRequest, rng);
        };
        if message.sender_nonce().is_none() {
            return fail(FailInfo::BadRequest, rng);
        }
        let kind = message.message_type();
        if !matches!(
            kind,
            MessageType::PkcsReq | MessageType::RenewalReq | MessageType::CertPoll
        ) {
            return fail(FailInfo::BadRequest, rng);
        }
        let (plaintext, cipher) = match self.decrypt(&message) {
            Ok(p) => p,
            Err(EnvelopedError::UnsupportedCipher(_) | EnvelopedError::SingleDesRefused) => {
                return fail(FailInfo::BadAlg, rng);
            }
            // One answer for every other cause (no oracle).
            Err(_) => return fail(FailInfo::BadRequest, rng),
        };
        if kind == MessageType::CertPoll {
            return match IssuerAndSubject::decode(&plaintext, &self.limits.ber) {
                Ok(ias) => ScepOutcome::Poll(Box::new(PollRequest {
                    exchange: Exchange {
                        responder: self,
                        message,
                        signer,
                        signer_key,
                        cipher,
                    },
                    issuer_and_subject: ias,
                })),
                Err(_) => fail(FailInfo::BadRequest, rng),
            };
        }
        let csr = match Csr::parse(&plaintext, &self.limits.ber) {
            Ok(csr) => csr,
            Err(_) => return fail(FailInfo::BadRequest, rng),
        };
        let renewal_of = self.issued_by_us(&signer, now).then(|| signer.clone());
        // RFC 8894: without a certificate from this CA the requester signs
        // with a self-signed certificate for the key it asks a certificate for. A CSR for another
        // key would put the certificate for a key the signer need not hold
        // (a replayed CSR) into an envelope the signer can open.
        if renewal_of.is_none() && !same_key(&signer, &csr) {
            return fail(FailInfo::BadRequest, rng);
        }
        let challenge = csr
            .challenge_password()
            .or(message.outer_challenge())
            .cloned();
        // A self-signed signer proves nothing: without a certificate this CA
        // issued, only a challenge can authorize (RenewalReq included).
        if renewal_of.is_none() && challenge.is_none() {
            return fail(FailInfo::BadRequest, rng);
        }
        let fingerprint = RequestFingerprint(Sha256::digest(csr.as_bytes()).into());
        ScepOutcome::Certificate(Box::new(CertificateRequest {
            exchange: Exchange {
                responder: self,
                message,
                signer,
                signer_key,
                cipher,
            },
            csr,
            challenge,
            renewal_of,
            fingerprint,
        }))
    }

    /// Whether `cert` was issued by this CA and is valid at `now`.
    fn issued_by_us(&self, cert: &cms::Certificate, now: SystemTime) -> bool {
        cert.issuer_der() == self.ca.cert.subject_der()
            && cert.der() != self.ca.cert.der()
            && cert.verify_issued_by(&self.ca.cert).is_ok()
            && cert.is_valid_at(now)
    }

    fn decrypt(&self, message: &PkiMessage) -> Result<(Vec<u8>, ContentCipher), EnvelopedError> {
        let env = message.envelope(&self.limits.ber)?;
        let cipher = env
            .cipher
            .ok_or(EnvelopedError::UnsupportedCipher(env.cipher_oid))?;
        let keys = self
            .ra
            .iter()
            .chain(std::iter::once(&self.ca))
            .find(|k| env.recipients.iter().any(|r| k.identity.matches(&r.rid)))
            .ok_or(EnvelopedError::NoRecipient)?;
        let plain = env.decrypt(
            &keys.identity,
            keys.unwrapper.as_ref(),
            &self.decrypt_policy,
        )?;
        Ok((plain, cipher))
    }

    /// Sign a CertRep answering `message`; on a signing failure (a broken
    /// key backend) answer HTTP 500 without details.
    fn reply<R: rand_core::CryptoRng + ?Sized>(
        &self,
        message: &PkiMessage,
        status: PkiStatus,
        fail_info: Option<FailInfo>,
        envelope: Option<Vec<u8>>,
        now: SystemTime,
        rng: &mut R,
    ) -> Response {
        let mut rep = CertRep::for_request(message, status, fail_info, rng);
        rep.envelope = envelope;
        let keys = self.reply_keys();
        match rep.encode(keys.signer.as_ref(), &keys.cert, now) {
            Ok(body) => Response::with_body(200, media_type::PKI_MESSAGE, body),
            Err(_) => Response::empty(500),
        }
    }

    /// A SUCCESS CertRep carrying `p7` (a certs-only SignedData), enveloped
    /// to the exchange's signer (its key as parsed when the request was
    /// read) with its cipher.
    fn success<R: rand_core::CryptoRng + ?Sized>(
        &self,
        exchange: &Exchange<'_>,
        p7: &[u8],
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Response, ScepError> {
        let env = EnvelopedData::encrypt(
            p7,
            &RecipientIdentity::of(&exchange.signer),
            &exchange.signer_key,
            exchange.cipher,
            rng,
        )?;
        let mut rep = CertRep::for_request(&exchange.message, PkiStatus::Success, None, rng);
        rep.envelope = Some(env);
        let keys = self.reply_keys();
        let body = rep.encode(keys.signer.as_ref(), &keys.cert, now)?;
        Ok(Response::with_body(200, media_type::PKI_MESSAGE, body))
    }
}

/// Whether `csr` asks for the key `cert` names (compared as DER SPKI).
fn same_key(cert: &cms::Certificate, csr: &Csr) -> bool {
    use der::Encode;
    csr.public_key()
        .to_der()
        .is_ok_and(|spki| spki.as_slice() == cert.spki_der())
}

/// What [`ScepResponder::handle`] produced.
///
/// Exhaustive on purpose, unlike the crate's errors: each variant is a
/// decision the caller must carry out, so a new one should fail the caller's
/// `match` at compile time rather than fall into a wildcard arm.
#[derive(Debug)]
pub enum ScepOutcome<'a> {
    /// A finished response: send it.
    Respond(Response),
    /// A verified PKCSReq or RenewalReq: the caller decides.
    Certificate(Box<CertificateRequest<'a>>),
    /// A verified GetCertInitial (CertPoll): the caller looks the transaction up.
    Poll(Box<PollRequest<'a>>),
}

/// SHA-256 of the CSR bytes: binds a challenge and a transaction to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestFingerprint(pub [u8; 32]);

/// What the caller stores after issuing, to answer replays and polls.
///
/// Store it keyed by `transaction_id`. transactionIDs are not globally
/// unique (the same key gives the same ID on renewal), so a record only
/// answers a request whose `fingerprint` matches too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceRecord {
    /// The request's transactionID.
    pub transaction_id: String,
    /// The request's CSR fingerprint.
    pub fingerprint: RequestFingerprint,
    /// The issued certificate (DER).
    pub certificate: Vec<u8>,
}

/// A certificate the caller issued, and the response carrying it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The SUCCESS CertRep to send.
    pub response: Response,
    /// The new certificate.
    pub certificate: x509_cert::Certificate,
    /// What to store for replays and polls.
    pub record: IssuanceRecord,
}

/// The caller's one-time challenge store.
pub trait ChallengeVerifier {
    /// Check `challenge` (compare with [`Challenge::matches`]) and, if it is
    /// valid at `now`, consume it **atomically**, binding it to
    /// `fingerprint`. A challenge already consumed by the same fingerprint is
    /// an idempotent retry ([`ChallengeVerdict::Retry`]); by another one, it
    /// is refused.
    fn consume(
        &self,
        challenge: &Challenge,
        fingerprint: &RequestFingerprint,
        now: SystemTime,
    ) -> ChallengeVerdict;
}

/// The result of [`ChallengeVerifier::consume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeVerdict {
    /// Valid and now consumed.
    Accepted,
    /// Already consumed by this same request (answer from the issuance record).
    Retry,
    /// Unknown, expired, bound elsewhere, or used by another request.
    Refused,
}

/// A verified PKCSReq (19) or RenewalReq (17) awaiting the caller's decision.
#[derive(Debug)]
pub struct CertificateRequest<'a> {
    exchange: Exchange<'a>,
    csr: Csr,
    challenge: Option<Challenge>,
    renewal_of: Option<cms::Certificate>,
    fingerprint: RequestFingerprint,
}

/// One verified request and what every answer to it needs.
#[derive(Debug)]
struct Exchange<'a> {
    responder: &'a ScepResponder,
    message: PkiMessage,
    signer: cms::Certificate,
    /// The signer's key, parsed once when the request was read (the
    /// SUCCESS envelope is encrypted to it).
    signer_key: crate::crypto::PublicKey,
    cipher: ContentCipher,
}

impl Exchange<'_> {
    fn answer<R: rand_core::CryptoRng + ?Sized>(
        &self,
        status: PkiStatus,
        fail_info: Option<FailInfo>,
        now: SystemTime,
        rng: &mut R,
    ) -> Response {
        self.responder
            .reply(&self.message, status, fail_info, None, now, rng)
    }

    /// SUCCESS carrying a certificate the caller kept (a replay or a
    /// poll): parsed first, so a damaged record is an error, not a reply.
    fn deliver_kept<R: rand_core::CryptoRng + ?Sized>(
        &self,
        cert_der: &[u8],
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Response, ScepError> {
        let kept = cms::Certificate::from_der(cert_der)
            .map_err(|e| ScepError::Certificate(e.to_string()))?;
        self.deliver(kept.der(), now, rng)
    }

    /// SUCCESS carrying a certificate as DER this crate encoded or parsed
    /// (not parsed again).
    fn deliver<R: rand_core::CryptoRng + ?Sized>(
        &self,
        cert_der: &[u8],
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Response, ScepError> {
        let p7 = crate::cms::builder::degenerate_der(&[cert_der])?;
        self.responder.success(self, &p7, now, rng)
    }
}

impl CertificateRequest<'_> {
    /// PKCSReq or RenewalReq.
    pub fn message_type(&self) -> MessageType {
        self.exchange.message.message_type()
    }

    /// The transactionID.
    pub fn transaction_id(&self) -> &str {
        self.exchange.message.transaction_id()
    }

    /// The verified CSR (self-signature checked).
    pub fn csr(&self) -> &Csr {
        &self.csr
    }

    /// The certificate that signed the request (the client's temporary
    /// self-signed certificate, or its current one when renewing).
    pub fn signer_certificate(&self) -> &cms::Certificate {
        &self.exchange.signer
    }

    /// The challenge presented (CSR challengePassword, else the outer
    /// attribute). Check it through [`Self::check_challenge`] or your store.
    pub fn challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// Set when the signer certificate was issued by this CA and is valid
    /// now: the request is a renewal authenticated by that certificate. The
    /// caller should still check it is not revoked.
    pub fn renewal_of(&self) -> Option<&cms::Certificate> {
        self.renewal_of.as_ref()
    }

    /// The content cipher the client used (the reply uses the same).
    pub fn cipher(&self) -> ContentCipher {
        self.exchange.cipher
    }

    /// SHA-256 of the CSR, for replay and challenge binding.
    pub fn fingerprint(&self) -> RequestFingerprint {
        self.fingerprint
    }

    /// Run the presented challenge through the caller's store
    /// ([`ChallengeVerdict::Refused`] if none was presented).
    pub fn check_challenge(
        &self,
        verifier: &dyn ChallengeVerifier,
        now: SystemTime,
    ) -> ChallengeVerdict {
        match &self.challenge {
            Some(c) => verifier.consume(c, &self.fingerprint, now),
            None => ChallengeVerdict::Refused,
        }
    }

    /// Issue a certificate for the CSR's key under `policy` (subject, SANs,
    /// usages decided by the caller), with `serial` (from
    /// [`pki::random_serial`]; the caller's store must reject duplicates) and
    /// `validity` (e.g. [`pki::validity`] from `now`). The reply is enveloped
    /// to the signer certificate with the request's cipher.
    pub fn issue<R: rand_core::CryptoRng + ?Sized>(
        &self,
        policy: &LeafPolicy,
        serial: SerialNumber,
        validity: Validity,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Issued, ScepError> {
        use der::Encode;
        let r = self.exchange.responder;
        let cert = pki::issue(
            &r.ca_x509,
            r.ca.signer.as_ref(),
            self.csr.public_key().clone(),
            policy,
            serial,
            validity,
        )?;
        let der = cert.to_der().map_err(PkiError::from)?;
        let response = self.exchange.deliver(&der, now, rng)?;
        Ok(Issued {
            response,
            certificate: cert,
            record: IssuanceRecord {
                transaction_id: self.transaction_id().to_owned(),
                fingerprint: self.fingerprint,
                certificate: der,
            },
        })
    }

    /// Whether this request is a retry of the one `record` answered: same
    /// transactionID, same CSR, and not signed by the certificate the record
    /// holds (a request signed by that certificate is its renewal, which
    /// reuses the transactionID when the key is kept).
    pub fn is_replay_of(&self, record: &IssuanceRecord) -> bool {
        record.transaction_id == self.transaction_id()
            && record.fingerprint == self.fingerprint
            && record.certificate != self.exchange.signer.der()
    }

    /// Answer a retry from the caller's record (see [`Self::is_replay_of`]):
    /// the same certificate again, enveloped to this request's signer; a
    /// record that does not match gives FAILURE badRequest.
    pub fn replay<R: rand_core::CryptoRng + ?Sized>(
        &self,
        record: &IssuanceRecord,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Response, ScepError> {
        if !self.is_replay_of(record) {
            return Ok(self.reject(FailInfo::BadRequest, now, rng));
        }
        self.exchange.deliver_kept(&record.certificate, now, rng)
    }

    /// Refuse with `fail_info` (use [`FailInfo::BadRequest`] for a bad challenge).
    pub fn reject<R: rand_core::CryptoRng + ?Sized>(
        &self,
        fail_info: FailInfo,
        now: SystemTime,
        rng: &mut R,
    ) -> Response {
        self.exchange
            .answer(PkiStatus::Failure, Some(fail_info), now, rng)
    }

    /// Answer PENDING (manual approval); the client polls with GetCertInitial.
    pub fn pending<R: rand_core::CryptoRng + ?Sized>(
        &self,
        now: SystemTime,
        rng: &mut R,
    ) -> Response {
        self.exchange.answer(PkiStatus::Pending, None, now, rng)
    }
}

/// A verified GetCertInitial / CertPoll (20) awaiting the caller's lookup.
#[derive(Debug)]
pub struct PollRequest<'a> {
    exchange: Exchange<'a>,
    issuer_and_subject: IssuerAndSubject,
}

impl PollRequest<'_> {
    /// The transactionID of the pending request.
    pub fn transaction_id(&self) -> &str {
        self.exchange.message.transaction_id()
    }

    /// The issuer (CA) and requested subject names (DER).
    pub fn issuer_and_subject(&self) -> &IssuerAndSubject {
        &self.issuer_and_subject
    }

    /// The certificate that signed the poll.
    pub fn signer_certificate(&self) -> &cms::Certificate {
        &self.exchange.signer
    }

    /// The certificate was issued meanwhile: send it (a record of another
    /// transaction gives FAILURE badCertId).
    pub fn issued<R: rand_core::CryptoRng + ?Sized>(
        &self,
        record: &IssuanceRecord,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Response, ScepError> {
        if record.transaction_id != self.transaction_id() {
            return Ok(self.reject(FailInfo::BadCertId, now, rng));
        }
        self.exchange.deliver_kept(&record.certificate, now, rng)
    }

    /// Still waiting.
    pub fn pending<R: rand_core::CryptoRng + ?Sized>(
        &self,
        now: SystemTime,
        rng: &mut R,
    ) -> Response {
        self.exchange.answer(PkiStatus::Pending, None, now, rng)
    }

    /// Refused, or no such transaction ([`FailInfo::BadCertId`]).
    pub fn reject<R: rand_core::CryptoRng + ?Sized>(
        &self,
        fail_info: FailInfo,
        now: SystemTime,
        rng: &mut R,
    ) -> Response {
        self.exchange
            .answer(PkiStatus::Failure, Some(fail_info), now, rng)
    }
}

fn transport_error(e: &TransportError) -> Response {
    let status = match e {
        TransportError::MethodNotAllowed(_) => 405,
        TransportError::TooLarge { .. } => 413,
        _ => 400,
    };
    Response::with_body(status, "text/plain", format!("{e}\n").into_bytes())
}
