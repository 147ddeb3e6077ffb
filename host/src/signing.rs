//! `authenticate` and `sign`: arguments checked, policy applied, then one card operation.
//!
//! `authenticate` signs `H(origin) || H(challengeNonce)` with the JWS algorithm of the key
//! (RS256, ES256, ES384), H being that algorithm's hash over the UTF-8 strings as received: the
//! construction Web eID uses, so its validators' logic carries over. The origin comes from the
//! extension, which takes it from the browser; nothing here lets a page choose it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use cacbridge_card::certificate::check_authentication_profile;
use cacbridge_card::crypto::ecdsa_der_to_fixed;
use cacbridge_card::{CardCertificate, Digest, HashFunction, KeyAlgorithm, Pin, Token};

use crate::arguments::{
    check_certificate_id, check_nonce, check_origin, hash_function, hash_function_name, invalid,
    required_secret, required_string,
};
use crate::commands::HOST_VERSION;
use crate::messaging::protocol::{Arguments, ErrorCode, WireError};
use crate::policy::{Policy, Refusal};
use crate::views;

pub const TOKEN_FORMAT: &str = "cacbridge:1";

pub struct AuthenticateRequest {
    certificate_id: String,
    origin: String,
    nonce: String,
    pin: Pin,
}

pub struct SignRequest {
    certificate_id: String,
    digest: Digest,
    pin: Pin,
}

fn pin_argument(arguments: &Arguments) -> Result<Pin, WireError> {
    let digits = required_secret(arguments, "pin")?;
    Pin::new(digits).map_err(|_| invalid("pin", "pin-format", "a PIN is 6 to 8 digits"))
}

fn checked_origin(arguments: &Arguments, policy: &Policy) -> Result<String, WireError> {
    let origin = required_string(arguments, "origin")?;
    check_origin(origin, policy.allow_insecure_localhost())?;
    policy
        .check_origin(origin)
        .map_err(|refusal| match refusal {
            Refusal::OriginNotAllowed => WireError::new(
                ErrorCode::OriginNotAllowed,
                "this site is not on the host policy's list of portals",
            )
            .with_detail("origin", origin),
            Refusal::PolicyError(reason) => WireError::new(
                ErrorCode::PolicyError,
                format!("the host policy cannot be read, so signatures are refused: {reason}"),
            ),
        })?;
    Ok(origin.to_owned())
}

pub fn authenticate_request(
    arguments: &Arguments,
    policy: &Policy,
) -> Result<AuthenticateRequest, WireError> {
    let certificate_id = required_string(arguments, "certificateId")?;
    check_certificate_id(certificate_id)?;
    let nonce = required_string(arguments, "challengeNonce")?;
    check_nonce(nonce)?;
    let origin = checked_origin(arguments, policy)?;
    let pin = pin_argument(arguments)?;
    Ok(AuthenticateRequest {
        certificate_id: certificate_id.to_owned(),
        origin,
        nonce: nonce.to_owned(),
        pin,
    })
}

pub fn sign_request(arguments: &Arguments, policy: &Policy) -> Result<SignRequest, WireError> {
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
    Ok(SignRequest {
        certificate_id: certificate_id.to_owned(),
        digest,
        pin,
    })
}

fn find(token: &mut dyn Token, id: &str) -> Result<CardCertificate, WireError> {
    token
        .certificates(None)
        .map_err(|e| views::card_error(&e))?
        .into_iter()
        .find(|c| c.info.id == id)
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::CertificateNotFound,
                "no inserted card holds that certificate",
            )
        })
}

/// Which of `authenticate` and `sign` accept this certificate: the rules both commands apply,
/// so a chooser offers only what the host will use.
pub fn usable_for(cert: &CardCertificate) -> Vec<&'static str> {
    let authentication_profile = check_authentication_profile(&cert.info).is_ok();
    let mut commands = Vec::new();
    if cert.slot.is_authentication() && authentication_profile {
        commands.push("authenticate");
    }
    if cert.slot.is_signature() && !authentication_profile {
        commands.push("sign");
    }
    commands
}

