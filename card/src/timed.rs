//! A [`Backend`] whose every operation has a deadline. A hung reader or a card that stops
//! answering blocks `SCardTransmit` for as long as it likes; a caller that must never block
//! forever (a PKCS#11 module inside a browser) wraps its token in a [`TimedBackend`].
//!
//! The wrapped token lives on a worker thread of its own. Each operation is sent there and
//! awaited for at most the timeout; after that the caller gets [`CardError::Timeout`] and the
//! operation finishes (or not) on the worker. Until it does, every further operation fails at
//! once with the same error instead of queueing behind it for another full timeout.
//!
//! A token that can be built again ([`TimedBackend::reloading`]: a PKCS#11 module, which may
//! deadlock inside its own locks and never return) is instead abandoned at the timeout: its
//! worker is left to its fate and a fresh token on a fresh worker serves the next operation.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::crypto::Digest;
use crate::error::CardError;
use crate::model::{CardCertificate, CardInsertion, Purpose, ReaderStatus};
use crate::pin::Pin;
use crate::{Backend, SignatureInput};

type Job = Box<dyn FnOnce(&mut dyn Backend) + Send>;

/// Builds the token again after a timeout; the argument counts the builds (1 for the first
/// rebuild), so a PKCS#11 module can be loaded from a private copy.
pub type Rebuild = Box<dyn FnMut(u32) -> Result<Box<dyn Backend>, CardError> + Send>;

/// How long one card operation may take: `CACBRIDGE_CARD_TIMEOUT_MS` (100 ms to 10 min), else
/// 30 s. A slow real CAC reads its certificates in several seconds; a hung reader must not
/// hang its caller (a browser, the host) with it.
pub fn timeout_from_env() -> Duration {
    let millis = std::env::var("CACBRIDGE_CARD_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(30_000, |ms| ms.clamp(100, 600_000));
    Duration::from_millis(millis)
}

/// Operations sent to the worker and finished by it, and whether the one in flight is past
/// its deadline.
#[derive(Default)]
struct Progress {
    sent: u64,
    finished: u64,
    overdue: bool,
}

pub struct TimedBackend {
    name: &'static str,
    timeout: Duration,
    jobs: Option<mpsc::Sender<Job>>,
    progress: Arc<Mutex<Progress>>,
    apdus: Arc<AtomicU64>,
    worker: Option<JoinHandle<()>>,
    rebuild: Option<(Rebuild, u32)>,
}

/// A worker thread serving `token`: its queue, its progress, its handle.
struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    progress: Arc<Mutex<Progress>>,
    handle: Option<JoinHandle<()>>,
}

fn start_worker(mut token: Box<dyn Backend>, apdus: Arc<AtomicU64>) -> Worker {
    let (jobs, queue) = mpsc::channel::<Job>();
    let progress = Arc::new(Mutex::new(Progress::default()));
    let worker = {
        let progress = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("cacbridge-card".into())
            .spawn(move || {
                for job in queue {
                    // A panicking operation answers nobody (its reply channel drops); the
                    // worker carries on with the next one.
                    let _ = catch_unwind(AssertUnwindSafe(|| job(token.as_mut())));
                    apdus.store(token.apdu_count(), Ordering::Relaxed);
                    let mut progress = lock(&progress);
                    progress.finished += 1;
                    progress.overdue = false;
                }
            })
    };
    match worker {
        Ok(handle) => Worker {
            jobs: Some(jobs),
            progress,
            handle: Some(handle),
        },
        // No thread to be had: every operation fails cleanly rather than the caller crash.
        Err(err) => {
            tracing::error!(%err, "no thread for card operations");
            Worker {
                jobs: None,
                progress,
                handle: None,
            }
        }
    }
}

impl TimedBackend {
    /// Move `token` onto a worker thread; each operation gets `timeout`.
    pub fn new(token: Box<dyn Backend>, timeout: Duration) -> Self {
        let name = token.name();
        let apdus = Arc::new(AtomicU64::new(0));
        let worker = start_worker(token, Arc::clone(&apdus));
        Self {
            name,
            timeout,
            jobs: worker.jobs,
            progress: worker.progress,
            apdus,
            worker: worker.handle,
            rebuild: None,
        }
    }

    /// As [`TimedBackend::new`] with `token`, and on a timeout the token is abandoned and
    /// `rebuild` makes the one that serves from then on.
    pub fn reloading(token: Box<dyn Backend>, rebuild: Rebuild, timeout: Duration) -> Self {
        let mut timed = Self::new(token, timeout);
        timed.rebuild = Some((rebuild, 0));
        timed
    }

