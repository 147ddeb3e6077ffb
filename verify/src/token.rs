//! The token as the host returns it from `authenticate`, read strictly: each field's fault is
//! its own error (the contract itself is `cacbridge_cert::token`).

use crate::TokenError;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use cacbridge_cert::token::{Algorithm, TOKEN_FORMAT};

use crate::VerifyError;

const MIN_LEN: usize = 100;
const MAX_LEN: usize = 10_000;

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
            return Err(VerifyError::Token(TokenError::TokenLength(json.len())));
        }
        let value: Value =
            serde_json::from_str(json).map_err(|_| VerifyError::Token(TokenError::TokenNotJson))?;
        let Value::Object(fields) = value else {
            return Err(VerifyError::Token(TokenError::TokenNotJson));
        };
        let text = |name: &'static str| -> Result<&str, VerifyError> {
            match fields.get(name) {
                None | Some(Value::Null) => Err(VerifyError::Token(TokenError::MissingField(name))),
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(VerifyError::Token(TokenError::FieldNotString(name))),
            }
        };
        let bytes = |name: &'static str| -> Result<Vec<u8>, VerifyError> {
            BASE64
                .decode(text(name)?)
                .map_err(|_| VerifyError::Token(TokenError::FieldNotBase64(name)))
        };
        let format = text("format")?;
        if format != TOKEN_FORMAT {
            return Err(VerifyError::Token(TokenError::UnsupportedFormat(
                format.chars().take(32).collect(),
            )));
        }
        let algorithm_name = text("algorithm")?;
        let algorithm = Algorithm::from_name(algorithm_name).ok_or_else(|| {
            VerifyError::Token(TokenError::UnsupportedAlgorithm(
                algorithm_name.chars().take(32).collect(),
            ))
        })?;
        Ok(Token {
            certificate: bytes("unverifiedCertificate")?,
            algorithm,
            signature: bytes("signature")?,
            app_version: text("appVersion")?.to_owned(),
        })
    }
}