fn wrong_role(cert: &CardCertificate, wanted: &str) -> WireError {
    WireError::new(
        ErrorCode::KeyNotUsable,
        format!(
            "the {} certificate cannot be used {wanted}",
            views::slot_role(cert.slot)
        ),
    )
    .with_detail("role", views::slot_role(cert.slot))
}

/// The JWS algorithm of a key, and its hash.
fn jws_algorithm(key: KeyAlgorithm) -> (&'static str, HashFunction) {
    match key {
        KeyAlgorithm::Rsa { .. } => ("RS256", HashFunction::Sha256),
        KeyAlgorithm::EcP256 => ("ES256", HashFunction::Sha256),
        KeyAlgorithm::EcP384 => ("ES384", HashFunction::Sha384),
    }
}

/// The signature as JWS wants it: RSA as is, ECDSA as fixed-width r || s.
fn jws_signature(key: KeyAlgorithm, signature: Vec<u8>) -> Result<Vec<u8>, WireError> {
    match key {
        KeyAlgorithm::Rsa { .. } => Ok(signature),
        ec => ecdsa_der_to_fixed(&signature, ec.size_bytes()).map_err(|e| views::card_error(&e)),
    }
}

/// The bytes the card signs for `authenticate`: `H(origin) || H(nonce)`.
pub fn authentication_message(function: HashFunction, origin: &str, nonce: &str) -> Vec<u8> {
    let mut message = function.hash(origin.as_bytes());
    message.extend(function.hash(nonce.as_bytes()));
    message
}

pub fn authenticate(
    token: &mut dyn Token,
    request: AuthenticateRequest,
) -> Result<Value, WireError> {
    let cert = find(token, &request.certificate_id)?;
    // FPKI: Card Authentication (9E) needs no PIN and proves nothing about the holder; Key
    // Management (9D) is for encryption. Only 9A or the CAC ID certificate log a person in,
    // and only when the certificate has the authentication profile a verifier insists on.
    if !usable_for(&cert).contains(&"authenticate") {
        let refusal = wrong_role(&cert, "to log in");
        return Err(match check_authentication_profile(&cert.info) {
            Err(reason) => refusal.with_detail("reason", reason.to_string()),
            Ok(()) => refusal,
        });
    }
    let key = cert.info.key_algorithm;
    let (algorithm, function) = jws_algorithm(key);
    let message = authentication_message(function, &request.origin, &request.nonce);
    let digest = Digest::of(function, &message);
    let signature = token
        .sign(&request.certificate_id, &digest, &request.pin)
        .map_err(|e| views::card_error(&e))?;
    let signature = jws_signature(key, signature)?;
    Ok(json!({
        "format": TOKEN_FORMAT,
        "unverifiedCertificate": BASE64.encode(&cert.der),
        "algorithm": algorithm,
        "signature": BASE64.encode(signature),
        "appVersion": format!("cacbridge-host/{HOST_VERSION}"),
    }))
}

