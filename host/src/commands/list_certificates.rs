//! `list-certificates`: the certificates of every inserted card, or of one reader's.

use serde::Serialize;

use cacbridge_card::Token;

use crate::messaging::protocol::WireError;
use crate::views::CertificateView;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Certificates {
    pub certificates: Vec<CertificateView>,
}

pub fn list_certificates(
    token: &mut dyn Token,
    reader: Option<&str>,
) -> Result<Certificates, WireError> {
    let certificates = token.certificates(reader)?;
    Ok(Certificates {
        certificates: certificates.iter().map(CertificateView::from).collect(),
    })
}
