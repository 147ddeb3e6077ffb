//! The messaging layer: native-messaging frames on stdin/stdout, protocol v1 requests and
//! replies, and the serve loop. It knows nothing of cards or APDUs: requests go to a
//! [`Handler`] (the host's own is `Host`, in the commands module above this one).

pub mod codec;
pub mod protocol;
pub mod server;
pub mod stdin;

use std::future::Future;
use std::pin::Pin;

use codec::{FrameError, NativeMessagingCodec};
use protocol::{parse_request, Outbound, Rejection, Request};
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;

/// How the serve loop must handle a request.
pub enum Route {
    /// Already answered; write it.
    Reply(Outbound),
    /// Write the reply, then stop serving and exit 0.
    Quit(Outbound),
    /// Work that must not block the reading of further requests; its reply comes later.
    Deferred(Pin<Box<dyn Future<Output = Outbound> + Send>>),
}

/// What answers requests. The serve loop reads, routes and writes; the handler decides.
pub trait Handler: Send + Sync + 'static {
    /// Where unsolicited events are to be written (weak: it must not keep the writer alive).
    fn attach_events(&self, sink: mpsc::WeakSender<Outbound>);
    fn route(&self, request: Request) -> Route;
}

/// What the host makes of a raw byte stream, without any I/O: each complete frame parsed or
/// rejected, and the framing error that ended the stream, if any. The fuzz target and its
/// corpus replay drive this, so it must run exactly the code the serve loop runs.
#[derive(Debug)]
pub struct Parsed {
    pub requests: Vec<Result<Request, Rejection>>,
    pub ended_by: Option<FrameError>,
}

pub fn parse_stream(data: &[u8]) -> Parsed {
    let mut codec = NativeMessagingCodec::inbound();
    let mut buf = bytes::BytesMut::from(data);
    let mut requests = Vec::new();
    let ended_by = loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(body)) => {
                let parsed = parse_request(&body);
                if let Err(rejection) = &parsed {
                    // A rejection must always be answerable within the outbound cap.
                    let reply = Outbound::error(rejection.id.clone(), rejection.error.clone());
                    assert!(reply.encode().is_some());
                }
                requests.push(parsed);
            }
            Ok(None) => break None,
            Err(err) => break Some(err),
        }
    };
    Parsed { requests, ended_by }
}
