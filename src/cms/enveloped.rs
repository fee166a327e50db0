//! CMS EnvelopedData (RFC 5652 §6) with RSA key transport: decrypt and encrypt.
//!
//! Reading: the BER that clients send (indefinite lengths, segmented strings)
//! is first normalised by [`wire::ber`](crate::wire::ber) within
//! [`BerLimits`], then decoded with `der`-derived types built from the `cms`
//! crate's (`ContentInfo`, `CmsVersion`, `AlgorithmIdentifier`); writing
//! encodes the same types. Hand-written, because the `cms` crate cannot do
//! it: the recipient identifier keeps issuer and serial bytes as sent
//! (x509-cert refuses serials over 21 octets; certmonger uses 32), the
//! `[0] IMPLICIT` encryptedContent is accepted segmented (Apple's BER), and
//! the crate has no decryption API at all: key unwrap with implicit rejection
//! and DES/3DES/AES-CBC content decryption live here.
//!
//! - Key transport: RSA PKCS#1 v1.5 (`rsaEncryption`) through a
//!   [`KeyUnwrapper`], whose contract is implicit rejection: a bad RSA block
//!   gives a pseudo-random key, so every failure after key transport
//!   ([`EnvelopedError::DecryptionFailed`]) looks the same (no padding oracle).
//! - Content: CBC with DES (legacy, allowed by [`DecryptPolicy`]), DES-EDE3,
//!   AES-128/192/256, PKCS#7 padding.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5911::{ID_DATA, ID_ENVELOPED_DATA};
use const_oid::db::rfc5912::RSA_ENCRYPTION;
use thiserror::Error;

use cms::content_info::{CmsVersion, ContentInfo};
use der::asn1::{Any, AnyRef, OctetString};
use der::{Decode, Encode, EncodingRules, Reader, SliceReader, Tag, Tagged};
use spki::AlgorithmIdentifierOwned;

use super::asn1::{
    EncryptedContentInfo, EnvelopedDataDer, InOrder, IssuerAndSerial, KeyTransRecipientInfo,
    RecipientIdentifier, StringOctets, content_info,
};
use crate::crypto::{CryptoError, KeyUnwrapper};
use crate::wire::ber::{BerError, BerLimits};

/// `desCBC` (OIW, 1.3.14.3.2.7): single DES, what micromdm's scepclient sends.
pub const DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");
/// `des-ede3-cbc` (1.2.840.113549.3.7).
pub const DES_EDE3_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
/// `id-aes128-CBC`.
pub const AES_128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
/// `id-aes192-CBC`.
pub const AES_192_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
/// `id-aes256-CBC`.
pub const AES_256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// A content-encryption algorithm this module supports (all CBC, PKCS#7 padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    /// Single DES (56-bit; legacy, see [`DecryptPolicy::allow_single_des`]).
    DesCbc,
    /// Triple DES (EDE3).
    DesEde3Cbc,
    /// AES-128.
    Aes128Cbc,
    /// AES-192.
    Aes192Cbc,
    /// AES-256.
    Aes256Cbc,
}

impl ContentCipher {
    const ALL: [Self; 5] = [
        Self::DesCbc,
        Self::DesEde3Cbc,
        Self::Aes128Cbc,
        Self::Aes192Cbc,
        Self::Aes256Cbc,
    ];

