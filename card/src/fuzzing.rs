//! Entry points for fuzzing (card/fuzz) and for replaying its corpus in `cargo test`: card
//! bytes are untrusted input, so the parsers and the applet code above the transport must
//! survive anything a card (or something pretending to be one) answers.

use crate::session;
use crate::transport::{Channel, Protocol, Transport};
use crate::{certificate, crypto, piv, tlv};

/// A "card" whose answers are slices of the fuzz input: each answer is a length byte and
/// that many bytes; when the input runs out the card answers nothing.
struct FuzzCard<'a> {
    rest: &'a [u8],
    protocol: Protocol,
    exchanges: usize,
}

impl Transport for FuzzCard<'_> {
    fn exchange(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, crate::CardError> {
        self.exchanges += 1;
        if self.exchanges > 2000 {
            return Err(crate::CardError::NoResponse);
        }
        let Some((&len, tail)) = self.rest.split_first() else {
            return Ok(Vec::new());
        };
        let len = usize::from(len).min(tail.len());
        let (answer, tail) = tail.split_at(len);
        self.rest = tail;
        Ok(answer.to_vec())
    }

    fn protocol(&self) -> Protocol {
        self.protocol
    }
}

/// Run the parsers and the card reading code on `data`. Never panics on any input.
pub fn card_data(data: &[u8]) {
    // Pure parsers, straight on the bytes.
    for item in tlv::ber(data) {
        if item.is_err() {
            break;
        }
    }
    let _ = tlv::simple_headers(data);
    let _ = piv::Chuid::parse(data);
    let _ = piv::Ccc::parse(data);
    let _ = piv::KeyHistory::parse(data);
    let _ = certificate::inspect(data);
    let _ = crypto::ecdsa_der_to_fixed(data, 32);
    // The whole read-out of a card that answers with these bytes, under both protocols.
    for protocol in [Protocol::T1, Protocol::T0] {
        let mut card = FuzzCard {
            rest: data,
            protocol,
            exchanges: 0,
        };
        let mut channel = Channel::new(&mut card);
        let _ = session::read_contents(&mut channel);
    }
}
