//! A scripted PC/SC service for the PC/SC backend's own tests, the way web-eid-app's
//! `PcscMock` stands in for pcsc-lite: readers, cards that come and go (pcsc-lite's event
//! counter moves with each), cards that answer with a [`ScriptedCard`] transcript, and the
//! faults real desks produce: another program resetting the card, a card pulled out
//! mid-command, a card held exclusively for a moment, pcscd restarted. It records every
//! connection, transaction and release, so that a test can check how the card was left.

use std::ffi::CStr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::pcsc_backend::{Pcsc, PcscCard, PcscContext, PcscTransaction, ReaderView};
use crate::transport::{Protocol, Transport};

use super::ScriptedCard;

/// What the service was asked to do with a card, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcscEvent {
    Established,
    Connected(String),
    Reconnected(String),
    Began(String),
    /// The transaction ended leaving the card as it was.
    EndedLeaving(String),
    EndedWithReset(String),
    /// Disconnected leaving the card as it was (the only way this seam disconnects).
    Disconnected(String),
}

struct Inserted {
    atr: Vec<u8>,
    card: ScriptedCard,
    /// Resets of this card so far (by another program or by a transaction's end).
    resets: u32,
}

struct Reader {
    name: String,
    event_count: u32,
    card: Option<Inserted>,
}

#[derive(Default)]
struct World {
    readers: Vec<Reader>,
    /// Which incarnation of pcscd is running; `None` while it is stopped.
    incarnation: Option<u32>,
    /// The APDU (counted from 1 when scheduled) that another program's reset cuts off.
    reset_at: Option<usize>,
    /// The APDU during which the card is pulled out.
    removal_at: Option<usize>,
    apdus: usize,
    refusals: u32,
    events: Vec<PcscEvent>,
}

impl World {
    fn reader(&mut self, name: &str) -> Result<&mut Reader, pcsc::Error> {
        self.readers
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or(pcsc::Error::UnknownReader)
    }
}

