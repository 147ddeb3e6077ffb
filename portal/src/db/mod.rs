//! Everything the portal's instances share, behind one interface with two implementations:
//! SQLite (one portal process, the embedded default) and PostgreSQL (several instances behind
//! a load balancer, `--database postgres://...`). Shared means accounts and their password
//! throttling, CAC registrations, sessions, the keys that sign challenges and CSRF tokens,
//! used challenges, and the per-address password throttle.
//!
//! Each method is one statement or one transaction: a portal killed at any moment leaves
//! either all of a change or none of it.

mod postgres;
mod sqlite;

use cacbridge_verify::Identity;

pub use sqlite::in_memory;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    /// Wrong passwords in a row.
    pub failed_logins: u32,
    /// No password is checked before this time (back-off or lock).
    pub retry_at: i64,
    pub locked_until: i64,
    pub last_locked_at: Option<i64>,
    /// Wrong passwords between the last two successful password logins.
    pub failures_before_login: u32,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: Option<i64>,
    pub csrf: String,
    pub pending_identity: Option<String>,
}

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub csrf: &'a str,
    pub user_id: Option<i64>,
    pub pending_identity: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub id: i64,
    pub user_id: i64,
    pub fingerprint: String,
    pub edipi: Option<String>,
    pub common_name: Option<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_after: String,
    pub registered_at: i64,
    pub how: String,
    /// The FASC-N's person identifier and the card's UUID, as the certificate's SAN gave them.
    pub fasc_n_person: Option<String>,
    pub card_uuid: Option<String>,
}

/// An account's columns, in [`User`]'s order, for both databases.
const USER_COLUMNS: &str = "id, username, password_hash, failed_logins, retry_at, locked_until, last_locked_at, failures_before_login";

/// A registration's columns, in [`Registration`]'s order, for both databases.
const REGISTRATION_COLUMNS: &str =
    "id, user_id, fingerprint, edipi, common_name, subject, issuer, serial, not_after, registered_at, how, fasc_n_person, card_uuid";

/// How an account's wrong password is counted (throttle.rs decides the numbers).
pub struct PasswordFailure<'a> {
    pub now: i64,
    /// When the next try may come after this many failures in a row.
    pub retry_at: &'a (dyn Fn(u32) -> i64 + Sync),
    pub lock_after: u32,
    pub lock_seconds: i64,
}

/// What a wrong password writes to its account: the streak (0 again when it locks), when the
/// next try may come, and the time of the lock, if this failure locks the account (then
/// `locked_until` is `retry_at`).
struct FailureRecord {
    failed_logins: u32,
    retry_at: i64,
    locked_at: Option<i64>,
}

impl PasswordFailure<'_> {
    fn record(&self, failed_logins: u32) -> FailureRecord {
        let failures = failed_logins + 1;
        if failures >= self.lock_after {
            FailureRecord {
                failed_logins: 0,
                retry_at: self.now + self.lock_seconds,
                locked_at: Some(self.now),
            }
        } else {
            FailureRecord {
                failed_logins: failures,
                retry_at: (self.retry_at)(failures),
                locked_at: None,
            }
        }
    }
}

