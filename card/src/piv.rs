//! The PIV applet (NIST SP 800-73-4): select, data objects, PIN, GENERAL AUTHENTICATE.

use crate::apdu::{Command, Ins, Status};
use crate::certificate::KeyAlgorithm;
use crate::error::CardError;
use crate::inflate::certificate_bytes;
use crate::model::{PinStatus, Slot};
use crate::pin::Pin;
use crate::tlv::{ber, encode_ber, find_ber};
use crate::transport::Channel;

/// The PIV AID without its version bytes; every PIV card accepts it.
pub const AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00];

pub const OBJECT_CCC: u32 = 0x5FC107;
pub const OBJECT_CHUID: u32 = 0x5FC102;
pub const OBJECT_KEY_HISTORY: u32 = 0x5FC10C;
/// VERIFY P2 of the PIV Card Application PIN.
const PIN_REFERENCE: u8 = 0x80;

/// SELECT the PIV applet. `false` when the card has none.
pub fn select(ch: &mut Channel<'_>) -> Result<bool, CardError> {
    let select = Command::new(0x00, Ins::Select, 0x04, 0x00)
        .data(AID.to_vec())
        .expect_response();
    // The APT in the answer is not relied upon: some cards return a wrong PIX.
    Ok(ch.transmit(&select)?.status.is_success())
}

/// GET DATA for a BER-TLV object; the contents of its `53` wrapper, or `None` when the card
/// does not hold the object.
pub fn get_data(ch: &mut Channel<'_>, object: u32) -> Result<Option<Vec<u8>>, CardError> {
    let tag = object.to_be_bytes();
    let command = Command::new(0x00, Ins::GetData, 0x3F, 0xFF)
        .data(encode_ber(0x5C, &tag[1..]))
        .expect_response();
    let response = ch.transmit(&command)?;
    match response.status {
        Status::Success => {}
        Status::NotFound => return Ok(None),
        status => return Err(CardError::status(status, "GET DATA")),
    }
    match find_ber(&response.data, 0x53)? {
        Some(contents) => Ok(Some(contents.to_vec())),
        None if response.data.is_empty() => Ok(None),
        None => Err(CardError::Malformed(format!(
            "object {object:06X} lacks its 53 wrapper"
        ))),
    }
}

/// Read the certificate of a slot, inflating it when stored compressed. `None` for an empty
/// slot.
pub fn read_certificate(ch: &mut Channel<'_>, slot: Slot) -> Result<Option<Vec<u8>>, CardError> {
    let object = slot
        .piv_object()
        .ok_or_else(|| CardError::KeyNotUsable(format!("{slot:?} is not a PIV slot")))?;
    let Some(contents) = get_data(ch, object)? else {
        return Ok(None);
    };
    let stored = find_ber(&contents, 0x70)?.unwrap_or_default();
    if stored.is_empty() {
        return Ok(None);
    }
    let cert_info = find_ber(&contents, 0x71)?
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    certificate_bytes(stored, cert_info).map(Some)
}

/// The Key History object: how many retired key management certificates the card holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyHistory {
    pub on_card: u8,
    pub off_card: u8,
}

impl KeyHistory {
    pub fn parse(contents: &[u8]) -> Result<Self, CardError> {
        let count = |tag| -> Result<u8, CardError> {
            Ok(find_ber(contents, tag)?
                .and_then(|v| v.first().copied())
                .unwrap_or(0)
                .min(20))
        };
        Ok(Self {
            on_card: count(0xC1)?,
            off_card: count(0xC2)?,
        })
    }

    /// The retired slots that hold certificates (numbered from 1, filled in order).
    pub fn retired_slots(self) -> impl Iterator<Item = Slot> {
        (1..=self.on_card).map(Slot::RetiredKeyManagement)
    }
}

pub fn key_history(ch: &mut Channel<'_>) -> Result<KeyHistory, CardError> {
    match get_data(ch, OBJECT_KEY_HISTORY)? {
        Some(contents) => KeyHistory::parse(&contents),
        None => Ok(KeyHistory::default()),
    }
}

/// Card Holder Unique Identifier.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chuid {
    pub fasc_n: Option<Vec<u8>>,
    pub guid: Option<[u8; 16]>,
    /// `YYYYMMDD`.
    pub expiry: Option<String>,
}

impl Chuid {
    pub fn parse(contents: &[u8]) -> Result<Self, CardError> {
        let mut chuid = Chuid::default();
        for tlv in ber(contents) {
            let tlv = tlv?;
            match tlv.tag {
                0x30 => chuid.fasc_n = Some(tlv.value.to_vec()),
                0x34 => chuid.guid = tlv.value.try_into().ok(),
                0x35 => chuid.expiry = std::str::from_utf8(tlv.value).ok().map(str::to_owned),
                _ => {} // issuer signature (3E), LRC (FE) and others
            }
        }
        Ok(chuid)
    }
}

