//! The signature mechanisms, by key type, and the input each gives the card. PIV cards do raw
//! RSA, so PKCS#1 v1.5 padding is made here; every signature is still made on the card.

use cryptoki_sys::*;

use cacbridge_card::{Digest, HashFunction, KeyAlgorithm, SignatureInput};

use crate::Rv;

const RSA_MECHANISMS: [CK_MECHANISM_TYPE; 9] = [
    // Raw RSA: what OpenSSL's pkcs11 engine uses for TLS 1.3, padding PSS itself.
    CKM_RSA_X_509,
    CKM_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
];
const PSS_MECHANISMS: [CK_MECHANISM_TYPE; 4] = [
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
];

/// The parameters of an RSA-PSS signature (`CK_RSA_PKCS_PSS_PARAMS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PssParams {
    pub hash: HashFunction,
    pub mgf_hash: HashFunction,
    pub salt_len: usize,
}

impl PssParams {
    /// From the C structure's values; `None` for a hash or MGF this module does not do.
    pub fn from_raw(
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: CK_ULONG,
    ) -> Option<Self> {
        let hash = match hash {
            CKM_SHA256 => HashFunction::Sha256,
            CKM_SHA384 => HashFunction::Sha384,
            CKM_SHA512 => HashFunction::Sha512,
            _ => return None,
        };
        let mgf_hash = match mgf {
            CKG_MGF1_SHA256 => HashFunction::Sha256,
            CKG_MGF1_SHA384 => HashFunction::Sha384,
            CKG_MGF1_SHA512 => HashFunction::Sha512,
            _ => return None,
        };
        Some(Self {
            hash,
            mgf_hash,
            salt_len: usize::try_from(salt_len).ok().filter(|n| *n <= 512)?,
        })
    }
}

pub fn is_pss(mechanism: CK_MECHANISM_TYPE) -> bool {
    PSS_MECHANISMS.contains(&mechanism)
}
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
        CKM_SHA256_RSA_PKCS | CKM_ECDSA_SHA256 | CKM_SHA256_RSA_PKCS_PSS => {
            Some(HashFunction::Sha256)
        }
        CKM_SHA384_RSA_PKCS | CKM_ECDSA_SHA384 | CKM_SHA384_RSA_PKCS_PSS => {
            Some(HashFunction::Sha384)
        }
        CKM_SHA512_RSA_PKCS | CKM_ECDSA_SHA512 | CKM_SHA512_RSA_PKCS_PSS => {
            Some(HashFunction::Sha512)
        }
        _ => None,
    }
}

