//! Signature inputs the card cannot build itself: PIV and CAC keys do raw RSA, so the host
//! builds the EMSA-PKCS1-v1_5 block; ECDSA takes the digest sized to the curve.

use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::error::CardError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunction {
    Sha256,
    Sha384,
    Sha512,
}

impl HashFunction {
    pub const ALL: [HashFunction; 3] = [
        HashFunction::Sha256,
        HashFunction::Sha384,
        HashFunction::Sha512,
    ];
}

impl HashFunction {
    pub fn output_len(self) -> usize {
        match self {
            HashFunction::Sha256 => 32,
            HashFunction::Sha384 => 48,
            HashFunction::Sha512 => 64,
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashFunction::Sha256 => Sha256::digest(data).to_vec(),
            HashFunction::Sha384 => Sha384::digest(data).to_vec(),
            HashFunction::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// DER of the DigestInfo prefix (RFC 8017, section 9.2, note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashFunction::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashFunction::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashFunction::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// A digest to be signed, its length checked against its function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    function: HashFunction,
    bytes: Vec<u8>,
}

impl Digest {
    pub fn new(function: HashFunction, bytes: Vec<u8>) -> Result<Self, CardError> {
        if bytes.len() != function.output_len() {
            return Err(CardError::KeyNotUsable(format!(
                "a {:?} digest is {} bytes, not {}",
                function,
                function.output_len(),
                bytes.len()
            )));
        }
        Ok(Self { function, bytes })
    }

    pub fn of(function: HashFunction, data: &[u8]) -> Self {
        Self {
            function,
            bytes: function.hash(data),
        }
    }

    pub fn function(&self) -> HashFunction {
        self.function
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// EMSA-PKCS1-v1_5: `00 01 FF..FF 00 || DigestInfo || hash`, `modulus_len` bytes long.
pub fn pkcs1_v15_block(digest: &Digest, modulus_len: usize) -> Result<Vec<u8>, CardError> {
    let prefix = digest.function.digest_info_prefix();
    let t_len = prefix.len() + digest.bytes.len();
    if modulus_len < t_len + 11 {
        return Err(CardError::KeyNotUsable(format!(
            "a {}-bit RSA key is too small for {:?}",
            modulus_len * 8,
            digest.function
        )));
    }
    let mut block = Vec::with_capacity(modulus_len);
    block.extend_from_slice(&[0x00, 0x01]);
    block.resize(modulus_len - t_len - 1, 0xFF);
    block.push(0x00);
    block.extend_from_slice(prefix);
    block.extend_from_slice(&digest.bytes);
    Ok(block)
}

/// A hash as ECDSA input for a curve of `field_len` bytes: longer hashes keep their leftmost
/// bytes (FIPS 186-4 6.4), shorter ones are left-padded with zeros (the same integer).
pub fn ecdsa_hash_input(bytes: &[u8], field_len: usize) -> Vec<u8> {
    if bytes.len() >= field_len {
        bytes[..field_len].to_vec()
    } else {
        let mut out = vec![0u8; field_len - bytes.len()];
        out.extend_from_slice(bytes);
        out
    }
}

/// A fixed-width `r || s` ECDSA signature (as PKCS#11's `CKM_ECDSA` returns it) in DER, the
/// form PIV cards return and the layers above expect from every backend. `width` is the
/// curve's field size: 32 (P-256) or 48 (P-384).
pub fn ecdsa_fixed_to_der(fixed: &[u8], width: usize) -> Result<Vec<u8>, CardError> {
    let bad = || CardError::Malformed(format!("ECDSA signature of {} bytes", fixed.len()));
    if fixed.len() != 2 * width {
        return Err(bad());
    }
    match width {
        32 => p256::ecdsa::Signature::from_slice(fixed)
            .map(|s| s.to_der().as_bytes().to_vec())
            .map_err(|_| bad()),
        48 => p384::ecdsa::Signature::from_slice(fixed)
            .map(|s| s.to_der().as_bytes().to_vec())
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A DER ECDSA signature (`SEQUENCE { INTEGER r, INTEGER s }`, as PIV cards return it) in the
/// fixed-width `r || s` form of JWS, each half `width` bytes.
pub fn ecdsa_der_to_fixed(der: &[u8], width: usize) -> Result<Vec<u8>, CardError> {
    let bad = || CardError::Malformed("ECDSA signature is not DER SEQUENCE { r, s }".into());
    let sequence = crate::tlv::find_ber(der, 0x30)?.ok_or_else(bad)?;
    let mut integers = crate::tlv::ber(sequence);
    let mut out = Vec::with_capacity(2 * width);
    for _ in 0..2 {
        let integer = integers.next().ok_or_else(bad)??;
        if integer.tag != 0x02 {
            return Err(bad());
        }
        // Strip the sign byte(s); a value wider than the curve is not a signature of it.
        let mut value = integer.value;
        while let [0, rest @ ..] = value {
            value = rest;
        }
        if value.len() > width {
            return Err(bad());
        }
        out.extend(std::iter::repeat_n(0u8, width - value.len()));
        out.extend_from_slice(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pkcs1_block_has_the_standard_shape() {
        let digest = Digest::of(HashFunction::Sha256, b"abc");
        let block = pkcs1_v15_block(&digest, 256).unwrap();
        assert_eq!(block.len(), 256);
        assert_eq!(&block[..2], &[0x00, 0x01]);
        let zero = block.iter().skip(2).position(|&b| b == 0).unwrap() + 2;
        assert!(block[2..zero].iter().all(|&b| b == 0xFF));
        assert_eq!(zero - 2, 256 - 3 - 19 - 32);
        assert_eq!(&block[256 - 32..], digest.bytes());
    }

    #[test]
    fn digest_length_must_match_its_function() {
        assert!(Digest::new(HashFunction::Sha384, vec![0; 32]).is_err());
        assert!(Digest::new(HashFunction::Sha512, vec![0; 64]).is_ok());
    }

    #[test]
    fn der_ecdsa_becomes_fixed_width() {
        // r = 0x00FF.. (sign byte), s = 0x01 (short): both padded to 32 bytes.
        let mut der = vec![0x30, 0x26, 0x02, 0x21, 0x00];
        der.extend([0xFF; 32]);
        der.extend([0x02, 0x01, 0x01]);
        let fixed = ecdsa_der_to_fixed(&der, 32).unwrap();
        assert_eq!(fixed.len(), 64);
        assert_eq!(&fixed[..32], &[0xFF; 32]);
        assert_eq!(&fixed[32..63], &[0u8; 31]);
        assert_eq!(fixed[63], 1);
        assert!(ecdsa_der_to_fixed(&[0x30, 0x03, 0x02, 0x01, 0x01], 32).is_err());
        assert!(ecdsa_der_to_fixed(&[0x04, 0x00], 32).is_err());
        let mut wide = vec![0x30, 0x26, 0x02, 0x21, 0x01];
        wide.extend([0xFF; 32]);
        wide.extend([0x02, 0x01, 0x01]);
        assert!(ecdsa_der_to_fixed(&wide, 32).is_err());
    }

    #[test]
    fn ecdsa_input_is_sized_to_the_curve() {
        let d = Digest::of(HashFunction::Sha512, b"x");
        assert_eq!(ecdsa_hash_input(d.bytes(), 32), d.bytes()[..32].to_vec());
        let d = Digest::of(HashFunction::Sha256, b"x");
        let padded = ecdsa_hash_input(d.bytes(), 48);
        assert_eq!(&padded[..16], &[0u8; 16]);
        assert_eq!(&padded[16..], d.bytes());
    }
}
