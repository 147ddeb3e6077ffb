//! The ISO 7816-4 transport rules, in one place: encoding short APDUs for T=0 and T=1, command
//! chaining (CLA bit 0x10), GET RESPONSE on 61xx and resending on 6Cxx. Applet code sends a
//! [`Command`] and gets a complete [`Response`].

use zeroize::Zeroizing;

use crate::apdu::{Command, Ins, Response, Status};
use crate::error::CardError;

/// The card's transmission protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    T0,
    T1,
}

/// Something that exchanges one raw APDU for one raw response (data + SW1 SW2): a PC/SC card
/// handle, or a scripted transcript in tests.
pub trait Transport {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError>;
    fn protocol(&self) -> Protocol;
}

/// Largest response the card may give to one command (after all 61xx continuations).
/// Certificates are a few KB; a real CHUID about 3 KB.
const MAX_RESPONSE: usize = 32 * 1024;
const MAX_SHORT_DATA: usize = 255;

/// A transport plus a count of the APDUs that crossed it.
pub struct Channel<'t> {
    transport: &'t mut dyn Transport,
    apdus: u32,
    secret_sent: bool,
    reset_when_done: bool,
}

impl<'t> Channel<'t> {
    pub fn new(transport: &'t mut dyn Transport) -> Self {
        Self {
            transport,
            apdus: 0,
            secret_sent: false,
            reset_when_done: false,
        }
    }

    /// Ask for the card to be reset when the transaction ends: the only way to clear a
    /// verified PIN on a card that has no logout.
    pub fn reset_when_done(&mut self) {
        self.reset_when_done = true;
    }

    pub fn reset_requested(&self) -> bool {
        self.reset_when_done
    }

    /// A PIN (or PUK) left for the card through this channel, answered or not: whoever
    /// retries the operation must not send it again, since the card may have counted it.
    pub fn secret_sent(&self) -> bool {
        self.secret_sent
    }

    /// APDUs exchanged through this channel so far (each GET RESPONSE and chained block counts).
    pub fn apdu_count(&self) -> u32 {
        self.apdus
    }

    fn exchange(&mut self, apdu: &[u8]) -> Result<(Vec<u8>, Status), CardError> {
        self.apdus += 1;
        let mut raw = self.transport.exchange(apdu)?;
        if raw.is_empty() {
            return Err(CardError::NoResponse);
        }
        if raw.len() < 2 {
            return Err(CardError::Malformed(
                "response shorter than a status word".into(),
            ));
        }
        let sw2 = raw.pop().unwrap_or_default();
        let sw1 = raw.pop().unwrap_or_default();
        Ok((raw, Status::from_sw(sw1, sw2)))
    }

    /// Send a command and collect its whole response.
    pub fn transmit(&mut self, command: &Command) -> Result<Response, CardError> {
        tracing::trace!(?command, "apdu");
        if command.carries_secret() && !command.data.is_empty() {
            self.secret_sent = true;
        }
        let protocol = self.transport.protocol();
        let blocks: Vec<&[u8]> = if command.data.len() > MAX_SHORT_DATA {
            command.data.chunks(MAX_SHORT_DATA).collect()
        } else {
            vec![&command.data[..]]
        };
        let (last, chained) = blocks.split_last().expect("at least one block");
        for block in chained {
            let apdu = encode(command, command.cla | 0x10, block, None, protocol);
            let (_, status) = self.exchange(&apdu)?;
            if !status.is_success() {
                // The card refused a block: the chain is over.
                return Ok(Response {
                    data: Vec::new(),
                    status,
                });
            }
        }

        let apdu = encode(command, command.cla, last, command.le, protocol);
        let (mut data, mut status) = self.exchange(&apdu)?;
        if let Status::WrongLe(exact) = status {
            // 6Cxx: the card wants exactly xx as Le; resend once.
            let le = if exact == 0 { 256 } else { u16::from(exact) };
            let apdu = encode(command, command.cla, last, Some(le), Protocol::T1);
            (data, status) = self.exchange(&apdu)?;
        }
        while let Status::MoreData(available) = status {
            // Never abandon a 61xx sequence part-way: the card would hold the rest.
            let get_response = [0x00, Ins::GetResponse as u8, 0x00, 0x00, available];
            let (more, next) = self.exchange(&get_response)?;
            data.extend_from_slice(&more);
            if data.len() > MAX_RESPONSE {
                return Err(CardError::Malformed(format!(
                    "response exceeds {MAX_RESPONSE} bytes"
                )));
            }
            status = next;
        }
        tracing::trace!(%status, bytes = data.len(), "response");
        Ok(Response { data, status })
    }
}

