//! The rules `authenticate` and `sign` share: which certificate may do what, the PIN and
//! origin arguments, finding the certificate, and the JWS form of a signature.

use cacbridge_card::crypto::ecdsa_der_to_fixed;
use cacbridge_card::{Backend, CardCertificate, HashFunction, Pin, Purpose};
use cacbridge_cert::token::Algorithm;
use cacbridge_cert::KeyAlgorithm;

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

/// The certificate `id` on an inserted card, looked for first among those `purpose` needs (the
/// cheap read), then among all (so that a certificate of the wrong kind gets its own error).
pub(super) fn find(
    token: &mut dyn Backend,
    id: &str,
    purpose: Purpose,
) -> Result<CardCertificate, WireError> {
    let mut listed = token.certificates_for(None, purpose)?;
    if purpose != Purpose::All && !listed.iter().any(|c| c.info.id == id) {
        listed = token.certificates_for(None, Purpose::All)?;
    }
    listed.into_iter().find(|c| c.info.id == id).ok_or_else(|| {
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

/// `sign` with the certificate the request named (`listed`), and when the card says its
/// certificates were rewritten in the reader since they were listed
/// (`CardError::CertificatesChanged`: the signature did not match, and the card layer forgot
/// what it knew), once more with what the card holds in that reader and slot now: the person
/// chose that card's key in that slot. `sign` checks the certificate it is given (its outer
/// error refuses the request) and signs with it; the certificate used comes back with the
/// signature.
pub fn signed_in_slot<T>(
    token: &mut dyn Backend,
    listed: CardCertificate,
    mut sign: impl FnMut(
        &mut dyn Backend,
        &CardCertificate,
    ) -> Result<Result<T, cacbridge_card::CardError>, WireError>,
) -> Result<(CardCertificate, T), WireError> {
    let mut cert = listed;
    let mut rewritten = false;
    loop {
        match sign(token, &cert)? {
            Ok(signed) => return Ok((cert, signed)),
            Err(cacbridge_card::CardError::CertificatesChanged) if !rewritten => {
                rewritten = true;
                cert = token
                    .certificates(Some(&cert.reader))?
                    .into_iter()
                    .find(|c| c.slot == cert.slot)
                    .ok_or(cacbridge_card::CardError::CertificateNotFound)?;
            }
            Err(err) => return Err(err.into()),
        }
    }
}
