//! Password checks that a flood cannot turn into a memory or CPU famine.
//!
//! Argon2 (19 MiB, two passes by default) runs on tokio's blocking pool, as many at once as
//! there are cores (a semaphore), each in one of as many memory blocks allocated once and
//! reused. Allocating 19 MiB per check instead let glibc keep freed blocks in per-thread
//! arenas: 200 wrong passwords grew the portal to 280-500 MiB (bench/portal_password_flood.py).

use std::net::IpAddr;
use std::sync::Mutex;

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier, Version};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::{plain_page, PortalError};
use crate::{db, now, pages, throttle};

/// A well-formed Argon2id hash (the default parameters of `hash_password`) whose output is
/// random, so no password matches it: checked for unknown usernames, so they cost as much as
/// known ones.
const UNKNOWN_USER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Y2FjYnJpZGdlLXVua25vd24$5DqQYnX2B8gG4I9nKqOQd4rT8Xw7E3u4bJp1Gm2cV0M";

pub struct PasswordChecks {
    permits: Semaphore,
    /// One Argon2 working memory per permit, allocated on first use.
    memories: Mutex<Vec<Vec<Block>>>,
}

impl PasswordChecks {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrency.max(1)),
            memories: Mutex::new(Vec::new()),
        }
    }

    /// Does `password` match `hash` (or, for an unknown user, `None`: never, after as long)?
    pub async fn matches(&self, hash: Option<String>, password: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| UNKNOWN_USER_HASH.to_owned());
        let mut memory = self
            .memories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        let (matched, memory) = tokio::task::spawn_blocking(move || {
            let matched = verify(&hash, password.as_bytes(), &mut memory);
            (matched, memory)
        })
        .await
        .unwrap_or((false, Vec::new()));
        self.memories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(memory);
        known && matched
    }
}

