//! The PC/SC calls the backend makes, as a seam: [`SystemPcsc`] is pcsc-lite (or WinSCard)
//! through the `pcsc` crate; tests put a scripted service in its place
//! (`testing::ScriptedPcsc`), so that the backend's retry, release and cache rules run down
//! to the APDUs without a reader.
//!
//! The seam is as thin as the calls: each method is one PC/SC function, with PC/SC's own
//! errors. Every rule about what to do with them stays in the backend.

use std::ffi::CStr;
use std::time::Duration;

use pcsc::{Card, Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

use crate::transport::Protocol;

/// A PC/SC service: where contexts come from.
pub trait Pcsc: Clone + Send {
    type Context: PcscContext;
    /// SCardEstablishContext.
    fn establish(&self) -> Result<Self::Context, pcsc::Error>;
}

/// What a reader shows without anyone talking to its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderView {
    /// A card is there and answered its reset (not mute).
    pub powered_card: bool,
    /// pcsc-lite's per-reader event counter: it moves when a card comes or goes.
    pub event_count: u32,
    pub atr: Vec<u8>,
}

/// One context of a PC/SC service.
pub trait PcscContext: Clone + Send {
    type Card: PcscCard;
    /// SCardListReaders.
    fn reader_names(&self) -> Result<Vec<String>, pcsc::Error>;
    /// SCardGetStatusChange with no wait.
    fn reader_view(&self, reader: &CStr) -> Result<ReaderView, pcsc::Error>;
    /// SCardConnect, shared, T=0 or T=1.
    fn connect(&self, reader: &CStr) -> Result<Self::Card, pcsc::Error>;
}

/// A connected card.
pub trait PcscCard: Send {
    type Transaction<'a>: PcscTransaction
    where
        Self: 'a;
    /// SCardReconnect, shared, T=0 or T=1, leaving the card as it is.
    fn reconnect(&mut self) -> Result<(), pcsc::Error>;
    /// The protocol SCardStatus reports.
    fn protocol(&mut self) -> Result<Protocol, pcsc::Error>;
    /// SCardBeginTransaction. Dropping the transaction ends it leaving the card as it is.
    fn transaction(&mut self) -> Result<Self::Transaction<'_>, pcsc::Error>;
    /// SCardDisconnect leaving the card as it is, never resetting it (whatever fails).
    fn disconnect(self);
}

/// A transaction on a connected card.
pub trait PcscTransaction {
    /// SCardTransmit; the answer is written into `buffer`.
    fn transmit<'b>(&self, apdu: &[u8], buffer: &'b mut [u8]) -> Result<&'b [u8], pcsc::Error>;
    /// SCardEndTransaction with a reset: the only way to log out a card that has no logout.
    fn end_with_reset(self) -> Result<(), pcsc::Error>;
}

/// The system's PC/SC service.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemPcsc;

impl Pcsc for SystemPcsc {
    type Context = Context;

    fn establish(&self) -> Result<Context, pcsc::Error> {
        Context::establish(Scope::User)
    }
}

impl PcscContext for Context {
    type Card = Card;

    fn reader_names(&self) -> Result<Vec<String>, pcsc::Error> {
        Ok(self
            .list_readers_owned()?
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn reader_view(&self, reader: &CStr) -> Result<ReaderView, pcsc::Error> {
        let mut states = [ReaderState::new(reader.to_owned(), State::UNAWARE)];
        self.get_status_change(Duration::ZERO, &mut states)?;
        let state = &states[0];
        Ok(ReaderView {
            powered_card: state.event_state().contains(State::PRESENT)
                && !state.event_state().contains(State::MUTE),
            event_count: state.event_count(),
            atr: state.atr().to_vec(),
        })
    }

    fn connect(&self, reader: &CStr) -> Result<Card, pcsc::Error> {
        Context::connect(self, reader, ShareMode::Shared, Protocols::ANY)
    }
}

impl PcscCard for Card {
    type Transaction<'a> = pcsc::Transaction<'a>;

    fn reconnect(&mut self) -> Result<(), pcsc::Error> {
        Card::reconnect(
            self,
            ShareMode::Shared,
            Protocols::ANY,
            Disposition::LeaveCard,
        )
    }

    fn protocol(&mut self) -> Result<Protocol, pcsc::Error> {
        Ok(match self.status2_owned()?.protocol2() {
            Some(pcsc::Protocol::T0) => Protocol::T0,
            _ => Protocol::T1,
        })
    }

    fn transaction(&mut self) -> Result<pcsc::Transaction<'_>, pcsc::Error> {
        Card::transaction(self)
    }

    fn disconnect(self) {
        if let Err((card, err)) = Card::disconnect(self, Disposition::LeaveCard) {
            // The card is gone or pcscd is: nothing to leave. Dropping `card` now would reset
            // the card (the pcsc crate's drop), so forget it instead of letting its Drop run.
            tracing::debug!(%err, "disconnect failed");
            std::mem::forget(card);
        }
    }
}

impl PcscTransaction for pcsc::Transaction<'_> {
    fn transmit<'b>(&self, apdu: &[u8], buffer: &'b mut [u8]) -> Result<&'b [u8], pcsc::Error> {
        Card::transmit(self, apdu, buffer)
    }

    fn end_with_reset(self) -> Result<(), pcsc::Error> {
        // On failure the transaction comes back and its drop ends it leaving the card.
        self.end(Disposition::ResetCard).map_err(|(_, err)| err)
    }
}
