//! Server-side challenges: 32 random bytes (base64, 44 characters), each usable once, for five
//! minutes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

use crate::VerifyError;

pub const NONCE_LIFETIME: Duration = Duration::from_secs(5 * 60);

struct Issued {
    at: SystemTime,
    used: bool,
}

pub struct NonceStore {
    rng: SystemRandom,
    issued: Mutex<HashMap<String, Issued>>,
    lifetime: Duration,
}

impl Default for NonceStore {
    fn default() -> Self {
        Self::new()
    }
}

impl NonceStore {
    pub fn new() -> Self {
        Self::with_lifetime(NONCE_LIFETIME)
    }

    pub fn with_lifetime(lifetime: Duration) -> Self {
        Self {
            rng: SystemRandom::new(),
            issued: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    pub fn issue(&self, now: SystemTime) -> String {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).expect("the system RNG works");
        let nonce = BASE64.encode(bytes);
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        // Forget nonces long past their lifetime (kept a while to tell reuse from forgery).
        let keep = self.lifetime * 2;
        issued.retain(|_, entry| now.duration_since(entry.at).map_or(true, |age| age < keep));
        issued.insert(
            nonce.clone(),
            Issued {
                at: now,
                used: false,
            },
        );
        nonce
    }

    /// Use `nonce` once. Fails for a nonce never issued here, already used, or too old.
    pub fn consume(&self, nonce: &str, now: SystemTime) -> Result<(), VerifyError> {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        let entry = issued.get_mut(nonce).ok_or(VerifyError::NonceUnknown)?;
        if entry.used {
            return Err(VerifyError::NonceReused);
        }
        entry.used = true;
        let age = now.duration_since(entry.at).unwrap_or_default();
        if age > self.lifetime {
            return Err(VerifyError::NonceExpired);
        }
        Ok(())
    }

    /// Seconds since the epoch of a nonce's issue, for tests and diagnostics.
    pub fn issued_at(&self, nonce: &str) -> Option<u64> {
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued
            .get(nonce)
            .and_then(|e| e.at.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    }
}