/// What the card signs for `data` under `mechanism` with a `key` key (`pss`: the parameters
/// of a PSS mechanism).
pub fn input(
    mechanism: CK_MECHANISM_TYPE,
    key: KeyAlgorithm,
    data: &[u8],
    pss: Option<&PssParams>,
) -> Result<SignatureInput, Rv> {
    if is_pss(mechanism) {
        let params = pss.ok_or(CKR_MECHANISM_PARAM_INVALID)?;
        let m_hash = match hashed(mechanism) {
            Some(function) if function == params.hash => function.hash(data),
            Some(_) => return Err(CKR_MECHANISM_PARAM_INVALID),
            None if data.len() == params.hash.output_len() => data.to_vec(),
            None => return Err(CKR_DATA_LEN_RANGE),
        };
        let KeyAlgorithm::Rsa { bits } = key else {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        };
        return emsa_pss(&m_hash, params, bits).map(SignatureInput::RsaBlock);
    }
    if let Some(function) = hashed(mechanism) {
        let digest = Digest::of(function, data);
        return SignatureInput::for_digest(key, &digest).map_err(|_| CKR_KEY_SIZE_RANGE);
    }
    match mechanism {
        // The caller's data is the DigestInfo (or any message up to k - 11 bytes).
        CKM_RSA_PKCS => raw_pkcs1_block(data, key.size_bytes()).map(SignatureInput::RsaBlock),
        // The caller padded: the block, left-filled with zeros to the modulus length.
        CKM_RSA_X_509 => {
            let k = key.size_bytes();
            if data.is_empty() || data.len() > k {
                return Err(CKR_DATA_LEN_RANGE);
            }
            let mut block = vec![0u8; k - data.len()];
            block.extend_from_slice(data);
            Ok(SignatureInput::RsaBlock(block))
        }
        CKM_ECDSA => {
            if data.is_empty() || data.len() > 64 {
                return Err(CKR_DATA_LEN_RANGE);
            }
            Ok(SignatureInput::EcHash(data.to_vec()))
        }
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

/// MGF1 (RFC 8017 B.2.1) with `hash`: `length` bytes of mask from `seed`.
fn mgf1(hash: HashFunction, seed: &[u8], length: usize) -> Vec<u8> {
    let mut mask = Vec::with_capacity(length + hash.output_len());
    let mut counter: u32 = 0;
    while mask.len() < length {
        let mut block = seed.to_vec();
        block.extend_from_slice(&counter.to_be_bytes());
        mask.extend(hash.hash(&block));
        counter += 1;
    }
    mask.truncate(length);
    mask
}

/// EMSA-PSS encoding (RFC 8017 9.1.1) of `m_hash` for a `bits`-bit key, with a random salt,
/// left-padded to the modulus length: the block the card's raw RSA signs.
fn emsa_pss(m_hash: &[u8], params: &PssParams, bits: usize) -> Result<Vec<u8>, Rv> {
    // Checked: a key size from a certificate is input (cert::inspect refuses odd ones too).
    let em_bits = bits.checked_sub(1).ok_or(CKR_KEY_SIZE_RANGE)?;
    let em_len = em_bits.div_ceil(8);
    let h_len = params.hash.output_len();
    let needed = h_len
        .checked_add(params.salt_len)
        .and_then(|n| n.checked_add(2))
        .ok_or(CKR_KEY_SIZE_RANGE)?;
    if em_len < needed || bits > cacbridge_card::certificate::RSA_KEY_BITS_MAX {
        return Err(CKR_KEY_SIZE_RANGE);
    }
    let mut salt = vec![0u8; params.salt_len];
    getrandom::getrandom(&mut salt).map_err(|_| CKR_FUNCTION_FAILED)?;
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(m_hash);
    m_prime.extend_from_slice(&salt);
    let h = params.hash.hash(&m_prime);
    let mut db = vec![0u8; em_len - params.salt_len - h_len - 2];
    db.push(0x01);
    db.extend_from_slice(&salt);
    let mask = mgf1(params.mgf_hash, &h, db.len());
    for (byte, m) in db.iter_mut().zip(mask) {
        *byte ^= m;
    }
    db[0] &= 0xFF >> (8 * em_len - em_bits);
    let mut block = vec![0u8; bits.div_ceil(8) - em_len];
    block.extend(db);
    block.extend(h);
    block.push(0xBC);
    Ok(block)
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
            input(CKM_SHA256_RSA_PKCS, key, b"data", None),
            Ok(SignatureInput::RsaBlock(expected.clone()))
        );
        // CKM_RSA_PKCS over the DigestInfo the caller made: the same block.
        let digest_info = &expected[expected.len() - 51..];
        assert_eq!(
            input(CKM_RSA_PKCS, key, digest_info, None),
            Ok(SignatureInput::RsaBlock(expected))
        );
        assert_eq!(
            input(CKM_RSA_PKCS, key, &[0; 250], None),
            Err(CKR_DATA_LEN_RANGE)
        );
    }

    #[test]
    fn ecdsa_takes_the_hash_and_mechanisms_fit_their_keys() {
        let hash = [7u8; 48];
        assert_eq!(
            input(CKM_ECDSA, KeyAlgorithm::EcP384, &hash, None),
            Ok(SignatureInput::EcHash(hash.to_vec()))
        );
        assert!(fits(CKM_ECDSA_SHA384, KeyAlgorithm::EcP256));
        assert!(!fits(CKM_SHA256_RSA_PKCS, KeyAlgorithm::EcP384));
        assert!(!fits(CKM_ECDSA, KeyAlgorithm::Rsa { bits: 2048 }));
        assert_eq!(signature_len(KeyAlgorithm::EcP384), 96);
        assert!(info(CKM_RSA_PKCS_PSS).is_some());
        assert!(info(CKM_RSA_PKCS_OAEP).is_none(), "no decryption");
        assert_eq!(
            input(
                CKM_RSA_X_509,
                KeyAlgorithm::Rsa { bits: 2048 },
                &[1, 2],
                None
            ),
            Ok(SignatureInput::RsaBlock(
                [vec![0; 254], vec![1, 2]].concat()
            ))
        );
    }
}