/// The service; clones share one world.
#[derive(Clone)]
pub struct ScriptedPcsc {
    world: Arc<Mutex<World>>,
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    // A transcript mismatch panics with the lock held; the next test assertion should still
    // see the world.
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for ScriptedPcsc {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedPcsc {
    /// A running service with no reader.
    pub fn new() -> Self {
        let world = World {
            incarnation: Some(1),
            ..World::default()
        };
        Self {
            world: Arc::new(Mutex::new(world)),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    pub fn add_reader(&self, name: &str) {
        self.world().readers.push(Reader {
            name: name.to_owned(),
            event_count: 0,
            card: None,
        });
    }

    /// Put `card` into `reader` (taking out whatever card was there).
    pub fn insert(&self, reader: &str, atr: &[u8], card: ScriptedCard) {
        let mut world = self.world();
        let slot = world.reader(reader).expect("a scripted reader");
        slot.event_count += if slot.card.is_some() { 2 } else { 1 };
        slot.card = Some(Inserted {
            atr: atr.to_vec(),
            card,
            resets: 0,
        });
    }

    /// Take the card out of `reader`, checking that its transcript was played to the end.
    pub fn remove(&self, reader: &str) {
        let mut world = self.world();
        let slot = world.reader(reader).expect("a scripted reader");
        if let Some(inserted) = slot.card.take() {
            inserted.card.assert_done();
            slot.event_count += 1;
        }
    }

    /// Another program resets the card while APDU `n` (from now, counting from 1) is on its
    /// way: that APDU fails with "card reset" and is not seen by the card.
    pub fn reset_at_apdu(&self, n: usize) {
        let mut world = self.world();
        world.reset_at = Some(world.apdus + n);
    }

    /// The card is pulled out while APDU `n` (from now, counting from 1) is on its way.
    pub fn remove_at_apdu(&self, n: usize) {
        let mut world = self.world();
        world.removal_at = Some(world.apdus + n);
    }

    /// The next `times` connections meet a card another program holds exclusively.
    pub fn refuse_connections(&self, times: u32) {
        self.world().refusals = times;
    }

    /// pcscd stops and starts again: every context established before is dead.
    pub fn restart_service(&self) {
        let mut world = self.world();
        world.incarnation = Some(world.incarnation.unwrap_or(0) + 1);
    }

    /// pcscd stops and stays away.
    pub fn stop_service(&self) {
        self.world().incarnation = None;
    }

    /// What happened so far, and forget it.
    pub fn take_events(&self) -> Vec<PcscEvent> {
        std::mem::take(&mut self.world().events)
    }

    /// APDUs that reached a card so far.
    pub fn apdus(&self) -> usize {
        self.world().apdus
    }

    /// Every card still inserted has played its transcript to the end.
    pub fn assert_transcripts_done(&self) {
        for reader in &self.world().readers {
            if let Some(inserted) = &reader.card {
                inserted.card.assert_done();
            }
        }
    }
}

impl Pcsc for ScriptedPcsc {
    type Context = ScriptedContext;

    fn establish(&self) -> Result<ScriptedContext, pcsc::Error> {
        let mut world = self.world();
        let incarnation = world.incarnation.ok_or(pcsc::Error::NoService)?;
        world.events.push(PcscEvent::Established);
        Ok(ScriptedContext {
            world: Arc::clone(&self.world),
            incarnation,
        })
    }
}

#[derive(Clone)]
pub struct ScriptedContext {
    world: Arc<Mutex<World>>,
    incarnation: u32,
}

impl ScriptedContext {
    /// The world, provided the pcscd this context was established with still runs.
    fn live(&self) -> Result<MutexGuard<'_, World>, pcsc::Error> {
        let world = lock(&self.world);
        if world.incarnation == Some(self.incarnation) {
            Ok(world)
        } else {
            Err(pcsc::Error::NoService)
        }
    }
}

fn reader_name(reader: &CStr) -> Result<String, pcsc::Error> {
    reader
        .to_str()
        .map(str::to_owned)
        .map_err(|_| pcsc::Error::UnknownReader)
}

impl PcscContext for ScriptedContext {
    type Card = ScriptedHandle;

    fn reader_names(&self) -> Result<Vec<String>, pcsc::Error> {
        let world = self.live()?;
        if world.readers.is_empty() {
            return Err(pcsc::Error::NoReadersAvailable);
        }
        Ok(world.readers.iter().map(|r| r.name.clone()).collect())
    }

    fn reader_view(&self, reader: &CStr) -> Result<ReaderView, pcsc::Error> {
        let mut world = self.live()?;
        let reader = world.reader(&reader_name(reader)?)?;
        Ok(ReaderView {
            powered_card: reader.card.is_some(),
            event_count: reader.event_count,
            atr: reader
                .card
                .as_ref()
                .map(|c| c.atr.clone())
                .unwrap_or_default(),
        })
    }

    fn connect(&self, reader: &CStr) -> Result<ScriptedHandle, pcsc::Error> {
        let name = reader_name(reader)?;
        let mut world = self.live()?;
        if world.refusals > 0 {
            world.refusals -= 1;
            return Err(pcsc::Error::SharingViolation);
        }
        let slot = world.reader(&name)?;
        let event_count = slot.event_count;
        let resets = slot.card.as_ref().ok_or(pcsc::Error::NoSmartcard)?.resets;
        world.events.push(PcscEvent::Connected(name.clone()));
        Ok(ScriptedHandle {
            context: self.clone(),
            reader: name,
            event_count,
            resets,
        })
    }
}

/// A connection to the card in one reader, for as long as that card stays.
pub struct ScriptedHandle {
    context: ScriptedContext,
    reader: String,
    /// The reader's event count when the card was connected: this insertion.
    event_count: u32,
    /// The card's resets this handle has been told of.
    resets: u32,
}

impl ScriptedHandle {
    /// The world and this handle's card, with PC/SC's answer when either is gone or the card
    /// was reset since this handle last heard of it.
    fn card<'w>(
        &self,
        world: &'w mut World,
    ) -> Result<(&'w mut Inserted, &'w mut Vec<PcscEvent>), pcsc::Error> {
        let World {
            readers, events, ..
        } = world;
        let reader = readers
            .iter_mut()
            .find(|r| r.name == self.reader)
            .ok_or(pcsc::Error::ReaderUnavailable)?;
        if reader.event_count != self.event_count {
            return Err(pcsc::Error::RemovedCard);
        }
        let inserted = reader.card.as_mut().ok_or(pcsc::Error::RemovedCard)?;
        if inserted.resets != self.resets {
            return Err(pcsc::Error::ResetCard);
        }
        Ok((inserted, events))
    }
}

impl PcscCard for ScriptedHandle {
    type Transaction<'a> = ScriptedTransaction<'a>;

    fn reconnect(&mut self) -> Result<(), pcsc::Error> {
        let context = self.context.clone();
        let mut world = context.live()?;
        let reader = world.reader(&self.reader)?;
        if reader.event_count != self.event_count {
            return Err(pcsc::Error::RemovedCard);
        }
        let resets = reader.card.as_ref().ok_or(pcsc::Error::RemovedCard)?.resets;
        self.resets = resets;
        world
            .events
            .push(PcscEvent::Reconnected(self.reader.clone()));
        Ok(())
    }

    fn protocol(&mut self) -> Result<Protocol, pcsc::Error> {
        let context = self.context.clone();
        let mut world = context.live()?;
        let (inserted, _) = self.card(&mut world)?;
        Ok(inserted.card.protocol())
    }

    fn transaction(&mut self) -> Result<ScriptedTransaction<'_>, pcsc::Error> {
        let context = self.context.clone();
        let mut world = context.live()?;
        let (_, events) = self.card(&mut world)?;
        events.push(PcscEvent::Began(self.reader.clone()));
        Ok(ScriptedTransaction {
            handle: self,
            reset: false,
        })
    }

    fn disconnect(self) {
        lock(&self.context.world)
            .events
            .push(PcscEvent::Disconnected(self.reader.clone()));
    }
}

pub struct ScriptedTransaction<'a> {
    handle: &'a mut ScriptedHandle,
    reset: bool,
}

