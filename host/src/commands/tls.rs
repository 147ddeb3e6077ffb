//! A TLS client signature through CAC Bridge's window: the PKCS#11 module in the browser asks
//! (`tls-sign`, over the local channel, `crate::local`), the extension shows its window
//! (`pin-request` event) and sends the PIN (`tls-pin`) or gives up (`tls-cancel`), and the
//! host verifies and signs on the card. The PIN goes from the window to the card through the
//! host and never reaches the browser's TLS stack. A wrong PIN keeps the request open for
//! another try; the module gets the signature or why there is none.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use cacbridge_card::{KeyAlgorithm, Pin, Purpose, SignatureInput};

use super::rules::{find, pin_argument, wrong_role};
use crate::arguments::{check_certificate_id, invalid, required_string};
use crate::messaging::protocol::{Arguments, ErrorCode, WireError};
use crate::usage::usable_for;

/// How long the person has to type the PIN.
pub const WINDOW_TIMEOUT: Duration = Duration::from_secs(120);

/// A PIN typed in the window, and where to say how it went.
pub struct PinAttempt {
    pub pin: Pin,
    pub outcome: oneshot::Sender<Result<(), WireError>>,
}

/// The requests waiting for the window, by request id.
#[derive(Default)]
pub struct PendingWindows {
    waiting: Mutex<HashMap<String, mpsc::Sender<PinAttempt>>>,
    next: AtomicU64,
}

