//! The serve loop: read frames, route requests, write replies.
//!
//! One reader (this loop) and one writer task. Replies of deferred work arrive through the
//! same channel, so requests may be pipelined and answered out of order; the `id` ties each
//! reply to its request.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, FramedWrite};
use zeroize::Zeroize;

use super::codec::{FrameError, NativeMessagingCodec};
use super::protocol::{parse_request, ErrorCode, Outbound, WireError};
use super::{Handler, Route};

/// Why serving stopped; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The browser closed our stdin: the normal end.
    EndOfInput,
    /// A `quit` command was answered.
    Quit,
    /// The browser stopped reading our replies.
    OutputClosed,
    /// A length prefix over the inbound cap: the stream cannot be resynchronised.
    MessageTooLarge,
    /// Stdin ended inside a frame.
    Truncated,
    /// Reading stdin failed.
    InputError,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::EndOfInput | Exit::Quit | Exit::OutputClosed => 0,
            Exit::MessageTooLarge => 3,
            Exit::Truncated => 4,
            Exit::InputError => 5,
        }
    }
}

/// Depth of the reply queue; the reader waits when the browser reads slowly.
const REPLY_QUEUE: usize = 64;

pub async fn serve<R, W, H>(input: R, output: W, host: Arc<H>) -> Exit
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let (replies, queue) = mpsc::channel::<Outbound>(REPLY_QUEUE);
    host.attach_events(replies.downgrade());
    let writer = tokio::spawn(write_replies(output, queue));
    let mut frames = FramedRead::new(input, NativeMessagingCodec::inbound());
    let mut deferred = JoinSet::new();

    let exit = loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            () = replies.closed() => break Exit::OutputClosed,
        };
        let mut body = match frame {
            None => break Exit::EndOfInput,
            Some(Ok(body)) => body,
            Some(Err(FrameError::TooLarge { length, limit })) => {
                tracing::warn!(length, limit, "inbound message over the cap; closing");
                let error = WireError::new(
                    ErrorCode::MessageTooLarge,
                    format!("message of {length} bytes exceeds the {limit}-byte limit"),
                )
                .with_detail("size", length)
                .with_detail("limit", limit);
                let _ = replies.send(Outbound::error(None, error)).await;
                break Exit::MessageTooLarge;
            }
            Some(Err(FrameError::Truncated { buffered })) => {
                tracing::warn!(buffered, "stdin ended inside a frame; closing");
                break Exit::Truncated;
            }
            Some(Err(FrameError::Io(err))) => {
                tracing::error!(%err, "reading stdin failed");
                break Exit::InputError;
            }
        };

        let parsed = parse_request(&body);
        // The body may hold a PIN; the request now holds it in a wiped-on-drop buffer.
        body.zeroize();
        let request = match parsed {
            Ok(request) => request,
            Err(rejection) => {
                tracing::info!(code = %rejection.error.code, "request rejected");
                let _ = replies
                    .send(Outbound::error(rejection.id, rejection.error))
                    .await;
                continue;
            }
        };
        // Only the id and command name are logged: arguments may hold a PIN.
        tracing::info!(id = %request.id, command = %request.command, "request");
        let started = Instant::now();
        match host.route(request) {
            Route::Reply(reply) => {
                log_reply(&reply, started);
                let _ = replies.send(reply).await;
            }
            Route::Quit(reply) => {
                let _ = replies.send(reply).await;
                break Exit::Quit;
            }
            Route::Deferred(work) => {
                let replies = replies.clone();
                deferred.spawn(async move {
                    let reply = work.await;
                    log_reply(&reply, started);
                    let _ = replies.send(reply).await;
                });
            }
        }
        while deferred.try_join_next().is_some() {}
    };

    match exit {
        // Nobody wants the answers of work still running.
        Exit::Quit | Exit::OutputClosed => deferred.shutdown().await,
        // The browser may still read: finish what was asked before the input ended.
        _ => while deferred.join_next().await.is_some() {},
    }
    drop(replies);
    let _ = writer.await;
    tracing::info!(?exit, "serving ended");
    exit
}

async fn write_replies<W: AsyncWrite + Unpin>(output: W, mut queue: mpsc::Receiver<Outbound>) {
    let mut sink = FramedWrite::new(output, NativeMessagingCodec::outbound());
    while let Some(message) = queue.recv().await {
        let Some(body) = message.encode() else {
            tracing::warn!("event too large for one message; dropped");
            continue;
        };
        if let Err(err) = sink.send(body).await {
            tracing::info!(%err, "stdout closed");
            return;
        }
    }
}

fn log_reply(reply: &Outbound, started: Instant) {
    let micros = started.elapsed().as_micros() as u64;
    match reply {
        Outbound::Result { id, .. } => tracing::info!(%id, micros, "ok"),
        Outbound::Error {
            id: Some(id),
            error,
        } => {
            tracing::info!(%id, code = %error.code, micros, "error")
        }
        Outbound::Error { id: None, error } => tracing::info!(code = %error.code, micros, "error"),
        Outbound::Event { .. } => {}
    }
}
