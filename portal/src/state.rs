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
    /// Issues and checks challenges with the key every instance shares; their use is
    /// recorded in the database.
    pub nonces: NonceStore,
    /// This portal's origin as browsers see it: tokens must be bound to it.
    pub origin: String,
    /// The mutual-TLS CAC host's origin, when it runs (`--mtls-listen`): pages link to it.
    pub cac_host: Option<String>,
    rng: SystemRandom,
    /// Derives anonymous visitors' CSRF tokens (shared by every instance).
    pub(crate) csrf_key: hmac::Key,
    /// Argon2 on the blocking pool, one a core, in reused memory: a flood of wrong passwords
    /// waits there instead of starving the server or its memory.
    pub(crate) password_checks: passwords::PasswordChecks,
}

impl AppState {
    /// The state of one instance: the keys that sign challenges and CSRF tokens come from the
    /// database (made by the first instance), so that a page served by one instance may be
    /// submitted to another.
    pub async fn open(db: db::Db, verifier: Verifier, origin: String) -> Result<Self, db::DbError> {
        let challenge_key = db.secret("challenge-key").await?;
        let csrf_key = db.secret("csrf-key").await?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            db,
            verifier,
            nonces: NonceStore::with_key(&challenge_key),
            origin,
            cac_host: None,
            rng: SystemRandom::new(),
            csrf_key: hmac::Key::new(hmac::HMAC_SHA256, &csrf_key),
            password_checks: passwords::PasswordChecks::new(cores),
        })
    }

    pub(crate) fn random_token(&self) -> String {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).expect("the system RNG works");
        B64URL.encode(bytes)
    }

    /// Run `verify` with the verifier on the blocking pool: a revocation check may wait on an
    /// OCSP responder or a CRL download, which must not hold an async worker. (Not
    /// block_in_place: with a bounded blocking pool, handing workers' cores to blocking
    /// threads can leave a core with no thread under load.)
    pub async fn verifying<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        verify: impl FnOnce(&Verifier, &str) -> T + Send + 'static,
    ) -> Result<T, crate::PortalError> {
        let state = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || verify(&state.verifier, &state.origin))
            .await
            .map_err(|err| crate::PortalError::Internal(format!("verification: {err}")))
    }

    /// Purge expired sessions and used challenges, and addresses quiet for an hour. Run
    /// every [`HOUSEKEEPING_INTERVAL`] by each instance (the deletes are idempotent).
    pub async fn housekeeping(&self) {
        match self.db.purge(now(), throttle::ADDRESS_MEMORY_SECONDS).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired sessions purged"),
            Err(err) => tracing::warn!(%err, "housekeeping failed"),
        }
    }
}
