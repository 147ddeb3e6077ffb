//! Standard input without copies that outlive a message.
//!
//! A request may carry a PIN. `tokio::io::stdin()` reads through two buffers nobody wipes
//! (std's `BufReader` inside `Stdin`, and tokio's blocking-read buffer), so the raw JSON of
//! the last requests would stay in the process's memory. Here one thread reads the file
//! descriptor unbuffered into a buffer it wipes after each read, and hands the bytes over in
//! chunks that wipe themselves when consumed. The only other copy is the frame buffer, which
//! the serve loop wipes once a request is parsed.

use std::io::Read;

use bytes::Buf;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;
use zeroize::{Zeroize, Zeroizing};

/// Bytes per read: larger than any inbound message (the codec caps them at 64 KiB).
const READ_SIZE: usize = 64 * 1024;
/// Chunks in flight between the reading thread and the serve loop.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Bytes read from stdin, wiped when dropped.
struct WipedChunk {
    bytes: Zeroizing<Vec<u8>>,
    position: usize,
}

impl Buf for WipedChunk {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn chunk(&self) -> &[u8] {
        &self.bytes[self.position..]
    }

    fn advance(&mut self, count: usize) {
        self.position = (self.position + count).min(self.bytes.len());
    }
}

/// Standard input as an `AsyncRead` whose intermediate copies are wiped. Falls back to
/// tokio's stdin when the descriptor cannot be duplicated.
pub fn wiped_stdin() -> Box<dyn AsyncRead + Unpin + Send> {
    let file = match unbuffered_stdin() {
        Ok(file) => file,
        Err(err) => {
            tracing::warn!(%err, "cannot duplicate stdin; reading it through tokio");
            return Box::new(tokio::io::stdin());
        }
    };
    Box::new(reader(file))
}

/// Standard input as a file of its own: reads go straight to the descriptor (handle), past
/// std's buffer.
#[cfg(unix)]
fn unbuffered_stdin() -> std::io::Result<std::fs::File> {
    use std::os::fd::AsFd as _;
    Ok(std::fs::File::from(
        std::io::stdin().as_fd().try_clone_to_owned()?,
    ))
}

#[cfg(windows)]
fn unbuffered_stdin() -> std::io::Result<std::fs::File> {
    use std::os::windows::io::AsHandle as _;
    Ok(std::fs::File::from(
        std::io::stdin().as_handle().try_clone_to_owned()?,
    ))
}

/// Any unbuffered byte source, read on its own thread.
fn reader<R: Read + Send + 'static>(mut source: R) -> impl AsyncRead + Unpin + Send {
    let (chunks, mut received) = mpsc::channel::<std::io::Result<WipedChunk>>(CHUNKS_IN_FLIGHT);
    // Not joined: at exit it may be parked in read() on a pipe the browser still holds open.
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut buffer = Zeroizing::new(vec![0u8; READ_SIZE]);
            loop {
                let chunk = match source.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(count) => {
                        let bytes = Zeroizing::new(buffer[..count].to_vec());
                        buffer[..count].zeroize();
                        Ok(WipedChunk { bytes, position: 0 })
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(err) => Err(err),
                };
                let failed = chunk.is_err();
                if chunks.blocking_send(chunk).is_err() || failed {
                    return;
                }
            }
        });
    if let Err(err) = spawned {
        tracing::error!(%err, "cannot start the stdin thread");
    }
    StreamReader::new(futures_util::stream::poll_fn(move |cx| {
        received.poll_recv(cx)
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_arrive_in_order_and_the_end_is_an_end() {
        let data: Vec<u8> = (0..200_000u32).map(|n| (n % 251) as u8).collect();
        let mut read = reader(std::io::Cursor::new(data.clone()));
        let mut out = Vec::new();
        read.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, data);
    }

    #[tokio::test]
    async fn a_read_error_reaches_the_reader() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("broken pipe"))
            }
        }
        let mut read = reader(Failing);
        let err = read.read_u8().await.unwrap_err();
        assert_eq!(err.to_string(), "broken pipe");
    }
}
