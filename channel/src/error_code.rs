//! The protocol's error codes (docs/protocol.md, whose table a test in the host checks
//! against this enum). The strings are part of the protocol and never change meaning.

use std::fmt;

use serde::Serialize;

/// Every error code of the protocol (docs/protocol.md, whose table a test checks against this
/// enum). The strings are part of the protocol and never change meaning.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    serde::Deserialize,
    strum::EnumIter,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ErrorCode {
    // The message itself.
    InvalidJson,
    InvalidRequest,
    UnknownCommand,
    InvalidArgument,
    MessageTooLarge,
    Internal,
    // Readers and cards.
    NoReader,
    NoCard,
    CardRemoved,
    CardInUse,
    CardReset,
    PinInterrupted,
    PcscUnavailable,
    PcscError,
    UnsupportedCard,
    PinIncorrect,
    PinBlocked,
    PinFormat,
    CardError,
    CardTimeout,
    CertificateNotFound,
    KeyNotUsable,
    ModuleError,
    // CAC Bridge's window, for a TLS signature the browser's PKCS#11 module asked for.
    WindowUnavailable,
    WindowCancelled,
    WindowTimeout,
    // The browser's own setup (its certificate database).
    BrowserSetupFailed,
    // Who may ask, and for which site.
    OriginNotAllowed,
    PolicyError,
    CallerNotAllowed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every code, in the order above.
    pub fn all() -> impl Iterator<Item = ErrorCode> {
        <ErrorCode as strum::IntoEnumIterator>::iter()
    }
}

impl ErrorCode {
    /// The code named `name` on the wire, if this build knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::all().find(|code| code.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
