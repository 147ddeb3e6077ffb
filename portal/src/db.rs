//! The portal's SQLite database: accounts, sessions and CAC registrations. Migrations run on
//! start, tracked by `PRAGMA user_version`.

use std::path::Path;

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
];

pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    migrate(&mut conn)?;
    Ok(conn)
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
}

pub fn create_user(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
        params![username, password_hash, now],
    )?;
    Ok(conn.last_insert_rowid())
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
    })
}

pub fn user_by_name(conn: &Connection, username: &str) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        "SELECT id, username, password_hash FROM users WHERE username = ?1",
        params![username],
        user_row,
    )
    .optional()
}

pub fn user_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        "SELECT id, username, password_hash FROM users WHERE id = ?1",
        params![id],
        user_row,
    )
    .optional()
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: Option<i64>,
    pub csrf: String,
    pub challenge: Option<String>,
    pub pending_identity: Option<String>,
}

pub fn session(conn: &Connection, id_hash: &str, now: i64) -> rusqlite::Result<Option<SessionRow>> {
    conn.query_row(
        "SELECT user_id, csrf, challenge, pending_identity FROM sessions
         WHERE id_hash = ?1 AND expires_at > ?2",
        params![id_hash, now],
        |r| {
            Ok(SessionRow {
                user_id: r.get(0)?,
                csrf: r.get(1)?,
                challenge: r.get(2)?,
                pending_identity: r.get(3)?,
            })
        },
    )
    .optional()
}

pub fn create_session(
    conn: &Connection,
    id_hash: &str,
    csrf: &str,
    user_id: Option<i64>,
    now: i64,
    lifetime: i64,
) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?;
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id_hash, user_id, csrf, now, now + lifetime],
    )?;
    Ok(())
}

pub fn delete_session(conn: &Connection, id_hash: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])?;
    Ok(())
}

pub fn set_challenge(
    conn: &Connection,
    id_hash: &str,
    challenge: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sessions SET challenge = ?2 WHERE id_hash = ?1",
        params![id_hash, challenge],
    )?;
    Ok(())
}

pub fn set_pending_identity(
    conn: &Connection,
    id_hash: &str,
    identity: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sessions SET pending_identity = ?2 WHERE id_hash = ?1",
        params![id_hash, identity],
    )?;
    Ok(())
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

pub fn registrations_of(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<Registration>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE user_id = ?1 ORDER BY registered_at, id"
    ))?;
    let rows = statement.query_map(params![user_id], registration_row)?;
    rows.collect()
}

pub fn registration_by_fingerprint(
    conn: &Connection,
    fingerprint: &str,
) -> rusqlite::Result<Option<Registration>> {
    conn.query_row(
        &format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE fingerprint = ?1"),
        params![fingerprint],
        registration_row,
    )
    .optional()
}

pub fn registration(conn: &Connection, id: i64) -> rusqlite::Result<Option<Registration>> {
    conn.query_row(
        &format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE id = ?1"),
        params![id],
        registration_row,
    )
    .optional()
}

pub fn register(
    conn: &Connection,
    user_id: i64,
    identity: &Identity,
    now: i64,
    how: &str,
) -> rusqlite::Result<i64> {
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
