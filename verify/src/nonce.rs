//! Server-side challenges, each usable once, for five minutes.
//!
//! A challenge carries its own proof of origin: 16 random bytes, the issue time and an
//! HMAC-SHA256 over both and a *binding* (the visitor's session, say) under a key made when the
//! store is. Issuing is O(1) and keeps no state, so a flood of page views costs nothing but
//! CPU; only consumed challenges are remembered, until they expire, to refuse a second use.
//! A challenge is 56 bytes, 76 base64 characters.

use crate::NonceError;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::VerifyError;

pub const NONCE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Clocks of a server farm disagree a little: a challenge from a few seconds ahead is fine.
const CLOCK_SKEW: u64 = 30;
const RANDOM_LEN: usize = 16;
const TIME_LEN: usize = 8;
const TAG_LEN: usize = 32;
const NONCE_LEN: usize = RANDOM_LEN + TIME_LEN + TAG_LEN;

/// Consumed challenges, oldest first, until they would have expired anyway.
#[derive(Default)]
struct Used {
    set: HashSet<[u8; RANDOM_LEN]>,
    by_expiry: VecDeque<(u64, [u8; RANDOM_LEN])>,
}

impl Used {
    /// Forget what has expired: amortized O(1), never a scan of the live ones.
    fn purge(&mut self, now: u64) {
        while let Some(&(expires, id)) = self.by_expiry.front() {
            if expires >= now {
                break;
            }
            self.by_expiry.pop_front();
            self.set.remove(&id);
        }
    }
}

/// A challenge that is genuine (issued with this store's key, to this binding), before it is
/// used: a store shared by several servers records its use itself ([`NonceStore::check_bound`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceTicket {
    /// The challenge's random part: what a store of used challenges keys on.
    pub id: [u8; RANDOM_LEN],
    /// Seconds since the epoch after which it is expired.
    pub expires: u64,
}

impl NonceTicket {
    pub fn expired(&self, now: SystemTime) -> bool {
        seconds(now) > self.expires
    }
}

pub struct NonceStore {
    rng: SystemRandom,
    key: hmac::Key,
    used: Mutex<Used>,
    lifetime: Duration,
}

impl Default for NonceStore {
    fn default() -> Self {
        Self::new()
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl NonceStore {
    pub fn new() -> Self {
        Self::with_lifetime(NONCE_LIFETIME)
    }

    pub fn with_lifetime(lifetime: Duration) -> Self {
        let rng = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system RNG works");
        Self::with_key_and_lifetime(key, lifetime)
    }

    /// A store whose challenges every store made with the same `key` accepts: servers behind
    /// one load balancer share it (and record used challenges in a shared database).
    pub fn with_key(key: &[u8]) -> Self {
        Self::with_key_and_lifetime(hmac::Key::new(hmac::HMAC_SHA256, key), NONCE_LIFETIME)
    }

    fn with_key_and_lifetime(key: hmac::Key, lifetime: Duration) -> Self {
        let rng = SystemRandom::new();
        Self {
            rng,
            key,
            used: Mutex::new(Used::default()),
            lifetime,
        }
    }

    /// A challenge not bound to anything (any session may present it).
    pub fn issue(&self, now: SystemTime) -> String {
        self.issue_bound(b"", now)
    }

    /// A challenge only `binding` (a session's or visitor's id hash, say) may present.
    pub fn issue_bound(&self, binding: &[u8], now: SystemTime) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce[..RANDOM_LEN])
            .expect("the system RNG works");
        nonce[RANDOM_LEN..RANDOM_LEN + TIME_LEN].copy_from_slice(&seconds(now).to_be_bytes());
        let tag = self.tag(&nonce[..RANDOM_LEN + TIME_LEN], binding);
        nonce[RANDOM_LEN + TIME_LEN..].copy_from_slice(tag.as_ref());
        BASE64.encode(nonce)
    }

    fn tag(&self, body: &[u8], binding: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(body);
        context.update(binding);
        context.sign()
    }

    /// Use an unbound `nonce` once.
    pub fn consume(&self, nonce: &str, now: SystemTime) -> Result<(), VerifyError> {
        self.consume_bound(b"", nonce, now)
    }

    /// Use `nonce` once, as `binding`. Fails for a nonce never issued here (or issued to
    /// another binding), already used, or too old.
    pub fn consume_bound(
        &self,
        binding: &[u8],
        nonce: &str,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let ticket = self.check_bound(binding, nonce, now)?;
        let now = seconds(now);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.purge(now);
        if used.set.contains(&ticket.id) {
            return Err(VerifyError::Nonce(NonceError::NonceReused));
        }
        if now > ticket.expires {
            return Err(VerifyError::Nonce(NonceError::NonceExpired));
        }
        used.set.insert(ticket.id);
        used.by_expiry.push_back((ticket.expires, ticket.id));
        Ok(())
    }

