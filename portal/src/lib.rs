//! The CAC Bridge reference portal: accounts with passwords, and CAC registration and login
//! through CAC Bridge tokens, as the portal guide describes (log in, My Account ->
//! CAC/Certificate Registration, Register, confirm with the password, print the confirmation;
//! or log in with the CAC, which registers an unregistered card after one password login).

pub mod cli;
pub mod db;
mod error;
pub mod mtls;
pub mod pages;
pub mod passwords;
mod routes;
mod session;
mod state;
pub mod throttle;
pub mod tls;

use std::time::{SystemTime, UNIX_EPOCH};

pub use error::PortalError;
pub use passwords::hash_password;
pub use routes::{mtls_router, router};
pub use session::{SESSION_COOKIE, VISITOR_COOKIE};
pub use state::{AppState, HOUSEKEEPING_INTERVAL};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Create an account (the `create-account` command and the demo flag).
pub async fn create_account(db: &db::Db, username: &str, password: &str) -> Result<i64, String> {
    if username.trim().is_empty() || username.len() > 64 {
        return Err("a username is 1 to 64 characters".into());
    }
    if password.len() < 8 {
        return Err("a password is at least 8 characters".into());
    }
    db.create_user(username, &hash_password(password), now())
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn state() -> AppState {
        let verifier = cacbridge_verify::Verifier::new(
            cacbridge_verify::TrustStore::dod(),
            cacbridge_verify::VerifyPolicy::default(),
        );
        AppState::open(
            db::in_memory().unwrap(),
            verifier,
            "https://portal.example.mil".into(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn housekeeping_purges_expired_sessions_only() {
        let state = state().await;
        let now = now();
        for (id, lifetime) in [("expired", -1), ("live", 3600)] {
            state
                .db
                .create_session(
                    &db::NewSession {
                        id_hash: id,
                        csrf: "csrf",
                        user_id: None,
                        pending_identity: None,
                    },
                    now,
                    lifetime,
                )
                .await
                .unwrap();
        }
        assert_eq!(state.db.session_count().await.unwrap(), 2);
        state.housekeeping().await;
        assert_eq!(state.db.session_count().await.unwrap(), 1);
        assert!(state.db.session("live", now).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_address_waits_after_its_free_failures_and_is_forgotten_later() {
        let db = db::in_memory().unwrap();
        let address = "192.0.2.7";
        let backoff = |failures| throttle::backoff(failures, throttle::ADDRESS_FREE_FAILURES);
        for _ in 0..throttle::ADDRESS_FREE_FAILURES - 1 {
            assert!(db.address_attempt(address, 1000, &backoff).await.unwrap());
            assert_eq!(db.address_retry_after(address, 1000).await.unwrap(), None);
        }
        assert!(db.address_attempt(address, 1000, &backoff).await.unwrap());
        assert_eq!(
            db.address_retry_after(address, 1000).await.unwrap(),
            Some(2)
        );
        // While it waits, an attempt is refused and counts nothing.
        assert!(!db.address_attempt(address, 1001, &backoff).await.unwrap());
        assert_eq!(
            db.address_retry_after(address, 1001).await.unwrap(),
            Some(1)
        );
        assert!(db.address_attempt(address, 1002, &backoff).await.unwrap());
        assert_eq!(
            db.address_retry_after(address, 1002).await.unwrap(),
            Some(4)
        );
        db.purge(
            1002 + throttle::ADDRESS_MEMORY_SECONDS,
            throttle::ADDRESS_MEMORY_SECONDS,
        )
        .await
        .unwrap();
        assert_eq!(db.addresses_tracked().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_challenge_is_used_once_and_secrets_are_made_once() {
        let db = db::in_memory().unwrap();
        assert!(db.use_challenge(b"0123456789abcdef", 2000).await.unwrap());
        assert!(!db.use_challenge(b"0123456789abcdef", 2000).await.unwrap());
        db.purge(2001, 3600).await.unwrap();
        assert!(
            db.use_challenge(b"0123456789abcdef", 2000).await.unwrap(),
            "purged once expired"
        );
        let key = db.secret("challenge-key").await.unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(db.secret("challenge-key").await.unwrap(), key);
        assert_ne!(db.secret("csrf-key").await.unwrap(), key);
    }

    /// A registration keeps the FASC-N's person identifier and the card UUID of a certificate
    /// in the real DoD layout, and the confirmation shows them.
    #[tokio::test]
    async fn the_confirmation_shows_the_fasc_n_and_card_uuid_of_a_dod_layout_certificate() {
        let db = db::in_memory().unwrap();
        let info =
            cacbridge_cert::inspect(include_bytes!("../../cert/testdata/dod-piv-layout.der"))
                .unwrap();
        let identity = cacbridge_verify::Identity::of(info, Default::default());
        let user = db.create_user("demo", "hash", 1000).await.unwrap();
        let id = db
            .register(user, &identity, 1000, "registration")
            .await
            .unwrap();
        let registration = db.registration(id).await.unwrap().unwrap();
        let page = pages::confirmation(&registration, "demo");
        assert!(
            page.contains(r#"<dd id="confirmation-fascn">1234567890</dd>"#),
            "{page}"
        );
        assert!(
            page.contains(
                r#"<dd id="confirmation-uuid">4f2a9c1e-7b3d-4e8a-9c2f-1d5e6a7b8c9d</dd>"#
            ),
            "{page}"
        );
    }
}
