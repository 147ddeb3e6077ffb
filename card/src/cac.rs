//! Legacy CAC (GSC-IS 2.1) PKI applets: certificates in tag/value buffers read with READ
//! BUFFER, raw RSA with SIGN/DECRYPT. Only for cards without a PIV applet.

use byteorder::{ByteOrder, LittleEndian};

use crate::apdu::{Command, Ins, Status};
use crate::error::CardError;
use crate::inflate::certificate_bytes;
use crate::model::Slot;
use crate::pin::Pin;
use crate::tlv::simple_headers;
use crate::transport::Channel;

pub const CCC_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x01, 0x16, 0xDB, 0x00];

/// The ID certificate's PKI applet: every legacy CAC has it.
pub const ID_APPLET_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00];

/// The AID of a CAC PKI applet; `None` for a slot that is not one.
pub fn applet_aid(slot: Slot) -> Option<[u8; 7]> {
    let index = match slot {
        Slot::CacId => 0x00,
        Slot::CacEmailSignature => 0x01,
        Slot::CacEmailEncryption => 0x02,
        _ => return None,
    };
    let mut aid = ID_APPLET_AID;
    aid[6] = index;
    Some(aid)
}

const READ_BUFFER_CHUNK: u8 = 0xF0;
/// A certificate buffer larger than this is not a certificate.
const MAX_BUFFER: usize = 16 * 1024;
const TAG_CERTIFICATE: u8 = 0x70;
const TAG_CERT_INFO: u8 = 0x71;

#[derive(Debug, Clone, Copy)]
enum Buffer {
    Tag = 0x01,
    Value = 0x02,
}

pub fn select(ch: &mut Channel<'_>, aid: &[u8]) -> Result<bool, CardError> {
    let select = Command::new(0x00, Ins::Select, 0x04, 0x00)
        .data(aid.to_vec())
        .expect_response();
    Ok(ch.transmit(&select)?.status.is_success())
}

/// A card with the GSC-IS Card Capability Container or the CAC ID applet.
pub fn detect(ch: &mut Channel<'_>) -> Result<bool, CardError> {
    Ok(select(ch, &CCC_AID)? || select(ch, &ID_APPLET_AID)?)
}

/// READ BUFFER of the selected applet: a 2-byte little-endian length at offset 0, then the
/// contents, read in chunks of at most 240 bytes.
fn read_buffer(ch: &mut Channel<'_>, buffer: Buffer) -> Result<Vec<u8>, CardError> {
    let read = |ch: &mut Channel<'_>, offset: u16, n: u8| -> Result<Vec<u8>, CardError> {
        let [hi, lo] = offset.to_be_bytes();
        let command = Command::new(0x80, Ins::ReadBuffer, hi, lo).data(vec![buffer as u8, n]);
        let response = ch.transmit(&command)?;
        if !response.status.is_success() {
            return Err(CardError::status(response.status, "READ BUFFER"));
        }
        if response.data.len() != usize::from(n) {
            return Err(CardError::Malformed(format!(
                "READ BUFFER gave {} bytes for {n}",
                response.data.len()
            )));
        }
        Ok(response.data)
    };
    let length = usize::from(LittleEndian::read_u16(&read(ch, 0, 2)?));
    if length > MAX_BUFFER {
        return Err(CardError::Malformed(format!(
            "CAC buffer of {length} bytes"
        )));
    }
    let mut contents = Vec::with_capacity(length);
    while contents.len() < length {
        let n = (length - contents.len()).min(usize::from(READ_BUFFER_CHUNK)) as u8;
        let offset = (2 + contents.len()) as u16;
        contents.extend(read(ch, offset, n)?);
    }
    Ok(contents)
}

/// The certificate of a PKI applet (selects it). `None` when the applet is absent or empty.
pub fn read_certificate(ch: &mut Channel<'_>, slot: Slot) -> Result<Option<Vec<u8>>, CardError> {
    let aid = applet_aid(slot)
        .ok_or_else(|| CardError::KeyNotUsable(format!("{slot:?} is not a CAC applet")))?;
    if !select(ch, &aid)? {
        return Ok(None);
    }
    let tags = read_buffer(ch, Buffer::Tag)?;
    let values = read_buffer(ch, Buffer::Value)?;
    // The tag buffer lists (tag, length) pairs; the value buffer holds the values back to back.
    let mut offset = 0usize;
    let mut cert_info = 0u8;
    let mut certificate = None;
    for (tag, length) in simple_headers(&tags)? {
        let value = values.get(offset..offset + length).ok_or_else(|| {
            CardError::Malformed("CAC tag buffer points past the value buffer".into())
        })?;
        offset += length;
        match tag {
            TAG_CERT_INFO => cert_info = value.first().copied().unwrap_or(0),
            TAG_CERTIFICATE => certificate = Some(value),
            _ => {}
        }
    }
    match certificate {
        Some(stored) if !stored.is_empty() => {
            // CAC CertInfo: the low two bits are the compression type (01 = compressed).
            let compressed = cert_info & 0x03 == 0x01;
            certificate_bytes(stored, u8::from(compressed)).map(Some)
        }
        _ => Ok(None),
    }
}

/// VERIFY the global PIN (P2 = 00).
pub fn verify_pin(ch: &mut Channel<'_>, pin: &Pin) -> Result<(), CardError> {
    let verify = Command::new(0x00, Ins::Verify, 0x00, 0x00).data(pin.padded().to_vec());
    match ch.transmit(&verify)?.status {
        Status::Success => Ok(()),
        // Some CAC implementations keep no retry counter and answer 6985 or 6982.
        Status::ConditionsNotSatisfied | Status::SecurityNotSatisfied => {
            Err(CardError::PinIncorrect { retries_left: None })
        }
        status => Err(CardError::status(status, "VERIFY")),
    }
}

/// SIGN/DECRYPT with the selected applet's key: raw RSA on the full padded block, sent in
/// 240-byte pieces (P1 80 = more follow, 00 = last). Implementations differ on CLA 80 or 00:
/// 80 first, then 00.
pub fn sign_raw(ch: &mut Channel<'_>, block: &[u8]) -> Result<Vec<u8>, CardError> {
    let mut last_status = Status::ClaNotSupported;
    for cla in [0x80, 0x00] {
        let pieces: Vec<&[u8]> = block.chunks(usize::from(READ_BUFFER_CHUNK)).collect();
        let mut output = Vec::new();
        let mut refused = None;
        for (i, piece) in pieces.iter().enumerate() {
            let more = i + 1 < pieces.len();
            let mut command =
                Command::new(cla, Ins::SignDecrypt, if more { 0x80 } else { 0x00 }, 0x00)
                    .data(piece.to_vec());
            if !more {
                command = command.expect_response();
            }
            let response = ch.transmit(&command)?;
            if !response.status.is_success() {
                refused = Some(response.status);
                break;
            }
            output = response.data;
        }
        match refused {
            None => return Ok(output),
            Some(Status::ClaNotSupported | Status::InsNotSupported) if cla == 0x80 => {
                last_status = Status::ClaNotSupported;
            }
            Some(status) => return Err(CardError::status(status, "SIGN/DECRYPT")),
        }
    }
    Err(CardError::status(last_status, "SIGN/DECRYPT"))
}