    /// Is `nonce` a challenge this store's key issued to `binding`, not from the future? Says
    /// nothing of whether it was used or has expired ([`NonceTicket::expired`]): the caller
    /// records its use where its servers share state.
    pub fn check_bound(
        &self,
        binding: &[u8],
        nonce: &str,
        now: SystemTime,
    ) -> Result<NonceTicket, VerifyError> {
        let bytes = BASE64
            .decode(nonce)
            .ok()
            .filter(|b| b.len() == NONCE_LEN)
            .ok_or(VerifyError::Nonce(NonceError::NonceUnknown))?;
        let (body, tag) = bytes.split_at(RANDOM_LEN + TIME_LEN);
        let mut context_tag = body.to_vec();
        context_tag.extend_from_slice(binding);
        hmac::verify(&self.key, &context_tag, tag)
            .map_err(|_| VerifyError::Nonce(NonceError::NonceUnknown))?;

        let mut issued = [0u8; TIME_LEN];
        issued.copy_from_slice(&body[RANDOM_LEN..]);
        let issued = u64::from_be_bytes(issued);
        let now = seconds(now);
        if issued > now + CLOCK_SKEW {
            return Err(VerifyError::Nonce(NonceError::NonceUnknown));
        }
        let expires = issued.saturating_add(self.lifetime.as_secs());
        let mut id = [0u8; RANDOM_LEN];
        id.copy_from_slice(&body[..RANDOM_LEN]);
        Ok(NonceTicket { id, expires })
    }

    /// Seconds since the epoch of a nonce's issue (as it claims), for tests and diagnostics.
    pub fn issued_at(&self, nonce: &str) -> Option<u64> {
        let bytes = BASE64.decode(nonce).ok().filter(|b| b.len() == NONCE_LEN)?;
        let mut time = [0u8; TIME_LEN];
        time.copy_from_slice(&bytes[RANDOM_LEN..RANDOM_LEN + TIME_LEN]);
        Some(u64::from_be_bytes(time))
    }

    /// Consumed challenges still remembered (for tests and the portal's figures).
    pub fn remembered(&self) -> usize {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_900_000_000 + seconds)
    }

    #[test]
    fn issuing_keeps_no_state() {
        let store = NonceStore::new();
        for _ in 0..10_000 {
            store.issue_bound(b"visitor", at(0));
        }
        assert_eq!(store.remembered(), 0);
    }

    #[test]
    fn a_bound_challenge_is_refused_to_anyone_else() {
        let store = NonceStore::new();
        let nonce = store.issue_bound(b"session-a", at(0));
        assert_eq!(
            store.consume_bound(b"session-b", &nonce, at(1)),
            Err(VerifyError::Nonce(NonceError::NonceUnknown))
        );
        assert_eq!(
            store.consume(&nonce, at(1)),
            Err(VerifyError::Nonce(NonceError::NonceUnknown))
        );
        assert!(store.consume_bound(b"session-a", &nonce, at(1)).is_ok());
    }

    #[test]
    fn another_store_or_a_changed_byte_is_unknown() {
        let store = NonceStore::new();
        let nonce = store.issue(at(0));
        assert_eq!(
            NonceStore::new().consume(&nonce, at(1)),
            Err(VerifyError::Nonce(NonceError::NonceUnknown))
        );
        let mut bytes = BASE64.decode(&nonce).unwrap();
        bytes[RANDOM_LEN] ^= 1; // the issue time
        assert_eq!(
            store.consume(&BASE64.encode(&bytes), at(1)),
            Err(VerifyError::Nonce(NonceError::NonceUnknown))
        );
        assert_eq!(
            store.consume("short", at(1)),
            Err(VerifyError::Nonce(NonceError::NonceUnknown))
        );
    }

    #[test]
    fn consumed_challenges_are_forgotten_once_they_would_have_expired() {
        let store = NonceStore::new();
        for second in 0..100 {
            let nonce = store.issue(at(second));
            store.consume(&nonce, at(second)).unwrap();
        }
        assert_eq!(store.remembered(), 100);
        let late = store.issue(at(1_000));
        store.consume(&late, at(1_000)).unwrap();
        assert_eq!(store.remembered(), 1, "only the live one is left");
    }

    #[test]
    fn stores_sharing_a_key_accept_each_others_challenges_and_check_does_not_use_them() {
        let issuer = NonceStore::with_key(&[7u8; 32]);
        let other = NonceStore::with_key(&[7u8; 32]);
        let stranger = NonceStore::with_key(&[8u8; 32]);
        let nonce = issuer.issue_bound(b"session:1", at(0));
        let ticket = other.check_bound(b"session:1", &nonce, at(1)).unwrap();
        assert!(!ticket.expired(at(1)));
        assert!(ticket.expired(at(NONCE_LIFETIME.as_secs() + 1)));
        // Checking records nothing: the same challenge checks again, and consumes once.
        assert_eq!(other.check_bound(b"session:1", &nonce, at(2)), Ok(ticket));
        other.consume_bound(b"session:1", &nonce, at(2)).unwrap();
        assert_eq!(
            other.consume_bound(b"session:1", &nonce, at(3)),
            Err(VerifyError::Nonce(NonceError::NonceReused))
        );
        assert_eq!(
            other.check_bound(b"session:2", &nonce, at(1)),
            Err(VerifyError::Nonce(NonceError::NonceUnknown)),
            "bound to another session"
        );
        assert_eq!(
            stranger.check_bound(b"session:1", &nonce, at(1)),
            Err(VerifyError::Nonce(NonceError::NonceUnknown)),
            "another key"
        );
    }
}
