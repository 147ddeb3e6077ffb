//! TLV parsing for card data. Card bytes are untrusted: every length is checked against what
//! is actually there.
//!
//! - BER-TLV (PIV objects): tags of 1 to 3 bytes, lengths in 1 to 4 bytes.
//! - SIMPLE-TLV (GSC-IS CAC buffers): 1-byte tags, length in 1 byte or `FF` + 2 bytes
//!   little-endian.

use byteorder::{ByteOrder, LittleEndian};

use crate::error::CardError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u32,
    pub value: &'a [u8],
}

fn malformed(what: &str) -> CardError {
    CardError::Malformed(what.to_owned())
}

/// Iterate over the BER-TLV objects of `data`, in order.
pub fn ber(data: &[u8]) -> impl Iterator<Item = Result<Tlv<'_>, CardError>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        // Padding bytes (00 or FF) between objects are allowed by ISO 7816-4.
        while let [0x00 | 0xFF, tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return None;
        }
        let parsed = parse_one_ber(rest);
        match parsed {
            Ok((tlv, tail)) => {
                rest = tail;
                Some(Ok(tlv))
            }
            Err(err) => {
                rest = &[];
                Some(Err(err))
            }
        }
    })
}

fn parse_one_ber(data: &[u8]) -> Result<(Tlv<'_>, &[u8]), CardError> {
    let (&first, mut rest) = data.split_first().ok_or_else(|| malformed("empty TLV"))?;
    let mut tag = u32::from(first);
    if first & 0x1F == 0x1F {
        for i in 0.. {
            if i == 3 {
                return Err(malformed("BER tag longer than 4 bytes"));
            }
            let (&b, tail) = rest
                .split_first()
                .ok_or_else(|| malformed("truncated BER tag"))?;
            rest = tail;
            tag = (tag << 8) | u32::from(b);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&len0, tail) = rest
        .split_first()
        .ok_or_else(|| malformed("missing BER length"))?;
    rest = tail;
    let length = match len0 {
        0x00..=0x7F => usize::from(len0),
        0x81..=0x84 => {
            let n = usize::from(len0 & 0x7F);
            if rest.len() < n {
                return Err(malformed("truncated BER length"));
            }
            let length = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[n..];
            length
        }
        _ => return Err(malformed("unsupported BER length form")),
    };
    if rest.len() < length {
        return Err(CardError::Malformed(format!(
            "BER value of tag {tag:X} claims {length} bytes, {} present",
            rest.len()
        )));
    }
    Ok((
        Tlv {
            tag,
            value: &rest[..length],
        },
        &rest[length..],
    ))
}

/// The value of the first object with `tag` at the top level of `data`.
pub fn find_ber(data: &[u8], tag: u32) -> Result<Option<&[u8]>, CardError> {
    for tlv in ber(data) {
        let tlv = tlv?;
        if tlv.tag == tag {
            return Ok(Some(tlv.value));
        }
    }
    Ok(None)
}

/// Encode a BER-TLV object (tags of 1 to 3 bytes; lengths up to 65535).
pub fn encode_ber(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    let tag_bytes = tag.to_be_bytes();
    let skip = tag_bytes.iter().take_while(|&&b| b == 0).count().min(3);
    out.extend_from_slice(&tag_bytes[skip..]);
    match value.len() {
        n @ 0..=0x7F => out.push(n as u8),
        n @ 0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        n => {
            let n = u16::try_from(n).expect("TLV values stay under 64 KiB");
            out.push(0x82);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    out
}

/// A SIMPLE-TLV header list, as in a GSC-IS tag buffer: (tag, length) pairs.
pub fn simple_headers(data: &[u8]) -> Result<Vec<(u8, usize)>, CardError> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [tag, tail @ ..] = rest {
        let (length, tail) = match tail {
            [0xFF, lo, hi, tail @ ..] => (usize::from(LittleEndian::read_u16(&[*lo, *hi])), tail),
            [0xFF, ..] => return Err(malformed("truncated SIMPLE-TLV length")),
            [n, tail @ ..] => (usize::from(*n), tail),
            [] => return Err(malformed("missing SIMPLE-TLV length")),
        };
        out.push((*tag, length));
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_multi_byte_tags_and_long_lengths() {
        let mut data = vec![0x5F, 0xC1, 0x02, 0x82, 0x01, 0x00];
        data.extend(vec![0xAB; 256]);
        data.extend([0x34, 0x02, 0x01, 0x02]);
        let items: Vec<_> = ber(&data).collect::<Result<_, _>>().unwrap();
        assert_eq!(items[0].tag, 0x5FC102);
        assert_eq!(items[0].value.len(), 256);
        assert_eq!(
            items[1],
            Tlv {
                tag: 0x34,
                value: &[1, 2]
            }
        );
    }

    #[test]
    fn lengths_past_the_end_are_refused() {
        assert!(find_ber(&[0x70, 0x82, 0x10, 0x00, 0x01], 0x70).is_err());
        assert!(find_ber(&[0x70, 0x05, 0x01], 0x70).is_err());
        assert!(find_ber(&[0x70, 0x85, 0, 0, 0, 0, 1], 0x70).is_err());
        assert!(find_ber(&[0x5F, 0xC1], 0x70).is_err());
    }

    #[test]
    fn skips_padding_and_unknown_tags() {
        let data = [0x00, 0x72, 0x01, 0x00, 0xFF, 0x71, 0x01, 0x01];
        assert_eq!(find_ber(&data, 0x71).unwrap(), Some(&[0x01][..]));
        assert_eq!(find_ber(&data, 0x70).unwrap(), None);
    }

    #[test]
    fn encode_round_trips() {
        for n in [0usize, 1, 127, 128, 255, 256, 3000] {
            let value = vec![7u8; n];
            let encoded = encode_ber(0x5FC105, &value);
            assert_eq!(find_ber(&encoded, 0x5FC105).unwrap(), Some(&value[..]));
        }
        assert_eq!(encode_ber(0x7C, &[1]), vec![0x7C, 0x01, 0x01]);
    }

    #[test]
    fn simple_tlv_headers_with_long_form() {
        let headers = simple_headers(&[0x71, 0x01, 0x70, 0xFF, 0x34, 0x12]).unwrap();
        assert_eq!(headers, vec![(0x71, 1), (0x70, 0x1234)]);
        assert!(simple_headers(&[0x70, 0xFF, 0x01]).is_err());
        assert!(simple_headers(&[0x70]).is_err());
    }
}
