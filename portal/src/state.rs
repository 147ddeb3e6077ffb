//! What every request shares: the database, the verifier and its challenges, the throttle,
//! the CSRF key and the password checks.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use cacbridge_verify::{NonceStore, Verifier};

use crate::{db, now, passwords, throttle};

/// How often expired sessions and quiet addresses are purged.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

pub struct AppState {
    pub db: db::Db,
    pub verifier: Verifier,
    pub nonces: NonceStore,
    /// This portal's origin as browsers see it: tokens must be bound to it.
    pub origin: String,
    /// The mutual-TLS CAC host's origin, when it runs (`--mtls-listen`): pages link to it.
    pub cac_host: Option<String>,
    pub addresses: throttle::AddressThrottle,
    rng: SystemRandom,
    /// Derives anonymous visitors' CSRF tokens.
    pub(crate) csrf_key: hmac::Key,
    /// Argon2 on the blocking pool, one a core, in reused memory: a flood of wrong passwords
    /// waits there instead of starving the server or its memory.
    pub(crate) password_checks: passwords::PasswordChecks,
}

impl AppState {
    pub fn new(db: db::Db, verifier: Verifier, origin: String) -> Self {
        let rng = SystemRandom::new();
        let csrf_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system RNG works");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            db,
            verifier,
            nonces: NonceStore::new(),
            origin,
            cac_host: None,
            addresses: throttle::AddressThrottle::default(),
            rng,
            csrf_key,
            password_checks: passwords::PasswordChecks::new(cores),
        }
    }

    pub(crate) fn random_token(&self) -> String {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).expect("the system RNG works");
        B64URL.encode(bytes)
    }

    /// Purge expired sessions and addresses quiet for an hour. Run every
    /// [`HOUSEKEEPING_INTERVAL`] by the server.
    pub fn housekeeping(&self) {
        let now = now();
        match self.db.purge_sessions(now) {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired sessions purged"),
            Err(err) => tracing::warn!(%err, "purging sessions failed"),
        }
        self.addresses.purge(now);
    }
}
