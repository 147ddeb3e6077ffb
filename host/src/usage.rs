//! Which certificate may do what: the one rule both the certificate view (`usableFor`) and the
//! `authenticate` and `sign` commands apply. It sits below both, knowing only the card layer.

use cacbridge_card::certificate::check_authentication_profile;
use cacbridge_card::CardCertificate;

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

#[cfg(test)]
mod tests {
    use super::*;
    use cacbridge_card::testing::certificate as fake;
    use cacbridge_card::{KeyAlgorithm, Slot};

    fn certificate(slot: Slot, key_usage: &[&'static str], eku: &[&str]) -> CardCertificate {
        fake(1, slot, KeyAlgorithm::EcP256, key_usage, eku)
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
