//! The local channel between CAC Bridge's PKCS#11 module, loaded in a browser, and the host that
//! browser started for the extension (docs/protocol.md, "The local channel"): one owner for
//! everything both sides must agree on. The socket's place and the private directory it lives
//! in, who may connect (the browser process itself, named by pid and start time), the framing,
//! the one request (`tls-sign`) and its reply, the timeouts, the browsers' library name, and the
//! protocol's error codes. No async runtime and no card layer: the module links it as is.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

mod error_code;
pub use error_code::ErrorCode;

/// The module's file name when a browser loads it for CAC Bridge's window (the same library
/// under a second name: `install` registers this one for browsers).
pub const BROWSER_LIBRARY: &str = "libcacbridge_pkcs11_browser.so";

/// How long the person has to type the PIN in CAC Bridge's window (the extension's window
/// closes then too).
pub const WINDOW_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the module waits for the host's answer: the window's time, and room for the card.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(WINDOW_TIMEOUT.as_secs() + 30);

/// The largest frame either side reads or writes (as native messaging's inbound limit).
pub const MAX_FRAME: usize = 64 * 1024;

/// The command the channel answers.
pub const TLS_SIGN: &str = "tls-sign";

/// The directory of this user's host sockets: `$XDG_RUNTIME_DIR/cacbridge`; `None` outside a
/// login session (a shared directory such as /tmp could be taken by another user first).
pub fn socket_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(|runtime| PathBuf::from(runtime).join("cacbridge"))
}

/// The socket of the host that the browser process `browser_pid` started.
pub fn socket_path(dir: &Path, browser_pid: u32) -> PathBuf {
    dir.join(format!("host-{browser_pid}.sock"))
}

/// The user this process runs as (its effective uid; not read from /proc, whose files a
/// non-dumpable process, as the host makes itself, shows as root's).
#[cfg(unix)]
pub fn own_uid() -> std::io::Result<u32> {
    Ok(rustix::process::geteuid().as_raw())
}

/// Whether `dir` is a directory (not a link to one) that this user owns and nobody else can
/// enter: the only place either side trusts a socket in.
#[cfg(unix)]
pub fn is_private_dir(dir: &Path) -> bool {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Ok(uid) = own_uid() else { return false };
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0)
}

/// A process as it was when first seen: a pid names a process only with its start time
/// (clock ticks since boot, field 22 of /proc/<pid>/stat), since pids are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub start_time: u64,
}

/// The fields of /proc/<pid>/stat after the command name (which may hold spaces and
/// parentheses: counted from the last ')'), from field 3 on.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

impl ProcessIdentity {
    pub fn of(pid: u32) -> Option<Self> {
        let start_time = stat_fields(pid)?.get(19)?.parse().ok()?;
        Some(Self { pid, start_time })
    }

    /// When the process started, on the wall clock: boot time (`btime` in /proc/stat) plus its
    /// start in clock ticks.
    #[cfg(unix)]
    pub fn started_at(&self) -> Option<std::time::SystemTime> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let boot: u64 = stat
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let ticks = rustix::param::clock_ticks_per_second();
        let since_boot = std::time::Duration::from_secs_f64(self.start_time as f64 / ticks as f64);
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(boot) + since_boot)
    }

    #[cfg(not(unix))]
    pub fn started_at(&self) -> Option<std::time::SystemTime> {
        None
    }

    /// Whether this process is still the one running under its pid.
    pub fn still_running(&self) -> bool {
        Self::of(self.pid) == Some(*self)
    }
}

/// The parent of process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// This process and up to `hops` of its ancestors, nearest first (init excluded): a browser
/// may load the module in a child process, while the host's socket is named for the browser's
/// main process, which started it.
pub fn this_process_and_ancestors(hops: usize) -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    while pids.len() <= hops {
        match pids.last().copied().and_then(parent_of) {
            Some(parent) if parent > 1 => pids.push(parent),
            _ => break,
        }
    }
    pids
}

/// Write one frame: a native-endian 32-bit length, then the body (at most [`MAX_FRAME`]).
pub fn write_frame(to: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    let mut frame = (body.len() as u32).to_ne_bytes().to_vec();
    frame.extend_from_slice(body);
    to.write_all(&frame)
}

/// Read one frame's body; a length over [`MAX_FRAME`] is refused before anything is read.
pub fn read_frame(from: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    from.read_exact(&mut length)?;
    let length = u32::from_ne_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; length];
    from.read_exact(&mut body)?;
    Ok(body)
}

/// What the card's key signs: for RSA the whole padded block (the module pads: cards do raw
/// RSA), for ECDSA the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    RsaBlock,
    EcHash,
}

impl InputKind {
    /// The kind named `name` on the wire.
    pub fn from_name(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }
}

/// A `tls-sign` input's bytes, if `input` is base64.
pub fn decode_input(input: &str) -> Option<Vec<u8>> {
    BASE64.decode(input).ok()
}

