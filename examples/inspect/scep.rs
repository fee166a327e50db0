//! `inspect scep <file> [--ca-key KEY]`: a SCEP PKIMessage (request or
//! CertRep, DER or BER): type, transactionID, nonces, status, digest,
//! content cipher, signer (the signature must verify against the signer
//! certificate the message carries, else exit 1); with the
//! recipient's private key (CA/RA for requests, client for CertReps) also the
//! decrypted CSR, IssuerAndSubject or issued certificates.

use mdm_enroll::cms::SignedData;
use mdm_enroll::cms::enveloped::{DecryptPolicy, RecipientId, RecipientIdentity};
use mdm_enroll::crypto::RsaKey;
use mdm_enroll::scep::{Csr, IssuerAndSubject, MessageType, PkiMessage};
use mdm_enroll::wire::BerLimits;
use mdm_enroll::wire::hex::upper as hex;
use serde_json::{Value, json};

fn type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::CertRep => "CertRep",
        MessageType::RenewalReq => "RenewalReq",
        MessageType::UpdateReq => "UpdateReq",
        MessageType::PkcsReq => "PKCSReq",
        MessageType::CertPoll => "CertPoll",
        MessageType::GetCert => "GetCert",
        MessageType::GetCrl => "GetCRL",
        MessageType::Other(_) => "unknown",
    }
}

/// `inspect scep <file> [--ca-key KEY]`: print one JSON object.
pub fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: inspect scep <pkimessage> [--ca-key <key.pem>]";
    let (path, key) = match args {
        [path] => (path, None),
        [path, flag, key] if flag == "--ca-key" => (path, Some(key)),
        _ => return Err(usage.into()),
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let key = key
        .map(|k| std::fs::read(k).map_err(|e| format!("{k}: {e}")))
        .transpose()?;
    let value = inspect_with_key(&bytes, key.as_deref())?;
    println!("{value}");
    Ok(())
}

/// Decode, and decrypt the envelope with `key` (PEM or DER, PKCS#1 or PKCS#8).
pub fn inspect_with_key(bytes: &[u8], key: Option<&[u8]>) -> Result<Value, String> {
    let limits = BerLimits::default();
    let msg = PkiMessage::decode(bytes, &limits).map_err(|e| e.to_string())?;
    msg.verify()
        .map_err(|e| format!("PKIMessage signature does not verify: {e}"))?;
    let signer = msg.signer_certificate().ok().map(|c| {
        json!({
            "subject": c.subject_string(),
            "issuer": c.issuer_string(),
            "serial": c.serial_hex(),
            "version": c.version(),
        })
    });
    let mut out = json!({
        "messageType": msg.message_type().number(),
        "messageTypeName": type_name(msg.message_type()),
        "transactionID": msg.transaction_id(),
        "senderNonce": msg.sender_nonce().map(hex),
        "recipientNonce": msg.recipient_nonce().map(hex),
        "pkiStatus": msg.pki_status().map(|s| s.as_str()),
        "failInfo": msg.fail_info().map(|f| f.as_str()),
        "digest": format!("{:?}", msg.digest()),
        "signer": signer,
        "signatureVerifies": true,
        "outerChallengePassword": msg.outer_challenge().map(|c| format!("<{} bytes>", c.expose().len())),
    });
    let Some(_) = msg.content() else {
        out["envelope"] = Value::Null;
        return Ok(out);
    };
    let env = msg
        .envelope(&limits)
        .map_err(|e| format!("envelope: {e}"))?;
    let recipients: Vec<Value> = env
        .recipients
        .iter()
        .map(|r| match &r.rid {
            RecipientId::IssuerAndSerial { serial, .. } => json!({
                "serial": hex(serial),
                "keyEncryption": r.key_encryption_algorithm.to_string(),
            }),
            RecipientId::SubjectKeyId(ski) => json!({
                "subjectKeyIdentifier": hex(ski),
                "keyEncryption": r.key_encryption_algorithm.to_string(),
            }),
        })
        .collect();
    out["envelope"] = json!({
        "contentCipher": env.cipher.map(|c| c.name().to_owned()).unwrap_or_else(|| env.cipher_oid.to_string()),
        "recipients": recipients,
        "encryptedBytes": env.encrypted_content.len(),
    });
    let Some(key) = key else { return Ok(out) };
    let key = RsaKey::from_pem_or_der(key).map_err(|e| format!("key: {e}"))?;
    let RecipientId::IssuerAndSerial { issuer, serial } = env
        .recipients
        .first()
        .map(|r| r.rid.clone())
        .ok_or("envelope has no key-transport recipient")?
    else {
        return Err("recipient named by subjectKeyIdentifier; not supported here".into());
    };
    let me = RecipientIdentity {
        issuer,
        serial,
        subject_key_id: None,
    };
    let plain = env
        .decrypt(&me, &key, &DecryptPolicy::default())
        .map_err(|e| format!("decrypt: {e}"))?;
    out["decrypted"] = match msg.message_type() {
        MessageType::PkcsReq | MessageType::RenewalReq | MessageType::UpdateReq => {
            let csr = Csr::parse(&plain, &limits).map_err(|e| format!("CSR: {e}"))?;
            json!({
                "csrSubject": csr.subject().to_string(),
                "selfSignatureVerifies": true,
                "challengePassword": csr.challenge_password().map(|c| format!("<{} bytes>", c.expose().len())),
                "requestedExtensions": csr.requested_extensions().iter().map(|e| e.extn_id.to_string()).collect::<Vec<_>>(),
            })
        }
        MessageType::CertPoll => {
            let ias = IssuerAndSubject::decode(&plain, &limits).map_err(|e| e.to_string())?;
            let name = |der: &[u8]| {
                use der::Decode;
                x509_cert::name::Name::from_der(der)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| hex(der))
            };
            json!({ "issuer": name(&ias.issuer), "subject": name(&ias.subject) })
        }
        _ => {
            let p7 = SignedData::parse(&plain, &limits).map_err(|e| format!("PKCS#7: {e}"))?;
            let certs: Vec<Value> = p7
                .certificates()
                .iter()
                .map(|c| json!({"subject": c.subject_string(), "issuer": c.issuer_string(), "serial": c.serial_hex()}))
                .collect();
            json!({ "certificates": certs })
        }
    };
    Ok(out)
}
