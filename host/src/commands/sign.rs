//! `sign`: a document signature over a hash the page supplies, with the card's signing key.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;

use cacbridge_card::{Backend, Digest, HashFunction, Pin, Purpose};
use cacbridge_cert::KeyAlgorithm;

use super::rules::{
    checked_origin, find, jws_signature, pin_argument, signed_in_slot, usable_for, wrong_role,
};
use crate::arguments::{
    check_certificate_id, hash_function, hash_function_name, invalid, required_string,
};
use crate::messaging::protocol::{Arguments, WireError};
use crate::policy::Policy;
use crate::usage::Use;

/// The arguments, checked before the card is touched.
pub struct SignRequest {
    certificate_id: String,
    digest: Digest,
    pin: Pin,
}

impl SignRequest {
    pub fn parse(arguments: &Arguments, policy: &Policy) -> Result<Self, WireError> {
        let certificate_id = required_string(arguments, "certificateId")?;
        check_certificate_id(certificate_id)?;
        checked_origin(arguments, policy)?;
        let function_name = required_string(arguments, "hashFunction")?;
        let function = hash_function(function_name).ok_or_else(|| {
            invalid(
                "hashFunction",
                "unsupported",
                "hashFunction is SHA-256, SHA-384 or SHA-512",
            )
        })?;
        let hash = BASE64
            .decode(required_string(arguments, "hash")?)
            .map_err(|_| invalid("hash", "base64", "hash must be base64"))?;
        let digest = Digest::new(function, hash).map_err(|_| {
            invalid(
                "hash",
                "length",
                format!(
                    "a {} hash is {} bytes",
                    hash_function_name(function),
                    function.output_len()
                ),
            )
        })?;
        let pin = pin_argument(arguments)?;
        Ok(Self {
            certificate_id: certificate_id.to_owned(),
            digest,
            pin,
        })
    }
}

/// The result of `sign` (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentSignature {
    /// Base64; ECDSA as JWS `r || s`.
    pub signature: String,
    /// The key type and hash, JWS-style: `RS256` .. `RS512`, `ES256` .. `ES512`.
    pub algorithm: &'static str,
    /// The signing certificate (base64 DER), which makes the signature checkable.
    pub certificate: String,
}

pub fn sign(token: &mut dyn Backend, request: SignRequest) -> Result<DocumentSignature, WireError> {
    let listed = find(token, &request.certificate_id, Purpose::Signature)?;
    let (cert, signature) = signed_in_slot(token, listed, |token, cert| {
        // Any hash a page submits could be a login proof's digest for another origin: only a
        // key a verifier refuses for logins may sign it (usable_for).
        if !usable_for(cert).contains(&Use::Sign) {
            let refusal = wrong_role(cert, "for document signatures");
            return Err(if cert.slot.is_signature() {
                refusal.with_detail(
                    "reason",
                    "the certificate has the authentication profile: its signature would pass as a login",
                )
            } else {
                refusal
            });
        }
        Ok(token.sign(cert, &request.digest, &request.pin))
    })?;
    let key = cert.info.key_algorithm;
    let algorithm = match (key, request.digest.function()) {
        (KeyAlgorithm::Rsa { .. }, HashFunction::Sha256) => "RS256",
        (KeyAlgorithm::Rsa { .. }, HashFunction::Sha384) => "RS384",
        (KeyAlgorithm::Rsa { .. }, HashFunction::Sha512) => "RS512",
        (_, HashFunction::Sha256) => "ES256",
        (_, HashFunction::Sha384) => "ES384",
        (_, HashFunction::Sha512) => "ES512",
    };
    Ok(DocumentSignature {
        signature: BASE64.encode(jws_signature(key, signature)?),
        algorithm,
        certificate: BASE64.encode(&cert.der),
    })
}
