//! Whether a signature the card made belongs to the certificate it was made for: checked after
//! every signature, with the certificate's public key and no APDU. A card whose certificates
//! and keys were rewritten while it stayed in its reader (ID Card Office Online's update on the
//! person's own reader) keeps its insertion, its ATR and pcscd's event counter, so nothing the
//! cache is keyed on changes; the signature shows it.

use cacbridge_cert::{public_key, KeyAlgorithm, PublicKey};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;

use crate::crypto::ecdsa_hash_input;
use crate::session::SignatureInput;

/// Whether `signature` (raw RSA, or DER ECDSA, as the card returns it) is the key of
/// `certificate_der` over `input`. A certificate or signature that cannot be read is a
/// mismatch: what cannot be shown to be the certificate's key is not handed out as its.
pub fn made_by(certificate_der: &[u8], input: &SignatureInput, signature: &[u8]) -> bool {
    match (public_key(certificate_der), input) {
        (Ok(PublicKey::Rsa { modulus, exponent }), SignatureInput::RsaBlock(block)) => {
            rsa_made(&modulus, &exponent, block, signature)
        }
        (Ok(PublicKey::Ec { algorithm, point }), SignatureInput::EcHash(hash)) => {
            let hash = ecdsa_hash_input(hash, algorithm.size_bytes());
            match algorithm {
                KeyAlgorithm::EcP256 => {
                    let (Ok(key), Ok(signature)) = (
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(&point),
                        p256::ecdsa::Signature::from_der(signature),
                    ) else {
                        return false;
                    };
                    key.verify_prehash(&hash, &signature).is_ok()
                }
                KeyAlgorithm::EcP384 => {
                    let (Ok(key), Ok(signature)) = (
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(&point),
                        p384::ecdsa::Signature::from_der(signature),
                    ) else {
                        return false;
                    };
                    key.verify_prehash(&hash, &signature).is_ok()
                }
                KeyAlgorithm::Rsa { .. } => false,
            }
        }
        _ => false,
    }
}

/// signature^e mod n is the block the card was given.
fn rsa_made(modulus: &[u8], exponent: &[u8], block: &[u8], signature: &[u8]) -> bool {
    use rsa::BigUint;
    let Ok(key) = rsa::RsaPublicKey::new(
        BigUint::from_bytes_be(modulus),
        BigUint::from_bytes_be(exponent),
    ) else {
        return false;
    };
    let s = BigUint::from_bytes_be(signature);
    let Ok(m) = rsa::hazmat::rsa_encrypt(&key, &s) else {
        return false;
    };
    let m = m.to_bytes_be();
    m.len() <= block.len()
        && block[..block.len() - m.len()].iter().all(|&b| b == 0)
        && block[block.len() - m.len()..] == m[..]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::p256_certificate_with_key;
    use p256::ecdsa::signature::hazmat::PrehashSigner as _;

    #[test]
    fn a_signature_belongs_to_its_certificate_and_to_no_other() {
        let (der, key) = p256_certificate_with_key();
        let (rewritten, _) = p256_certificate_with_key();
        let hash = [0x5A; 32];
        let signature: p256::ecdsa::Signature = key.sign_prehash(&hash).unwrap();
        let signature = signature.to_der().as_bytes().to_vec();
        let input = SignatureInput::EcHash(hash.to_vec());
        assert!(made_by(&der, &input, &signature));
        assert!(
            !made_by(&rewritten, &input, &signature),
            "the card's new certificate"
        );
        assert!(
            !made_by(&der, &SignatureInput::EcHash(vec![0xA5; 32]), &signature),
            "another hash"
        );
        assert!(
            !made_by(&der, &SignatureInput::RsaBlock(vec![0; 256]), &signature),
            "another kind"
        );
        assert!(
            !made_by(&der, &input, b"\x30\x02\x01"),
            "no signature at all"
        );
        assert!(!made_by(b"not a certificate", &input, &signature));
    }
}