    /// Leave the stuck worker behind and serve from a fresh token on a fresh worker.
    fn reload(&mut self) {
        let Some((rebuild, builds)) = self.rebuild.as_mut() else {
            return;
        };
        *builds += 1;
        match rebuild(*builds) {
            Ok(token) => {
                // The old worker ends whenever its operation returns, if ever: not joined.
                self.jobs = None;
                drop(self.worker.take());
                let worker = start_worker(token, Arc::clone(&self.apdus));
                self.jobs = worker.jobs;
                self.progress = worker.progress;
                self.worker = worker.handle;
                tracing::warn!(builds = *builds, "the token was abandoned and built again");
            }
            Err(err) => tracing::error!(%err, "the token could not be built again"),
        }
    }

    /// Run `work` on the worker and wait for it until the deadline.
    fn run<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut dyn Backend) -> Result<T, CardError> + Send + 'static,
    ) -> Result<T, CardError> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| CardError::Pcsc("no thread for card operations".into()))?;
        let number = {
            let mut progress = lock(&self.progress);
            if progress.overdue {
                return Err(CardError::Timeout);
            }
            progress.sent += 1;
            progress.sent
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |token| {
            let _ = reply.send(work(token));
        });
        if jobs.send(job).is_err() {
            return Err(CardError::Pcsc("the card worker stopped".into()));
        }
        match answer.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let stuck = {
                    let mut progress = lock(&self.progress);
                    if progress.finished < number {
                        progress.overdue = true;
                    }
                    progress.overdue
                };
                tracing::warn!(timeout = ?self.timeout, "the card did not answer in time");
                if stuck {
                    self.reload();
                }
                Err(CardError::Timeout)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(CardError::Pcsc(
                "the card operation failed unexpectedly".into(),
            )),
        }
    }
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for TimedBackend {
    fn drop(&mut self) {
        // Closing the queue ends the worker after its current operation. Wait for it unless
        // that operation is overdue (the caller must not hang on a card that never answers).
        self.jobs = None;
        let overdue = lock(&self.progress).overdue;
        if let Some(worker) = self.worker.take() {
            if !overdue {
                let _ = worker.join();
            }
        }
    }
}

