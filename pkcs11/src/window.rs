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

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use cacbridge_card::{CardCertificate, SignatureInput};
use cryptoki_sys::*;

use crate::module::Rv;

/// Where a browser's module sends a signature that needs the PIN.
pub trait WindowSigner: Send + Sync {
    /// The card's raw signature (RSA as is, ECDSA in DER) over `input`, made with the PIN the
    /// person typed in CAC Bridge's window. Called without the module's lock held: the person
    /// may take a minute.
    fn sign(&self, certificate: &CardCertificate, input: &SignatureInput) -> Result<Vec<u8>, Rv>;
}

/// The directory of the host's local sockets for this user: `$XDG_RUNTIME_DIR/cacbridge`; none
/// outside a login session (the host uses the same rule, host/src/local.rs).
pub fn socket_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(|runtime| PathBuf::from(runtime).join("cacbridge"))
}

/// This process and its ancestors, nearest first: a browser may load the module in a child
/// process (Chromium's network service), while the host's socket is named for the browser's
/// main process, which started it.
fn this_process_and_ancestors() -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    while pids.len() < 8 {
        let last = pids[pids.len() - 1];
        let parent = std::fs::read_to_string(format!("/proc/{last}/stat"))
            .ok()
            .and_then(|stat| {
                // Field 4; the command name (field 2) may hold spaces, so count from ')'.
                stat.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            });
        match parent {
            Some(parent) if parent > 1 => pids.push(parent),
            _ => break,
        }
    }
    pids
}

/// The host of the browser this module is loaded in, reached over its local socket.
pub struct HostWindow;

impl HostWindow {
    pub fn for_this_browser() -> Option<Self> {
        socket_dir().map(|_| Self)
    }

    /// Connect to the socket of the nearest process that started a host, trusting only a
    /// directory that this user owns and nobody else can enter.
    fn connect(&self) -> Result<UnixStream, Rv> {
        let uid = std::fs::metadata("/proc/self")
            .map_err(|_| CKR_FUNCTION_FAILED)?
            .uid();
        let dir = socket_dir().ok_or(CKR_FUNCTION_FAILED)?;
        let trusted = std::fs::metadata(&dir)
            .is_ok_and(|m| m.uid() == uid && m.permissions().mode() & 0o077 == 0);
        if !trusted {
            tracing::warn!(dir = %dir.display(), "no trusted CAC Bridge host socket");
            return Err(CKR_FUNCTION_FAILED);
        }
        this_process_and_ancestors()
            .into_iter()
            .find_map(|pid| UnixStream::connect(dir.join(format!("host-{pid}.sock"))).ok())
            .ok_or_else(|| {
                tracing::info!("CAC Bridge is not running in this browser");
                CKR_FUNCTION_FAILED
            })
    }
}

/// The person has this long to type the PIN (the extension's own limit is 120 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(150);
const MAX_REPLY: usize = 64 * 1024;

impl WindowSigner for HostWindow {
    fn sign(&self, certificate: &CardCertificate, input: &SignatureInput) -> Result<Vec<u8>, Rv> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let (kind, bytes) = match input {
            SignatureInput::RsaBlock(block) => ("rsa-block", block),
            SignatureInput::EcHash(hash) => ("ec-hash", hash),
        };
        let request = serde_json::json!({
            "id": 1,
            "command": "tls-sign",
            "arguments": {
                "certificateId": certificate.info.id,
                "kind": kind,
                "input": b64.encode(bytes),
            },
        })
        .to_string();
        let mut stream = self.connect()?;
        stream
            .set_read_timeout(Some(ANSWER_WITHIN))
            .map_err(|_| CKR_FUNCTION_FAILED)?;
        let mut frame = (request.len() as u32).to_ne_bytes().to_vec();
        frame.extend_from_slice(request.as_bytes());
        stream.write_all(&frame).map_err(|_| CKR_DEVICE_ERROR)?;
        let mut length = [0u8; 4];
        stream
            .read_exact(&mut length)
            .map_err(|_| CKR_FUNCTION_CANCELED)?;
        let length = u32::from_ne_bytes(length) as usize;
        if length > MAX_REPLY {
            return Err(CKR_DEVICE_ERROR);
        }
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).map_err(|_| CKR_DEVICE_ERROR)?;
        let reply: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| CKR_DEVICE_ERROR)?;
        if let Some(signature) = reply["result"]["signature"].as_str() {
            return b64.decode(signature).map_err(|_| CKR_DEVICE_ERROR);
        }
        let code = reply["error"]["code"].as_str().unwrap_or_default();
        tracing::info!(code, "the window gave no signature");
        Err(match code {
            "window-cancelled" | "window-timeout" => CKR_FUNCTION_CANCELED,
            "pin-blocked" => CKR_PIN_LOCKED,
            "no-card" | "card-removed" => CKR_DEVICE_REMOVED,
            _ => CKR_FUNCTION_FAILED,
        })
    }
}
