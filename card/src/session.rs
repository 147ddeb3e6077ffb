//! Card operations that span several APDUs, independent of how the card is reached. Callers
//! run each inside one PC/SC transaction.

use crate::cac;
use crate::certificate::KeyAlgorithm;
use crate::crypto::{ecdsa_input, pkcs1_v15_block, Digest};
use crate::error::CardError;
use crate::model::{CardType, PinStatus, Slot};
use crate::pin::Pin;
use crate::piv;
use crate::transport::Channel;

/// What a card holds: its type and each populated slot's certificate (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardContents {
    pub card_type: CardType,
    pub certificates: Vec<(Slot, Vec<u8>)>,
}

/// Read every certificate with as few APDUs as the card allows: one SELECT, then one GET DATA
/// per object (plus its 61xx continuations). Retired slots are read only when the Key History
/// object says they hold certificates.
pub fn read_contents(ch: &mut Channel<'_>) -> Result<CardContents, CardError> {
    if piv::select(ch)? {
        let mut certificates = Vec::new();
        for slot in Slot::PIV_CURRENT {
            if let Some(der) = piv::read_certificate(ch, slot)? {
                certificates.push((slot, der));
            }
        }
        for slot in piv::key_history(ch)?.retired_slots() {
            if let Some(der) = piv::read_certificate(ch, slot)? {
                certificates.push((slot, der));
            }
        }
        return Ok(CardContents {
            card_type: CardType::Piv,
            certificates,
        });
    }
    if cac::detect(ch)? {
        let mut certificates = Vec::new();
        for slot in Slot::CAC {
            if let Some(der) = cac::read_certificate(ch, slot)? {
                certificates.push((slot, der));
            }
        }
        return Ok(CardContents {
            card_type: CardType::Cac,
            certificates,
        });
    }
    Err(CardError::UnsupportedCard(
        "the card has neither a PIV nor a CAC applet".into(),
    ))
}

/// PIN state without spending a try. `None` where the card type offers no way to ask.
pub fn pin_status(
    ch: &mut Channel<'_>,
    card_type: CardType,
) -> Result<Option<PinStatus>, CardError> {
    match card_type {
        CardType::Piv => {
            if !piv::select(ch)? {
                return Err(CardError::UnsupportedCard("the PIV applet vanished".into()));
            }
            piv::pin_status(ch).map(Some)
        }
        CardType::Cac | CardType::Unknown => Ok(None),
    }
}

/// Whether the CCC marks this PIV card as a DoD Dual CAC. Assumes PIV is selected.
pub fn is_dual_cac(ch: &mut Channel<'_>) -> Result<bool, CardError> {
    Ok(match piv::get_data(ch, piv::OBJECT_CCC)? {
        Some(contents) => piv::Ccc::parse(&contents)?.dual_cac,
        None => false,
    })
}

/// Verify the PIN and sign in one go, so a PIN Always key (9C) gets its VERIFY right before
/// its GENERAL AUTHENTICATE and no PIN is ever cached. Returns a raw RSA signature (PKCS#1
/// v1.5) or a DER ECDSA signature.
pub fn sign(
    ch: &mut Channel<'_>,
    card_type: CardType,
    slot: Slot,
    key: KeyAlgorithm,
    digest: &Digest,
    pin: &Pin,
) -> Result<Vec<u8>, CardError> {
    let input = match key {
        KeyAlgorithm::Rsa { .. } => pkcs1_v15_block(digest, key.size_bytes())?,
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => ecdsa_input(digest, key.size_bytes()),
    };
    match card_type {
        CardType::Piv => {
            if !piv::select(ch)? {
                return Err(CardError::UnsupportedCard("the PIV applet vanished".into()));
            }
            if slot.pin_required() {
                piv::verify_pin(ch, pin)?;
            }
            let output = piv::general_authenticate(ch, slot, key, &input);
            // Log out whether or not the signature worked: the PIN is not left verified.
            if slot.pin_required() {
                piv::logout(ch)?;
            }
            let output = output?;
            if matches!(key, KeyAlgorithm::Rsa { .. }) && output.len() != key.size_bytes() {
                return Err(CardError::Malformed(format!(
                    "RSA signature of {} bytes from a {}-byte key",
                    output.len(),
                    key.size_bytes()
                )));
            }
            Ok(output)
        }
        CardType::Cac => {
            if !matches!(key, KeyAlgorithm::Rsa { .. }) {
                return Err(CardError::KeyNotUsable(
                    "CAC applets hold RSA keys only".into(),
                ));
            }
            // Selecting a CAC applet resets PIV security status: everything stays in the CAC
            // applet from here on.
            if !cac::select(ch, &cac::applet_aid(slot).unwrap_or_default())? {
                return Err(CardError::CertificateNotFound);
            }
            cac::verify_pin(ch, pin)?;
            cac::sign_raw(ch, &input)
        }
        CardType::Unknown => Err(CardError::UnsupportedCard("unknown card type".into())),
    }
}
