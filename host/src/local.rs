//! The local channel: a Unix socket through which CAC Bridge's PKCS#11 module, loaded inside
//! the browser that started this host, asks for a TLS signature whose PIN CAC Bridge's window
//! collects (docs/protocol.md, "The local channel").
//!
//! `$XDG_RUNTIME_DIR/cacbridge/host-<browser pid>.sock`, the directory created 0700 and refused
//! when anyone else owns it or can enter it; the rules, which the module shares, are the
//! `cacbridge-channel` crate's. Without `XDG_RUNTIME_DIR` (no login session) there is no
//! channel: a shared directory such as /tmp could be taken by another user first. Each
//! connection's peer must be the very process that started this host, the browser's main
//! process, where both Chromium (its SSLPrivateKey service) and Firefox (PSM) make client
//! signatures: not a child, not another program the browser started. That process is alive
//! (it is this host's parent), so no other process can hold its pid. One request a
//! connection, framed as native messages.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Framed;

use cacbridge_channel::{own_uid, socket_dir, socket_path, ProcessIdentity};

use crate::commands::Host;
use crate::messaging::codec::NativeMessagingCodec;
use crate::messaging::protocol::{parse_request, ErrorCode, Outbound, WireError};

/// The bound socket; removed when dropped, unless another host has bound the name since.
pub struct LocalChannel {
    path: PathBuf,
    inode: (u64, u64),
    listener: UnixListener,
    browser: ProcessIdentity,
}

impl Drop for LocalChannel {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Bind the socket for the browser process that started this host (its parent).
pub fn open() -> std::io::Result<LocalChannel> {
    let refuse = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    let browser_pid = std::os::unix::process::parent_id();
    let browser = ProcessIdentity::of(browser_pid)
        .ok_or_else(|| refuse(format!("cannot read the browser process {browser_pid}")))?;
    let dir = socket_dir().ok_or_else(|| refuse("no XDG_RUNTIME_DIR (no login session)".into()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    if !cacbridge_channel::is_private_dir(&dir) {
        return Err(refuse(format!(
            "{} is not this user's private directory",
            dir.display()
        )));
    }
    let path = socket_path(&dir, browser_pid);
    // A socket left by a host that died, or the socket of an earlier host of this browser:
    // the newest host answers.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    let bound = std::fs::symlink_metadata(&path)?;
    Ok(LocalChannel {
        path,
        inode: (bound.dev(), bound.ino()),
        listener,
        browser,
    })
}

/// Answer the module's requests until the host exits.
pub async fn serve(channel: LocalChannel, host: Arc<Host>) {
    tracing::info!(socket = %channel.path.display(), "local channel open");
    let browser = channel.browser;
    loop {
        let Ok((stream, _)) = channel.listener.accept().await else {
            continue;
        };
        let host = Arc::clone(&host);
        tokio::spawn(async move {
            if let Err(err) = answer(stream, browser, host).await {
                tracing::info!(%err, "local channel connection ended");
            }
        });
    }
}

/// Whether the peer of a connection is `browser` itself, still running: the same pid (a
/// live process's pid is its own), the same start time, and still this host's parent.
fn is_the_browser(peer_pid: Option<i32>, browser: ProcessIdentity) -> bool {
    peer_pid.and_then(|pid| u32::try_from(pid).ok()) == Some(browser.pid)
        && std::os::unix::process::parent_id() == browser.pid
        && browser.still_running()
}

async fn answer(
    stream: UnixStream,
    browser: ProcessIdentity,
    host: Arc<Host>,
) -> std::io::Result<()> {
    let peer = stream.peer_cred()?;
    if peer.uid() != own_uid()? {
        tracing::warn!(
            uid = peer.uid(),
            "local channel: another user's process, refused"
        );
        return Ok(());
    }
    // Only the browser that started this host may ask: another program of the same user, or
    // one the browser started (another extension's native host, an application it opened),
    // must not be able to have the card sign what it likes.
    if !is_the_browser(peer.pid(), browser) {
        tracing::warn!(pid = ?peer.pid(), browser = browser.pid, "local channel: not this host's browser, refused");
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
        Ok(request) if request.command == cacbridge_channel::TLS_SIGN => {
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
