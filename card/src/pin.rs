//! The PIN: validated before it reaches a card, wiped from memory when dropped, never shown.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::CardError;

/// A PIV/CAC PIN: 6 to 8 ASCII digits. A clone is wiped when dropped, like the original.
#[derive(Clone)]
pub struct Pin(Zeroizing<Vec<u8>>);

impl Pin {
    /// Digits in a PIV or CAC PIN.
    pub const LENGTH: std::ops::RangeInclusive<usize> = 6..=8;

    /// Validate a PIN. Anything but 6 to 8 digits is refused here, so it never costs a try on
    /// the card (an all-FF or empty VERIFY would).
    pub fn new(digits: &str) -> Result<Self, CardError> {
        let bytes = digits.as_bytes();
        if Self::LENGTH.contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit) {
            Ok(Pin(Zeroizing::new(bytes.to_vec())))
        } else {
            Err(CardError::PinFormat)
        }
    }

    /// The VERIFY data: the digits padded with FF to 8 bytes.
    pub fn padded(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0xFF; 8]);
        out[..self.0.len()].copy_from_slice(&self.0);
        out
    }

    /// The digits, for a PKCS#11 C_Login.
    pub fn digits(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(..)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_six_to_eight_digits() {
        for pin in ["123456", "1234567", "12345678"] {
            assert!(Pin::new(pin).is_ok(), "{pin}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for pin in [
            "",
            "12345",
            "123456789",
            "12345a",
            "１２３４５６",
            "123 456",
            "abcdefgh",
        ] {
            assert_eq!(Pin::new(pin).unwrap_err(), CardError::PinFormat, "{pin:?}");
        }
    }

    #[test]
    fn pads_with_ff() {
        let pin = Pin::new("123456").unwrap();
        assert_eq!(&pin.padded()[..], b"123456\xFF\xFF");
        assert_eq!(&Pin::new("12345678").unwrap().padded()[..], b"12345678");
    }

    #[test]
    fn debug_never_shows_digits() {
        assert_eq!(format!("{:?}", Pin::new("135790").unwrap()), "Pin(..)");
    }
}
