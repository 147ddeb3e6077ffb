//! Card-layer errors. The host's protocol names them on the wire (host/src/views.rs); this
//! crate knows no wire words.

use crate::apdu::Status;

/// Exhaustive on purpose: every matcher is in this workspace, so a new error fails to compile
/// until each mapping (the host's wire codes, the module's return values) names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("no smart card reader is connected")]
    NoReader,
    #[error("reader {0:?} is not connected")]
    UnknownReader(String),
    #[error("no card is inserted")]
    NoCard,
    #[error("the card was removed")]
    CardRemoved,
    #[error("the card is in use by another program")]
    CardInUse,
    #[error("the card was reset by another program during the operation")]
    CardReset,
    /// The card was reset, or the smart card service stopped, after the PIN had left for the
    /// card. The operation is not retried: the PIN is never sent twice for one request.
    #[error("the card was interrupted while it checked the PIN; the PIN was not sent again: try once more")]
    PinInterrupted,
    #[error("the smart card service (PC/SC) is not running")]
    PcscUnavailable,
    #[error("PC/SC error: {0}")]
    Pcsc(String),
    #[error("the card is not supported: {0}")]
    UnsupportedCard(String),
    #[error("the PIN is incorrect")]
    PinIncorrect { retries_left: Option<u8> },
    #[error("the PIN is blocked")]
    PinBlocked,
    #[error("a PIN is 6 to 8 digits")]
    PinFormat,
    /// The key needs the PIN verified first (the card answered 6982); no try was spent.
    #[error("the card wants the PIN first")]
    PinRequired,
    #[error("the card answered {status} to {operation}")]
    CardStatus {
        status: Status,
        operation: &'static str,
    },
    /// The reader returned no answer at all (not even a status word).
    #[error("the card did not answer")]
    NoResponse,
    /// The card (or its reader) took longer than the caller's deadline; see [`crate::timed`].
    #[error("the card did not answer in time")]
    Timeout,
    #[error("the card sent malformed data: {0}")]
    Malformed(String),
    #[error("no certificate with that id is on an inserted card")]
    CertificateNotFound,
    /// The card signed with a key that is not the listed certificate's: its certificates and
    /// keys were rewritten while it stayed in the reader. What was known of it is forgotten,
    /// so the next listing reads the card again; no signature was handed out.
    #[error("the card's certificates were rewritten since they were read: read them again")]
    CertificatesChanged,
    #[error("this key cannot do that: {0}")]
    KeyNotUsable(String),
    #[error("the token module failed: {0}")]
    Module(String),
}

impl CardError {
    /// The boundary where an unexpected status word becomes an error.
    pub fn status(status: Status, operation: &'static str) -> Self {
        match status {
            Status::VerifyFailed { retries_left: 0 } | Status::Blocked => CardError::PinBlocked,
            Status::VerifyFailed { retries_left } => CardError::PinIncorrect {
                retries_left: Some(retries_left),
            },
            status => CardError::CardStatus { status, operation },
        }
    }
}

impl From<cacbridge_cert::CertificateError> for CardError {
    fn from(err: cacbridge_cert::CertificateError) -> Self {
        CardError::Malformed(err.to_string())
    }
}

impl From<pcsc::Error> for CardError {
    fn from(err: pcsc::Error) -> Self {
        use pcsc::Error as E;
        match err {
            // CommError: pcsc-lite's socket to pcscd closed under a call (the service stopped).
            E::NoService | E::ServiceStopped | E::InvalidHandle | E::CommError => {
                CardError::PcscUnavailable
            }
            E::NoReadersAvailable => CardError::NoReader,
            // Which reader is known only to the caller (PcscBackend names it); here, none.
            E::UnknownReader | E::ReaderUnavailable => CardError::NoReader,
            E::NoSmartcard => CardError::NoCard,
            E::RemovedCard | E::NotTransacted => CardError::CardRemoved,
            E::ResetCard => CardError::CardReset,
            E::SharingViolation => CardError::CardInUse,
            E::UnsupportedCard | E::UnpoweredCard | E::UnresponsiveCard | E::ProtoMismatch => {
                CardError::UnsupportedCard(err.to_string())
            }
            other => CardError::Pcsc(other.to_string()),
        }
    }
}
