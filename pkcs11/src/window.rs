//! In a browser, a signature that needs the PIN goes to CAC Bridge's host instead of the
//! browser's own PIN prompt (which headless Chromium cannot answer, and which stalls Firefox's
//! networking: ../docs/pkcs11.md). The host, started by this browser for the CAC Bridge
//! extension, has the person type the PIN in CAC Bridge's window, verifies it on the card and
//! signs there: the PIN never enters this process.
//!
//! The channel is the host's local socket `<runtime dir>/cacbridge/host-<browser pid>.sock`
//! (docs/protocol.md, "The local channel"): the host names it after the process that
//! started it, the browser's main process, which is this process or one of its ancestors.
//! Only a directory owned by this user and closed to everyone else is trusted.

use std::os::unix::net::UnixStream;

use cacbridge_card::{CardCertificate, SignatureInput};
use cacbridge_channel::{ErrorCode, InputKind, TlsSignArguments, TlsSignReply};
use cryptoki_sys::*;

use crate::Rv;

/// Where a browser's module sends a signature that needs the PIN.
pub trait WindowSigner: Send + Sync {
    /// The card's raw signature (RSA as is, ECDSA in DER) over `input`, made with the PIN the
    /// person typed in CAC Bridge's window. Called without the module's lock held: the person
    /// may take a minute.
    fn sign(&self, certificate: &CardCertificate, input: &SignatureInput) -> Result<Vec<u8>, Rv>;
}

/// The host's ancestors the module looks among for the socket's browser (the module may run
/// in a child of the browser's main process).
const ANCESTORS: usize = 8;

/// The host of the browser this module is loaded in, reached over its local socket.
pub struct HostWindow;

impl HostWindow {
    pub fn for_this_browser() -> Option<Self> {
        cacbridge_channel::socket_dir().map(|_| Self)
    }

    /// Connect to the socket of the nearest process that started a host, trusting only a
    /// directory that this user owns and nobody else can enter.
    fn connect(&self) -> Result<UnixStream, Rv> {
        let dir = cacbridge_channel::socket_dir().ok_or(CKR_FUNCTION_FAILED)?;
        if !cacbridge_channel::is_private_dir(&dir) {
            tracing::warn!(dir = %dir.display(), "no trusted CAC Bridge host socket");
            return Err(CKR_FUNCTION_FAILED);
        }
        cacbridge_channel::this_process_and_ancestors(ANCESTORS)
            .into_iter()
            .find_map(|pid| UnixStream::connect(cacbridge_channel::socket_path(&dir, pid)).ok())
            .ok_or_else(|| {
                tracing::info!("CAC Bridge is not running in this browser");
                CKR_FUNCTION_FAILED
            })
    }
}

impl WindowSigner for HostWindow {
    fn sign(&self, certificate: &CardCertificate, input: &SignatureInput) -> Result<Vec<u8>, Rv> {
        let (kind, bytes) = match input {
            SignatureInput::RsaBlock(block) => (InputKind::RsaBlock, block),
            SignatureInput::EcHash(hash) => (InputKind::EcHash, hash),
        };
        let request = TlsSignArguments::new(&certificate.info.id, kind, bytes).request_body();
        let mut stream = self.connect()?;
        stream
            .set_read_timeout(Some(cacbridge_channel::ANSWER_WITHIN))
            .map_err(|_| CKR_FUNCTION_FAILED)?;
        cacbridge_channel::write_frame(&mut stream, &request).map_err(|_| CKR_DEVICE_ERROR)?;
        // A host that hangs up without a word refused the request (or stopped).
        let body = cacbridge_channel::read_frame(&mut stream).map_err(|err| match err.kind() {
            std::io::ErrorKind::InvalidData => CKR_DEVICE_ERROR,
            _ => CKR_FUNCTION_CANCELED,
        })?;
        match TlsSignReply::parse(&body) {
            TlsSignReply::Signature(signature) => Ok(signature),
            TlsSignReply::Refused(code) => {
                tracing::info!(?code, "the window gave no signature");
                Err(refusal_to_rv(code))
            }
            TlsSignReply::Malformed => Err(CKR_DEVICE_ERROR),
        }
    }
}

/// The PKCS#11 answer to the host's refusal: what the browser makes of it (a cancel is no
/// error to show; a blocked PIN and a pulled card are the card's).
fn refusal_to_rv(code: Option<ErrorCode>) -> Rv {
    match code {
        Some(ErrorCode::WindowCancelled | ErrorCode::WindowTimeout) => CKR_FUNCTION_CANCELED,
        Some(ErrorCode::PinBlocked) => CKR_PIN_LOCKED,
        // A certificate the card no longer holds (rewritten in the reader, which the host's
        // signature check found): for the browser the token it knew is gone.
        Some(ErrorCode::NoCard | ErrorCode::CardRemoved | ErrorCode::CertificateNotFound) => {
            CKR_DEVICE_REMOVED
        }
        _ => CKR_FUNCTION_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_refusals_map_to_what_a_browser_makes_of_them() {
        for (code, rv) in [
            (Some(ErrorCode::WindowCancelled), CKR_FUNCTION_CANCELED),
            (Some(ErrorCode::WindowTimeout), CKR_FUNCTION_CANCELED),
            (Some(ErrorCode::PinBlocked), CKR_PIN_LOCKED),
            (Some(ErrorCode::NoCard), CKR_DEVICE_REMOVED),
            (Some(ErrorCode::CardRemoved), CKR_DEVICE_REMOVED),
            (Some(ErrorCode::CertificateNotFound), CKR_DEVICE_REMOVED),
            (Some(ErrorCode::KeyNotUsable), CKR_FUNCTION_FAILED),
            (None, CKR_FUNCTION_FAILED),
        ] {
            assert_eq!(refusal_to_rv(code), rv, "{code:?}");
        }
    }
}
