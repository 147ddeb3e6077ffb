//! The `cacbridge:1` token contract, shared by the host that makes tokens and the verifier and
//! portal that check them: the format name, the JWS algorithm of each key type, the message a
//! card signs (`H(origin) || H(nonce)`, H being the algorithm's hash), and the token's fields.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha384};

use crate::KeyAlgorithm;

pub const TOKEN_FORMAT: &str = "cacbridge:1";

/// The JWS algorithm a token is signed with: fixed by the key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
    Es384,
}

impl Algorithm {
    /// The algorithm of a key: RSA (any size) RS256, P-256 ES256, P-384 ES384.
    pub fn for_key(key: KeyAlgorithm) -> Self {
        match key {
            KeyAlgorithm::Rsa { .. } => Algorithm::Rs256,
            KeyAlgorithm::EcP256 => Algorithm::Es256,
            KeyAlgorithm::EcP384 => Algorithm::Es384,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Algorithm::Rs256,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            _ => return None,
        })
    }

    /// Does this algorithm fit a key of this type?
    pub fn fits(self, key: KeyAlgorithm) -> bool {
        Self::for_key(key) == self
    }

    /// ECDSA signatures are JWS `r || s`, fixed width.
    pub fn fixed_signature_len(self) -> Option<usize> {
        match self {
            Algorithm::Rs256 => None,
            Algorithm::Es256 => Some(64),
            Algorithm::Es384 => Some(96),
        }
    }

    /// The algorithm's hash.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Rs256 | Algorithm::Es256 => Sha256::digest(data).to_vec(),
            Algorithm::Es384 => Sha384::digest(data).to_vec(),
        }
    }
}

/// The bytes a card signs for `authenticate`: `H(origin) || H(nonce)` over the UTF-8 strings
/// as given. The origin and nonce are not in the token: a server rebuilds this from its own
/// session.
pub fn authentication_message(algorithm: Algorithm, origin: &str, nonce: &str) -> Vec<u8> {
    let mut message = algorithm.hash(origin.as_bytes());
    message.extend(algorithm.hash(nonce.as_bytes()));
    message
}

/// The token as it travels: what `authenticate` returns and a portal receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthToken {
    /// [`TOKEN_FORMAT`].
    pub format: String,
    /// Base64 DER of the signing certificate, unverified until a server checks it.
    pub unverified_certificate: String,
    /// [`Algorithm::name`].
    pub algorithm: String,
    /// Base64 signature; ECDSA as JWS `r || s`.
    pub signature: String,
    /// `cacbridge-host/<version>`.
    pub app_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_type_has_its_algorithm_and_hash() {
        assert_eq!(
            Algorithm::for_key(KeyAlgorithm::Rsa { bits: 3072 }),
            Algorithm::Rs256
        );
        assert_eq!(Algorithm::for_key(KeyAlgorithm::EcP256), Algorithm::Es256);
        assert_eq!(Algorithm::for_key(KeyAlgorithm::EcP384), Algorithm::Es384);
        assert!(!Algorithm::Es256.fits(KeyAlgorithm::EcP384));
        for algorithm in [Algorithm::Rs256, Algorithm::Es256, Algorithm::Es384] {
            assert_eq!(Algorithm::from_name(algorithm.name()), Some(algorithm));
        }
        let message = authentication_message(Algorithm::Es384, "https://a.mil", "n");
        assert_eq!(message.len(), 96);
        assert_eq!(&message[..48], Sha384::digest(b"https://a.mil").as_slice());
    }
}