/// Verify in `memory`, grown to the hash's cost on first use and reused after.
fn verify(hash: &str, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .map_or(Ok(Version::V0x13), Version::try_from)
        .unwrap_or(Version::V0x13);
    let blocks = params.block_count();
    if blocks > 64 * 1024 {
        // A hash far costlier than ours (64 MiB+): check it the ordinary way.
        return Argon2::default().verify_password(password, &parsed).is_ok();
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .is_ok()
        // Output's equality is constant-time.
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A new password's hash (Argon2id, default parameters, random salt).
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .expect("argon2 hashes any password")
        .to_string()
}

/// What a password attempt came to.
pub(crate) enum Attempt {
    Right(db::User),
    Wrong,
    /// Too many wrong passwords from this address or for this account: wait this long.
    Wait {
        seconds: i64,
        locked: bool,
    },
}

/// How long an account's attempt slot is held at most (an instance that dies mid-check frees
/// it then): far beyond an Argon2 check, short for a person.
const ATTEMPT_SLOT_SECONDS: i64 = 30;

/// Check `password` for `username`, throttled per client address and per account, with
/// Argon2 on the blocking pool behind the semaphore. Both throttles decide before the check,
/// atomically in the database every instance shares: the account's slot lets one guess at a
/// time be checked (a burst of guesses cannot all read the same count, the second security
/// review's M1), and the address's attempt is counted before its check.
pub(crate) async fn password_attempt(
    db: &db::Db,
    checks: &PasswordChecks,
    address: IpAddr,
    user: Option<db::User>,
    password: String,
) -> Result<Attempt, PortalError> {
    let now = now();
    let address = address.to_string();
    // The account's slot first: an account that must wait costs its address nothing.
    let claim = {
        use argon2::password_hash::rand_core::RngCore as _;
        (OsRng.next_u64() >> 1) as i64
    };
    // The account with its wrong passwords in a row, as its slot was claimed.
    let account = match user {
        Some(user) => {
            let claimed = db
                .claim_password_attempt(user.id, now, claim, now + ATTEMPT_SLOT_SECONDS)
                .await?;
            let Some(failed_logins) = claimed else {
                let current = db.user_by_id(user.id).await?.unwrap_or(user);
                return Ok(Attempt::Wait {
                    // Another guess in flight: a moment.
                    seconds: (current.retry_at - now).max(1),
                    locked: current.locked_until > now,
                });
            };
            Some((user, failed_logins))
        }
        None => None,
    };
    let backoff = |failures| throttle::backoff(failures, throttle::ADDRESS_FREE_FAILURES);
    if !db.address_attempt(&address, now, &backoff).await? {
        if let Some((user, _)) = &account {
            db.release_password_attempt(user.id, claim).await?;
        }
        let seconds = db.address_retry_after(&address, now).await?.unwrap_or(1);
        return Ok(Attempt::Wait {
            seconds,
            locked: false,
        });
    }
    let hash = account.as_ref().map(|(u, _)| u.password_hash.clone());
    let matches = checks.matches(hash, password).await;
    let Some((user, failed_logins)) = account else {
        return Ok(Attempt::Wrong);
    };
    if matches {
        db.password_succeeded(&user).await?;
        db.address_succeeded(&address).await?;
        return Ok(Attempt::Right(user));
    }
    let retry_at = |failures| now + throttle::backoff(failures, throttle::ACCOUNT_FREE_FAILURES);
    let failure = db::PasswordFailure {
        now,
        retry_at: &retry_at,
        lock_after: throttle::LOCK_AFTER_FAILURES,
        lock_seconds: throttle::LOCK_SECONDS,
    };
    let after = db
        .password_failed(&user, failed_logins, claim, &failure)
        .await?;
    if after.locked_until > now {
        tracing::warn!(user = user.id, "account locked after wrong passwords");
        return Ok(Attempt::Wait {
            seconds: after.locked_until - now,
            locked: true,
        });
    }
    Ok(Attempt::Wrong)
}

/// 429 with Retry-After: the answer to too many wrong passwords.
pub(crate) fn too_many_attempts(seconds: i64, locked: bool) -> Response {
    let reason = if locked {
        format!(
            "This account is locked for {} minutes after {} wrong passwords in a row. You can still log in with your registered CAC.",
            (seconds + 59) / 60,
            throttle::LOCK_AFTER_FAILURES
        )
    } else {
        format!("Too many wrong passwords. Try again in {seconds} seconds.")
    };
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Html(plain_page(
            "Too many attempts",
            &pages::too_many_attempts(&reason),
        )),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_reused_memory_checks_what_hash_password_made() {
        let hash = crate::hash_password("correct horse battery");
        let mut memory = Vec::new();
        assert!(verify(&hash, b"correct horse battery", &mut memory));
        assert_eq!(memory.len(), 19456);
        assert!(!verify(&hash, b"correct horse batterY", &mut memory));
        assert!(verify(&hash, b"correct horse battery", &mut memory));
        assert!(!verify("not a hash", b"x", &mut memory));
    }

    #[test]
    fn the_unknown_user_hash_is_well_formed_and_as_costly_as_ours() {
        let parsed = PasswordHash::new(UNKNOWN_USER_HASH).unwrap();
        let ours = crate::hash_password("x");
        let ours = PasswordHash::new(&ours).unwrap();
        assert_eq!(parsed.algorithm, ours.algorithm);
        assert_eq!(
            Params::try_from(&parsed).unwrap().block_count(),
            Params::try_from(&ours).unwrap().block_count()
        );
        let mut memory = Vec::new();
        assert!(!verify(UNKNOWN_USER_HASH, b"anything", &mut memory));
        assert_eq!(memory.len(), 19456, "a full check ran");
    }

    #[tokio::test]
    async fn unknown_users_never_match() {
        let checks = PasswordChecks::new(2);
        let hash = crate::hash_password("pw-pw-pw-pw");
        assert!(
            checks
                .matches(Some(hash.clone()), "pw-pw-pw-pw".into())
                .await
        );
        assert!(!checks.matches(Some(hash), "nope".into()).await);
        assert!(!checks.matches(None, "pw-pw-pw-pw".into()).await);
    }
}