/// Card Capability Container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ccc {
    pub card_identifier: Vec<u8>,
    /// F0 or F3 carries the DoD RID: a Dual CAC/PIV card.
    pub dual_cac: bool,
}

impl Ccc {
    pub fn parse(contents: &[u8]) -> Result<Self, CardError> {
        const DOD_RID: [u8; 5] = [0xA0, 0x00, 0x00, 0x00, 0x79];
        let card_identifier = find_ber(contents, 0xF0)?.unwrap_or_default().to_vec();
        let application_cardurl = find_ber(contents, 0xF3)?.unwrap_or_default();
        let dual_cac = card_identifier.starts_with(&DOD_RID)
            || application_cardurl.starts_with(&[0xA0, 0x00, 0x00, 0x00, 0x79, 0x04]);
        Ok(Ccc {
            card_identifier,
            dual_cac,
        })
    }
}

/// PIN tries left, without spending one: VERIFY with no data. A Dual CAC answers 63Cx even
/// when already verified, so login state is never inferred from this.
pub fn pin_status(ch: &mut Channel<'_>) -> Result<PinStatus, CardError> {
    let status = ch
        .transmit(&Command::new(0x00, Ins::Verify, 0x00, PIN_REFERENCE))?
        .status;
    match status {
        Status::VerifyFailed { retries_left } => Ok(PinStatus {
            retries_left: Some(retries_left),
            blocked: retries_left == 0,
        }),
        Status::Blocked => Ok(PinStatus {
            retries_left: Some(0),
            blocked: true,
        }),
        // Already verified in this session: the count is not given.
        Status::Success => Ok(PinStatus {
            retries_left: None,
            blocked: false,
        }),
        status => Err(CardError::status(status, "VERIFY (status)")),
    }
}

pub fn verify_pin(ch: &mut Channel<'_>, pin: &Pin) -> Result<(), CardError> {
    let verify = Command::new(0x00, Ins::Verify, 0x00, PIN_REFERENCE).data(pin.padded().to_vec());
    match ch.transmit(&verify)?.status {
        Status::Success => Ok(()),
        status => Err(CardError::status(status, "VERIFY")),
    }
}

/// Reset the PIN's security status (VERIFY with P1 = FF, SP 800-73-4), so a verified PIN is not
/// left for other programs to use. Cards that predate 800-73-4 refuse it: then the card is
/// reset when the transaction ends, which clears it too.
pub fn logout(ch: &mut Channel<'_>) -> Result<(), CardError> {
    let status = ch
        .transmit(&Command::new(0x00, Ins::Verify, 0xFF, PIN_REFERENCE))?
        .status;
    if !status.is_success() {
        tracing::debug!(%status, "card refused PIV logout; it will be reset");
        ch.reset_when_done();
    }
    Ok(())
}

/// The algorithm identifier of GENERAL AUTHENTICATE.
fn algorithm_id(key: KeyAlgorithm) -> Result<u8, CardError> {
    Ok(match key {
        KeyAlgorithm::Rsa { bits: 1024 } => 0x06,
        KeyAlgorithm::Rsa { bits: 2048 } => 0x07,
        KeyAlgorithm::Rsa { bits: 3072 } => 0x05,
        KeyAlgorithm::Rsa { bits: 4096 } => 0x16,
        KeyAlgorithm::EcP256 => 0x11,
        KeyAlgorithm::EcP384 => 0x14,
        other => {
            return Err(CardError::KeyNotUsable(format!(
                "{} keys are not supported",
                other.name()
            )))
        }
    })
}

