//! Password guessing, slowed down: exponential back-off per client address and per account,
//! both counted in the database every instance shares (a lock survives a restart, holds at
//! every instance, and its owner sees it in My Account). Password login and the card-linking
//! form share both.

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
pub const ADDRESS_MEMORY_SECONDS: i64 = 3600;

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
}