impl Backend for TimedBackend {
    fn name(&self) -> &'static str {
        self.name
    }

    fn readers(&mut self) -> Result<Vec<ReaderStatus>, CardError> {
        self.run(|token| token.readers())
    }

    fn presence(&mut self) -> Result<Vec<(String, bool)>, CardError> {
        self.run(|token| token.presence())
    }

    fn certificates(&mut self, reader: Option<&str>) -> Result<Vec<CardCertificate>, CardError> {
        let reader = reader.map(str::to_owned);
        self.run(move |token| token.certificates(reader.as_deref()))
    }

    fn certificates_for(
        &mut self,
        reader: Option<&str>,
        purpose: Purpose,
    ) -> Result<Vec<CardCertificate>, CardError> {
        let reader = reader.map(str::to_owned);
        self.run(move |token| token.certificates_for(reader.as_deref(), purpose))
    }

    fn sign(
        &mut self,
        certificate: &CardCertificate,
        digest: &Digest,
        pin: &Pin,
    ) -> Result<Vec<u8>, CardError> {
        let (certificate, digest, pin) = (certificate.clone(), digest.clone(), pin.clone());
        self.run(move |token| token.sign(&certificate, &digest, &pin))
    }

    fn sign_input(
        &mut self,
        certificate: &CardCertificate,
        input: &SignatureInput,
        pin: Option<&Pin>,
    ) -> Result<Vec<u8>, CardError> {
        let (certificate, input, pin) = (certificate.clone(), input.clone(), pin.cloned());
        self.run(move |token| token.sign_input(&certificate, &input, pin.as_ref()))
    }

    fn insertion(&mut self, reader: &str) -> Result<Option<CardInsertion>, CardError> {
        let reader = reader.to_owned();
        self.run(move |token| token.insertion(&reader))
    }

    fn verify_pin(&mut self, reader: &str, pin: &Pin) -> Result<(), CardError> {
        let (reader, pin) = (reader.to_owned(), pin.clone());
        self.run(move |token| token.verify_pin(&reader, &pin))
    }

    fn forget(&mut self, reader: &str) -> Result<(), CardError> {
        let reader = reader.to_owned();
        self.run(move |token| token.forget(&reader))
    }

    fn apdu_count(&self) -> u64 {
        self.apdus.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Instant;

    use super::*;
    use crate::testing::{certificate, FakeBackend};
    use crate::Slot;
    use crate::{ExtendedKeyUsage, KeyUsage};

    /// A token whose listing takes `stall` the first time it is asked.
    struct Stalling {
        inner: FakeBackend,
        stall: Option<Duration>,
    }

    impl Backend for Stalling {
        fn name(&self) -> &'static str {
            "stalling"
        }
        fn readers(&mut self) -> Result<Vec<ReaderStatus>, CardError> {
            self.inner.readers()
        }
        fn certificates(
            &mut self,
            reader: Option<&str>,
        ) -> Result<Vec<CardCertificate>, CardError> {
            if let Some(stall) = self.stall.take() {
                std::thread::sleep(stall);
            }
            self.inner.certificates(reader)
        }
        fn sign_input(
            &mut self,
            certificate: &CardCertificate,
            input: &SignatureInput,
            pin: Option<&Pin>,
        ) -> Result<Vec<u8>, CardError> {
            if input == &SignatureInput::EcHash(vec![0xEE; 32]) {
                panic!("a card layer bug");
            }
            self.inner.sign_input(certificate, input, pin)
        }
        fn verify_pin(&mut self, reader: &str, pin: &Pin) -> Result<(), CardError> {
            self.inner.verify_pin(reader, pin)
        }
    }

    fn stalling(stall: Duration) -> TimedBackend {
        stalling_with_deadline(stall, Duration::from_millis(200))
    }

    fn stalling_with_deadline(stall: Duration, deadline: Duration) -> TimedBackend {
        let card = certificate(
            1,
            Slot::PivAuthentication,
            crate::KeyAlgorithm::EcP256,
            &[KeyUsage::DigitalSignature],
            &[ExtendedKeyUsage::ClientAuth],
        );
        let token = Stalling {
            inner: FakeBackend::new(vec![card]),
            stall: Some(stall),
        };
        TimedBackend::new(Box::new(token), deadline)
    }

    #[test]
    fn a_stalled_operation_times_out_later_ones_fail_fast_until_it_ends() {
        let mut token = stalling(Duration::from_millis(900));
        let started = Instant::now();
        assert_eq!(token.certificates(None).unwrap_err(), CardError::Timeout);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_millis(800), "{waited:?}");

        // Still stuck: refused at once, not queued behind it for another timeout.
        let started = Instant::now();
        assert_eq!(token.certificates(None).unwrap_err(), CardError::Timeout);
        assert!(started.elapsed() < Duration::from_millis(50));

        std::thread::sleep(Duration::from_millis(900));
        assert_eq!(token.certificates(None).unwrap().len(), 1, "works again");
    }

    #[test]
    fn a_panicking_operation_is_an_error_and_the_worker_carries_on() {
        // A generous deadline: printing the panic (with RUST_BACKTRACE, as scripts/test runs)
        // can take longer than the short one the timeout tests use.
        let mut token = stalling_with_deadline(Duration::ZERO, Duration::from_secs(30));
        let card = token.certificates(None).unwrap().remove(0);
        let input = SignatureInput::EcHash(vec![0xEE; 32]);
        assert!(matches!(
            token.sign_input(&card, &input, None),
            Err(CardError::Pcsc(_))
        ));
        assert_eq!(token.certificates(None).unwrap().len(), 1);
    }

    #[test]
    fn a_token_that_never_returns_is_abandoned_and_a_fresh_one_serves_at_once() {
        // The first token hangs for good (a module deadlocked in C_Sign); its rebuild does not.
        let card = certificate(
            1,
            Slot::PivAuthentication,
            crate::KeyAlgorithm::EcP256,
            &[KeyUsage::DigitalSignature],
            &[ExtendedKeyUsage::ClientAuth],
        );
        let hung = Stalling {
            inner: FakeBackend::new(vec![card.clone()]),
            stall: Some(Duration::from_secs(3600)),
        };
        let builds = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&builds);
        let rebuild: Rebuild = Box::new(move |n| {
            counted.store(u64::from(n), Ordering::Relaxed);
            Ok(Box::new(FakeBackend::new(vec![card.clone()])) as Box<dyn Backend>)
        });
        let mut token =
            TimedBackend::reloading(Box::new(hung), rebuild, Duration::from_millis(200));
        assert_eq!(token.certificates(None).unwrap_err(), CardError::Timeout);
        assert_eq!(builds.load(Ordering::Relaxed), 1, "built again once");
        // Not "still stuck": the fresh token answers, at once.
        let started = Instant::now();
        assert_eq!(token.certificates(None).unwrap().len(), 1);
        assert!(started.elapsed() < Duration::from_millis(100));
        // Dropping does not wait for the abandoned worker.
        let started = Instant::now();
        drop(token);
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn dropping_a_token_whose_card_hangs_does_not_wait_for_it() {
        let mut token = stalling(Duration::from_secs(5));
        assert_eq!(token.certificates(None).unwrap_err(), CardError::Timeout);
        let started = Instant::now();
        drop(token);
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
