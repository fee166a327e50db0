//! The pieces of `push-csr`, without file or terminal IO (the tests compile
//! this module too).
//!
//! Apple's Push Certificates portal (<https://identity.apple.com>) takes a
//! base64-encoded XML plist with three strings:
//!
//! - `PushCertRequestCSR`: the customer's PKCS#10 request, base64 of its DER;
//! - `PushCertCertificateChain`: PEM certificates, the vendor's MDM signing
//!   certificate first, then Apple's WWDR intermediate and Apple's root;
//! - `PushCertSignature`: base64 of the vendor key's SHA256-with-RSA
//!   (PKCS#1 v1.5) signature over the CSR's DER.

use base64ct::{Base64, Encoding};
use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey, Signer};
use mdm_enroll::pki;

/// The subject of the push certificate request, as Keychain Access writes it.
pub struct Subject {
    /// Common name (any label; Apple replaces the subject when it issues).
    pub common_name: String,
    /// Two-letter country code.
    pub country: String,
    /// Contact e-mail address, if any.
    pub email: Option<String>,
}

impl Subject {
    /// The RFC 4514 text of the subject; refuses characters that would need
    /// escaping rather than guess.
    pub fn to_name(&self) -> Result<x509_cert::name::Name, String> {
        let check = |what: &str, v: &str| {
            if v.is_empty() || v.contains([',', '+', '"', '\\', '<', '>', ';', '=', '#']) {
                Err(format!(
                    "{what} {v:?} is empty or holds one of , + \" \\ < > ; = #"
                ))
            } else {
                Ok(())
            }
        };
        check("common name", &self.common_name)?;
        if self.country.len() != 2 || !self.country.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!(
                "country {:?} is not a two-letter code",
                self.country
            ));
        }
        // RFC 4514 lists the last RDN first: the DER order is C, CN, emailAddress.
        let mut text = String::new();
        if let Some(e) = &self.email {
            check("e-mail", e)?;
            text.push_str("emailAddress=");
            text.push_str(&e.to_ascii_lowercase());
            text.push(',');
        }
        text.push_str(&format!(
            "CN={},C={}",
            self.common_name,
            self.country.to_ascii_uppercase()
        ));
        text.parse().map_err(|e| format!("subject {text:?}: {e}"))
    }
}

/// A PKCS#10 request for `key` naming `subject`, DER.
pub fn csr(key: &RsaKey, subject: &Subject) -> Result<Vec<u8>, String> {
    pki::certification_request(key, subject.to_name()?, None).map_err(|e| e.to_string())
}

/// PEM text of a PKCS#10 request.
pub fn csr_pem(der: &[u8]) -> Result<String, String> {
    der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, der)
        .map_err(|e| e.to_string())
}

/// A PKCS#10 request from PEM (`CERTIFICATE REQUEST`) or DER, checked to
/// parse; its DER.
pub fn read_csr(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use der::Decode;
    let der = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let (label, der) = der::pem::decode_vec(bytes).map_err(|e| format!("PEM: {e}"))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(format!("PEM block {label:?} is not a CERTIFICATE REQUEST"));
        }
        der
    } else {
        bytes.to_vec()
    };
    x509_cert::request::CertReq::from_der(&der)
        .map_err(|e| format!("not a PKCS#10 request: {e}"))?;
    Ok(der)
}

/// The signed request for the portal: base64 of the XML plist.
///
/// `vendor_key` must be the key of `vendor_cert`; `chain` holds Apple's WWDR
/// intermediate and root certificates (PEM), appended after the vendor
/// certificate in the order given.
pub fn signed_request(
    csr_der: &[u8],
    vendor_cert: &Certificate,
    vendor_key: &RsaKey,
    chain: &[Certificate],
) -> Result<String, String> {
    if !vendor_cert.has_public_key(vendor_key.public_key()) {
        return Err("the vendor key is not the vendor certificate's key".into());
    }
    let signature = vendor_key
        .sign(DigestAlgorithm::Sha256, csr_der)
        .map_err(|e| format!("signing the CSR: {e}"))?;
    let mut pem_chain = vendor_cert.to_pem();
    for c in chain {
        pem_chain.push_str(&c.to_pem());
    }
    let mut dict = plist::Dictionary::new();
    dict.insert(
        "PushCertRequestCSR".into(),
        plist::Value::String(Base64::encode_string(csr_der)),
    );
    dict.insert(
        "PushCertCertificateChain".into(),
        plist::Value::String(pem_chain),
    );
    dict.insert(
        "PushCertSignature".into(),
        plist::Value::String(Base64::encode_string(&signature)),
    );
    let mut xml = Vec::new();
    plist::to_writer_xml(&mut xml, &plist::Value::Dictionary(dict))
        .map_err(|e| format!("writing the plist: {e}"))?;
    Ok(Base64::encode_string(&xml))
}
