//! GetCACaps (RFC 8894 §3.5.2): the capabilities a CA advertises.

/// One GetCACaps keyword. The spelling is exact: Apple matches whole lines,
/// case-sensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// `AES`: AES-128-CBC content encryption (Apple then uses it).
    Aes,
    /// `DES3`: triple-DES content encryption.
    Des3,
    /// `GetNextCACert`: CA rollover.
    GetNextCaCert,
    /// `POSTPKIOperation`: PKIOperation by HTTP POST.
    PostPkiOperation,
    /// `Renewal`: RenewalReq (17).
    Renewal,
    /// `SHA-1`.
    Sha1,
    /// `SHA-256`.
    Sha256,
    /// `SHA-512`.
    Sha512,
    /// `SCEPStandard`: RFC 8894 (implies AES, POSTPKIOperation, SHA-256).
    ScepStandard,
    /// Any other keyword, sent verbatim.
    Other(String),
}

impl Capability {
    /// The keyword as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Aes => "AES",
            Self::Des3 => "DES3",
            Self::GetNextCaCert => "GetNextCACert",
            Self::PostPkiOperation => "POSTPKIOperation",
            Self::Renewal => "Renewal",
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
            Self::Sha512 => "SHA-512",
            Self::ScepStandard => "SCEPStandard",
            Self::Other(s) => s,
        }
    }
}

/// The capability list a responder advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities(pub Vec<Capability>);

impl Default for Capabilities {
    /// POSTPKIOperation, SHA-256, SHA-512, AES, DES3, SCEPStandard, Renewal.
    ///
    /// SHA-1 is left out: with SHA-256/512 listed every client here picks
    /// those (micromdm's scepclient signs SHA-1 regardless, which the
    /// responder still accepts).
    fn default() -> Self {
        Self(vec![
            Capability::PostPkiOperation,
            Capability::Sha256,
            Capability::Sha512,
            Capability::Aes,
            Capability::Des3,
            Capability::ScepStandard,
            Capability::Renewal,
        ])
    }
}

impl Capabilities {
    /// Whether `cap` is advertised.
    pub fn contains(&self, cap: &Capability) -> bool {
        self.0.contains(cap)
    }

    /// The GetCACaps body: one keyword per line, LF-separated.
    pub fn to_body(&self) -> String {
        let mut out = String::new();
        for c in &self.0 {
            out.push_str(c.as_str());
            out.push('\n');
        }
        out
    }
}
