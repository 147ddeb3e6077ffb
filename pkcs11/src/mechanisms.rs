//! The signature mechanisms, by key type, and the input each gives the card. PIV cards do raw
//! RSA, so PKCS#1 v1.5 padding is made here; every signature is still made on the card.

use cryptoki_sys::*;

use cacbridge_card::{Digest, HashFunction, KeyAlgorithm, SignatureInput};

use crate::module::Rv;

const RSA_MECHANISMS: [CK_MECHANISM_TYPE; 4] = [
    CKM_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
];
const EC_MECHANISMS: [CK_MECHANISM_TYPE; 4] = [
    CKM_ECDSA,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
];

/// Every mechanism the module offers, for `C_GetMechanismList`.
pub fn all() -> Vec<CK_MECHANISM_TYPE> {
    RSA_MECHANISMS
        .iter()
        .chain(&EC_MECHANISMS)
        .copied()
        .collect()
}

/// `C_GetMechanismInfo`: key sizes in bits and what the mechanism does.
pub fn info(mechanism: CK_MECHANISM_TYPE) -> Option<CK_MECHANISM_INFO> {
    let (min, max) = if RSA_MECHANISMS.contains(&mechanism) {
        (1024, 4096)
    } else if EC_MECHANISMS.contains(&mechanism) {
        (256, 384)
    } else {
        return None;
    };
    Some(CK_MECHANISM_INFO {
        ulMinKeySize: min,
        ulMaxKeySize: max,
        flags: CKF_HW | CKF_SIGN,
    })
}

/// Does `mechanism` sign with a `key` key?
pub fn fits(mechanism: CK_MECHANISM_TYPE, key: KeyAlgorithm) -> bool {
    match key {
        KeyAlgorithm::Rsa { .. } => RSA_MECHANISMS.contains(&mechanism),
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => EC_MECHANISMS.contains(&mechanism),
    }
}

/// The hash a mechanism applies to the data first, if any.
fn hashed(mechanism: CK_MECHANISM_TYPE) -> Option<HashFunction> {
    match mechanism {
        CKM_SHA256_RSA_PKCS | CKM_ECDSA_SHA256 => Some(HashFunction::Sha256),
        CKM_SHA384_RSA_PKCS | CKM_ECDSA_SHA384 => Some(HashFunction::Sha384),
        CKM_SHA512_RSA_PKCS | CKM_ECDSA_SHA512 => Some(HashFunction::Sha512),
        _ => None,
    }
}

/// What the card signs for `data` under `mechanism` with a `key` key.
pub fn input(
    mechanism: CK_MECHANISM_TYPE,
    key: KeyAlgorithm,
    data: &[u8],
) -> Result<SignatureInput, Rv> {
    if let Some(function) = hashed(mechanism) {
        let digest = Digest::of(function, data);
        return SignatureInput::for_digest(key, &digest).map_err(|_| CKR_KEY_SIZE_RANGE);
    }
    match mechanism {
        // The caller's data is the DigestInfo (or any message up to k - 11 bytes).
        CKM_RSA_PKCS => raw_pkcs1_block(data, key.size_bytes()).map(SignatureInput::RsaBlock),
        CKM_ECDSA => {
            if data.is_empty() || data.len() > 64 {
                return Err(CKR_DATA_LEN_RANGE);
            }
            Ok(SignatureInput::EcHash(data.to_vec()))
        }
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

/// `00 01 FF..FF 00 data`, k bytes, at least 8 bytes of FF.
fn raw_pkcs1_block(data: &[u8], k: usize) -> Result<Vec<u8>, Rv> {
    if data.len() + 11 > k {
        return Err(CKR_DATA_LEN_RANGE);
    }
    let mut block = vec![0x00, 0x01];
    block.resize(k - data.len() - 1, 0xFF);
    block.push(0x00);
    block.extend_from_slice(data);
    Ok(block)
}

/// How long a signature of a `key` key is, as PKCS#11 returns it (ECDSA as `r || s`).
pub fn signature_len(key: KeyAlgorithm) -> usize {
    match key {
        KeyAlgorithm::Rsa { .. } => key.size_bytes(),
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => 2 * key.size_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacbridge_card::crypto::pkcs1_v15_block;

    #[test]
    fn the_hashing_mechanisms_give_the_same_block_as_the_digest_info_path() {
        let key = KeyAlgorithm::Rsa { bits: 2048 };
        let digest = Digest::of(HashFunction::Sha256, b"data");
        let expected = pkcs1_v15_block(&digest, 256).unwrap_or_default();
        assert_eq!(
            input(CKM_SHA256_RSA_PKCS, key, b"data"),
            Ok(SignatureInput::RsaBlock(expected.clone()))
        );
        // CKM_RSA_PKCS over the DigestInfo the caller made: the same block.
        let digest_info = &expected[expected.len() - 51..];
        assert_eq!(
            input(CKM_RSA_PKCS, key, digest_info),
            Ok(SignatureInput::RsaBlock(expected))
        );
        assert_eq!(input(CKM_RSA_PKCS, key, &[0; 250]), Err(CKR_DATA_LEN_RANGE));
    }

    #[test]
    fn ecdsa_takes_the_hash_and_mechanisms_fit_their_keys() {
        let hash = [7u8; 48];
        assert_eq!(
            input(CKM_ECDSA, KeyAlgorithm::EcP384, &hash),
            Ok(SignatureInput::EcHash(hash.to_vec()))
        );
        assert!(fits(CKM_ECDSA_SHA384, KeyAlgorithm::EcP256));
        assert!(!fits(CKM_SHA256_RSA_PKCS, KeyAlgorithm::EcP384));
        assert!(!fits(CKM_ECDSA, KeyAlgorithm::Rsa { bits: 2048 }));
        assert_eq!(signature_len(KeyAlgorithm::EcP384), 96);
        assert!(info(CKM_RSA_PKCS_PSS).is_none(), "not offered yet");
    }
}
