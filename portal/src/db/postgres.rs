//! PostgreSQL, for several portal instances on one database: a pool of connections
//! (deadpool-postgres over tokio-postgres), migrations applied once under an advisory lock
//! however many instances start together.

use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row};

use cacbridge_verify::Identity;

use super::{
    DbError, FailureRecord, Registration, Result, SessionRow, User, REGISTRATION_COLUMNS,
    USER_COLUMNS,
};

/// Each entry is one migration, applied in its own transaction. PostgreSQL's DDL is
/// transactional: a migration is all there or not at all.
const MIGRATIONS: &[&str] = &[
    // 1: the whole schema of SQLite's migrations 1 to 3
    "CREATE TABLE users (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        retry_at BIGINT NOT NULL DEFAULT 0,
        locked_until BIGINT NOT NULL DEFAULT 0,
        last_locked_at BIGINT,
        failures_since_login INTEGER NOT NULL DEFAULT 0,
        failures_before_login INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        pending_identity TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
     );
     CREATE INDEX sessions_expiry ON sessions(expires_at);
     CREATE TABLE registrations (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        fingerprint TEXT NOT NULL UNIQUE,
        edipi TEXT,
        common_name TEXT,
        subject TEXT NOT NULL,
        issuer TEXT NOT NULL,
        serial TEXT NOT NULL,
        not_after TEXT NOT NULL,
        registered_at BIGINT NOT NULL,
        how TEXT NOT NULL
     );
     CREATE INDEX registrations_user ON registrations(user_id);
     CREATE INDEX registrations_edipi ON registrations(edipi);
     CREATE TABLE secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
     CREATE TABLE used_challenges (id BYTEA PRIMARY KEY, expires_at BIGINT NOT NULL);
     CREATE INDEX used_challenges_expiry ON used_challenges(expires_at);
     CREATE TABLE address_failures (
        address TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        retry_at BIGINT NOT NULL,
        last_failure BIGINT NOT NULL
     );
     CREATE TABLE account_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        at BIGINT NOT NULL,
        what TEXT NOT NULL,
        registration_id BIGINT REFERENCES registrations(id) ON DELETE SET NULL
     );",
    // 2: one password guess per account in flight (SQLite's migration 4)
    "ALTER TABLE users ADD COLUMN attempt_until BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE users ADD COLUMN attempt_claim BIGINT NOT NULL DEFAULT 0;",
    // 3: what real CAC certificates carry in their SAN besides the EDIPI (SQLite's 5)
    "ALTER TABLE registrations ADD COLUMN fasc_n_person TEXT;
     ALTER TABLE registrations ADD COLUMN card_uuid TEXT;",
];

/// The advisory lock instances take to migrate one at a time ("CACB").
const MIGRATION_LOCK: i64 = 0x4341_4342;

fn user_row(r: &Row) -> User {
    User {
        id: r.get(0),
        username: r.get(1),
        password_hash: r.get(2),
        failed_logins: r.get::<_, i32>(3).max(0) as u32,
        retry_at: r.get(4),
        locked_until: r.get(5),
        last_locked_at: r.get(6),
        failures_before_login: r.get::<_, i32>(7).max(0) as u32,
    }
}

fn registration_row(r: &Row) -> Registration {
    Registration {
        id: r.get(0),
        user_id: r.get(1),
        fingerprint: r.get(2),
        edipi: r.get(3),
        common_name: r.get(4),
        subject: r.get(5),
        issuer: r.get(6),
        serial: r.get(7),
        not_after: r.get(8),
        registered_at: r.get(9),
        how: r.get(10),
        fasc_n_person: r.get(11),
        card_uuid: r.get(12),
    }
}

fn pool_error(err: impl std::fmt::Display) -> DbError {
    DbError::Pool(err.to_string())
}

pub struct Postgres {
    pool: Pool,
}

