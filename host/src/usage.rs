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
