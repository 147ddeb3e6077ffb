//! Native-messaging framing: a 4-byte length in the platform's native byte order, then that
//! many bytes of UTF-8 JSON.
//!
//! The heavy lifting is tokio-util's `LengthDelimitedCodec`; this wrapper fixes its
//! configuration (native endian, 4-byte prefix, the browser's caps) and turns its errors into
//! [`FrameError`] so the server can tell a frame that was too large from a stream that ended in
//! the middle of a frame.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Largest message the host accepts from the browser. Checked on the length prefix, before
/// any buffer is reserved for the body.
pub const MAX_INBOUND: usize = 64 * 1024;
/// Largest message a browser accepts from a host (Chrome and Firefox both cap it at 1 MiB).
pub const MAX_OUTBOUND: usize = 1024 * 1024;

/// A framing failure. After one of these the byte stream cannot be resynchronised.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("message of {length} bytes exceeds the {limit}-byte limit")]
    TooLarge { length: u64, limit: usize },
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Codec for one direction of a native-messaging pipe.
#[derive(Debug)]
pub struct NativeMessagingCodec {
    inner: LengthDelimitedCodec,
    limit: usize,
}

impl NativeMessagingCodec {
    /// Codec for reading what the browser sends (capped at [`MAX_INBOUND`]).
    pub fn inbound() -> Self {
        Self::with_limit(MAX_INBOUND)
    }

    /// Codec for writing to the browser (capped at [`MAX_OUTBOUND`]).
    pub fn outbound() -> Self {
        Self::with_limit(MAX_OUTBOUND)
    }

    pub fn with_limit(limit: usize) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .native_endian()
            .max_frame_length(limit)
            .new_codec();
        Self { inner, limit }
    }

    /// The length the prefix at the head of `src` announces, if four bytes are there.
    fn announced_length(src: &BytesMut) -> Option<u64> {
        let prefix: [u8; 4] = src.get(..4)?.try_into().ok()?;
        Some(u64::from(u32::from_ne_bytes(prefix)))
    }

    fn map_error(&self, src: &BytesMut, err: std::io::Error) -> FrameError {
        // LengthDelimitedCodec reports an oversized frame as InvalidData wrapping its own
        // error type; everything else is a genuine I/O failure.
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>())
        {
            FrameError::TooLarge {
                length: Self::announced_length(src).unwrap_or(u64::MAX),
                limit: self.limit,
            }
        } else {
            FrameError::Io(err)
        }
    }
}

/// Frames come out mutable, so the reader can wipe a body (it may hold a PIN) in place once
/// it is parsed: the body is a view of the read buffer itself.
impl Decoder for NativeMessagingCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        self.inner
            .decode(src)
            .map_err(|err| self.map_error(src, err))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<Bytes> for NativeMessagingCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if item.len() > self.limit {
            return Err(FrameError::TooLarge {
                length: item.len() as u64,
                limit: self.limit,
            });
        }
        self.inner.encode(item, dst).map_err(FrameError::Io)
    }
}

/// Frame `body` the way a browser does. For tests, tools and benchmarks.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let length = u32::try_from(body.len()).expect("a native message fits in u32");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&length.to_ne_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn decode_all(codec: &mut NativeMessagingCodec, buf: &mut BytesMut) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(buf).unwrap() {
            out.push(frame.freeze());
        }
        out
    }

    #[test]
    fn decodes_a_frame_split_across_reads() {
        let mut codec = NativeMessagingCodec::inbound();
        let wire = frame(br#"{"id":1,"command":"version"}"#);
        let mut buf = BytesMut::new();
        for byte in &wire[..wire.len() - 1] {
            buf.extend_from_slice(&[*byte]);
            assert!(codec.decode(&mut buf).unwrap().is_none());
        }
        buf.extend_from_slice(&wire[wire.len() - 1..]);
        let got = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&got[..], br#"{"id":1,"command":"version"}"#);
        assert!(buf.is_empty());
    }

    #[test]
    fn decodes_several_frames_in_one_read() {
        let mut codec = NativeMessagingCodec::inbound();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame(b"{}"));
        buf.extend_from_slice(&frame(b"[1]"));
        let frames = decode_all(&mut codec, &mut buf);
        assert_eq!(
            frames,
            vec![Bytes::from_static(b"{}"), Bytes::from_static(b"[1]")]
        );
    }

    #[test]
    fn zero_length_frame_is_an_empty_message() {
        let mut codec = NativeMessagingCodec::inbound();
        let mut buf = BytesMut::from(&frame(b"")[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), 0);
    }

    #[test]
    fn frame_of_exactly_the_cap_is_accepted() {
        let mut codec = NativeMessagingCodec::inbound();
        let body = vec![b' '; MAX_INBOUND];
        let mut buf = BytesMut::from(&frame(&body)[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), MAX_INBOUND);
    }

    #[test]
    fn frame_over_the_cap_is_refused_from_the_prefix_alone() {
        let mut codec = NativeMessagingCodec::inbound();
        // Only the prefix: the refusal must not wait for (or reserve room for) the body.
        let announced = (MAX_INBOUND + 1) as u32;
        let mut buf = BytesMut::from(&announced.to_ne_bytes()[..]);
        let capacity_before = buf.capacity();
        match codec.decode(&mut buf) {
            Err(FrameError::TooLarge { length, limit }) => {
                assert_eq!(length, MAX_INBOUND as u64 + 1);
                assert_eq!(limit, MAX_INBOUND);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(buf.capacity(), capacity_before);
    }

    #[test]
    fn huge_announced_length_is_refused_without_allocating() {
        let mut codec = NativeMessagingCodec::inbound();
        let mut buf = BytesMut::from(&u32::MAX.to_ne_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { length, .. }) if length == u64::from(u32::MAX)
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn stream_ending_inside_a_body_is_truncated() {
        let mut codec = NativeMessagingCodec::inbound();
        let wire = frame(br#"{"id":1}"#);
        let mut buf = BytesMut::from(&wire[..wire.len() - 2]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn stream_ending_inside_a_prefix_is_truncated() {
        let mut codec = NativeMessagingCodec::inbound();
        let mut buf = BytesMut::from(&[7u8, 0][..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::Truncated { buffered: 2 })
        ));
    }

    #[test]
    fn clean_end_of_stream_is_not_an_error() {
        let mut codec = NativeMessagingCodec::inbound();
        let mut buf = BytesMut::new();
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn encoder_writes_native_endian_prefix() {
        let mut codec = NativeMessagingCodec::outbound();
        let mut dst = BytesMut::new();
        codec.encode(Bytes::from_static(b"{}"), &mut dst).unwrap();
        assert_eq!(&dst[..], &frame(b"{}")[..]);
    }

    #[test]
    fn encoder_refuses_an_oversized_reply_instead_of_truncating_it() {
        let mut codec = NativeMessagingCodec::outbound();
        let mut dst = BytesMut::new();
        let body = Bytes::from(vec![b'x'; MAX_OUTBOUND + 1]);
        assert!(matches!(
            codec.encode(body, &mut dst),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(dst.is_empty());
    }
}
