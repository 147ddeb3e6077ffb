//! `status`: every reader, with the card in it and its PIN state.

use serde::Serialize;

use cacbridge_card::Backend;

use crate::messaging::protocol::WireError;
use crate::views::ReaderView;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// "pcsc", or "pkcs11" for a module backend.
    pub backend: &'static str,
    pub readers: Vec<ReaderView>,
}

pub fn status(token: &mut dyn Backend) -> Result<Status, WireError> {
    let readers = token.readers()?;
    Ok(Status {
        backend: token.name(),
        readers: readers.iter().map(ReaderView::from).collect(),
    })
}
