//! The rules `authenticate` and `sign` share: which certificate may do what, the PIN and
//! origin arguments, finding the certificate, and the JWS form of a signature.

use cacbridge_card::certificate::token::Algorithm;
use cacbridge_card::crypto::ecdsa_der_to_fixed;
use cacbridge_card::{CardCertificate, HashFunction, KeyAlgorithm, Pin, Token};

use crate::arguments::{check_origin, invalid, required_secret, required_string};
use crate::messaging::protocol::{Arguments, ErrorCode, WireError};
use crate::policy::{Policy, Refusal};
pub use crate::usage::usable_for;
use crate::views;

pub(super) fn pin_argument(arguments: &Arguments) -> Result<Pin, WireError> {
    let digits = required_secret(arguments, "pin")?;
    Pin::new(digits).map_err(|_| invalid("pin", "pin-format", "a PIN is 6 to 8 digits"))
}

pub(super) fn checked_origin(arguments: &Arguments, policy: &Policy) -> Result<String, WireError> {
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

pub(super) fn find(token: &mut dyn Token, id: &str) -> Result<CardCertificate, WireError> {
    token
        .certificates(None)
        .map_err(WireError::from)?
        .into_iter()
        .find(|c| c.info.id == id)
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::CertificateNotFound,
                "no inserted card holds that certificate",
            )
        })
}

pub(super) fn wrong_role(cert: &CardCertificate, wanted: &str) -> WireError {
    WireError::new(
        ErrorCode::KeyNotUsable,
        format!(
            "the {} certificate cannot be used {wanted}",
            views::slot_role(cert.slot)
        ),
    )
    .with_detail("role", views::slot_role(cert.slot))
}

/// The card layer's name for the hash of a token's JWS algorithm.
pub(super) fn card_hash(algorithm: Algorithm) -> HashFunction {
    match algorithm {
        Algorithm::Rs256 | Algorithm::Es256 => HashFunction::Sha256,
        Algorithm::Es384 => HashFunction::Sha384,
    }
}

/// The signature as JWS wants it: RSA as is, ECDSA as fixed-width r || s.
pub(super) fn jws_signature(key: KeyAlgorithm, signature: Vec<u8>) -> Result<Vec<u8>, WireError> {
    match key {
        KeyAlgorithm::Rsa { .. } => Ok(signature),
        ec => ecdsa_der_to_fixed(&signature, ec.size_bytes()).map_err(WireError::from),
    }
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
