//! The PIN of a TLS login, held by the host for the policy's `tlsPinMinutes` so that later
//! handshakes need no window (docs/pkcs11.md, "PIN caching"). The card is never left verified:
//! each signature verifies this PIN, signs and logs out in one transaction, as Windows' smart
//! card PIN cache does. The digits live in a page of their own, locked in RAM (never written
//! to swap) and wiped when dropped; the host process is not dumpable (no core file, no
//! ptrace or /proc/<pid>/mem for other programs of the user).

use zeroize::Zeroize;

use cacbridge_card::Pin;

/// One page, aligned to itself, so that its lock is nobody else's and unlocking it when the
/// PIN is dropped unlocks nothing else.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

pub struct HeldPin {
    page: Box<Page>,
    len: usize,
    _locked: region::LockGuard,
}

impl HeldPin {
    /// A copy of `pin` in locked memory; `None` when memory cannot be locked (the PIN is
    /// then not held, and every handshake asks for it).
    pub fn new(pin: &Pin) -> Option<Self> {
        let mut page = Box::new(Page([0; 4096]));
        let locked = match region::lock(page.0.as_ptr(), page.0.len()) {
            Ok(locked) => locked,
            Err(err) => {
                tracing::warn!(%err, "cannot lock memory for the PIN: it is not held");
                return None;
            }
        };
        let digits = pin.digits();
        page.0[..digits.len()].copy_from_slice(digits);
        Some(Self {
            page,
            len: digits.len(),
            _locked: locked,
        })
    }

    /// The PIN for one signature (a copy, wiped when the caller drops it).
    pub fn pin(&self) -> Option<Pin> {
        let digits = std::str::from_utf8(&self.page.0[..self.len]).ok()?;
        Pin::new(digits).ok()
    }
}

impl Drop for HeldPin {
    fn drop(&mut self) {
        // Wiped before the lock guard (a later field) unlocks the page.
        self.page.0.zeroize();
    }
}

/// Keep other programs of this user out of the host's memory, where a held PIN may be: no
/// core dumps, no ptrace attach, no /proc/<pid>/mem (Linux's "dumpable" flag).
pub fn keep_memory_private() {
    #[cfg(target_os = "linux")]
    if let Err(err) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(%err, "cannot make the host non-dumpable");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_held_pin_gives_the_digits_back_and_is_wiped_in_place() {
        let held = HeldPin::new(&Pin::new("24681357").unwrap()).unwrap();
        assert_eq!(held.pin().unwrap().digits(), b"24681357");
        let mut held = held;
        held.page.0.zeroize();
        assert!(held.page.0.iter().all(|b| *b == 0));
        assert!(held.pin().is_none(), "nothing left to give");
    }
}
