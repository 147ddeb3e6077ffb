//! The CAC Bridge reference portal: accounts with passwords, and CAC registration and login
//! through CAC Bridge tokens, as the portal guide describes (log in, My Account ->
//! CAC/Certificate Registration, Register, confirm with the password, print the confirmation;
//! or log in with the CAC, which registers an unregistered card after one password login).

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
pub fn create_account(db: &db::Db, username: &str, password: &str) -> Result<i64, String> {
    if username.trim().is_empty() || username.len() > 64 {
        return Err("a username is 1 to 64 characters".into());
    }
    if password.len() < 8 {
        return Err("a password is at least 8 characters".into());
    }
    db.create_user(username, &hash_password(password), now())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state() -> AppState {
        let conn = db::in_memory().unwrap();
        let verifier = cacbridge_verify::Verifier::new(
            cacbridge_verify::TrustStore::dod(),
            cacbridge_verify::VerifyPolicy::default(),
        );
        AppState::new(conn, verifier, "https://portal.example.mil".into())
    }

    #[test]
    fn housekeeping_purges_expired_sessions_only() {
        let state = state();
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
                .unwrap();
        }
        assert_eq!(state.db.session_count().unwrap(), 2);
        state.housekeeping();
        assert_eq!(state.db.session_count().unwrap(), 1);
        assert!(state.db.session("live", now).unwrap().is_some());
    }
}
