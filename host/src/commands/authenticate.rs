//! `authenticate`: a login proof bound to the requesting origin.
//!
//! The card signs `H(origin) || H(challengeNonce)` with the JWS algorithm of the key (RS256,
//! ES256, ES384), H being that algorithm's hash over the UTF-8 strings as received: the
//! construction Web eID uses, so its validators' logic carries over (the contract itself is
//! `cacbridge_cert::token`). The origin comes from the extension, which takes it from the
//! browser; nothing here lets a page choose it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use cacbridge_card::{Backend, Digest, Pin, Purpose};
use cacbridge_cert::check_authentication_profile;
use cacbridge_cert::token::{authentication_message, Algorithm, AuthToken, TOKEN_FORMAT};

use super::rules::{
    card_hash, checked_origin, find, jws_signature, pin_argument, signed_in_slot, usable_for,
    wrong_role,
};
use crate::arguments::{check_certificate_id, check_nonce, required_string};
use crate::messaging::protocol::{Arguments, WireError};
use crate::policy::Policy;
use crate::usage::Use;
use crate::HOST_VERSION;

/// The arguments, checked before the card is touched.
pub struct AuthenticateRequest {
    certificate_id: String,
    origin: String,
    nonce: String,
    pin: Pin,
}

impl AuthenticateRequest {
    pub fn parse(arguments: &Arguments, policy: &Policy) -> Result<Self, WireError> {
        let certificate_id = required_string(arguments, "certificateId")?;
        check_certificate_id(certificate_id)?;
        let nonce = required_string(arguments, "challengeNonce")?;
        check_nonce(nonce)?;
        let origin = checked_origin(arguments, policy)?;
        let pin = pin_argument(arguments)?;
        Ok(Self {
            certificate_id: certificate_id.to_owned(),
            origin,
            nonce: nonce.to_owned(),
            pin,
        })
    }
}

pub fn authenticate(
    token: &mut dyn Backend,
    request: AuthenticateRequest,
) -> Result<AuthToken, WireError> {
    let listed = find(token, &request.certificate_id, Purpose::Authentication)?;
    let (cert, (algorithm, signature)) = signed_in_slot(token, listed, |token, cert| {
        // FPKI: Card Authentication (9E) needs no PIN and proves nothing about the holder; Key
        // Management (9D) is for encryption. Only 9A or the CAC ID certificate log a person in,
        // and only when the certificate has the authentication profile a verifier insists on.
        if !usable_for(cert).contains(&Use::Authenticate) {
            let refusal = wrong_role(cert, "to log in");
            return Err(match check_authentication_profile(&cert.info) {
                Err(reason) => refusal.with_detail("reason", reason.to_string()),
                Ok(()) => refusal,
            });
        }
        let algorithm = Algorithm::for_key(cert.info.key_algorithm);
        let message = authentication_message(algorithm, &request.origin, &request.nonce);
        let digest = Digest::of(card_hash(algorithm), &message);
        Ok(token
            .sign(cert, &digest, &request.pin)
            .map(|signature| (algorithm, signature)))
    })?;
    Ok(AuthToken {
        format: TOKEN_FORMAT.into(),
        unverified_certificate: BASE64.encode(&cert.der),
        algorithm: algorithm.name().into(),
        signature: BASE64.encode(jws_signature(cert.info.key_algorithm, signature)?),
        app_version: format!("cacbridge-host/{HOST_VERSION}"),
    })
}
