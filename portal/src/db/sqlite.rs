//! The embedded database: one SQLite file, one portal process. Migrations are tracked by
//! `PRAGMA user_version`. Calls are short and local, made on the caller's thread behind one
//! lock.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use cacbridge_verify::Identity;

use super::{
    FailureRecord, Registration, Result, SessionRow, User, REGISTRATION_COLUMNS, USER_COLUMNS,
};

const MIGRATIONS: &[&str] = &[
    // 1: accounts, sessions, registrations
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        challenge TEXT,
        pending_identity TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
     );
     CREATE TABLE registrations (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        fingerprint TEXT NOT NULL UNIQUE,
        edipi TEXT,
        common_name TEXT,
        subject TEXT NOT NULL,
        issuer TEXT NOT NULL,
        serial TEXT NOT NULL,
        not_after TEXT NOT NULL,
        registered_at INTEGER NOT NULL,
        how TEXT NOT NULL
     );
     CREATE INDEX registrations_user ON registrations(user_id);
     CREATE INDEX registrations_edipi ON registrations(edipi);",
    // 2: password throttling per account; sessions expire by index, challenges are stateless
    "ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE users ADD COLUMN retry_at INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE users ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE users ADD COLUMN last_locked_at INTEGER;
     ALTER TABLE users ADD COLUMN failures_since_login INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE users ADD COLUMN failures_before_login INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX sessions_expiry ON sessions(expires_at);",
    // 3: state shared by instances: keys, used challenges, the address throttle; the
    // accounts' history
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE used_challenges (id BLOB PRIMARY KEY, expires_at INTEGER NOT NULL);
     CREATE INDEX used_challenges_expiry ON used_challenges(expires_at);
     CREATE TABLE address_failures (
        address TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        retry_at INTEGER NOT NULL,
        last_failure INTEGER NOT NULL
     );
     CREATE TABLE account_events (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        what TEXT NOT NULL,
        registration_id INTEGER REFERENCES registrations(id) ON DELETE SET NULL
     );",
    // 4: one password guess per account in flight (its claim, until when)
    "ALTER TABLE users ADD COLUMN attempt_until INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE users ADD COLUMN attempt_claim INTEGER NOT NULL DEFAULT 0;",
    // 5: what real CAC certificates carry in their SAN besides the EDIPI
    "ALTER TABLE registrations ADD COLUMN fasc_n_person TEXT;
     ALTER TABLE registrations ADD COLUMN card_uuid TEXT;",
];

/// A database in memory, migrated (tests).
pub fn in_memory() -> Result<super::Db> {
    let mut conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", true)?;
    migrate(&mut conn)?;
    Ok(super::Db::Sqlite(Sqlite(Mutex::new(conn))))
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        failed_logins: r.get(3)?,
        retry_at: r.get(4)?,
        locked_until: r.get(5)?,
        last_locked_at: r.get(6)?,
        failures_before_login: r.get(7)?,
    })
}

fn registration_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Registration> {
    Ok(Registration {
        id: r.get(0)?,
        user_id: r.get(1)?,
        fingerprint: r.get(2)?,
        edipi: r.get(3)?,
        common_name: r.get(4)?,
        subject: r.get(5)?,
        issuer: r.get(6)?,
        serial: r.get(7)?,
        not_after: r.get(8)?,
        registered_at: r.get(9)?,
        how: r.get(10)?,
        fasc_n_person: r.get(11)?,
        card_uuid: r.get(12)?,
    })
}

/// The connection behind its lock. Every method takes the lock for itself and releases it
/// before it returns: no caller holds a guard across another call.
pub struct Sqlite(Mutex<Connection>);

