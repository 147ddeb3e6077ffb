//! A scripted card for unit tests: it expects exact APDUs in order and replays the recorded
//! answers, so the real applet code above the transport runs against a known transcript.

use crate::error::CardError;
use crate::transport::{Protocol, Transport};

pub struct ScriptedCard {
    protocol: Protocol,
    steps: Vec<(Vec<u8>, Vec<u8>)>,
    next: usize,
    endless: bool,
}

fn unhex(text: &str) -> Vec<u8> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(compact).expect("transcript hex")
}

impl ScriptedCard {
    fn new(protocol: Protocol, steps: &[(&str, &str)]) -> Self {
        Self {
            protocol,
            steps: steps
                .iter()
                .map(|(command, response)| (unhex(command), unhex(response)))
                .collect(),
            next: 0,
            endless: false,
        }
    }

    pub fn t1(steps: &[(&str, &str)]) -> Self {
        Self::new(Protocol::T1, steps)
    }

    pub fn t0(steps: &[(&str, &str)]) -> Self {
        Self::new(Protocol::T0, steps)
    }

    /// A hostile card that answers every command with 255 bytes and "61FF".
    pub fn endless_61xx() -> Self {
        let mut card = Self::new(Protocol::T1, &[]);
        card.endless = true;
        card
    }

    pub fn assert_done(&self) {
        assert_eq!(
            self.next,
            self.steps.len(),
            "transcript not finished: next expected {}",
            self.steps
                .get(self.next)
                .map(|(c, _)| hex::encode_upper(c))
                .unwrap_or_default()
        );
    }
}

impl Transport for ScriptedCard {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        if self.endless {
            let mut out = vec![0x55; 255];
            out.extend_from_slice(&[0x61, 0xFF]);
            return Ok(out);
        }
        let Some((expected, response)) = self.steps.get(self.next) else {
            panic!(
                "unexpected APDU after the transcript ended: {}",
                hex::encode_upper(apdu)
            );
        };
        assert_eq!(
            hex::encode_upper(apdu),
            hex::encode_upper(expected),
            "APDU #{} differs from the transcript",
            self.next + 1
        );
        self.next += 1;
        Ok(response.clone())
    }

    fn protocol(&self) -> Protocol {
        self.protocol
    }
}
