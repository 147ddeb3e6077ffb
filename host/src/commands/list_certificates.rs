//! `list-certificates`: the certificates of every inserted card, or of one reader's.

use serde::Serialize;

use cacbridge_card::{Backend, Purpose};

use crate::arguments::{invalid, optional_string};
use crate::messaging::protocol::{Arguments, WireError};
use crate::views::CertificateView;

/// The arguments: one reader's card or all, and which certificates (`purpose`): a login needs
/// the authentication certificate alone, and on a real card each certificate read costs a
/// second or more.
pub struct ListRequest {
    pub reader: Option<String>,
    pub purpose: Purpose,
}

impl ListRequest {
    pub fn parse(arguments: &Arguments) -> Result<Self, WireError> {
        let purpose = match optional_string(arguments, "purpose")?.as_deref() {
            None | Some("all") => Purpose::All,
            Some("authentication") => Purpose::Authentication,
            Some("signature") => Purpose::Signature,
            Some(_) => {
                return Err(invalid(
                    "purpose",
                    "value",
                    "\"purpose\" is \"authentication\", \"signature\" or \"all\"",
                ))
            }
        };
        Ok(Self {
            reader: optional_string(arguments, "reader")?,
            purpose,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Certificates {
    pub certificates: Vec<CertificateView>,
}

pub fn list_certificates(
    token: &mut dyn Backend,
    request: ListRequest,
) -> Result<Certificates, WireError> {
    let certificates = token.certificates_for(request.reader.as_deref(), request.purpose)?;
    Ok(Certificates {
        certificates: certificates.iter().map(CertificateView::from).collect(),
    })
}