impl Postgres {
    pub async fn open(url: &str) -> Result<Postgres> {
        let mut config = deadpool_postgres::Config::new();
        config.url = Some(url.to_owned());
        config.manager = Some(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(pool_error)?;
        let db = Postgres { pool };
        db.migrate().await?;
        Ok(db)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let applied: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&(i as i32 + 1), &crate::now()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_user(&self, username: &str, password_hash: &str, now: i64) -> Result<i64> {
        let row = self
            .client()
            .await?
            .query_one(
                "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
                &[&username, &password_hash, &now],
            )
            .await?;
        Ok(row.get(0))
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
            ))
            .await?;
        Ok(client
            .query_opt(&statement, &[&username])
            .await?
            .map(|r| user_row(&r)))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .await?;
        Ok(client
            .query_opt(&statement, &[&id])
            .await?
            .map(|r| user_row(&r)))
    }

    pub async fn claim_password_attempt(
        &self,
        user_id: i64,
        now: i64,
        claim: i64,
        until: i64,
    ) -> Result<Option<u32>> {
        // One statement: the row lock makes a second claim wait, then see this one's
        // attempt_until and claim nothing.
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE users SET attempt_until = $4, attempt_claim = $3
                 WHERE id = $1 AND attempt_until <= $2 AND retry_at <= $2
                 RETURNING failed_logins",
                &[&user_id, &now, &claim, &until],
            )
            .await?;
        Ok(row.map(|r| r.get::<_, i32>(0).max(0) as u32))
    }

    pub async fn release_password_attempt(&self, user_id: i64, claim: i64) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE users SET attempt_until = 0 WHERE id = $1 AND attempt_claim = $2",
                &[&user_id, &claim],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn password_failed(
        &self,
        user: &User,
        record: &FailureRecord,
        claim: i64,
    ) -> Result<User> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "UPDATE users SET failed_logins = $2, retry_at = GREATEST(retry_at, $3),
                         locked_until = CASE WHEN $4::BIGINT IS NULL THEN locked_until ELSE GREATEST(locked_until, $3) END,
                         last_locked_at = COALESCE($4, last_locked_at),
                         failures_since_login = failures_since_login + 1,
                         attempt_until = CASE WHEN attempt_claim = $5 THEN 0 ELSE attempt_until END
                     WHERE id = $1 RETURNING {USER_COLUMNS}"
                ),
                &[
                    &user.id,
                    &(record.failed_logins as i32),
                    &record.retry_at,
                    &record.locked_at,
                    &claim,
                ],
            )
            .await?;
        Ok(row.map_or_else(|| user.clone(), |r| user_row(&r)))
    }

    pub async fn password_succeeded(&self, user: &User) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE users SET failures_before_login = failures_since_login, failures_since_login = 0,
                     failed_logins = 0, retry_at = 0, locked_until = 0, attempt_until = 0 WHERE id = $1",
                &[&user.id],
            )
            .await?;
        Ok(())
    }

    pub async fn purge(&self, now: i64, address_memory: i64) -> Result<u64> {
        let client = self.client().await?;
        let sessions = client
            .execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
            .await?;
        client
            .execute("DELETE FROM used_challenges WHERE expires_at < $1", &[&now])
            .await?;
        client
            .execute(
                "DELETE FROM address_failures WHERE last_failure <= $1",
                &[&(now - address_memory)],
            )
            .await?;
        Ok(sessions)
    }

    pub async fn session_count(&self) -> Result<i64> {
        Ok(self
            .client()
            .await?
            .query_one("SELECT COUNT(*) FROM sessions", &[])
            .await?
            .get(0))
    }

    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT user_id, csrf, pending_identity FROM sessions WHERE id_hash = $1 AND expires_at > $2",
            )
            .await?;
        Ok(client
            .query_opt(&statement, &[&id_hash, &now])
            .await?
            .map(|r| SessionRow {
                user_id: r.get(0),
                csrf: r.get(1),
                pending_identity: r.get(2),
            }))
    }

    pub async fn create_session(
        &self,
        session: &super::NewSession<'_>,
        now: i64,
        lifetime: i64,
    ) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO sessions (id_hash, user_id, csrf, pending_identity, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &session.id_hash,
                    &session.user_id,
                    &session.csrf,
                    &session.pending_identity,
                    &now,
                    &(now + lifetime),
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        self.client()
            .await?
            .execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])
            .await?;
        Ok(())
    }

    pub async fn registrations_of(&self, user_id: i64) -> Result<Vec<Registration>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {} FROM registrations WHERE user_id = $1 ORDER BY registered_at, id",
                    REGISTRATION_COLUMNS
                ),
                &[&user_id],
            )
            .await?;
        Ok(rows.iter().map(registration_row).collect())
    }

    pub async fn registration_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Registration>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {} FROM registrations WHERE fingerprint = $1",
                    REGISTRATION_COLUMNS
                ),
                &[&fingerprint],
            )
            .await?
            .map(|r| registration_row(&r)))
    }

    pub async fn registration(&self, id: i64) -> Result<Option<Registration>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {} FROM registrations WHERE id = $1",
                    REGISTRATION_COLUMNS
                ),
                &[&id],
            )
            .await?
            .map(|r| registration_row(&r)))
    }

    pub async fn register(
        &self,
        user_id: i64,
        identity: &Identity,
        now: i64,
        how: &str,
    ) -> Result<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO registrations
                    (user_id, fingerprint, edipi, common_name, subject, issuer, serial, not_after, registered_at, how, fasc_n_person, card_uuid)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                &[
                    &user_id,
                    &identity.fingerprint_sha256,
                    &identity.edipi,
                    &identity.common_name,
                    &identity.subject,
                    &identity.issuer,
                    &identity.serial_number,
                    &identity.not_after,
                    &now,
                    &how,
                    &identity.fasc_n.as_ref().map(|f| f.person.clone()),
                    &identity.card_uuid,
                ],
            )
            .await?
            .get(0);
        if let Some(pause) = super::registration_pause() {
            tokio::time::sleep(pause).await;
        }
        tx.execute(
            "INSERT INTO account_events (user_id, at, what, registration_id) VALUES ($1, $2, $3, $4)",
            &[&user_id, &now, &format!("CAC registered ({how})"), &id],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn secret(&self, name: &str) -> Result<Vec<u8>> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &super::fresh_secret()],
            )
            .await?;
        Ok(client
            .query_one("SELECT value FROM secrets WHERE name = $1", &[&name])
            .await?
            .get(0))
    }

    pub async fn use_challenge(&self, id: &[u8], expires: i64) -> Result<bool> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO used_challenges (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        Ok(client.execute(&statement, &[&id, &expires]).await? == 1)
    }

    pub async fn address_retry_after(&self, address: &str, now: i64) -> Result<Option<i64>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT retry_at FROM address_failures WHERE address = $1")
            .await?;
        Ok(client
            .query_opt(&statement, &[&address])
            .await?
            .map(|r| r.get::<_, i64>(0) - now)
            .filter(|wait| *wait > 0))
    }

    pub async fn address_attempt(
        &self,
        address: &str,
        now: i64,
        backoff: &(dyn Fn(u32) -> i64 + Sync),
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The upsert holds the row until commit: a concurrent attempt from the address waits,
        // then sees the retry_at this one set.
        let failures: Option<i32> = tx
            .query_opt(
                "INSERT INTO address_failures (address, failures, retry_at, last_failure) VALUES ($1, 1, 0, $2)
                 ON CONFLICT (address) DO UPDATE SET failures = address_failures.failures + 1,
                     last_failure = excluded.last_failure
                     WHERE address_failures.retry_at <= $2
                 RETURNING failures",
                &[&address, &now],
            )
            .await?
            .map(|r| r.get(0));
        let Some(failures) = failures else {
            return Ok(false);
        };
        tx.execute(
            "UPDATE address_failures SET retry_at = GREATEST(retry_at, $2) WHERE address = $1",
            &[&address, &(now + backoff(failures.max(0) as u32))],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn address_succeeded(&self, address: &str) -> Result<()> {
        self.client()
            .await?
            .execute(
                "DELETE FROM address_failures WHERE address = $1",
                &[&address],
            )
            .await?;
        Ok(())
    }

    pub async fn addresses_tracked(&self) -> Result<i64> {
        Ok(self
            .client()
            .await?
            .query_one("SELECT COUNT(*) FROM address_failures", &[])
            .await?
            .get(0))
    }
}
