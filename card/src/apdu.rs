//! APDUs as values, and the card's status word as a typed value parsed in one place.

use std::fmt;

use zeroize::Zeroizing;

/// The instructions this layer sends (ISO 7816-4, SP 800-73-4, GSC-IS 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Ins {
    Verify = 0x20,
    ChangeReferenceData = 0x24,
    ResetRetryCounter = 0x2C,
    /// GSC-IS: sign or decrypt with the selected CAC applet's key.
    SignDecrypt = 0x42,
    /// GSC-IS: read a CAC applet's tag or value buffer.
    ReadBuffer = 0x52,
    /// GSC-IS: the applet's properties.
    GetProperties = 0x56,
    GeneralAuthenticate = 0x87,
    Select = 0xA4,
    GetResponse = 0xC0,
    GetData = 0xCB,
}

/// A command APDU. `data` is wiped on drop: a VERIFY carries the PIN.
#[derive(Clone)]
pub struct Command {
    pub cla: u8,
    pub ins: Ins,
    pub p1: u8,
    pub p2: u8,
    pub data: Zeroizing<Vec<u8>>,
    /// Expected response length: `None` for no Le, `Some(256)` for Le=00.
    pub le: Option<u16>,
}

impl Command {
    pub fn new(cla: u8, ins: Ins, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: None,
        }
    }

    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = Zeroizing::new(data.into());
        self
    }

    /// Ask for up to 256 bytes (Le=00); longer answers come through 61xx.
    pub fn expect_response(mut self) -> Self {
        self.le = Some(256);
        self
    }

    /// True for commands whose data must never be logged.
    pub fn carries_secret(&self) -> bool {
        // VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
        matches!(
            self.ins,
            Ins::Verify | Ins::ChangeReferenceData | Ins::ResetRetryCounter
        )
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02X} {:02X} {:02X} {:02X}",
            self.cla, self.ins as u8, self.p1, self.p2
        )?;
        if !self.data.is_empty() {
            if self.carries_secret() {
                write!(f, " [{} bytes redacted]", self.data.len())?;
            } else {
                write!(f, " {}", hex::encode_upper(&*self.data))?;
            }
        }
        if let Some(le) = self.le {
            write!(f, " Le={le}")?;
        }
        Ok(())
    }
}

/// A status word, typed. Everything above the transport matches on this rather than on raw
/// numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// 61xx: xx more bytes (00: 256 or more) wait for GET RESPONSE.
    MoreData(u8),
    /// 6Cxx: wrong Le, resend with Le=xx.
    WrongLe(u8),
    /// 63Cx (or 630x on old cards): wrong PIN, x tries left.
    VerifyFailed {
        retries_left: u8,
    },
    /// 6983: authentication method blocked.
    Blocked,
    /// 6982: security status not satisfied (PIN needed).
    SecurityNotSatisfied,
    /// 6985: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// 6A80: incorrect data.
    WrongData,
    /// 6A82: file or application not found.
    NotFound,
    /// 6A86: incorrect P1/P2.
    WrongP1P2,
    /// 6A88: referenced data (key) not found.
    ReferenceNotFound,
    /// 6700: wrong length.
    WrongLength,
    /// 6D00: instruction not supported (often: another applet is selected).
    InsNotSupported,
    /// 6E00: class not supported.
    ClaNotSupported,
    Other(u16),
}

impl Status {
    pub fn from_sw(sw1: u8, sw2: u8) -> Self {
        match (sw1, sw2) {
            (0x90, 0x00) => Status::Success,
            (0x61, n) => Status::MoreData(n),
            (0x6C, n) => Status::WrongLe(n),
            (0x63, n) if n & 0xF0 == 0xC0 => Status::VerifyFailed {
                retries_left: n & 0x0F,
            },
            // Some older cards report 630x.
            (0x63, n) if n & 0xF0 == 0x00 => Status::VerifyFailed { retries_left: n },
            (0x69, 0x83) => Status::Blocked,
            (0x69, 0x82) => Status::SecurityNotSatisfied,
            (0x69, 0x85) => Status::ConditionsNotSatisfied,
            (0x6A, 0x80) => Status::WrongData,
            (0x6A, 0x82) => Status::NotFound,
            (0x6A, 0x86) => Status::WrongP1P2,
            (0x6A, 0x88) => Status::ReferenceNotFound,
            (0x67, 0x00) => Status::WrongLength,
            (0x6D, 0x00) => Status::InsNotSupported,
            (0x6E, 0x00) => Status::ClaNotSupported,
            (a, b) => Status::Other(u16::from_be_bytes([a, b])),
        }
    }

    pub fn sw(self) -> u16 {
        match self {
            Status::Success => 0x9000,
            Status::MoreData(n) => 0x6100 | u16::from(n),
            Status::WrongLe(n) => 0x6C00 | u16::from(n),
            Status::VerifyFailed { retries_left } => 0x63C0 | u16::from(retries_left & 0x0F),
            Status::Blocked => 0x6983,
            Status::SecurityNotSatisfied => 0x6982,
            Status::ConditionsNotSatisfied => 0x6985,
            Status::WrongData => 0x6A80,
            Status::NotFound => 0x6A82,
            Status::WrongP1P2 => 0x6A86,
            Status::ReferenceNotFound => 0x6A88,
            Status::WrongLength => 0x6700,
            Status::InsNotSupported => 0x6D00,
            Status::ClaNotSupported => 0x6E00,
            Status::Other(sw) => sw,
        }
    }

    pub fn is_success(self) -> bool {
        self == Status::Success
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.sw())
    }
}

/// A complete response: all 61xx continuations already collected.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub status: Status,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", self.status, self.data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_round_trip() {
        for sw in [
            0x9000u16, 0x6110, 0x6100, 0x6C20, 0x63C2, 0x6983, 0x6982, 0x6985, 0x6A80, 0x6A82,
            0x6A86, 0x6A88, 0x6700, 0x6D00, 0x6E00, 0x6F00, 0x6581,
        ] {
            let [a, b] = sw.to_be_bytes();
            assert_eq!(Status::from_sw(a, b).sw(), sw, "{sw:04X}");
        }
    }

    #[test]
    fn old_style_retry_counter_is_understood() {
        assert_eq!(
            Status::from_sw(0x63, 0x02),
            Status::VerifyFailed { retries_left: 2 }
        );
        assert_eq!(
            Status::from_sw(0x63, 0xC0),
            Status::VerifyFailed { retries_left: 0 }
        );
    }

    #[test]
    fn debug_of_a_verify_hides_the_pin() {
        let verify = Command::new(0, Ins::Verify, 0, 0x80).data(b"13572468".to_vec());
        let shown = format!("{verify:?}");
        assert!(!shown.contains("3133"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
