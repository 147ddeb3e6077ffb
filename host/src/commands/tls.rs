//! A TLS client signature through CAC Bridge's window: the PKCS#11 module in the browser asks
//! (`tls-sign`, over the local channel, `crate::local`), the extension shows its window
//! (`pin-request` event) and sends the PIN (`tls-pin`) or gives up (`tls-cancel`), and the
//! host verifies and signs on the card. The PIN goes from the window to the card through the
//! host and never reaches the browser's TLS stack. A wrong PIN keeps the request open for
//! another try; the module gets the signature or why there is none.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use cacbridge_card::{
    CardCertificate, CardError, CardInsertion, HashFunction, Pin, Purpose, SignatureInput,
};
use cacbridge_cert::KeyAlgorithm;

use super::rules::{find, pin_argument, wrong_role};
use super::Host;
use crate::arguments::{check_certificate_id, invalid, required_string};
use crate::held_pin::HeldPin;
use crate::messaging::protocol::{Arguments, ErrorCode, Outbound, WireError};
use crate::usage::{usable_for, Use};

pub use cacbridge_channel::{signature_result, WINDOW_TIMEOUT};

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

/// The PINs of TLS logins, by reader: each for one insertion of one card and one certificate,
/// until the policy's timeout. The card is never left verified (a card verified in a shared
/// reader signs for any program); every later signature sends the held PIN again, signs and
/// logs out in one transaction ([`HeldPin`]).
#[derive(Default)]
pub struct PinSessions {
    logins: Mutex<HashMap<String, HeldLogin>>,
}

struct HeldLogin {
    insertion: CardInsertion,
    certificate_id: String,
    pin: HeldPin,
    until: Instant,
}

/// A held PIN, taken out for one signature.
pub struct HeldForSignature {
    pub pin: Pin,
    pub insertion: CardInsertion,
}

impl PinSessions {
    /// Hold `pin` for the card `insertion` in `reader` and its certificate `certificate_id`,
    /// from now for `length`; returns when it ends, or `None` when the PIN cannot be held
    /// safely (no locked memory).
    pub fn start(
        &self,
        reader: &str,
        insertion: CardInsertion,
        certificate_id: &str,
        pin: &Pin,
        length: Duration,
    ) -> Option<Instant> {
        let pin = HeldPin::new(pin)?;
        let until = Instant::now() + length;
        self.lock().insert(
            reader.to_owned(),
            HeldLogin {
                insertion,
                certificate_id: certificate_id.to_owned(),
                pin,
                until,
            },
        );
        Some(until)
    }

    /// The PIN held for `certificate_id` in `reader`, if its time has not run out.
    pub fn held(&self, reader: &str, certificate_id: &str) -> Option<HeldForSignature> {
        let mut logins = self.lock();
        let login = logins.get(reader)?;
        if login.until <= Instant::now() || login.certificate_id != certificate_id {
            logins.remove(reader);
            return None;
        }
        Some(HeldForSignature {
            pin: login.pin.pin()?,
            insertion: login.insertion.clone(),
        })
    }

    /// Forget the PIN held for `reader`; whether there was one.
    pub fn end(&self, reader: &str) -> bool {
        self.lock().remove(reader).is_some()
    }

    /// Forget the PIN held for `reader` if it is the one that ends at `until` (a PIN typed
    /// again since started a new login, with its own end).
    pub fn end_if(&self, reader: &str, until: Instant) -> bool {
        let mut logins = self.lock();
        if logins.get(reader).is_some_and(|login| login.until == until) {
            logins.remove(reader);
            true
        } else {
            false
        }
    }