    /// The algorithm identifier's OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::DesCbc => DES_CBC,
            Self::DesEde3Cbc => DES_EDE3_CBC,
            Self::Aes128Cbc => AES_128_CBC,
            Self::Aes192Cbc => AES_192_CBC,
            Self::Aes256Cbc => AES_256_CBC,
        }
    }

    /// Look a cipher up by OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.oid() == *oid)
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::DesCbc => 8,
            Self::DesEde3Cbc | Self::Aes192Cbc => 24,
            Self::Aes128Cbc => 16,
            Self::Aes256Cbc => 32,
        }
    }

    /// Block (and IV) length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            Self::DesCbc | Self::DesEde3Cbc => 8,
            _ => 16,
        }
    }

    /// A short name (`AES-128-CBC`, …) for logs and `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Self::DesCbc => "DES-CBC",
            Self::DesEde3Cbc => "DES-EDE3-CBC",
            Self::Aes128Cbc => "AES-128-CBC",
            Self::Aes192Cbc => "AES-192-CBC",
            Self::Aes256Cbc => "AES-256-CBC",
        }
    }

    fn decrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, EnvelopedError> {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
        fn run<C: BlockModeDecrypt + KeyIvInit>(
            key: &[u8],
            iv: &[u8],
            data: &[u8],
        ) -> Result<Vec<u8>, EnvelopedError> {
            C::new_from_slices(key, iv)
                .map_err(|_| EnvelopedError::DecryptionFailed)?
                .decrypt_padded_vec::<Pkcs7>(data)
                .map_err(|_| EnvelopedError::DecryptionFailed)
        }
        match self {
            Self::DesCbc => run::<cbc::Decryptor<des::Des>>(key, iv, data),
            Self::DesEde3Cbc => run::<cbc::Decryptor<des::TdesEde3>>(key, iv, data),
            Self::Aes128Cbc => run::<cbc::Decryptor<aes::Aes128>>(key, iv, data),
            Self::Aes192Cbc => run::<cbc::Decryptor<aes::Aes192>>(key, iv, data),
            Self::Aes256Cbc => run::<cbc::Decryptor<aes::Aes256>>(key, iv, data),
        }
    }

    fn encrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, EnvelopedError> {
        use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
        fn run<C: BlockModeEncrypt + KeyIvInit>(
            key: &[u8],
            iv: &[u8],
            data: &[u8],
        ) -> Result<Vec<u8>, EnvelopedError> {
            Ok(C::new_from_slices(key, iv)
                .map_err(|_| EnvelopedError::Malformed("cipher key or IV length"))?
                .encrypt_padded_vec::<Pkcs7>(data))
        }
        match self {
            Self::DesCbc => run::<cbc::Encryptor<des::Des>>(key, iv, data),
            Self::DesEde3Cbc => run::<cbc::Encryptor<des::TdesEde3>>(key, iv, data),
            Self::Aes128Cbc => run::<cbc::Encryptor<aes::Aes128>>(key, iv, data),
            Self::Aes192Cbc => run::<cbc::Encryptor<aes::Aes192>>(key, iv, data),
            Self::Aes256Cbc => run::<cbc::Encryptor<aes::Aes256>>(key, iv, data),
        }
    }
}

/// What decryption accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecryptPolicy {
    /// Accept single DES-CBC content (default `true`: micromdm's scepclient
    /// 2.1.0 sends nothing else; RFC 8894 says MUST NOT, so turn it off when
    /// no such client is in the fleet).
    pub allow_single_des: bool,
}

with_setters!(DecryptPolicy {
    with_single_des: allow_single_des: bool,
});

impl Default for DecryptPolicy {
    fn default() -> Self {
        Self {
            allow_single_des: true,
        }
    }
}

/// Errors from EnvelopedData decoding, decryption and encryption.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EnvelopedError {
    /// The BER structure is broken or over the limits.
    #[error("EnvelopedData BER: {0}")]
    Ber(#[from] BerError),
    /// A field is missing or of the wrong type.
    #[error("malformed EnvelopedData: {0}")]
    Malformed(&'static str),
    /// The content-encryption algorithm is not one of [`ContentCipher`].
    #[error("unsupported content encryption algorithm {0}")]
    UnsupportedCipher(ObjectIdentifier),
    /// Single DES content while [`DecryptPolicy::allow_single_des`] is off.
    #[error("single DES content encryption refused by policy")]
    SingleDesRefused,
    /// A key-transport algorithm other than `rsaEncryption` (e.g. RSAES-OAEP).
    #[error("unsupported key transport algorithm {0}")]
    UnsupportedKeyTransport(ObjectIdentifier),
    /// No KeyTransRecipientInfo is addressed to the decrypting certificate.
    #[error("no recipient matches the decryption certificate")]
    NoRecipient,
    /// Key transport or content decryption failed. Deliberately one variant
    /// for every cause (wrong key, bad RSA padding, bad CBC padding).
    #[error("decryption failed")]
    DecryptionFailed,
    /// The key backend failed (not a statement about the ciphertext).
    #[error("key backend: {0}")]
    Backend(String),
    /// The structure does not decode as EnvelopedData (after BER
    /// normalisation), or a value could not be encoded (e.g. over the `der`
    /// crate's length limit).
    #[error("EnvelopedData DER: {0}")]
    Der(#[from] der::Error),
}

/// How a KeyTransRecipientInfo names its recipient certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientId {
    /// `issuerAndSerialNumber`: DER of the issuer Name, and the serial
    /// INTEGER's content octets (any length: certmonger uses 32-byte serials).
    IssuerAndSerial {
        /// DER of the issuer `Name`.
        issuer: Vec<u8>,
        /// Content octets of the serial INTEGER.
        serial: Vec<u8>,
    },
    /// `[0] subjectKeyIdentifier`.
    SubjectKeyId(Vec<u8>),
}

/// The identity of a recipient certificate, for matching and addressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientIdentity {
    /// DER of the certificate's issuer `Name`.
    pub issuer: Vec<u8>,
    /// Content octets of the certificate's serial INTEGER.
    pub serial: Vec<u8>,
    /// The certificate's SubjectKeyIdentifier, if it has one.
    pub subject_key_id: Option<Vec<u8>>,
}