/// Fault injection for the crash-safety test: stop this long inside the registration's
/// transaction, between its two writes (`CACBRIDGE_PORTAL_FAULT_REGISTRATION_PAUSE_MS`).
fn registration_pause() -> Option<std::time::Duration> {
    std::env::var("CACBRIDGE_PORTAL_FAULT_REGISTRATION_PAUSE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(std::time::Duration::from_millis)
}

pub enum Db {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// One line per method: the same call on whichever database this is.
macro_rules! each {
    ($self:ident, $db:ident => $call:expr) => {
        match $self {
            Db::Sqlite($db) => $call,
            Db::Postgres($db) => $call.await,
        }
    };
}

impl Db {
    /// `postgres://...` (or `postgresql://`) is PostgreSQL; anything else a SQLite file.
    /// Migrations run first, once, even when several instances start together.
    pub async fn open(location: &str) -> Result<Db> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Ok(Db::Postgres(postgres::Postgres::open(location).await?))
        } else {
            Ok(Db::Sqlite(sqlite::Sqlite::open(std::path::Path::new(
                location,
            ))?))
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    pub async fn create_user(&self, username: &str, password_hash: &str, now: i64) -> Result<i64> {
        each!(self, db => db.create_user(username, password_hash, now))
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        each!(self, db => db.user_by_name(username))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        each!(self, db => db.user_by_id(id))
    }

    /// Take `user`'s one password-attempt slot before its password is checked, so that one
    /// guess at a time is in flight for an account, at every instance: `None` while another
    /// guess is being checked or the account must wait; else the wrong passwords in a row so
    /// far, exact since no other guess can move them until this one is written. A slot left by
    /// a crashed instance frees itself at `until`.
    pub async fn claim_password_attempt(
        &self,
        user_id: i64,
        now: i64,
        claim: i64,
        until: i64,
    ) -> Result<Option<u32>> {
        each!(self, db => db.claim_password_attempt(user_id, now, claim, until))
    }

    /// Give the slot back unused (the address must wait).
    pub async fn release_password_attempt(&self, user_id: i64, claim: i64) -> Result<()> {
        each!(self, db => db.release_password_attempt(user_id, claim))
    }

    /// A wrong password for `user`, whose slot `claim` holds and who had `failed_logins`
    /// wrong passwords in a row when it was claimed: the next try waits (exponential
    /// back-off), and the `lock_after`-th in a row locks the account for `lock_seconds`. A
    /// stored wait is never shortened. Frees the slot; returns the account as it now is.
    pub async fn password_failed(
        &self,
        user: &User,
        failed_logins: u32,
        claim: i64,
        failure: &PasswordFailure<'_>,
    ) -> Result<User> {
        let record = failure.record(failed_logins);
        each!(self, db => db.password_failed(user, &record, claim))
    }

    /// The right password: the streak ends; the wrong passwords since the last login are kept
    /// for the owner to see in My Account.
    pub async fn password_succeeded(&self, user: &User) -> Result<()> {
        each!(self, db => db.password_succeeded(user))
    }

    /// Forget what has expired: sessions, used challenges, addresses quiet for
    /// `address_memory` seconds. Returns the sessions purged.
    pub async fn purge(&self, now: i64, address_memory: i64) -> Result<u64> {
        each!(self, db => db.purge(now, address_memory))
    }

    pub async fn session_count(&self) -> Result<i64> {
        each!(self, db => db.session_count())
    }

    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        each!(self, db => db.session(id_hash, now))
    }

    pub async fn create_session(
        &self,
        session: &NewSession<'_>,
        now: i64,
        lifetime: i64,
    ) -> Result<()> {
        each!(self, db => db.create_session(session, now, lifetime))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        each!(self, db => db.delete_session(id_hash))
    }

    pub async fn registrations_of(&self, user_id: i64) -> Result<Vec<Registration>> {
        each!(self, db => db.registrations_of(user_id))
    }

    pub async fn registration_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Registration>> {
        each!(self, db => db.registration_by_fingerprint(fingerprint))
    }

    pub async fn registration(&self, id: i64) -> Result<Option<Registration>> {
        each!(self, db => db.registration(id))
    }

    /// Register `identity` to `user_id` and record it in the account's history, in one
    /// transaction.
    pub async fn register(
        &self,
        user_id: i64,
        identity: &Identity,
        now: i64,
        how: &str,
    ) -> Result<i64> {
        each!(self, db => db.register(user_id, identity, now, how))
    }

    /// The shared secret called `name` (32 random bytes), made by the first instance to ask.
    pub async fn secret(&self, name: &str) -> Result<Vec<u8>> {
        each!(self, db => db.secret(name))
    }

    /// Record a challenge's use: true the first time, false ever after (until it expires and
    /// is purged; an expired one is refused before it gets here).
    pub async fn use_challenge(&self, id: &[u8], expires: i64) -> Result<bool> {
        each!(self, db => db.use_challenge(id, expires))
    }

    /// Seconds `address` must still wait before another password try, if any.
    pub async fn address_retry_after(&self, address: &str, now: i64) -> Result<Option<i64>> {
        each!(self, db => db.address_retry_after(address, now))
    }

    /// A password attempt from `address`, counted before it is checked (a right password
    /// then clears the count): false, counting nothing, while the address must wait; else its
    /// count goes up and its next try waits `backoff(count)` seconds, never less than a wait
    /// already stored. Atomic at every instance, so a burst cannot all pass one check.
    pub async fn address_attempt(
        &self,
        address: &str,
        now: i64,
        backoff: &(dyn Fn(u32) -> i64 + Sync),
    ) -> Result<bool> {
        each!(self, db => db.address_attempt(address, now, backoff))
    }

    pub async fn address_succeeded(&self, address: &str) -> Result<()> {
        each!(self, db => db.address_succeeded(address))
    }

    pub async fn addresses_tracked(&self) -> Result<i64> {
        each!(self, db => db.addresses_tracked())
    }
}

/// 32 bytes from the system RNG, for a shared secret.
fn fresh_secret() -> Vec<u8> {
    use ring::rand::SecureRandom as _;
    let mut bytes = vec![0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system RNG works");
    bytes
}
