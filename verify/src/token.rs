//! The token as the host returns it from `authenticate`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use crate::VerifyError;

pub const TOKEN_FORMAT: &str = "cacbridge:1";
const MIN_LEN: usize = 100;
const MAX_LEN: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
    Es384,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Algorithm::Rs256,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            _ => return None,
        })
    }

    /// ECDSA signatures are JWS `r || s`, fixed width.
    pub fn fixed_signature_len(self) -> Option<usize> {
        match self {
            Algorithm::Rs256 => None,
            Algorithm::Es256 => Some(64),
            Algorithm::Es384 => Some(96),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub certificate: Vec<u8>,
    pub algorithm: Algorithm,
    pub signature: Vec<u8>,
    pub app_version: String,
}

impl Token {
    pub fn parse(json: &str) -> Result<Token, VerifyError> {
        if !(MIN_LEN..=MAX_LEN).contains(&json.len()) {
            return Err(VerifyError::TokenLength(json.len()));
        }
        let value: Value = serde_json::from_str(json).map_err(|_| VerifyError::TokenNotJson)?;
        let Value::Object(fields) = value else {
            return Err(VerifyError::TokenNotJson);
        };
        let text = |name: &'static str| -> Result<&str, VerifyError> {
            match fields.get(name) {
                None | Some(Value::Null) => Err(VerifyError::MissingField(name)),
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(VerifyError::FieldNotString(name)),
            }
        };
        let bytes = |name: &'static str| -> Result<Vec<u8>, VerifyError> {
            BASE64
                .decode(text(name)?)
                .map_err(|_| VerifyError::FieldNotBase64(name))
        };
        let format = text("format")?;
        if format != TOKEN_FORMAT {
            return Err(VerifyError::UnsupportedFormat(
                format.chars().take(32).collect(),
            ));
        }
        let algorithm_name = text("algorithm")?;
        let algorithm = Algorithm::from_name(algorithm_name).ok_or_else(|| {
            VerifyError::UnsupportedAlgorithm(algorithm_name.chars().take(32).collect())
        })?;
        Ok(Token {
            certificate: bytes("unverifiedCertificate")?,
            algorithm,
            signature: bytes("signature")?,
            app_version: text("appVersion")?.to_owned(),
        })
    }
}
