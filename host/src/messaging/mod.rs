//! The messaging layer: native-messaging frames on stdin/stdout, protocol v1 requests and
//! replies, and the serve loop. It knows nothing of cards or APDUs; commands are routed to
//! [`crate::commands::Host`].

pub mod codec;
pub mod protocol;
pub mod server;
pub mod stdin;

use codec::{FrameError, NativeMessagingCodec};
use protocol::{parse_request, Outbound, Rejection, Request};
use tokio_util::codec::Decoder;

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