pub fn sign(token: &mut dyn Token, request: SignRequest) -> Result<Value, WireError> {
    let cert = find(token, &request.certificate_id)?;
    // Any hash a page submits could be a login proof's digest for another origin: only a key a
    // verifier refuses for logins may sign it (usable_for).
    if !usable_for(&cert).contains(&"sign") {
        let refusal = wrong_role(&cert, "for document signatures");
        return Err(if cert.slot.is_signature() {
            refusal.with_detail(
                "reason",
                "the certificate has the authentication profile: its signature would pass as a login",
            )
        } else {
            refusal
        });
    }
    let key = cert.info.key_algorithm;
    let signature = token
        .sign(&request.certificate_id, &request.digest, &request.pin)
        .map_err(|e| views::card_error(&e))?;
    let algorithm = match (key, request.digest.function()) {
        (KeyAlgorithm::Rsa { .. }, HashFunction::Sha256) => "RS256",
        (KeyAlgorithm::Rsa { .. }, HashFunction::Sha384) => "RS384",
        (KeyAlgorithm::Rsa { .. }, HashFunction::Sha512) => "RS512",
        (_, HashFunction::Sha256) => "ES256",
        (_, HashFunction::Sha384) => "ES384",
        (_, HashFunction::Sha512) => "ES512",
    };
    Ok(json!({
        "signature": BASE64.encode(jws_signature(key, signature)?),
        "algorithm": algorithm,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacbridge_card::{CertificateInfo, Slot};

    fn certificate(slot: Slot, key_usage: &[&'static str], eku: &[&str]) -> CardCertificate {
        CardCertificate {
            reader: "Virtual PCD 00 00".into(),
            slot,
            der: Vec::new(),
            info: CertificateInfo {
                id: "00".repeat(32),
                subject: "CN=DOE.JOHN.A.1234567890".into(),
                issuer: "CN=DOD ID CA-80".into(),
                common_name: Some("DOE.JOHN.A.1234567890".into()),
                issuer_common_name: Some("DOD ID CA-80".into()),
                serial_number: "01".into(),
                not_before: "2025-01-01T00:00:00Z".into(),
                not_after: "2028-01-01T00:00:00Z".into(),
                not_before_unix: 1_735_689_600,
                not_after_unix: 1_830_297_600,
                key_algorithm: KeyAlgorithm::EcP256,
                key_usage: key_usage.to_vec(),
                extended_key_usage: eku.iter().map(|e| e.to_string()).collect(),
                edipi: Some("1234567890".into()),
                upn: None,
                email: None,
            },
        }
    }

    const AUTH_KU: &[&str] = &["digitalSignature"];
    const AUTH_EKU: &[&str] = &["clientAuth", "smartcardLogon"];
    const SIGNING_KU: &[&str] = &["digitalSignature", "nonRepudiation"];
    const SIGNING_EKU: &[&str] = &["emailProtection", "clientAuth", "smartcardLogon"];

    #[test]
    fn authentication_keys_log_in_and_signing_keys_sign() {
        let auth = certificate(Slot::PivAuthentication, AUTH_KU, AUTH_EKU);
        assert_eq!(usable_for(&auth), ["authenticate"]);
        let cac_id = certificate(Slot::CacId, AUTH_KU, AUTH_EKU);
        assert_eq!(usable_for(&cac_id), ["authenticate"]);
        let signing = certificate(Slot::DigitalSignature, SIGNING_KU, SIGNING_EKU);
        assert_eq!(usable_for(&signing), ["sign"]);
        let cac_signing = certificate(Slot::CacEmailSignature, SIGNING_KU, SIGNING_EKU);
        assert_eq!(usable_for(&cac_signing), ["sign"]);
    }

    #[test]
    fn a_signature_slot_holding_an_authentication_profile_never_signs_page_hashes() {
        // Its signature over a page's hash would verify as a login proof for any origin.
        let misissued = certificate(Slot::DigitalSignature, AUTH_KU, AUTH_EKU);
        assert!(usable_for(&misissued).is_empty());
    }

    #[test]
    fn an_authentication_slot_holding_a_signing_certificate_never_logs_in() {
        let misplaced = certificate(Slot::PivAuthentication, SIGNING_KU, SIGNING_EKU);
        assert!(usable_for(&misplaced).is_empty());
        let email_only = certificate(Slot::CacId, AUTH_KU, &["emailProtection", "clientAuth"]);
        assert!(usable_for(&email_only).is_empty());
    }

    #[test]
    fn encryption_and_card_authentication_keys_do_neither() {
        let key_management = certificate(Slot::KeyManagement, &["keyEncipherment"], &[]);
        assert!(usable_for(&key_management).is_empty());
        let card_auth = certificate(Slot::CardAuthentication, AUTH_KU, &["pivCardAuth"]);
        assert!(usable_for(&card_auth).is_empty());
    }
}