impl Sqlite {
    pub fn open(path: &Path) -> Result<Sqlite> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Another process (a second portal by mistake, the tests' reader) may hold the lock.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Sqlite(Mutex::new(conn)))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create_user(&self, username: &str, password_hash: &str, now: i64) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
            params![username, password_hash, now],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                params![username],
                user_row,
            )
            .optional()?)
    }

    pub fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                params![id],
                user_row,
            )
            .optional()?)
    }

    pub fn claim_password_attempt(
        &self,
        user_id: i64,
        now: i64,
        claim: i64,
        until: i64,
    ) -> Result<Option<u32>> {
        Ok(self
            .conn()
            .query_row(
                "UPDATE users SET attempt_until = ?4, attempt_claim = ?3
                 WHERE id = ?1 AND attempt_until <= ?2 AND retry_at <= ?2
                 RETURNING failed_logins",
                params![user_id, now, claim, until],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn release_password_attempt(&self, user_id: i64, claim: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE users SET attempt_until = 0 WHERE id = ?1 AND attempt_claim = ?2",
            params![user_id, claim],
        )?;
        Ok(())
    }

    pub(super) fn password_failed(
        &self,
        user: &User,
        record: &FailureRecord,
        claim: i64,
    ) -> Result<User> {
        self.conn().execute(
            "UPDATE users SET failed_logins = ?2, retry_at = max(retry_at, ?3),
                 locked_until = CASE WHEN ?4 IS NULL THEN locked_until ELSE max(locked_until, ?3) END,
                 last_locked_at = COALESCE(?4, last_locked_at),
                 failures_since_login = failures_since_login + 1,
                 attempt_until = CASE WHEN attempt_claim = ?5 THEN 0 ELSE attempt_until END
             WHERE id = ?1",
            params![
                user.id,
                record.failed_logins,
                record.retry_at,
                record.locked_at,
                claim
            ],
        )?;
        Ok(self.user_by_id(user.id)?.unwrap_or_else(|| user.clone()))
    }

    pub fn password_succeeded(&self, user: &User) -> Result<()> {
        self.conn().execute(
            "UPDATE users SET failures_before_login = failures_since_login, failures_since_login = 0,
                 failed_logins = 0, retry_at = 0, locked_until = 0, attempt_until = 0 WHERE id = ?1",
            params![user.id],
        )?;
        Ok(())
    }

    pub fn purge(&self, now: i64, address_memory: i64) -> Result<u64> {
        let conn = self.conn();
        let sessions = conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?;
        conn.execute(
            "DELETE FROM used_challenges WHERE expires_at < ?1",
            params![now],
        )?;
        conn.execute(
            "DELETE FROM address_failures WHERE last_failure <= ?1",
            params![now - address_memory],
        )?;
        Ok(sessions as u64)
    }

    pub fn session_count(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?)
    }

    pub fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT user_id, csrf, pending_identity FROM sessions
                 WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash, now],
                |r| {
                    Ok(SessionRow {
                        user_id: r.get(0)?,
                        csrf: r.get(1)?,
                        pending_identity: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn create_session(
        &self,
        session: &super::NewSession<'_>,
        now: i64,
        lifetime: i64,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO sessions (id_hash, user_id, csrf, pending_identity, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                session.id_hash,
                session.user_id,
                session.csrf,
                session.pending_identity,
                now,
                now + lifetime
            ],
        )?;
        Ok(())
    }

    pub fn delete_session(&self, id_hash: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])?;
        Ok(())
    }

    pub fn registrations_of(&self, user_id: i64) -> Result<Vec<Registration>> {
        let conn = self.conn();
        let mut statement = conn.prepare(&format!(
            "SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE user_id = ?1 ORDER BY registered_at, id"
        ))?;
        let rows = statement.query_map(params![user_id], registration_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn registration_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Registration>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE fingerprint = ?1"),
                params![fingerprint],
                registration_row,
            )
            .optional()?)
    }

    pub fn registration(&self, id: i64) -> Result<Option<Registration>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE id = ?1"),
                params![id],
                registration_row,
            )
            .optional()?)
    }

    pub fn register(&self, user_id: i64, identity: &Identity, now: i64, how: &str) -> Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO registrations
                (user_id, fingerprint, edipi, common_name, subject, issuer, serial, not_after, registered_at, how, fasc_n_person, card_uuid)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                user_id,
                identity.fingerprint_sha256,
                identity.edipi,
                identity.common_name,
                identity.subject,
                identity.issuer,
                identity.serial_number,
                identity.not_after,
                now,
                how,
                identity.fasc_n.as_ref().map(|f| &f.person),
                identity.card_uuid
            ],
        )?;
        let id = tx.last_insert_rowid();
        if let Some(pause) = super::registration_pause() {
            std::thread::sleep(pause);
        }
        tx.execute(
            "INSERT INTO account_events (user_id, at, what, registration_id) VALUES (?1, ?2, ?3, ?4)",
            params![user_id, now, format!("CAC registered ({how})"), id],
        )?;
        tx.commit()?;
        Ok(id)
    }

    pub fn secret(&self, name: &str) -> Result<Vec<u8>> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, super::fresh_secret()],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM secrets WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?)
    }

    pub fn use_challenge(&self, id: &[u8], expires: i64) -> Result<bool> {
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO used_challenges (id, expires_at) VALUES (?1, ?2)",
            params![id, expires],
        )?;
        Ok(inserted == 1)
    }

    pub fn address_retry_after(&self, address: &str, now: i64) -> Result<Option<i64>> {
        let retry_at: Option<i64> = self
            .conn()
            .query_row(
                "SELECT retry_at FROM address_failures WHERE address = ?1",
                params![address],
                |r| r.get(0),
            )
            .optional()?;
        Ok(retry_at.map(|at| at - now).filter(|wait| *wait > 0))
    }

    pub fn address_attempt(
        &self,
        address: &str,
        now: i64,
        backoff: &(dyn Fn(u32) -> i64 + Sync),
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let failures: Option<u32> = tx
            .query_row(
                "INSERT INTO address_failures (address, failures, retry_at, last_failure) VALUES (?1, 1, 0, ?2)
                 ON CONFLICT (address) DO UPDATE SET failures = failures + 1, last_failure = excluded.last_failure
                     WHERE address_failures.retry_at <= ?2
                 RETURNING failures",
                params![address, now],
                |r| r.get(0),
            )
            .optional()?;
        let Some(failures) = failures else {
            return Ok(false);
        };
        tx.execute(
            "UPDATE address_failures SET retry_at = max(retry_at, ?2) WHERE address = ?1",
            params![address, now + backoff(failures)],
        )?;
        tx.commit()?;
        Ok(true)
    }

    pub fn address_succeeded(&self, address: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM address_failures WHERE address = ?1",
            params![address],
        )?;
        Ok(())
    }

    pub fn addresses_tracked(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM address_failures", [], |r| r.get(0))?)
    }
}
