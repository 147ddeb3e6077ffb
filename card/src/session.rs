//! Card operations that span several APDUs, independent of how the card is reached. Callers
//! run each inside one PC/SC transaction.

use crate::apdu::Status;
use crate::cac;
use crate::certificate::KeyAlgorithm;
use crate::crypto::{ecdsa_hash_input, pkcs1_v15_block, Digest};
use crate::error::CardError;
use crate::model::{CardType, PinStatus, Purpose, Slot};
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
    read_for(ch, Purpose::All, &[])
}

/// Read the certificates `purpose` needs, skipping the slots in `known` (read before, on this
/// insertion). The key history (retired slots) belongs to [`Purpose::All`] alone.
pub fn read_for(
    ch: &mut Channel<'_>,
    purpose: Purpose,
    known: &[Slot],
) -> Result<CardContents, CardError> {
    let wanted = |slot: &Slot| purpose.includes(*slot) && !known.contains(slot);
    if piv::select(ch)? {
        let mut certificates = Vec::new();
        for slot in Slot::PIV_CURRENT.iter().filter(|s| wanted(s)) {
            if let Some(der) = piv::read_certificate(ch, *slot)? {
                certificates.push((*slot, der));
            }
        }
        if purpose == Purpose::All {
            for slot in piv::key_history(ch)?.retired_slots() {
                if known.contains(&slot) {
                    continue;
                }
                if let Some(der) = piv::read_certificate(ch, slot)? {
                    certificates.push((slot, der));
                }
            }
        }
        return Ok(CardContents {
            card_type: CardType::Piv,
            certificates,
        });
    }
    if cac::detect(ch)? {
        let mut certificates = Vec::new();
        for slot in Slot::CAC.iter().filter(|s| wanted(s)) {
            if let Some(der) = cac::read_certificate(ch, *slot)? {
                certificates.push((*slot, der));
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

/// What a status needs to know of a card, in one transaction: its type (unless `known`), its
/// PIN state, and whether the CCC marks it a Dual CAC (unless `known_dual`). A PIV card costs
/// a SELECT and an empty VERIFY, plus one GET DATA the first time.
pub fn probe(
    ch: &mut Channel<'_>,
    known: Option<CardType>,
    known_dual: Option<bool>,
) -> Result<(CardType, Option<PinStatus>, bool), CardError> {
    if known.is_none_or(|t| t == CardType::Piv) && piv::select(ch)? {
        let pin = piv::pin_status(ch)?;
        let dual = match known_dual {
            Some(dual) => dual,
            None => is_dual_cac(ch)?,
        };
        return Ok((CardType::Piv, Some(pin), dual));
    }
    if known == Some(CardType::Piv) {
        return Err(CardError::UnsupportedCard("the PIV applet vanished".into()));
    }
    if known == Some(CardType::Cac) || cac::detect(ch)? {
        return Ok((CardType::Cac, None, false));
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

/// What the card's private key operation gets: for RSA the whole padded block (PKCS#1 v1.5
/// or PSS, made on the host: PIV cards do raw RSA), for ECDSA the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureInput {
    RsaBlock(Vec<u8>),
    EcHash(Vec<u8>),
}

impl SignatureInput {
    /// The input for a PKCS#1 v1.5 or ECDSA signature over `digest` with a `key` key.
    pub fn for_digest(key: KeyAlgorithm, digest: &Digest) -> Result<Self, CardError> {
        Ok(match key {
            KeyAlgorithm::Rsa { .. } => {
                SignatureInput::RsaBlock(pkcs1_v15_block(digest, key.size_bytes())?)
            }
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                SignatureInput::EcHash(digest.bytes().to_vec())
            }
        })
    }
}

/// How a signature treats the PIN. There is no way to leave the card verified: a card left
/// verified in a shared reader signs for any program that asks (docs/pkcs11.md, "PIN
/// caching").
#[derive(Debug, Clone, Copy)]
pub enum PinUse<'a> {
    /// Verify this PIN right before signing and log out after, in the same transaction.
    Verify(&'a Pin),
    /// No VERIFY: the key needs no PIN. A card that wants one answers
    /// [`CardError::PinRequired`], which costs no PIN try.
    Standing,
}

/// Verify the PIN (as `pin` says, when the key needs one) and sign `input` in one go, so a
/// PIN Always key (9C) gets its VERIFY right before its GENERAL AUTHENTICATE and no PIN is
/// ever cached. Returns a raw RSA signature or a DER ECDSA signature.
pub fn sign_input(
    ch: &mut Channel<'_>,
    card_type: CardType,
    slot: Slot,
    key: KeyAlgorithm,
    input: &SignatureInput,
    pin: PinUse<'_>,
) -> Result<Vec<u8>, CardError> {
    let input = match (key, input) {
        (KeyAlgorithm::Rsa { .. }, SignatureInput::RsaBlock(block))
            if block.len() == key.size_bytes() =>
        {
            block.clone()
        }
        (KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384, SignatureInput::EcHash(hash)) => {
            ecdsa_hash_input(hash, key.size_bytes())
        }
        _ => {
            return Err(CardError::KeyNotUsable(format!(
                "{input:?} does not fit a {} key",
                key.name()
            )))
        }
    };
    let pin = match pin {
        _ if !slot.pin_required() => None,
        PinUse::Verify(pin) => Some(pin),
        PinUse::Standing => None,
    };
    match card_type {
        CardType::Piv => {
            if !piv::select(ch)? {
                return Err(CardError::UnsupportedCard("the PIV applet vanished".into()));
            }
            if let Some(pin) = pin {
                piv::verify_pin(ch, pin)?;
            }
            let output = piv::general_authenticate(ch, slot, key, &input);
            // Log out whether or not the signature worked: the PIN is never left verified.
            if pin.is_some() {
                piv::logout(ch)?;
            }
            let output = output.map_err(not_verified_is_pin_required)?;
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
            let aid = cac::applet_aid(slot)
                .ok_or_else(|| CardError::KeyNotUsable(format!("{slot:?} is not a CAC applet")))?;
            if !cac::select(ch, &aid)? {
                return Err(CardError::CertificateNotFound);
            }
            // GSC-IS applets have no logout: a reset at the end of the transaction is what
            // clears the PIN, so no other program finds the card verified.
            ch.reset_when_done();
            if let Some(pin) = pin {
                cac::verify_pin(ch, pin)?;
            }
            cac::sign_raw(ch, &input).map_err(not_verified_is_pin_required)
        }
        CardType::Unknown => Err(CardError::UnsupportedCard("unknown card type".into())),
    }
}

/// A key operation refused for want of a verified PIN (6982) is [`CardError::PinRequired`].
fn not_verified_is_pin_required(err: CardError) -> CardError {
    match err {
        CardError::CardStatus {
            status: Status::SecurityNotSatisfied,
            ..
        } => CardError::PinRequired,
        err => err,
    }
}

/// Check `pin` on the card and clear the security status again: a login that proves the PIN
/// without leaving the card verified for anyone.
pub fn verify_pin(ch: &mut Channel<'_>, card_type: CardType, pin: &Pin) -> Result<(), CardError> {
    match card_type {
        CardType::Piv => {
            if !piv::select(ch)? {
                return Err(CardError::UnsupportedCard("the PIV applet vanished".into()));
            }
            let verified = piv::verify_pin(ch, pin);
            if verified.is_ok() {
                piv::logout(ch)?;
            }
            verified
        }
        CardType::Cac => {
            if !cac::select(ch, &cac::ID_APPLET_AID)? {
                return Err(CardError::UnsupportedCard(
                    "the CAC ID applet vanished".into(),
                ));
            }
            ch.reset_when_done();
            cac::verify_pin(ch, pin)
        }
        CardType::Unknown => Err(CardError::UnsupportedCard("unknown card type".into())),
    }
}

#[cfg(test)]
mod tests {
    //! Legacy CAC cards: no emulator runs in unit tests, so these transcripts follow GSC-IS 2.1
    //! and the behaviour of libcacard's emulation, APDU for APDU.
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::HashFunction;
    use crate::testing::ScriptedCard;

    /// `sign_input` for a digest, as `Backend::sign` calls it.
    fn sign(
        ch: &mut Channel<'_>,
        card_type: CardType,
        slot: Slot,
        key: KeyAlgorithm,
        digest: &Digest,
        pin: &Pin,
    ) -> Result<Vec<u8>, CardError> {
        let input = SignatureInput::for_digest(key, digest)?;
        sign_input(ch, card_type, slot, key, &input, PinUse::Verify(pin))
    }

    // Legacy CACs are T=0 cards: a SELECT (case 4) goes without Le.
    const PIV_SELECT_T0: &str = "00A4040009A00000030800001000";
    const PIV_SELECT_T1: &str = "00A4040009A0000003080000100000";
    const CCC_SELECT: &str = "00A4040007A000000116DB00";

    fn hexu(bytes: &[u8]) -> String {
        hex::encode_upper(bytes)
    }

    /// The APDUs and answers of reading one PKI applet whose buffers hold `cert_info` and
    /// `stored` (the certificate as stored).
    fn applet_reads(aid_last: u8, cert_info: u8, stored: &[u8]) -> Vec<(String, String)> {
        let mut steps = vec![(
            format!("00A4040007A00000007901{aid_last:02X}"),
            "9000".to_string(),
        )];
        // Tag buffer: 71 len 1, 70 len N (long form FF lo hi when N >= 255).
        let mut tags = vec![0x71, 0x01, 0x70];
        if stored.len() < 0xFF {
            tags.push(stored.len() as u8);
        } else {
            tags.push(0xFF);
            tags.extend((stored.len() as u16).to_le_bytes());
        }
        let mut values = vec![cert_info];
        values.extend_from_slice(stored);
        for (kind, buffer) in [(1u8, &tags), (2u8, &values)] {
            let len = (buffer.len() as u16).to_le_bytes();
            steps.push((
                format!("8052000002{kind:02X}02"),
                format!("{} 9000", hexu(&len)),
            ));
            let mut offset = 0usize;
            while offset < buffer.len() {
                let n = (buffer.len() - offset).min(0xF0);
                let at = ((offset + 2) as u16).to_be_bytes();
                steps.push((
                    format!("8052{}02{kind:02X}{n:02X}", hexu(&at)),
                    format!("{} 9000", hexu(&buffer[offset..offset + n])),
                ));
                offset += n;
            }
        }
        steps
    }

    fn card(steps: &[(String, String)]) -> ScriptedCard {
        let refs: Vec<(&str, &str)> = steps
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        ScriptedCard::t0(&refs)
    }

    fn fake_certificate(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn a_cac_only_card_is_detected_and_its_three_certificates_read() {
        use flate2::{write::ZlibEncoder, Compression};
        use std::io::Write;
        let id = fake_certificate(1100, 1);
        let signature = fake_certificate(300, 2);
        let encryption = fake_certificate(90, 3);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&id).unwrap();
        let id_compressed = z.finish().unwrap();

        let mut steps = vec![
            (PIV_SELECT_T0.to_string(), "6A82".to_string()),
            (CCC_SELECT.to_string(), "9000".to_string()),
        ];
        steps.extend(applet_reads(0x00, 0x01, &id_compressed));
        steps.extend(applet_reads(0x01, 0x00, &signature));
        steps.extend(applet_reads(0x02, 0x00, &encryption));
        let mut scripted = card(&steps);
        let mut ch = Channel::new(&mut scripted);
        let contents = read_contents(&mut ch).unwrap();
        scripted.assert_done();
        assert_eq!(contents.card_type, CardType::Cac);
        assert_eq!(
            contents.certificates,
            vec![
                (Slot::CacId, id),
                (Slot::CacEmailSignature, signature),
                (Slot::CacEmailEncryption, encryption),
            ]
        );
    }

    #[test]
    fn a_missing_cac_applet_is_skipped() {
        let cert = fake_certificate(200, 9);
        let mut steps = vec![
            (PIV_SELECT_T0.to_string(), "6A82".to_string()),
            (CCC_SELECT.to_string(), "9000".to_string()),
        ];
        steps.extend(applet_reads(0x00, 0x00, &cert));
        steps.push(("00A4040007A0000000790101".into(), "6A82".into()));
        steps.push(("00A4040007A0000000790102".into(), "6A82".into()));
        let mut scripted = card(&steps);
        let mut ch = Channel::new(&mut scripted);
        let contents = read_contents(&mut ch).unwrap();
        assert_eq!(contents.certificates, vec![(Slot::CacId, cert)]);
    }

    #[test]
    fn a_card_without_piv_or_cac_is_unsupported() {
        let steps = vec![
            (PIV_SELECT_T0.to_string(), "6A82".to_string()),
            (CCC_SELECT.to_string(), "6A82".to_string()),
            ("00A4040007A0000000790100".to_string(), "6A82".to_string()),
        ];
        let mut scripted = card(&steps);
        let mut ch = Channel::new(&mut scripted);
        assert!(matches!(
            read_contents(&mut ch),
            Err(CardError::UnsupportedCard(_))
        ));
    }

    #[test]
    fn a_cac_buffer_pointing_past_its_values_is_refused() {
        // The tag buffer claims a 500-byte certificate; the value buffer holds 10 bytes.
        let mut steps = vec![("00A4040007A0000000790100".to_string(), "9000".to_string())];
        steps.push(("80520000020102".into(), "0500 9000".into()));
        steps.push(("80520002020105".into(), "710170FFF401 9000".into()));
        steps.push(("80520000020202".into(), "0A00 9000".into()));
        steps.push(("8052000202020A".into(), format!("{} 9000", "00".repeat(10))));
        let mut scripted = card(&steps);
        let mut ch = Channel::new(&mut scripted);
        assert!(matches!(
            crate::cac::read_certificate(&mut ch, Slot::CacId),
            Err(CardError::Malformed(_))
        ));
    }

    fn cac_signing_steps(cla: &str, block: &[u8]) -> Vec<(String, String)> {
        vec![
            (
                format!("{cla}428000F0{}", hexu(&block[..240])),
                "9000".to_string(),
            ),
            (
                format!("{cla}42000010{}", hexu(&block[240..])),
                "6100".to_string(),
            ),
            (
                "00C0000000".to_string(),
                format!("{} 9000", "AB".repeat(256)),
            ),
        ]
    }

    #[test]
    fn cac_signing_verifies_the_global_pin_then_signs_the_padded_block_in_pieces() {
        let digest = Digest::of(HashFunction::Sha256, b"hello");
        let block = pkcs1_v15_block(&digest, 256).unwrap();
        let mut steps = vec![
            ("00A4040007A0000000790100".to_string(), "9000".to_string()),
            ("0020000008313233343536FFFF".to_string(), "9000".to_string()),
        ];
        steps.extend(cac_signing_steps("80", &block));
        let mut scripted = card(&steps);
        let mut ch = Channel::new(&mut scripted);
        let pin = Pin::new("123456").unwrap();
        let signature = sign(
            &mut ch,
            CardType::Cac,
            Slot::CacId,
            KeyAlgorithm::Rsa { bits: 2048 },
            &digest,
            &pin,
        )
        .unwrap();
        assert!(
            ch.reset_requested(),
            "a CAC applet has no logout: the card is reset"
        );
        scripted.assert_done();
        assert_eq!(signature, vec![0xAB; 256]);
    }

    #[test]
    fn cac_signing_falls_back_to_cla_00() {
        let digest = Digest::of(HashFunction::Sha256, b"hello");
        let block = pkcs1_v15_block(&digest, 256).unwrap();
        let mut steps = vec![
            ("00A4040007A0000000790100".to_string(), "9000".to_string()),
            ("0020000008313233343536FFFF".to_string(), "9000".to_string()),
            (
                format!("80428000F0{}", hexu(&block[..240])),
                "6E00".to_string(),
            ),
        ];
        steps.extend(cac_signing_steps("00", &block));
        let mut scripted = card(&steps);
        let mut ch = Channel::new(&mut scripted);
        let pin = Pin::new("123456").unwrap();
        let signature = sign(
            &mut ch,
            CardType::Cac,
            Slot::CacId,
            KeyAlgorithm::Rsa { bits: 2048 },
            &digest,
            &pin,
        )
        .unwrap();
        scripted.assert_done();
        assert_eq!(signature.len(), 256);
    }

    #[test]
    fn a_wrong_cac_pin_is_pin_incorrect_without_a_count() {
        let digest = Digest::of(HashFunction::Sha256, b"hello");
        let steps = vec![
            ("00A4040007A0000000790100".to_string(), "9000".to_string()),
            ("0020000008393939393939FFFF".to_string(), "6985".to_string()),
        ];
        let mut scripted = card(&steps);
        let mut ch = Channel::new(&mut scripted);
        let pin = Pin::new("999999").unwrap();
        let err = sign(
            &mut ch,
            CardType::Cac,
            Slot::CacId,
            KeyAlgorithm::Rsa { bits: 2048 },
            &digest,
            &pin,
        )
        .unwrap_err();
        assert_eq!(err, CardError::PinIncorrect { retries_left: None });
    }

    /// A 9C signature over SHA-256("hello") on a PIV card whose logout (VERIFY P1 = FF)
    /// answers `logout_answer`: whether the card was asked to be reset, and the signature.
    fn piv_signature_with_logout(logout_answer: &str) -> (bool, Vec<u8>) {
        let digest = Digest::of(HashFunction::Sha256, b"hello");
        let steps = [
            (PIV_SELECT_T1.to_string(), "9000".to_string()),
            ("0020008008313233343536FFFF".to_string(), "9000".to_string()),
            (
                format!("008711 9C 26 7C24 8200 8120 {} 00", hexu(digest.bytes())).replace(' ', ""),
                "7C08820630040201010201 9000".replace(' ', ""),
            ),
            ("0020FF80".to_string(), logout_answer.to_string()),
        ];
        let refs: Vec<(&str, &str)> = steps
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mut scripted = ScriptedCard::t1(&refs);
        let mut ch = Channel::new(&mut scripted);
        let pin = Pin::new("123456").unwrap();
        let signature = sign(
            &mut ch,
            CardType::Piv,
            Slot::DigitalSignature,
            KeyAlgorithm::EcP256,
            &digest,
            &pin,
        )
        .unwrap();
        let reset = ch.reset_requested();
        scripted.assert_done();
        (reset, signature)
    }

    #[test]
    fn piv_signing_verifies_signs_and_logs_out_in_one_go() {
        let (reset, signature) = piv_signature_with_logout("9000");
        assert!(!reset, "the logout worked: no reset");
        assert_eq!(signature, vec![0x30, 0x04, 0x02, 0x01, 0x01, 0x02]);
    }

    #[test]
    fn a_piv_card_refusing_logout_is_reset() {
        // A pre-800-73-4 card: P1 = FF is an incorrect parameter.
        let (reset, _) = piv_signature_with_logout("6A86");
        assert!(reset);
    }
}
