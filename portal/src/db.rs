//! The portal's SQLite database: accounts, sessions and CAC registrations. Migrations run on
//! start, tracked by `PRAGMA user_version`.

use std::path::Path;

use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use cacbridge_verify::Identity;

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
];

pub fn open(path: &Path) -> rusqlite::Result<Db> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    migrate(&mut conn)?;
    Ok(Db::new(conn))
}

/// A database in memory, migrated (tests).
pub fn in_memory() -> rusqlite::Result<Db> {
    let mut conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", true)?;
    migrate(&mut conn)?;
    Ok(Db::new(conn))
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

const USER_COLUMNS: &str = "id, username, password_hash, failed_logins, retry_at, locked_until, last_locked_at, failures_before_login";

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
}

const REGISTRATION_COLUMNS: &str =
    "id, user_id, fingerprint, edipi, common_name, subject, issuer, serial, not_after, registered_at, how";

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
    })
}

/// The portal's database behind its lock. Every method takes the lock for itself and
/// releases it before it returns: no caller holds a guard across another call, so the
/// guard-held-across-a-branch deadlock cannot be written.
pub struct Db(Mutex<Connection>);

impl Db {
    pub fn new(conn: Connection) -> Self {
        Db(Mutex::new(conn))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> rusqlite::Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
            params![username, password_hash, now],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn user_by_name(&self, username: &str) -> rusqlite::Result<Option<User>> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
            params![username],
            user_row,
        )
        .optional()
    }

    pub fn user_by_id(&self, id: i64) -> rusqlite::Result<Option<User>> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            params![id],
            user_row,
        )
        .optional()
    }

    /// A wrong password for `user`: the next try waits (exponential back-off), and the
    /// `lock_after`-th in a row locks the account for `lock_seconds`. Returns the account as it
    /// now is.
    pub fn password_failed(
        &self,
        user: &User,
        now: i64,
        retry_at: impl Fn(u32) -> i64,
        lock_after: u32,
        lock_seconds: i64,
    ) -> rusqlite::Result<User> {
        let conn = self.conn();
        let failures = user.failed_logins + 1;
        if failures >= lock_after {
            let until = now + lock_seconds;
            conn.execute(
                "UPDATE users SET failed_logins = 0, retry_at = ?2, locked_until = ?2, last_locked_at = ?3,
                     failures_since_login = failures_since_login + 1 WHERE id = ?1",
                params![user.id, until, now],
            )?;
        } else {
            conn.execute(
                "UPDATE users SET failed_logins = ?2, retry_at = ?3,
                     failures_since_login = failures_since_login + 1 WHERE id = ?1",
                params![user.id, failures, retry_at(failures)],
            )?;
        }
        drop(conn);
        Ok(self.user_by_id(user.id)?.unwrap_or_else(|| user.clone()))
    }

    /// The right password: the streak ends; the wrong passwords since the last login are kept
    /// for the owner to see in My Account.
    pub fn password_succeeded(&self, user: &User) -> rusqlite::Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE users SET failures_before_login = failures_since_login, failures_since_login = 0,
                 failed_logins = 0, retry_at = 0, locked_until = 0 WHERE id = ?1",
            params![user.id],
        )?;
        Ok(())
    }

    /// Sessions past their expiry.
    pub fn purge_sessions(&self, now: i64) -> rusqlite::Result<usize> {
        let conn = self.conn();
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])
    }

    pub fn session_count(&self) -> rusqlite::Result<i64> {
        let conn = self.conn();
        conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
    }

    pub fn session(&self, id_hash: &str, now: i64) -> rusqlite::Result<Option<SessionRow>> {
        let conn = self.conn();
        conn.query_row(
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
        .optional()
    }

    pub fn create_session(
        &self,
        session: &NewSession<'_>,
        now: i64,
        lifetime: i64,
    ) -> rusqlite::Result<()> {
        let conn = self.conn();
        conn.execute(
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

    pub fn delete_session(&self, id_hash: &str) -> rusqlite::Result<()> {
        let conn = self.conn();
        conn.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])?;
        Ok(())
    }

    pub fn registrations_of(&self, user_id: i64) -> rusqlite::Result<Vec<Registration>> {
        let conn = self.conn();
        let mut statement = conn.prepare(&format!(
            "SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE user_id = ?1 ORDER BY registered_at, id"
        ))?;
        let rows = statement.query_map(params![user_id], registration_row)?;
        rows.collect()
    }

    pub fn registration_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> rusqlite::Result<Option<Registration>> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE fingerprint = ?1"),
            params![fingerprint],
            registration_row,
        )
        .optional()
    }

    pub fn registration(&self, id: i64) -> rusqlite::Result<Option<Registration>> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE id = ?1"),
            params![id],
            registration_row,
        )
        .optional()
    }

    pub fn register(
        &self,
        user_id: i64,
        identity: &Identity,
        now: i64,
        how: &str,
    ) -> rusqlite::Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO registrations
                (user_id, fingerprint, edipi, common_name, subject, issuer, serial, not_after, registered_at, how)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                how
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }
}