#[cfg(test)]
mod pss_tests {
    use super::*;

    /// Check an EMSA-PSS block the way a verifier does (RFC 8017 9.1.2, on the block itself).
    fn pss_verifies(block: &[u8], m_hash: &[u8], params: &PssParams, bits: usize) -> bool {
        let em_bits = bits - 1;
        let em_len = em_bits.div_ceil(8);
        let em = &block[block.len() - em_len..];
        let h_len = params.hash.output_len();
        if em[em_len - 1] != 0xBC {
            return false;
        }
        let (masked_db, rest) = em.split_at(em_len - h_len - 1);
        let h = &rest[..h_len];
        let mut db: Vec<u8> = masked_db
            .iter()
            .zip(mgf1(params.mgf_hash, h, masked_db.len()))
            .map(|(a, b)| a ^ b)
            .collect();
        db[0] &= 0xFF >> (8 * em_len - em_bits);
        let separator = em_len - h_len - params.salt_len - 2;
        if db[..separator].iter().any(|b| *b != 0) || db[separator] != 1 {
            return false;
        }
        let salt = &db[db.len() - params.salt_len..];
        let mut m_prime = vec![0u8; 8];
        m_prime.extend_from_slice(m_hash);
        m_prime.extend_from_slice(salt);
        params.hash.hash(&m_prime) == h
    }

    #[test]
    fn a_key_size_from_a_hostile_certificate_is_refused_not_allocated() {
        let params = PssParams {
            hash: HashFunction::Sha256,
            mgf_hash: HashFunction::Sha256,
            salt_len: usize::MAX - 1,
        };
        let m_hash = HashFunction::Sha256.hash(b"handshake");
        for (bits, params) in [
            (
                0,
                PssParams {
                    salt_len: 32,
                    ..params
                },
            ),
            (
                1 << 40,
                PssParams {
                    salt_len: 32,
                    ..params
                },
            ),
            (2048, params),
        ] {
            assert_eq!(
                emsa_pss(&m_hash, &params, bits),
                Err(CKR_KEY_SIZE_RANGE),
                "{bits}"
            );
        }
    }

    #[test]
    fn a_pss_block_decodes_and_its_salt_is_fresh() {
        let params = PssParams {
            hash: HashFunction::Sha256,
            mgf_hash: HashFunction::Sha256,
            salt_len: 32,
        };
        let m_hash = HashFunction::Sha256.hash(b"handshake");
        let key = KeyAlgorithm::Rsa { bits: 2048 };
        let Ok(SignatureInput::RsaBlock(block)) =
            input(CKM_RSA_PKCS_PSS, key, &m_hash, Some(&params))
        else {
            panic!("a block");
        };
        assert_eq!(block.len(), 256);
        assert!(pss_verifies(&block, &m_hash, &params, 2048));
        assert!(!pss_verifies(
            &block,
            &HashFunction::Sha256.hash(b"other"),
            &params,
            2048
        ));
        let again = input(CKM_SHA256_RSA_PKCS_PSS, key, b"handshake", Some(&params));
        assert_ne!(
            again,
            Ok(SignatureInput::RsaBlock(block)),
            "a new salt each time"
        );
        assert_eq!(
            input(CKM_SHA384_RSA_PKCS_PSS, key, b"x", Some(&params)),
            Err(CKR_MECHANISM_PARAM_INVALID),
            "the mechanism's hash and the parameters' must agree"
        );
        assert_eq!(
            input(CKM_RSA_PKCS_PSS, key, &m_hash, None),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
    }
}