/// `tls-sign`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSignArguments {
    /// The certificate's id (SHA-256 of its DER, 64 lowercase hex digits).
    pub certificate_id: String,
    pub kind: InputKind,
    /// Base64.
    pub input: String,
}

impl TlsSignArguments {
    pub fn new(certificate_id: &str, kind: InputKind, input: &[u8]) -> Self {
        Self {
            certificate_id: certificate_id.to_owned(),
            kind,
            input: BASE64.encode(input),
        }
    }

    /// The input's bytes, if it is base64.
    pub fn input_bytes(&self) -> Option<Vec<u8>> {
        decode_input(&self.input)
    }

    /// The request's frame body, as the module sends it.
    pub fn request_body(&self) -> Vec<u8> {
        serde_json::json!({"id": 1, "command": TLS_SIGN, "arguments": self})
            .to_string()
            .into_bytes()
    }
}

/// `tls-sign`'s successful result.
pub fn signature_result(signature: &[u8]) -> serde_json::Value {
    serde_json::json!({ "signature": BASE64.encode(signature) })
}

/// What the module makes of the host's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSignReply {
    Signature(Vec<u8>),
    /// The host's error code; `None` for a code this build does not know.
    Refused(Option<ErrorCode>),
    /// Not a reply at all.
    Malformed,
}

impl TlsSignReply {
    pub fn parse(body: &[u8]) -> Self {
        let Ok(reply) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::Malformed;
        };
        if let Some(signature) = reply["result"]["signature"].as_str() {
            return BASE64
                .decode(signature)
                .map_or(Self::Malformed, Self::Signature);
        }
        match reply["error"]["code"].as_str() {
            Some(code) => Self::Refused(ErrorCode::from_name(code)),
            None => Self::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"{\"id\":1}").unwrap();
        assert_eq!(&wire[..4], &8u32.to_ne_bytes());
        assert_eq!(read_frame(&mut wire.as_slice()).unwrap(), b"{\"id\":1}");
        assert!(write_frame(&mut Vec::new(), &vec![0; MAX_FRAME + 1]).is_err());
        let announced = ((MAX_FRAME + 1) as u32).to_ne_bytes();
        let err = read_frame(&mut announced.as_slice()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_request_and_its_replies() {
        let arguments = TlsSignArguments::new("ab", InputKind::EcHash, &[1, 2, 3]);
        let body: serde_json::Value = serde_json::from_slice(&arguments.request_body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"id": 1, "command": "tls-sign", "arguments":
                {"certificateId": "ab", "kind": "ec-hash", "input": "AQID"}})
        );
        let parsed: TlsSignArguments = serde_json::from_value(body["arguments"].clone()).unwrap();
        assert_eq!(parsed.input_bytes().unwrap(), [1, 2, 3]);
        assert_eq!(InputKind::from_name("rsa-block"), Some(InputKind::RsaBlock));
        assert_eq!(InputKind::from_name("RsaBlock"), None);
        let ok = serde_json::json!({"id": 1, "result": signature_result(&[9, 9])}).to_string();
        assert_eq!(
            TlsSignReply::parse(ok.as_bytes()),
            TlsSignReply::Signature(vec![9, 9])
        );
        let refused = br#"{"id":1,"error":{"code":"window-cancelled","message":"x"}}"#;
        assert_eq!(
            TlsSignReply::parse(refused),
            TlsSignReply::Refused(Some(ErrorCode::WindowCancelled))
        );
        let unknown = br#"{"id":1,"error":{"code":"from-the-future","message":"x"}}"#;
        assert_eq!(TlsSignReply::parse(unknown), TlsSignReply::Refused(None));
        assert_eq!(TlsSignReply::parse(b"nonsense"), TlsSignReply::Malformed);
    }

    #[test]
    fn a_process_start_is_read_on_the_wall_clock() {
        let me = ProcessIdentity::of(std::process::id()).unwrap();
        let started = me.started_at().unwrap();
        let age = std::time::SystemTime::now()
            .duration_since(started)
            .unwrap();
        // This test process started moments ago (btime has a second's resolution).
        assert!(age < std::time::Duration::from_secs(600), "{age:?}");
    }

    #[test]
    fn this_process_is_named_by_pid_and_start_time() {
        let me = ProcessIdentity::of(std::process::id()).unwrap();
        assert!(me.still_running());
        let stale = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!stale.still_running());
        let chain = this_process_and_ancestors(8);
        assert_eq!(chain[0], std::process::id());
        assert_eq!(
            chain.get(1).copied(),
            parent_of(std::process::id()).filter(|p| *p > 1)
        );
    }

    #[cfg(unix)]
    #[test]
    fn own_uid_is_who_owns_what_this_process_creates() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            std::fs::metadata(dir.path()).unwrap().uid(),
            own_uid().unwrap()
        );
    }

    #[cfg(unix)]
    #[test]
    fn only_a_private_directory_of_ones_own_is_trusted() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(is_private_dir(&private));
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(!is_private_dir(&private), "others can enter");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        assert!(!is_private_dir(&link), "a link to it");
        assert!(!is_private_dir(&dir.path().join("missing")));
    }
}
