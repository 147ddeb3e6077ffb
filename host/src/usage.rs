//! Which certificate may do what: the one rule both the certificate view (`usableFor`) and the
//! `authenticate` and `sign` commands apply. It sits below both, knowing only the card layer.

use cacbridge_card::CardCertificate;
use cacbridge_cert::check_authentication_profile;

/// What a certificate's key may be used for; on the wire (`usableFor`) the commands' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Use {
    /// `authenticate` (and a TLS login).
    Authenticate,
    /// `sign`: a document signature.
    Sign,
}

/// Which of `authenticate` and `sign` accept this certificate: the rules both commands apply,
/// so a chooser offers only what the host will use.
pub fn usable_for(cert: &CardCertificate) -> Vec<Use> {
    let authentication_profile = check_authentication_profile(&cert.info).is_ok();
    let mut uses = Vec::new();
    if cert.slot.is_authentication() && authentication_profile {
        uses.push(Use::Authenticate);
    }
    if cert.slot.is_signature() && !authentication_profile {
        uses.push(Use::Sign);
    }
    uses
}

/// How long before the authentication certificate expires `doctor` (and the extension's
/// popup) start saying so: renewal takes an appointment.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What to say of an authentication certificate that has expired or expires within
/// [`EXPIRY_WARNING_DAYS`] of `now` (Unix seconds); nothing otherwise.
pub fn expiry_warning(info: &cacbridge_cert::CertificateInfo, now: i64) -> Option<String> {
    let left = info.not_after_unix - now;
    let date = &info.not_after[..10.min(info.not_after.len())];
    const RENEW: &str = "renew at ID Card Office Online (certificate updates, \
                         idco.dmdc.osd.mil) or, for a new card, at a RAPIDS ID card office";
    if left <= 0 {
        Some(format!(
            "the PIV Authentication certificate expired on {date}: {RENEW}"
        ))
    } else if left < EXPIRY_WARNING_DAYS * 86_400 {
        let days = left / 86_400;
        Some(format!(
            "the PIV Authentication certificate expires on {date}, in {days} day{}: {RENEW}",
            if days == 1 { "" } else { "s" }
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    #[test]
    fn an_expiry_a_month_away_is_said_with_where_to_renew() {
        let mut info = cacbridge_card::testing::certificate(
            1,
            cacbridge_card::Slot::PivAuthentication,
            cacbridge_cert::KeyAlgorithm::EcP256,
            &[KeyUsage::DigitalSignature],
            &[ExtendedKeyUsage::ClientAuth],
        )
        .info;
        let now = 1_800_000_000;
        info.not_after = "2027-01-15T00:00:00Z".into();
        info.not_after_unix = now + 12 * 86_400 + 60;
        let said = super::expiry_warning(&info, now).unwrap();
        assert!(
            said.contains("in 12 days") && said.contains("RAPIDS"),
            "{said}"
        );
        info.not_after_unix = now - 1;
        assert!(super::expiry_warning(&info, now)
            .unwrap()
            .contains("expired on 2027-01-15"));
        info.not_after_unix = now + 31 * 86_400;
        assert_eq!(super::expiry_warning(&info, now), None);
    }

    use super::*;
    use cacbridge_card::testing::certificate as fake;
    use cacbridge_card::Slot;
    use cacbridge_cert::{ExtendedKeyUsage, KeyAlgorithm, KeyUsage};

    fn certificate(
        slot: Slot,
        key_usage: &[KeyUsage],
        eku: &[ExtendedKeyUsage],
    ) -> CardCertificate {
        fake(1, slot, KeyAlgorithm::EcP256, key_usage, eku)
    }

    const AUTH_KU: &[KeyUsage] = &[KeyUsage::DigitalSignature];
    const AUTH_EKU: &[ExtendedKeyUsage] = &[
        ExtendedKeyUsage::ClientAuth,
        ExtendedKeyUsage::SmartcardLogon,
    ];
    const SIGNING_KU: &[KeyUsage] = &[KeyUsage::DigitalSignature, KeyUsage::NonRepudiation];
    const SIGNING_EKU: &[ExtendedKeyUsage] = &[
        ExtendedKeyUsage::EmailProtection,
        ExtendedKeyUsage::ClientAuth,
        ExtendedKeyUsage::SmartcardLogon,
    ];

    #[test]
    fn authentication_keys_log_in_and_signing_keys_sign() {
        let auth = certificate(Slot::PivAuthentication, AUTH_KU, AUTH_EKU);
        assert_eq!(usable_for(&auth), [Use::Authenticate]);
        let cac_id = certificate(Slot::CacId, AUTH_KU, AUTH_EKU);
        assert_eq!(usable_for(&cac_id), [Use::Authenticate]);
        let signing = certificate(Slot::DigitalSignature, SIGNING_KU, SIGNING_EKU);
        assert_eq!(usable_for(&signing), [Use::Sign]);
        let cac_signing = certificate(Slot::CacEmailSignature, SIGNING_KU, SIGNING_EKU);
        assert_eq!(usable_for(&cac_signing), [Use::Sign]);
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
        let email_only = certificate(
            Slot::CacId,
            AUTH_KU,
            &[
                ExtendedKeyUsage::EmailProtection,
                ExtendedKeyUsage::ClientAuth,
            ],
        );
        assert!(usable_for(&email_only).is_empty());
    }

    #[test]
    fn encryption_and_card_authentication_keys_do_neither() {
        let key_management = certificate(Slot::KeyManagement, &[KeyUsage::KeyEncipherment], &[]);
        assert!(usable_for(&key_management).is_empty());
        let card_auth = certificate(
            Slot::CardAuthentication,
            AUTH_KU,
            &[ExtendedKeyUsage::PivCardAuth],
        );
        assert!(usable_for(&card_auth).is_empty());
    }
}
