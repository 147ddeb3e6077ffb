//! The local channel: a Unix socket through which CAC Bridge's PKCS#11 module, loaded inside
//! the browser that started this host, asks for a TLS signature whose PIN CAC Bridge's window
//! collects (docs/protocol.md, "The local channel").
//!
//! `<runtime dir>/host-<browser pid>.sock`, where the runtime dir is `$XDG_RUNTIME_DIR/cacbridge`
//! (or `/tmp/cacbridge-<uid>`), created 0700 and refused when anyone else owns it or can enter
//! it; the module applies the same rule (pkcs11/src/window.rs). Each connection's peer must run
//! as this user and be the browser that started this host, or a process of that browser
//! (Chromium's network service). One request a connection, framed as native messages are.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Framed;

use crate::commands::Host;
use crate::messaging::codec::NativeMessagingCodec;
use crate::messaging::protocol::{parse_request, ErrorCode, Outbound, WireError};

fn own_uid() -> std::io::Result<u32> {
    Ok(std::fs::metadata("/proc/self")?.uid())
}

/// The directory of this user's host sockets.
pub fn socket_dir() -> std::io::Result<PathBuf> {
    let uid = own_uid()?;
    Ok(
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(runtime) => PathBuf::from(runtime).join("cacbridge"),
            None => PathBuf::from(format!("/tmp/cacbridge-{uid}")),
        },
    )
}

/// The bound socket; removed when dropped.
pub struct LocalChannel {
    path: PathBuf,
    listener: UnixListener,
}

impl Drop for LocalChannel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind the socket for the browser process `browser_pid` (this host's parent).
pub fn open(browser_pid: u32) -> std::io::Result<LocalChannel> {
    let dir = socket_dir()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let metadata = std::fs::metadata(&dir)?;
    if metadata.uid() != own_uid()? || metadata.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is not this user's private directory", dir.display()),
        ));
    }
    let path = dir.join(format!("host-{browser_pid}.sock"));
    // A socket left by a host that died: nobody answers on it any more.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    Ok(LocalChannel { path, listener })
}

/// Answer the module's requests until the host exits.
pub async fn serve(channel: LocalChannel, host: Arc<Host>) {
    tracing::info!(socket = %channel.path.display(), "local channel open");
    loop {
        let Ok((stream, _)) = channel.listener.accept().await else {
            continue;
        };
        let host = Arc::clone(&host);
        tokio::spawn(async move {
            if let Err(err) = answer(stream, host).await {
                tracing::info!(%err, "local channel connection ended");
            }
        });
    }
}

/// Whether `pid` is `ancestor` or one of its descendants (walking up /proc's parent links).
fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..32 {
        if current == ancestor {
            return true;
        }
        let parent = std::fs::read_to_string(format!("/proc/{current}/stat"))
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
            Some(parent) if parent > 1 => current = parent,
            _ => return false,
        }
    }
    false
}

async fn answer(stream: UnixStream, host: Arc<Host>) -> std::io::Result<()> {
    let peer = stream.peer_cred()?;
    if peer.uid() != own_uid()? {
        tracing::warn!(
            uid = peer.uid(),
            "local channel: another user's process, refused"
        );
        return Ok(());
    }
    // Only the browser that started this host (its main process or one of its children, where
    // the PKCS#11 module runs) may ask: another program of the same user must not be able to
    // have the card sign what it likes, even with the person's PIN.
    let browser = std::os::unix::process::parent_id();
    let from_the_browser = peer
        .pid()
        .and_then(|pid| u32::try_from(pid).ok())
        .is_some_and(|pid| descends_from(pid, browser));
    if !from_the_browser {
        tracing::warn!(pid = ?peer.pid(), "local channel: not this host's browser, refused");
        return Ok(());
    }
    let mut framed = Framed::new(stream, NativeMessagingCodec::inbound());
    let Some(frame) = framed.next().await else {
        return Ok(());
    };
    let frame =
        frame.map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let reply = match parse_request(&frame) {
        Err(rejection) => Outbound::error(rejection.id, rejection.error),
        Ok(request) if request.command == "tls-sign" => {
            match host.tls_sign(&request.arguments).await {
                Ok(result) => Outbound::Result {
                    id: request.id,
                    result,
                },
                Err(err) => Outbound::error(Some(request.id), err),
            }
        }
        Ok(request) => Outbound::error(
            Some(request.id),
            WireError::new(
                ErrorCode::UnknownCommand,
                "the local channel answers tls-sign only",
            ),
        ),
    };
    if let Some(bytes) = reply.encode() {
        framed
            .send(bytes)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(())
}