impl PcscTransaction for ScriptedTransaction<'_> {
    fn transmit<'b>(&self, apdu: &[u8], buffer: &'b mut [u8]) -> Result<&'b [u8], pcsc::Error> {
        let mut world = self.handle.context.live()?;
        world.apdus += 1;
        let now = world.apdus;
        if world.removal_at == Some(now) {
            world.removal_at = None;
            let reader = world.reader(&self.handle.reader)?;
            if reader.card.take().is_some() {
                reader.event_count += 1;
            }
            return Err(pcsc::Error::RemovedCard);
        }
        if world.reset_at == Some(now) {
            world.reset_at = None;
            let (inserted, _) = self.handle.card(&mut world)?;
            inserted.resets += 1;
            return Err(pcsc::Error::ResetCard);
        }
        let (inserted, _) = self.handle.card(&mut world)?;
        let answer = inserted
            .card
            .exchange(apdu)
            .map_err(|_| pcsc::Error::CommError)?;
        let out = buffer
            .get_mut(..answer.len())
            .ok_or(pcsc::Error::InsufficientBuffer)?;
        out.copy_from_slice(&answer);
        Ok(out)
    }

    fn end_with_reset(mut self) -> Result<(), pcsc::Error> {
        self.reset = true;
        let mut world = self.handle.context.live()?;
        let (inserted, _) = self.handle.card(&mut world)?;
        inserted.resets += 1;
        // This handle did the reset: it is not told of it.
        self.handle.resets = inserted.resets;
        Ok(())
    }
}

impl Drop for ScriptedTransaction<'_> {
    fn drop(&mut self) {
        let reader = self.handle.reader.clone();
        let event = if self.reset {
            PcscEvent::EndedWithReset(reader)
        } else {
            PcscEvent::EndedLeaving(reader)
        };
        lock(&self.handle.context.world).events.push(event);
    }
}