/// GENERAL AUTHENTICATE: the private key of `slot` applied to `input` (for RSA the full padded
/// block, for ECDSA the digest sized to the curve). Returns tag 82 of the answer: the raw RSA
/// result, or a DER ECDSA signature.
pub fn general_authenticate(
    ch: &mut Channel<'_>,
    slot: Slot,
    key: KeyAlgorithm,
    input: &[u8],
) -> Result<Vec<u8>, CardError> {
    let key_reference = slot
        .piv_key_reference()
        .ok_or_else(|| CardError::KeyNotUsable(format!("{slot:?} is not a PIV slot")))?;
    let mut template = vec![0x82, 0x00];
    template.extend(encode_ber(0x81, input));
    let command = Command::new(
        0x00,
        Ins::GeneralAuthenticate,
        algorithm_id(key)?,
        key_reference,
    )
    .data(encode_ber(0x7C, &template))
    .expect_response();
    let response = ch.transmit(&command)?;
    if !response.status.is_success() {
        return Err(CardError::status(response.status, "GENERAL AUTHENTICATE"));
    }
    let template = find_ber(&response.data, 0x7C)?
        .ok_or_else(|| CardError::Malformed("GENERAL AUTHENTICATE answer lacks 7C".into()))?;
    let output = find_ber(template, 0x82)?
        .ok_or_else(|| CardError::Malformed("GENERAL AUTHENTICATE answer lacks 82".into()))?;
    Ok(output.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::ScriptedCard;

    #[test]
    fn reads_a_gzip_compressed_certificate() {
        // A "certificate" of 300 bytes, gzip'd, in 70 with CertInfo 01.
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let der: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&der).unwrap();
        let gz = gz.finish().unwrap();
        let mut body = encode_ber(0x70, &gz);
        body.extend([0x71, 0x01, 0x01, 0xFE, 0x00]);
        let object = encode_ber(0x53, &body);
        let hexed = hex::encode_upper(&object);
        let mut card = ScriptedCard::t1(&[("00CB3FFF055C035FC10500", &format!("{hexed} 9000"))]);
        let mut ch = Channel::new(&mut card);
        let got = read_certificate(&mut ch, Slot::PivAuthentication).unwrap();
        assert_eq!(got, Some(der));
    }

    #[test]
    fn an_empty_slot_is_none() {
        let mut card = ScriptedCard::t1(&[("00CB3FFF055C035FC10B00", "6A82")]);
        let mut ch = Channel::new(&mut card);
        assert_eq!(
            read_certificate(&mut ch, Slot::KeyManagement).unwrap(),
            None
        );
    }

    #[test]
    fn pin_status_spends_no_try() {
        // The bare 4-byte header: no Lc, no data, so no try is spent.
        let mut card = ScriptedCard::t1(&[("00200080", "63C2")]);
        let mut ch = Channel::new(&mut card);
        assert_eq!(
            pin_status(&mut ch).unwrap(),
            PinStatus {
                retries_left: Some(2),
                blocked: false
            }
        );
        card.assert_done();
    }

    #[test]
    fn wrong_and_blocked_pins_become_typed_errors() {
        let pin = Pin::new("123456").unwrap();
        let mut card = ScriptedCard::t1(&[
            ("0020008008313233343536FFFF", "63C1"),
            ("0020008008313233343536FFFF", "63C0"),
            ("0020008008313233343536FFFF", "6983"),
        ]);
        let mut ch = Channel::new(&mut card);
        assert_eq!(
            verify_pin(&mut ch, &pin).unwrap_err(),
            CardError::PinIncorrect {
                retries_left: Some(1)
            }
        );
        assert_eq!(
            verify_pin(&mut ch, &pin).unwrap_err(),
            CardError::PinBlocked
        );
        assert_eq!(
            verify_pin(&mut ch, &pin).unwrap_err(),
            CardError::PinBlocked
        );
        card.assert_done();
    }

    #[test]
    fn ecc_general_authenticate_returns_tag_82() {
        let hash = [0x11u8; 32];
        let command = format!("00871 19A 26 7C24 8200 8120 {} 00", "11".repeat(32));
        let mut card = ScriptedCard::t1(&[(&command, "7C 06 82 04 30 02 01 02 9000")]);
        let mut ch = Channel::new(&mut card);
        let sig = general_authenticate(
            &mut ch,
            Slot::PivAuthentication,
            KeyAlgorithm::EcP256,
            &hash,
        )
        .unwrap();
        assert_eq!(sig, vec![0x30, 0x02, 0x01, 0x02]);
    }

    #[test]
    fn chuid_and_ccc_are_parsed_as_tlv() {
        let mut chuid = encode_ber(0x30, &[0xD4; 25]);
        chuid.extend(encode_ber(0x34, &[0xAB; 16]));
        chuid.extend(encode_ber(0x35, b"20301231"));
        chuid.extend(encode_ber(0x3E, &vec![0u8; 1800]));
        chuid.extend([0xFE, 0x00]);
        let parsed = Chuid::parse(&chuid).unwrap();
        assert_eq!(parsed.guid, Some([0xAB; 16]));
        assert_eq!(parsed.expiry.as_deref(), Some("20301231"));
        assert_eq!(parsed.fasc_n.unwrap().len(), 25);

        let mut ccc = encode_ber(0xF0, &[0xA0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x02]);
        ccc.extend(encode_ber(0xF1, &[0x21]));
        assert!(Ccc::parse(&ccc).unwrap().dual_cac);
        let ccc = encode_ber(0xF0, &[0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF]);
        assert!(!Ccc::parse(&ccc).unwrap().dual_cac);
    }

    #[test]
    fn key_history_names_the_retired_slots() {
        let kh = KeyHistory::parse(&[0xC1, 0x01, 0x02, 0xC2, 0x01, 0x00, 0xFE, 0x00]).unwrap();
        let slots: Vec<_> = kh.retired_slots().collect();
        assert_eq!(
            slots,
            vec![Slot::RetiredKeyManagement(1), Slot::RetiredKeyManagement(2)]
        );
        assert_eq!(Slot::RetiredKeyManagement(2).piv_object(), Some(0x5FC10E));
        assert_eq!(
            Slot::RetiredKeyManagement(2).piv_key_reference(),
            Some(0x83)
        );
    }
}