impl RecipientIdentity {
    /// The identity of a (leniently parsed) certificate.
    pub fn of(cert: &super::Certificate) -> Self {
        Self {
            issuer: cert.issuer_der().to_vec(),
            serial: cert.serial().to_vec(),
            subject_key_id: cert.subject_key_identifier(),
        }
    }

    /// Whether a recipient identifier names this certificate.
    pub fn matches(&self, rid: &RecipientId) -> bool {
        match rid {
            RecipientId::IssuerAndSerial { issuer, serial } => {
                *issuer == self.issuer && *serial == self.serial
            }
            RecipientId::SubjectKeyId(ski) => self.subject_key_id.as_deref() == Some(ski),
        }
    }
}

/// One `KeyTransRecipientInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTransRecipient {
    /// Which certificate the key was encrypted to.
    pub rid: RecipientId,
    /// The key-encryption algorithm OID (`rsaEncryption` is the one supported).
    pub key_encryption_algorithm: ObjectIdentifier,
    /// The encrypted content-encryption key.
    pub encrypted_key: Vec<u8>,
}

/// A decoded EnvelopedData (only key-transport recipients are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopedData {
    /// The key-transport recipients, in order.
    pub recipients: Vec<KeyTransRecipient>,
    /// The encrypted content's type (`id-data` for SCEP).
    pub content_type: ObjectIdentifier,
    /// The content-encryption algorithm OID as sent.
    pub cipher_oid: ObjectIdentifier,
    /// The cipher, if supported.
    pub cipher: Option<ContentCipher>,
    /// The CBC IV.
    pub iv: Vec<u8>,
    /// The ciphertext (segments of a constructed string concatenated).
    pub encrypted_content: Vec<u8>,
}

impl EnvelopedData {
    /// Decode a ContentInfo(envelopedData) or a bare EnvelopedData, BER or DER.
    pub fn parse(bytes: &[u8], limits: &BerLimits) -> Result<Self, EnvelopedError> {
        // Our BER reader enforces `limits` and makes lengths definite; the
        // der types then read the structure (under BER rules, so that a
        // segmented `[0] IMPLICIT` content is accepted).
        let normalised = crate::wire::ber::to_der(bytes, limits)?;
        let env = match ContentInfo::from_der(&normalised) {
            Ok(ci) if ci.content_type == ID_ENVELOPED_DATA => ci.content.to_der()?,
            Ok(_) => {
                return Err(EnvelopedError::Malformed(
                    "ContentInfo is not envelopedData",
                ));
            }
            // Not a ContentInfo: a bare EnvelopedData, or neither (then the
            // decoding below says what is wrong).
            Err(_) => normalised,
        };
        let mut reader = SliceReader::new_with_encoding_rules(&env, EncodingRules::Ber)?;
        let env: EnvelopedDataDer<'_> = reader.decode()?;
        reader.finish()?;
        Self::from_der_types(&env)
    }

    fn from_der_types(env: &EnvelopedDataDer<'_>) -> Result<Self, EnvelopedError> {
        // Only KeyTransRecipientInfo is an untagged SEQUENCE; the other
        // choices are [1]..[4] and are skipped.
        let recipients = env
            .recip_infos
            .0
            .iter()
            .filter(|ri| ri.tag() == Tag::Sequence)
            .map(KeyTransRecipient::from_any)
            .collect::<Result<_, _>>()?;
        let eci = &env.encrypted_content;
        let cipher_oid = eci.content_enc_alg.oid;
        let iv = match &eci.content_enc_alg.parameters {
            Some(p) if p.tag() == Tag::OctetString => {
                p.decode_as::<OctetString>()?.into_bytes().into_vec()
            }
            _ => Vec::new(),
        };
        Ok(Self {
            recipients,
            content_type: eci.content_type,
            cipher_oid,
            cipher: ContentCipher::from_oid(&cipher_oid),
            iv,
            encrypted_content: eci
                .encrypted_content
                .as_ref()
                .map(|c| c.0.clone())
                .unwrap_or_default(),
        })
    }