impl PendingWindows {
    /// A new request id and the channel its PIN attempts arrive on.
    pub fn open(&self) -> (String, mpsc::Receiver<PinAttempt>) {
        let id = format!("tls-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let (sender, attempts) = mpsc::channel(1);
        self.lock().insert(id.clone(), sender);
        (id, attempts)
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn sender(&self, id: &str) -> Option<mpsc::Sender<PinAttempt>> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<PinAttempt>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Cards left verified after a TLS login, by reader, with when that ends. The card holds the
/// login (its PIN security status), never this process: an entry only says a signature may be
/// tried without asking, and the card has the last word ([`cacbridge_card::CardError::PinRequired`]
/// after a removal, a reset or another program's logout).
#[derive(Default)]
pub struct PinSessions {
    until: Mutex<HashMap<String, Instant>>,
}

impl PinSessions {
    /// A session on the card in `reader` from now, for `length`; returns when it ends.
    pub fn start(&self, reader: &str, length: Duration) -> Instant {
        let until = Instant::now() + length;
        self.lock().insert(reader.to_owned(), until);
        until
    }

    /// Whether the card in `reader` should still be verified.
    pub fn active(&self, reader: &str) -> bool {
        self.lock()
            .get(reader)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Forget the session in `reader`; whether there was one.
    pub fn end(&self, reader: &str) -> bool {
        self.lock().remove(reader).is_some()
    }

    /// End the session in `reader` if it is the one that ends at `until` (a PIN typed again
    /// since started a new one, with its own end).
    pub fn end_if(&self, reader: &str, until: Instant) -> bool {
        let mut sessions = self.lock();
        if sessions.get(reader) == Some(&until) {
            sessions.remove(reader);
            true
        } else {
            false
        }
    }

    /// End every session; the readers they were in.
    pub fn end_all(&self) -> Vec<String> {
        self.lock().drain().map(|(reader, _)| reader).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `tls-sign`'s arguments: the certificate whose key signs, and the input the module made
/// (the padded RSA block, or the hash for ECDSA).
pub struct TlsSignRequest {
    pub certificate_id: String,
    pub input: SignatureInput,
}

impl TlsSignRequest {
    pub fn parse(arguments: &Arguments) -> Result<Self, WireError> {
        let certificate_id = required_string(arguments, "certificateId")?;
        check_certificate_id(certificate_id)?;
        let bytes = BASE64
            .decode(required_string(arguments, "input")?)
            .map_err(|_| invalid("input", "alphabet", "\"input\" is base64"))?;
        if bytes.is_empty() || bytes.len() > 512 {
            return Err(invalid("input", "length", "\"input\" is 1 to 512 bytes"));
        }
        let input = match required_string(arguments, "kind")? {
            "rsa-block" => SignatureInput::RsaBlock(bytes),
            "ec-hash" => SignatureInput::EcHash(bytes),
            _ => {
                return Err(invalid(
                    "kind",
                    "value",
                    "\"kind\" is \"rsa-block\" or \"ec-hash\"",
                ))
            }
        };
        Ok(Self {
            certificate_id: certificate_id.to_owned(),
            input,
        })
    }
}

/// The certificate for a TLS login: an authentication certificate on an inserted card, whose
/// key fits the input. A TLS client certificate is a login, so the e-mail signing certificate
/// never signs a handshake (the classic wrong-certificate mistake).
pub fn tls_certificate(
    token: &mut dyn cacbridge_card::Token,
    request: &TlsSignRequest,
) -> Result<cacbridge_card::CardCertificate, WireError> {
    let certificate = find(token, &request.certificate_id, Purpose::Authentication)?;
    if !usable_for(&certificate).contains(&"authenticate") {
        return Err(wrong_role(&certificate, "to log in over TLS"));
    }
    let fits = match (&request.input, certificate.info.key_algorithm) {
        (SignatureInput::RsaBlock(block), key @ KeyAlgorithm::Rsa { .. }) => {
            block.len() == key.size_bytes()
        }
        (SignatureInput::EcHash(hash), KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384) => {
            matches!(hash.len(), 20 | 32 | 48 | 64)
        }
        _ => false,
    };
    if fits {
        Ok(certificate)
    } else {
        Err(invalid(
            "input",
            "key",
            "the input does not fit the certificate's key",
        ))
    }
}

/// What the window is told about the request: the certificate it is for.
pub fn pin_request_event(id: &str, certificate: &cacbridge_card::CardCertificate) -> Value {
    json!({
        "requestId": id,
        "certificateId": certificate.info.id,
        "reader": certificate.reader,
    })
}

/// `tls-pin`'s arguments.
pub fn pin_attempt(arguments: &Arguments) -> Result<(String, Pin), WireError> {
    let id = required_string(arguments, "requestId")?.to_owned();
    Ok((id, pin_argument(arguments)?))
}

/// Hand a PIN to the waiting request; resolves with how it went on the card.
pub async fn deliver_pin(pending: &PendingWindows, id: &str, pin: Pin) -> Result<Value, WireError> {
    let sender = pending.sender(id).ok_or_else(no_such_request)?;
    let (outcome, result) = oneshot::channel();
    sender
        .send(PinAttempt { pin, outcome })
        .await
        .map_err(|_| no_such_request())?;
    result.await.map_err(|_| no_such_request())??;
    Ok(json!({ "done": true }))
}

/// No window can ask for the PIN: the extension is not connected to this host.
pub fn window_unavailable() -> WireError {
    WireError::new(
        ErrorCode::WindowUnavailable,
        "the CAC Bridge extension is not connected",
    )
}

fn no_such_request() -> WireError {
    WireError::new(
        ErrorCode::WindowTimeout,
        "this request is no longer waiting for a PIN",
    )
}

/// The reply to the module once a signature is made.
pub fn signature_result(signature: &[u8]) -> Value {
    json!({ "signature": BASE64.encode(signature) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pin_session_ends_on_time_and_an_old_timer_spares_a_newer_one() {
        let sessions = PinSessions::default();
        let first = sessions.start("reader", Duration::from_secs(60));
        assert!(sessions.active("reader"));
        assert!(!sessions.active("other reader"));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!sessions.active("reader"), "past its end");

        // The PIN typed again: a new session, which the first one's timer leaves alone.
        let second = sessions.start("reader", Duration::from_secs(60));
        assert!(!sessions.end_if("reader", first));
        assert!(sessions.active("reader"));
        assert!(sessions.end_if("reader", second));
        assert!(!sessions.active("reader"));

        sessions.start("a", Duration::from_secs(60));
        sessions.start("b", Duration::from_secs(60));
        let mut ended = sessions.end_all();
        ended.sort();
        assert_eq!(ended, ["a", "b"]);
        assert!(!sessions.end("a"));
    }
}