    /// Forget every held PIN.
    pub fn end_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HeldLogin>> {
        self.logins.lock().unwrap_or_else(|p| p.into_inner())
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
        let bytes = cacbridge_channel::decode_input(required_string(arguments, "input")?)
            .ok_or_else(|| invalid("input", "alphabet", "\"input\" is base64"))?;
        if bytes.is_empty() || bytes.len() > 512 {
            return Err(invalid("input", "length", "\"input\" is 1 to 512 bytes"));
        }
        let kind = cacbridge_channel::InputKind::from_name(required_string(arguments, "kind")?)
            .ok_or_else(|| invalid("kind", "value", "\"kind\" is \"rsa-block\" or \"ec-hash\""))?;
        let input = match kind {
            cacbridge_channel::InputKind::RsaBlock => SignatureInput::RsaBlock(bytes),
            cacbridge_channel::InputKind::EcHash => SignatureInput::EcHash(bytes),
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
    token: &mut dyn cacbridge_card::Backend,
    request: &TlsSignRequest,
) -> Result<cacbridge_card::CardCertificate, WireError> {
    let certificate = find(token, &request.certificate_id, Purpose::Authentication)?;
    if !usable_for(&certificate).contains(&Use::Authenticate) {
        return Err(wrong_role(&certificate, "to log in over TLS"));
    }
    let fits = match (&request.input, certificate.info.key_algorithm) {
        (SignatureInput::RsaBlock(block), key @ KeyAlgorithm::Rsa { .. }) => {
            block.len() == key.size_bytes() && is_tls_rsa_block(block)
        }
        (SignatureInput::EcHash(hash), KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384) => {
            matches!(hash.len(), 20 | 28 | 32 | 48 | 64)
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

/// Whether `block` is what a TLS client signature pads: EMSA-PKCS1-v1_5 over a SHA-1 or SHA-2
/// DigestInfo (TLS 1.2) or over MD5 || SHA-1 (TLS 1.0 and 1.1), or an EMSA-PSS encoding (TLS
/// 1.3, TLS 1.2's rsa_pss). Anything else (a raw block, a decryption) is no handshake's.
fn is_tls_rsa_block(block: &[u8]) -> bool {
    /// DER DigestInfo prefixes (RFC 8017, 9.2 note 1) of the hashes TLS 1.2 may sign that the
    /// card layer does not name (its own are SHA-256, SHA-384 and SHA-512), with their lengths.
    const OLDER_DIGEST_INFOS: [(&[u8], usize); 2] = [
        (
            b"\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14",
            20,
        ),
        (
            b"\x30\x2d\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x04\x05\x00\x04\x1c",
            28,
        ),
    ];
    const MD5_SHA1: usize = 36;
    if let [0x00, 0x01, rest @ ..] = block {
        let padding = rest.iter().take_while(|b| **b == 0xFF).count();
        let Some((0x00, payload)) = rest[padding..].split_first() else {
            return false;
        };
        return padding >= 8
            && (payload.len() == MD5_SHA1
                || HashFunction::ALL
                    .iter()
                    .map(|f| (f.digest_info_prefix(), f.output_len()))
                    .chain(OLDER_DIGEST_INFOS)
                    .any(|(prefix, hash)| {
                        payload.len() == prefix.len() + hash && payload.starts_with(prefix)
                    }));
    }
    // EMSA-PSS: the encoded message ends in 0xBC, its top bit clear.
    block.last() == Some(&0xBC) && block.first().is_some_and(|b| b & 0x80 == 0)
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

impl Host {
    /// `tls-sign` from the browser's PKCS#11 module (the local channel): with a PIN held from
    /// an earlier TLS login on this card, the card verifies it, signs and logs out at once;
    /// otherwise CAC Bridge's window collects the PIN, then the card signs. A wrong PIN lets
    /// the person try again.
    pub async fn tls_sign(
        &self,
        arguments: &crate::messaging::protocol::Arguments,
    ) -> Result<serde_json::Value, WireError> {
        let request = TlsSignRequest::parse(arguments)?;
        let input = request.input.clone();
        let certificate = self
            .on_lane(move |token| tls_certificate(token, &request))
            .await?;
        let _turn = self.tls_window_turn.lock().await;
        if let Some(held) = self
            .pin_sessions
            .held(&certificate.reader, &certificate.info.id)
        {
            let (on_card, signed_input) = (certificate.clone(), input.clone());
            let signed = self
                .on_lane(move |token| {
                    // Another card, or this one taken out and back: the PIN is not its.
                    if token.insertion(&on_card.reader)?.as_ref() != Some(&held.insertion) {
                        return Ok(None);
                    }
                    Ok(Some(token.sign_input(
                        &on_card,
                        &signed_input,
                        Some(&held.pin),
                    )))
                })
                .await;
            match signed {
                Ok(Some(Ok(signature))) => {
                    tracing::info!("TLS signature with the PIN held for this login");
                    return Ok(signature_result(&signature));
                }
                // Wrong now (changed elsewhere), blocked, removed: never sent again.
                Ok(Some(Err(err))) => {
                    self.pin_sessions.end(&certificate.reader);
                    tracing::info!(%err, "the held PIN did not sign; asking the window");
                    if !matches!(err, CardError::PinIncorrect { .. }) {
                        return Err(err.into());
                    }
                }
                Ok(None) => {
                    self.pin_sessions.end(&certificate.reader);
                    tracing::info!("another card insertion: the held PIN is forgotten");
                }
                Err(err) => {
                    self.pin_sessions.end(&certificate.reader);
                    return Err(err);
                }
            }
        }
        self.sign_after_window(certificate, input).await
    }

    /// Ask CAC Bridge's window for the PIN and sign with it; a wrong PIN lets the person try
    /// again, until they cancel or the window times out.
    async fn sign_after_window(
        &self,
        certificate: CardCertificate,
        input: SignatureInput,
    ) -> Result<serde_json::Value, WireError> {
        let sink = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(mpsc::WeakSender::upgrade)
            .ok_or_else(window_unavailable)?;
        let (id, mut attempts) = self.windows.open();
        let event = Outbound::Event {
            event: super::Event::PinRequest.name(),
            data: pin_request_event(&id, &certificate),
        };
        if sink.send(event).await.is_err() {
            self.windows.close(&id);
            return Err(window_unavailable());
        }
        drop(sink);
        tracing::info!(request = %id, "TLS signature waiting for the window");
        let session = self.policy.tls_pin_session();
        let deadline = tokio::time::Instant::now() + WINDOW_TIMEOUT;
        let outcome = loop {
            let attempt = match tokio::time::timeout_at(deadline, attempts.recv()).await {
                Err(_) => {
                    break Err(WireError::new(
                        ErrorCode::WindowTimeout,
                        "nobody typed the PIN in time",
                    ))
                }
                Ok(None) => {
                    break Err(WireError::new(
                        ErrorCode::WindowCancelled,
                        "the person cancelled",
                    ))
                }
                Ok(Some(attempt)) => attempt,
            };
            let (on_card, signed_input) = (certificate.clone(), input.clone());
            let PinAttempt { pin, outcome } = attempt;
            let signed = self
                .on_lane(move |token| {
                    // The insertion before and after: a PIN is held only for the card that
                    // took it, never for one swapped in meanwhile.
                    let before = token.insertion(&on_card.reader).ok().flatten();
                    let signature = token
                        .sign_input(&on_card, &signed_input, Some(&pin))
                        .map_err(WireError::from)?;
                    let after = token.insertion(&on_card.reader).ok().flatten();
                    let insertion = before.filter(|before| after.as_ref() == Some(before));
                    Ok((signature, insertion, pin))
                })
                .await;
            match signed {
                Ok((signature, insertion, pin)) => {
                    let _ = outcome.send(Ok(()));
                    match insertion {
                        Some(insertion) if !session.is_zero() => {
                            self.hold_pin(&certificate, insertion, &pin, session);
                        }
                        _ => {}
                    }
                    break Ok(signature_result(&signature));
                }
                Err(err) if err.code == ErrorCode::PinIncorrect => {
                    let _ = outcome.send(Err(err));
                }
                Err(err) => {
                    let _ = outcome.send(Err(err.clone()));
                    break Err(err);
                }
            }
        };
        self.windows.close(&id);
        outcome
    }

    /// Hold `pin` for TLS logins with `certificate` on this insertion for `length`, and forget
    /// it then.
    fn hold_pin(
        &self,
        certificate: &CardCertificate,
        insertion: cacbridge_card::CardInsertion,
        pin: &cacbridge_card::Pin,
        length: std::time::Duration,
    ) {
        let reader = certificate.reader.clone();
        let Some(until) =
            self.pin_sessions
                .start(&reader, insertion, &certificate.info.id, pin, length)
        else {
            return;
        };
        let sessions = Arc::clone(&self.pin_sessions);
        tokio::spawn(async move {
            tokio::time::sleep_until(until).await;
            if sessions.end_if(&reader, until) {
                tracing::info!(%reader, "TLS login ended: the held PIN is wiped");
            }
        });
    }

    /// Forget every held PIN (the host is ending).
    pub fn end_pin_sessions(&self) {
        self.pin_sessions.end_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_tls_signature_blocks_are_signed() {
        let digest = cacbridge_card::Digest::of(cacbridge_card::HashFunction::Sha256, b"hs");
        let tls12 = cacbridge_card::crypto::pkcs1_v15_block(&digest, 256).unwrap();
        assert!(is_tls_rsa_block(&tls12));
        let sha512 = cacbridge_card::Digest::of(HashFunction::Sha512, b"hs");
        let tls12_512 = cacbridge_card::crypto::pkcs1_v15_block(&sha512, 256).unwrap();
        assert!(is_tls_rsa_block(&tls12_512));
        // SHA-1 (TLS 1.2's rsa_pkcs1_sha1), from the table of the hashes the card layer lacks.
        let sha1_info = b"\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14";
        let mut tls12_sha1 = vec![0x00, 0x01];
        tls12_sha1.resize(256 - sha1_info.len() - 20 - 1, 0xFF);
        tls12_sha1.push(0x00);
        tls12_sha1.extend_from_slice(sha1_info);
        tls12_sha1.extend([0x77; 20]);
        assert!(is_tls_rsa_block(&tls12_sha1));
        let mut tls10 = vec![0x00, 0x01];
        tls10.resize(256 - 37, 0xFF);
        tls10.push(0x00);
        tls10.extend([0x5A; 36]);
        assert!(is_tls_rsa_block(&tls10));
        let mut pss = vec![0x4F; 255];
        pss.push(0xBC);
        assert!(is_tls_rsa_block(&pss));

        // A raw block (a decryption, or anything a caller likes), a short padding, a payload of
        // no hash's size, a PSS-looking block with its top bit set.
        assert!(!is_tls_rsa_block(&[0x01; 256]));
        let mut short = vec![0x00, 0x01, 0xFF, 0x00];
        short.resize(256, 0x33);
        assert!(!is_tls_rsa_block(&short));
        let mut odd = tls10.clone();
        odd[256 - 37] = 0xFF;
        odd[256 - 36] = 0x00;
        assert!(!is_tls_rsa_block(&odd));
        let mut high = pss.clone();
        high[0] = 0x80;
        assert!(!is_tls_rsa_block(&high));
    }

    fn insertion(count: u32) -> CardInsertion {
        CardInsertion::new("reader", count, &[0x3B, 0x88])
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_pin_ends_on_time_and_an_old_timer_spares_a_newer_one() {
        let sessions = PinSessions::default();
        let pin = Pin::new("123456").unwrap();
        let minute = Duration::from_secs(60);
        let first = sessions
            .start("reader", insertion(1), "cert", &pin, minute)
            .unwrap();
        let held = sessions.held("reader", "cert").unwrap();
        assert_eq!(held.pin.digits(), b"123456");
        assert_eq!(held.insertion, insertion(1));
        assert!(sessions.held("reader", "another cert").is_none());
        assert!(
            sessions.held("reader", "cert").is_none(),
            "asked for another certificate: forgotten"
        );
        sessions.start("reader", insertion(1), "cert", &pin, minute);
        assert!(sessions.held("other reader", "cert").is_none());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(sessions.held("reader", "cert").is_none(), "past its end");

        // The PIN typed again: a new login, which the first one's timer leaves alone.
        let second = sessions
            .start("reader", insertion(2), "cert", &pin, minute)
            .unwrap();
        assert!(!sessions.end_if("reader", first));
        assert!(sessions.held("reader", "cert").is_some());
        assert!(sessions.end_if("reader", second));
        assert!(sessions.held("reader", "cert").is_none());

        sessions.start("a", insertion(1), "cert", &pin, minute);
        sessions.end_all();
        assert!(!sessions.end("a"));
    }
}