    /// Decrypt the content for the recipient `me`, whose private key is behind
    /// `unwrapper`.
    ///
    /// Structural problems (no matching recipient, unsupported algorithms) are
    /// reported as such; everything that depends on the secret key is
    /// [`EnvelopedError::DecryptionFailed`].
    pub fn decrypt(
        &self,
        me: &RecipientIdentity,
        unwrapper: &dyn KeyUnwrapper,
        policy: &DecryptPolicy,
    ) -> Result<Vec<u8>, EnvelopedError> {
        let cipher = self
            .cipher
            .ok_or(EnvelopedError::UnsupportedCipher(self.cipher_oid))?;
        if cipher == ContentCipher::DesCbc && !policy.allow_single_des {
            return Err(EnvelopedError::SingleDesRefused);
        }
        if self.iv.len() != cipher.block_len() {
            return Err(EnvelopedError::Malformed("IV length"));
        }
        let ktri = self
            .recipients
            .iter()
            .find(|r| me.matches(&r.rid))
            .ok_or(EnvelopedError::NoRecipient)?;
        if ktri.key_encryption_algorithm != RSA_ENCRYPTION {
            return Err(EnvelopedError::UnsupportedKeyTransport(
                ktri.key_encryption_algorithm,
            ));
        }
        let cek = unwrapper
            .unwrap_key(&ktri.encrypted_key, cipher.key_len())
            .map_err(|e| match e {
                // A backend may only fail for reasons that do not depend on
                // the ciphertext's padding (implicit rejection contract).
                CryptoError::Backend(m) | CryptoError::UnsupportedKey(m) => {
                    EnvelopedError::Backend(m)
                }
                CryptoError::BadSignature => EnvelopedError::DecryptionFailed,
            })?;
        if cek.len() != cipher.key_len() {
            return Err(EnvelopedError::DecryptionFailed);
        }
        cipher.decrypt(&cek, &self.iv, &self.encrypted_content)
    }

    /// Encrypt `content` (type `id-data`) to one recipient with `cipher`,
    /// returning the DER of a ContentInfo(envelopedData).
    ///
    /// `recipient` addresses the KeyTransRecipientInfo by issuer and serial
    /// exactly as given; `recipient_key` encrypts a fresh key from `rng`.
    pub fn encrypt<R: rand_core::CryptoRng + ?Sized>(
        content: &[u8],
        recipient: &RecipientIdentity,
        recipient_key: &crate::crypto::PublicKey,
        cipher: ContentCipher,
        rng: &mut R,
    ) -> Result<Vec<u8>, EnvelopedError> {
        let mut key = vec![0u8; cipher.key_len()];
        rng.fill_bytes(&mut key);
        if matches!(cipher, ContentCipher::DesCbc | ContentCipher::DesEde3Cbc) {
            set_odd_parity(&mut key);
        }
        let mut iv = vec![0u8; cipher.block_len()];
        rng.fill_bytes(&mut iv);
        let ciphertext = cipher.encrypt(&key, &iv, content)?;
        let encrypted_key = recipient_key
            .encrypt_pkcs1v15(rng, &key)
            .map_err(|e| EnvelopedError::Backend(e.to_string()))?;

        let ktri = KeyTransRecipientInfo {
            version: CmsVersion::V0,
            rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerial::new(
                &recipient.issuer,
                &recipient.serial,
            )?),
            // rsaEncryption takes NULL parameters (RFC 3370 §4.2.1).
            key_enc_alg: AlgorithmIdentifierOwned {
                oid: RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
            enc_key: OctetString::new(encrypted_key)?,
        }
        .to_der()?;
        let env = EnvelopedDataDer {
            version: CmsVersion::V0,
            originator_info: None,
            recip_infos: InOrder(vec![AnyRef::try_from(ktri.as_slice())?]),
            encrypted_content: EncryptedContentInfo {
                content_type: ID_DATA,
                content_enc_alg: AlgorithmIdentifierOwned {
                    oid: cipher.oid(),
                    parameters: Some(Any::encode_from(&OctetString::new(iv)?)?),
                },
                encrypted_content: Some(StringOctets(ciphertext)),
            },
            unprotected_attrs: None,
        };
        Ok(content_info(ID_ENVELOPED_DATA, &env)?)
    }
}