/// Encode one short APDU. Under T=0 a command with data carries no Le (the card answers 61xx).
fn encode(
    command: &Command,
    cla: u8,
    data: &[u8],
    le: Option<u16>,
    protocol: Protocol,
) -> Zeroizing<Vec<u8>> {
    let mut apdu = Zeroizing::new(Vec::with_capacity(5 + data.len() + 1));
    apdu.extend_from_slice(&[cla, command.ins as u8, command.p1, command.p2]);
    if !data.is_empty() {
        apdu.push(data.len() as u8);
        apdu.extend_from_slice(data);
    }
    if let Some(le) = le {
        if data.is_empty() || protocol == Protocol::T1 {
            // Le=256 is encoded 00.
            apdu.push(le as u8);
        }
    }
    apdu
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::ScriptedCard;

    #[test]
    fn get_response_collects_every_continuation() {
        let mut card = ScriptedCard::t1(&[
            ("00CB3FFF055C035FC10500", "0102 6102"),
            ("00C0000002", "0304 6101"),
            ("00C0000001", "05 9000"),
        ]);
        let mut ch = Channel::new(&mut card);
        let cmd = Command::new(0, Ins::GetData, 0x3F, 0xFF)
            .data(vec![0x5C, 0x03, 0x5F, 0xC1, 0x05])
            .expect_response();
        let r = ch.transmit(&cmd).unwrap();
        assert_eq!(r.data, vec![1, 2, 3, 4, 5]);
        assert_eq!(r.status, Status::Success);
        assert_eq!(ch.apdu_count(), 3);
        card.assert_done();
    }

    #[test]
    fn a_channel_remembers_that_a_pin_left_for_the_card() {
        let mut card = ScriptedCard::t1(&[
            ("00A40400", "9000"),
            ("0020FF80", "9000"),
            ("002000800831323334353637FF", "63C2"),
        ]);
        let mut ch = Channel::new(&mut card);
        ch.transmit(&Command::new(0, Ins::Select, 0x04, 0x00))
            .unwrap();
        // A logout (VERIFY without data) carries no PIN.
        ch.transmit(&Command::new(0, Ins::Verify, 0xFF, 0x80))
            .unwrap();
        assert!(!ch.secret_sent());
        let verify = Command::new(0, Ins::Verify, 0x00, 0x80).data(b"1234567\xFF".to_vec());
        ch.transmit(&verify).unwrap();
        assert!(ch.secret_sent(), "even a refused PIN was sent");
        card.assert_done();
    }

    #[test]
    fn wrong_le_is_resent_with_the_exact_length() {
        let mut card = ScriptedCard::t1(&[
            ("8056010000", "6C20"),
            ("8056010020", &format!("{} 9000", "AA".repeat(32))),
        ]);
        let mut ch = Channel::new(&mut card);
        let mut cmd = Command::new(0x80, Ins::GetProperties, 0x01, 0x00);
        cmd.le = Some(256);
        let r = ch.transmit(&cmd).unwrap();
        assert_eq!(r.data.len(), 32);
        card.assert_done();
    }

    #[test]
    fn long_data_is_sent_as_a_command_chain() {
        let data = vec![0x11u8; 300];
        let mut card = ScriptedCard::t1(&[
            (&format!("10870794FF{}", "11".repeat(255)), "9000"),
            (&format!("008707942D{}00", "11".repeat(45)), "AABB 9000"),
        ]);
        let mut ch = Channel::new(&mut card);
        let cmd = Command::new(0, Ins::GeneralAuthenticate, 0x07, 0x94)
            .data(data)
            .expect_response();
        let r = ch.transmit(&cmd).unwrap();
        assert_eq!(r.data, vec![0xAA, 0xBB]);
        card.assert_done();
    }

    #[test]
    fn a_refused_chain_block_ends_the_command() {
        let mut card = ScriptedCard::t1(&[(&format!("10870794FF{}", "11".repeat(255)), "6A80")]);
        let mut ch = Channel::new(&mut card);
        let cmd = Command::new(0, Ins::GeneralAuthenticate, 0x07, 0x94).data(vec![0x11u8; 300]);
        assert_eq!(ch.transmit(&cmd).unwrap().status, Status::WrongData);
        card.assert_done();
    }

    #[test]
    fn t0_case_4_is_sent_without_le() {
        let mut card = ScriptedCard::t0(&[
            ("00A4040009A00000030800001000", "6111"),
            ("00C0000011", &format!("{} 9000", "61".repeat(17))),
        ]);
        let mut ch = Channel::new(&mut card);
        let cmd = Command::new(0, Ins::Select, 0x04, 0x00)
            .data(vec![0xA0, 0, 0, 3, 8, 0, 0, 0x10, 0])
            .expect_response();
        assert_eq!(ch.transmit(&cmd).unwrap().data.len(), 17);
        card.assert_done();
    }

    #[test]
    fn a_card_that_never_stops_sending_is_cut_off() {
        let mut card = ScriptedCard::endless_61xx();
        let mut ch = Channel::new(&mut card);
        let cmd = Command::new(0, Ins::GetData, 0x3F, 0xFF).expect_response();
        assert!(matches!(ch.transmit(&cmd), Err(CardError::Malformed(_))));
    }

    #[test]
    fn a_response_without_status_word_is_malformed() {
        let mut card = ScriptedCard::t1(&[("00CB3FFF00", "90")]);
        let mut ch = Channel::new(&mut card);
        let cmd = Command::new(0, Ins::GetData, 0x3F, 0xFF).expect_response();
        assert!(matches!(ch.transmit(&cmd), Err(CardError::Malformed(_))));
    }
}
