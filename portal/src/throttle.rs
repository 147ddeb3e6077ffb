//! Password guessing, slowed down: exponential back-off per client address (in memory) and
//! per account (in the database, so a lock survives a restart and its owner sees it in My
//! Account). Password login and the card-linking form share both.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Wrong passwords an account may have before each try must wait.
pub const ACCOUNT_FREE_FAILURES: u32 = 3;
/// Wrong passwords a client address may send before each try must wait (several people may
/// share an address).
pub const ADDRESS_FREE_FAILURES: u32 = 5;
/// The longest wait between two tries.
pub const MAX_BACKOFF_SECONDS: i64 = 300;
/// Wrong passwords in a row that lock an account.
pub const LOCK_AFTER_FAILURES: u32 = 10;
/// How long a locked account refuses passwords.
pub const LOCK_SECONDS: i64 = 15 * 60;
/// Addresses quiet this long are forgotten.
const ADDRESS_MEMORY_SECONDS: i64 = 3600;
/// Addresses remembered at most: a flood from many addresses cannot grow memory without bound.
const MAX_ADDRESSES: usize = 100_000;

/// Seconds to wait before the next try after `failures` wrong passwords: none for the first
/// `free`, then 2, 4, 8, ... up to [`MAX_BACKOFF_SECONDS`]. (Times are whole seconds: a
/// first wait of 1 could round down to nothing.)
pub fn backoff(failures: u32, free: u32) -> i64 {
    if failures < free {
        return 0;
    }
    let exponent = (failures - free + 1).min(20);
    (1i64 << exponent).min(MAX_BACKOFF_SECONDS)
}

#[derive(Debug, Clone, Copy)]
struct Address {
    failures: u32,
    retry_at: i64,
    last_failure: i64,
}

#[derive(Default)]
pub struct AddressThrottle {
    addresses: Mutex<HashMap<IpAddr, Address>>,
}

impl AddressThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Address>> {
        self.addresses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds `address` must still wait, if any.
    pub fn retry_after(&self, address: IpAddr, now: i64) -> Option<i64> {
        self.lock()
            .get(&address)
            .map(|a| a.retry_at - now)
            .filter(|wait| *wait > 0)
    }

    pub fn failed(&self, address: IpAddr, now: i64) {
        let mut addresses = self.lock();
        if addresses.len() >= MAX_ADDRESSES && !addresses.contains_key(&address) {
            addresses.retain(|_, a| now - a.last_failure < ADDRESS_MEMORY_SECONDS);
            if addresses.len() >= MAX_ADDRESSES {
                tracing::warn!("login throttle full; not tracking another address");
                return;
            }
        }
        let entry = addresses.entry(address).or_insert(Address {
            failures: 0,
            retry_at: 0,
            last_failure: now,
        });
        entry.failures += 1;
        entry.last_failure = now;
        entry.retry_at = now + backoff(entry.failures, ADDRESS_FREE_FAILURES);
    }

    pub fn succeeded(&self, address: IpAddr) {
        self.lock().remove(&address);
    }

    /// Forget addresses that have been quiet for an hour.
    pub fn purge(&self, now: i64) {
        self.lock()
            .retain(|_, a| now - a.last_failure < ADDRESS_MEMORY_SECONDS);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_tries_and_is_capped() {
        let waits: Vec<i64> = (0..14).map(|n| backoff(n, 3)).collect();
        assert_eq!(
            waits,
            [0, 0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
        );
        assert_eq!(backoff(u32::MAX, 3), MAX_BACKOFF_SECONDS);
    }

    #[test]
    fn an_address_waits_after_its_free_failures_and_is_forgotten_later() {
        let throttle = AddressThrottle::default();
        let address: IpAddr = "192.0.2.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..ADDRESS_FREE_FAILURES - 1 {
            throttle.failed(address, 1000);
            assert_eq!(throttle.retry_after(address, 1000), None);
        }
        throttle.failed(address, 1000);
        assert_eq!(throttle.retry_after(address, 1000), Some(2));
        throttle.failed(address, 1001);
        assert_eq!(throttle.retry_after(address, 1001), Some(4));
        throttle.purge(1001 + ADDRESS_MEMORY_SECONDS);
        assert!(throttle.is_empty());
    }
}