impl KeyTransRecipient {
    fn from_any(ri: &AnyRef<'_>) -> Result<Self, EnvelopedError> {
        let ktri: KeyTransRecipientInfo<'_> = ri.decode_as_encoding(EncodingRules::Ber)?;
        let rid = match ktri.rid {
            RecipientIdentifier::IssuerAndSerialNumber(ias) => {
                if ias.issuer.tag() != Tag::Sequence {
                    return Err(EnvelopedError::Malformed("rid issuer"));
                }
                if ias.serial_number.tag() != Tag::Integer || ias.serial_number.value().is_empty() {
                    return Err(EnvelopedError::Malformed("rid serial"));
                }
                RecipientId::IssuerAndSerial {
                    issuer: ias.issuer.to_der()?,
                    serial: ias.serial_number.value().to_vec(),
                }
            }
            RecipientIdentifier::SubjectKeyIdentifier(ski) => {
                RecipientId::SubjectKeyId(ski.into_bytes().into_vec())
            }
        };
        Ok(Self {
            rid,
            key_encryption_algorithm: ktri.key_enc_alg.oid,
            encrypted_key: ktri.enc_key.into_bytes().into_vec(),
        })
    }
}

fn set_odd_parity(key: &mut [u8]) {
    for b in key {
        *b = (*b & 0xfe) | u8::from((*b >> 1).count_ones() % 2 == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_is_odd() {
        let mut k = [0u8, 1, 2, 0xff, 0xfe, 0x80];
        set_odd_parity(&mut k);
        assert!(k.iter().all(|b| b.count_ones() % 2 == 1));
    }

    /// BER as a device may send it: indefinite lengths, a segmented
    /// `[0] IMPLICIT` content, a 32-octet serial (over x509-cert's limit) and
    /// a recipient choice other than key transport, which is skipped.
    #[test]
    fn parses_segmented_ber_with_long_serial() {
        use crate::wire::ber::encode_tlv as t;
        let serial = [0x7fu8; 32];
        let issuer = t(
            0x30,
            &t(
                0x31,
                &t(0x30, &[t(0x06, &[0x55, 4, 3]), t(0x0c, b"CA")].concat()),
            ),
        );
        let ktri = t(
            0x30,
            &[
                t(0x02, &[0]),
                t(0x30, &[issuer.clone(), t(0x02, &serial)].concat()),
                t(
                    0x30,
                    &[t(0x06, RSA_ENCRYPTION.as_bytes()), vec![5, 0]].concat(),
                ),
                t(0x04, b"wrapped"),
            ]
            .concat(),
        );
        let other = t(0xa4, &t(0x30, &t(0x06, ID_DATA.as_bytes())));
        let alg = t(
            0x30,
            &[t(0x06, AES_128_CBC.as_bytes()), t(0x04, &[9; 16])].concat(),
        );
        let mut eci = [vec![0x30, 0x80], t(0x06, ID_DATA.as_bytes()), alg].concat();
        eci.extend([0xa0, 0x80]);
        eci.extend([t(0x04, b"cipher"), t(0x04, b"text"), vec![0, 0, 0, 0]].concat());
        let mut env = [
            vec![0x30, 0x80],
            t(0x02, &[0]),
            t(0x31, &[ktri, other].concat()),
        ]
        .concat();
        env.extend([eci, vec![0, 0]].concat());
        let mut ci = [vec![0x30, 0x80], t(0x06, ID_ENVELOPED_DATA.as_bytes())].concat();
        ci.extend([vec![0xa0, 0x80], env.clone(), vec![0, 0, 0, 0]].concat());

        for input in [&ci, &env] {
            let parsed = EnvelopedData::parse(input, &BerLimits::default()).unwrap();
            assert_eq!(
                parsed.recipients,
                [KeyTransRecipient {
                    rid: RecipientId::IssuerAndSerial {
                        issuer: issuer.clone(),
                        serial: serial.to_vec(),
                    },
                    key_encryption_algorithm: RSA_ENCRYPTION,
                    encrypted_key: b"wrapped".to_vec(),
                }]
            );
            assert_eq!(parsed.cipher, Some(ContentCipher::Aes128Cbc));
            assert_eq!(parsed.iv, [9; 16]);
            assert_eq!(parsed.encrypted_content, b"ciphertext");
        }

        // A ContentInfo of another type is named as such.
        let signed = t(
            0x30,
            &[
                t(0x06, const_oid::db::rfc5911::ID_SIGNED_DATA.as_bytes()),
                t(0xa0, &env),
            ]
            .concat(),
        );
        assert_eq!(
            EnvelopedData::parse(&signed, &BerLimits::default()),
            Err(EnvelopedError::Malformed(
                "ContentInfo is not envelopedData"
            ))
        );
    }
}
