//! The PC/SC backend: readers through pcscd (or WinSCard), cards through the PIV and CAC
//! applet code, certificates cached per card insertion.
//!
//! Rules kept here, each learnt from real cards and real desks:
//! - connect Shared with T=0 or T=1 (several DoD cards offer T=0 only);
//! - every multi-APDU operation inside one transaction;
//! - always disconnect with LeaveCard: the pcsc crate's drop resets the card, which logs every
//!   other application on it out; the one exception is a card whose PIN cannot be logged out
//!   (legacy CAC, or a PIV card refusing logout): its transaction ends with a reset;
//! - a reset by another program: reconnect, retry once, and only if the card was not swapped;
//! - pcscd restarted: establish a new context;
//! - but never retry once a PIN has left for the card: the card may have counted it, and a
//!   PIN is typed once per request ([`CardError::PinInterrupted`]);
//! - card removed: fail cleanly and forget what was cached.

mod service;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ffi::CString;
use std::time::Duration;

pub use service::{Pcsc, PcscCard, PcscContext, PcscTransaction, ReaderView, SystemPcsc};

use crate::certificate::inspect;
use crate::disk_cache::{CardRecord, DiskCache};
use crate::error::CardError;
use crate::model::{
    CardCertificate, CardInsertion, CardStatus, CardType, Purpose, ReaderStatus, Slot,
};
use crate::pin::Pin;
use crate::session::{self, PinUse, SignatureInput};
use crate::signature_check;
use crate::transport::{Channel, Protocol, Transport};
use crate::Backend;

/// How long a card another program holds exclusively is waited for before `CardInUse`.
const IN_USE_PATIENCE: Duration = Duration::from_secs(2);
/// A card just put back is given this long to settle before its status is read again, this
/// many times at most.
const SETTLE_DELAY: Duration = Duration::from_millis(150);
const SETTLE_TRIES: usize = 4;

/// One insertion of a card: pcsc-lite's per-reader event counter changes when a card comes or
/// goes, so an unchanged counter and ATR mean the same card is still there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Insertion {
    event_count: u32,
    atr: Vec<u8>,
}

/// What is known of one insertion of a card. Certificates are read by purpose, as callers
/// ask: a login reads the authentication certificate alone.
struct CachedCard {
    insertion: Insertion,
    card_type: CardType,
    certificates: Vec<CardCertificate>,
    /// The purposes whose certificates have been read (present or not).
    read: Vec<Purpose>,
    dual_cac: Option<bool>,
}

impl CachedCard {
    fn covers(&self, purpose: Purpose) -> bool {
        self.read.contains(&Purpose::All) || self.read.contains(&purpose)
    }

    /// Every slot read so far, holding a certificate or not.
    fn slots_read(&self) -> Vec<Slot> {
        Slot::PIV_CURRENT
            .iter()
            .chain(Slot::CAC.iter())
            .copied()
            .filter(|slot| self.read.iter().any(|p| p.includes(*slot)))
            .collect()
    }
}

/// The card layer over a PC/SC service: the system's ([`SystemPcsc`]) unless a test puts a
/// scripted one in its place.
pub struct PcscBackend<S: Pcsc = SystemPcsc> {
    service: S,
    context: Option<S::Context>,
    cards: HashMap<String, CachedCard>,
    /// What other processes read of the cards still in their readers (disk_cache.rs).
    disk: Option<DiskCache>,
    apdus: u64,
    /// A PIN went to a card during the current operation: it must not be retried.
    pin_sent: bool,
}

/// A PC/SC error about `reader`: a reader that is not there is named.
fn naming(reader: &str) -> impl FnOnce(pcsc::Error) -> CardError + '_ {
    move |err| match err {
        pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable => {
            CardError::UnknownReader(reader.to_owned())
        }
        other => CardError::from(other),
    }
}

/// After a failed attempt, whether running an operation again is safe and useful.
fn may_retry(error: &CardError, attempts: u32, pin_sent: bool) -> bool {
    attempts == 0 && !pin_sent && matches!(error, CardError::CardReset | CardError::PcscUnavailable)
}

/// The error to report for a failure that cannot be retried.
fn final_error(error: CardError, pin_sent: bool) -> CardError {
    match error {
        CardError::CardReset | CardError::PcscUnavailable if pin_sent => CardError::PinInterrupted,
        other => other,
    }
}

impl Default for PcscBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl PcscBackend {
    pub fn new() -> Self {
        Self::over(SystemPcsc)
    }

    /// A backend that also keeps what it reads in the user's certificate cache, for the next
    /// process to find while the card stays in its reader.
    pub fn with_disk_cache() -> Self {
        Self {
            disk: DiskCache::for_user(),
            ..Self::new()
        }
    }
}

impl<S: Pcsc> PcscBackend<S> {
    /// A backend over `service`, with no disk cache.
    pub fn over(service: S) -> Self {
        Self {
            service,
            context: None,
            cards: HashMap::new(),
            disk: None,
            apdus: 0,
            pin_sent: false,
        }
    }

    fn context(&mut self) -> Result<S::Context, CardError> {
        if let Some(context) = &self.context {
            return Ok(context.clone());
        }
        // No context is no service, whatever the code: a pcscd killed a moment ago leaves its
        // socket behind, and pcsc-lite then answers with odd ones (a "security violation").
        let context = self.service.establish().map_err(|err| {
            tracing::debug!(%err, "no PC/SC context");
            CardError::PcscUnavailable
        })?;
        self.context = Some(context.clone());
        Ok(context)
    }

    /// Run `op`; when the PC/SC service went away (pcscd restarted), establish a new context
    /// and run it once more.
    fn with_service<R>(
        &mut self,
        mut op: impl FnMut(&mut Self) -> Result<R, CardError>,
    ) -> Result<R, CardError> {
        self.pin_sent = false;
        match op(self) {
            Err(CardError::PcscUnavailable) if self.context.is_some() => {
                tracing::info!("PC/SC service lost; establishing a new context");
                self.context = None;
                self.cards.clear();
                if !may_retry(&CardError::PcscUnavailable, 0, self.pin_sent) {
                    return Err(final_error(CardError::PcscUnavailable, self.pin_sent));
                }
                op(self)
            }
            other => other,
        }
    }

    fn reader_names(&mut self) -> Result<Vec<String>, CardError> {
        match self.context()?.reader_names() {
            Ok(names) => Ok(names),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(err) => Err(err.into()),
        }
    }

    /// The card in `reader` right now, without talking to it. `None` when the reader is empty.
    fn insertion(&mut self, reader: &str) -> Result<Option<Insertion>, CardError> {
        let name = CString::new(reader).map_err(|_| CardError::UnknownReader(reader.into()))?;
        let view = self.context()?.reader_view(&name).map_err(naming(reader))?;
        Ok(view.powered_card.then_some(Insertion {
            event_count: view.event_count,
            atr: view.atr,
        }))
    }

    /// Connect to the card in `reader` and run `op` inside one transaction. A reset by another
    /// program is followed by a reconnect and one retry, provided the same card is still there.
    fn with_card<R>(
        &mut self,
        reader: &str,
        mut op: impl FnMut(&mut Channel<'_>) -> Result<R, CardError>,
    ) -> Result<R, CardError> {
        let before = self.insertion(reader)?.ok_or(CardError::NoCard)?;
        let name = CString::new(reader).map_err(|_| CardError::UnknownReader(reader.into()))?;
        // Another program may hold the card exclusively for a moment (middleware reading it):
        // wait a little for it to let go before saying the card is in use.
        let patience = std::time::Instant::now() + IN_USE_PATIENCE;
        let card = loop {
            match self.context()?.connect(&name) {
                Err(pcsc::Error::SharingViolation) if std::time::Instant::now() < patience => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                connected => break connected.map_err(naming(reader))?,
            }
        };
        let mut connection = Connection(Some(card));
        let mut attempt = 0;
        loop {
            let card = connection.card();
            let result = run_transaction(card, &mut op, &mut self.apdus, &mut self.pin_sent);
            match result {
                Err(err)
                    if matches!(err, CardError::CardReset)
                        && !may_retry(&err, attempt, self.pin_sent) =>
                {
                    tracing::warn!(
                        reader,
                        "card reset while it checked the PIN; not sending it again"
                    );
                    return Err(final_error(err, self.pin_sent));
                }
                Err(CardError::CardReset) => {
                    attempt += 1;
                    tracing::info!(reader, "card reset by another program; reconnecting");
                    connection.card().reconnect().map_err(CardError::from)?;
                    if self.insertion(reader)? != Some(before.clone()) {
                        return Err(CardError::CardRemoved);
                    }
                }
                Err(CardError::NoResponse) => {
                    return Err(self.explain_silence(reader, &before));
                }
                other => return other,
            }
        }
    }

    /// A card that stops answering was usually pulled out: pcscd needs a moment to notice.
    fn explain_silence(&mut self, reader: &str, before: &Insertion) -> CardError {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < deadline {
            match self.insertion(reader) {
                Ok(Some(now)) if now == *before => {}
                Ok(_) => return CardError::CardRemoved,
                Err(err) => return err,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        CardError::NoResponse
    }

    /// What is known of the card now in `reader`; a card that changed is forgotten first.
    fn known(&mut self, reader: &str) -> Result<Insertion, CardError> {
        let Some(insertion) = self.insertion(reader)? else {
            self.cards.remove(reader);
            return Err(CardError::NoCard);
        };
        if self
            .cards
            .get(reader)
            .is_some_and(|cached| cached.insertion != insertion)
        {
            self.cards.remove(reader);
        }
        if !self.cards.contains_key(reader) {
            let stored = self
                .disk
                .as_ref()
                .and_then(|disk| disk.load(reader, insertion.event_count, &insertion.atr));
            if let Some(record) = stored {
                tracing::debug!(reader, "certificates from the cache of an earlier process");
                let card = CachedCard {
                    insertion: insertion.clone(),
                    card_type: record.card_type,
                    certificates: inspected(reader, record.certificates).collect(),
                    read: record.read,
                    dual_cac: record.dual_cac,
                };
                self.cards.insert(reader.to_owned(), card);
            }
        }
        Ok(insertion)
    }

    /// Read the cards of several readers at the same time, each on a thread of its own with
    /// its own connection and transaction (one card's operations stay in order; two cards
    /// never wait for each other). What was read joins the cache; the readers whose card
    /// could not be read come back with their error, so that nobody reads them twice.
    fn read_concurrently(
        &mut self,
        readers: &[&String],
        purpose: Purpose,
    ) -> Result<HashMap<String, CardError>, CardError> {
        let mut pending = Vec::new();
        for reader in readers {
            match self.known(reader) {
                Ok(_) if self.cards.get(*reader).is_some_and(|c| c.covers(purpose)) => {}
                Ok(_) => pending.push(reader.as_str()),
                Err(CardError::NoCard) => {}
                Err(err) => return Err(err),
            }
        }
        let mut failed = HashMap::new();
        if pending.len() < 2 {
            return Ok(failed);
        }
        let context = self.context()?;
        let readings: Vec<(&str, Self)> = pending
            .into_iter()
            .map(|reader| {
                let mut one = Self::over(self.service.clone());
                one.context = Some(context.clone());
                if let Some(card) = self.cards.remove(reader) {
                    one.cards.insert(reader.to_owned(), card);
                }
                (reader, one)
            })
            .collect();
        let done: Vec<(&str, Self, Result<(), CardError>)> = std::thread::scope(|scope| {
            let threads: Vec<_> = readings
                .into_iter()
                .map(|(reader, mut one)| {
                    scope.spawn(move || {
                        let result = one.contents_for(reader, purpose).map(|_| ());
                        (reader, one, result)
                    })
                })
                .collect();
            threads
                .into_iter()
                .filter_map(|thread| thread.join().ok())
                .collect()
        });
        for (reader, mut one, result) in done {
            self.apdus += one.apdus;
            if let Some(card) = one.cards.remove(reader) {
                self.cards.insert(reader.to_owned(), card);
                self.persist(reader);
            }
            if let Err(err) = result {
                failed.insert(reader.to_owned(), err);
            }
        }
        Ok(failed)
    }

    /// Hand what is known of the card in `reader` to the disk cache.
    fn persist(&self, reader: &str) {
        let (Some(disk), Some(card)) = (&self.disk, self.cards.get(reader)) else {
            return;
        };
        disk.store(&CardRecord {
            reader: reader.to_owned(),
            event_count: card.insertion.event_count,
            atr: card.insertion.atr.clone(),
            card_type: card.card_type,
            dual_cac: card.dual_cac,
            read: card.read.clone(),
            certificates: card
                .certificates
                .iter()
                .map(|c| (c.slot, c.der.clone()))
                .collect(),
        });
    }

    /// The card in `reader` with the certificates `purpose` needs read: from the cache while
    /// the card stays, else only the slots not read yet on this insertion.
    fn contents_for(&mut self, reader: &str, purpose: Purpose) -> Result<&CachedCard, CardError> {
        let insertion = self.known(reader)?;
        if !self.cards.get(reader).is_some_and(|c| c.covers(purpose)) {
            let known = self
                .cards
                .get(reader)
                .map(CachedCard::slots_read)
                .unwrap_or_default();
            let contents = self.with_card(reader, |ch| session::read_for(ch, purpose, &known));
            let contents = self.forget_on_removal(reader, contents)?;
            let card = self
                .cards
                .entry(reader.to_owned())
                .or_insert_with(|| CachedCard {
                    insertion,
                    card_type: contents.card_type,
                    certificates: Vec::new(),
                    read: Vec::new(),
                    dual_cac: None,
                });
            card.card_type = contents.card_type;
            card.certificates
                .extend(inspected(reader, contents.certificates));
            card.certificates.sort_by_key(|c| c.slot.listing_rank());
            card.read.push(purpose);
            self.persist(reader);
        }
        Ok(self.cards.get(reader).expect("just cached"))
    }

    fn forget_on_removal<R>(
        &mut self,
        reader: &str,
        result: Result<R, CardError>,
    ) -> Result<R, CardError> {
        if let Err(CardError::CardRemoved | CardError::NoCard) = &result {
            self.cards.remove(reader);
        }
        result
    }

    /// The card type, PIN state and dual-CAC flag of the card in `reader`, from the card.
    fn probe_status(
        &mut self,
        reader: &str,
    ) -> Result<(CardType, Option<crate::PinStatus>, bool), CardError> {
        let insertion = self.known(reader)?;
        let known = self.cards.get(reader);
        let (known_type, known_dual) = (known.map(|c| c.card_type), known.and_then(|c| c.dual_cac));
        let (card_type, pin, dual) =
            self.with_card(reader, |ch| session::probe(ch, known_type, known_dual))?;
        let card = self
            .cards
            .entry(reader.to_owned())
            .or_insert_with(|| CachedCard {
                insertion,
                card_type,
                certificates: Vec::new(),
                read: Vec::new(),
                dual_cac: None,
            });
        let learnt = card.dual_cac != Some(dual);
        card.dual_cac = Some(dual);
        if learnt {
            self.persist(reader);
        }
        Ok((card_type, pin, dual))
    }

    fn reader_status(&mut self, reader: &str) -> Result<ReaderStatus, CardError> {
        let Some(insertion) = self.insertion(reader)? else {
            self.cards.remove(reader);
            return Ok(ReaderStatus {
                name: reader.to_owned(),
                card: None,
            });
        };
        let mut status = CardStatus {
            atr: insertion.atr.clone(),
            card_type: CardType::Unknown,
            dual_cac: false,
            pin: None,
            error: None,
            backend: "pcsc",
        };
        let mut detail = self.probe_status(reader);
        // A card put back a moment ago can fail its first power-up ("removed") and vanish from
        // pcscd's view for a moment before it settles: its status is read again (a read:
        // nothing is sent twice). A card that stays away was pulled out.
        let mut present = true;
        for _ in 0..SETTLE_TRIES {
            if present && !matches!(detail, Err(CardError::CardRemoved)) {
                break;
            }
            std::thread::sleep(SETTLE_DELAY);
            match self.insertion(reader)? {
                Some(now) => {
                    present = true;
                    status.atr = now.atr.clone();
                    detail = self.probe_status(reader);
                }
                None => present = false,
            }
        }
        if !present {
            self.cards.remove(reader);
            return Ok(ReaderStatus {
                name: reader.to_owned(),
                card: None,
            });
        }
        let detail = detail.map(|(card_type, pin, dual)| {
            status.card_type = card_type;
            status.pin = pin;
            status.dual_cac = dual;
        });
        match detail {
            Ok(()) => {}
            Err(CardError::PcscUnavailable) => return Err(CardError::PcscUnavailable),
            Err(err) => {
                tracing::info!(reader, %err, "card present but not readable");
                status.error = Some(err);
            }
        }
        Ok(ReaderStatus {
            name: reader.to_owned(),
            card: Some(status),
        })
    }

    /// Sign with the key of `certificate`, the PIN used as `pin` says.
    fn sign_with(
        &mut self,
        certificate: &CardCertificate,
        input: &SignatureInput,
        pin: PinUse<'_>,
    ) -> Result<Vec<u8>, CardError> {
        self.with_service(|backend| {
            let card_type = backend.still_holds(certificate)?;
            let key = certificate.info.key_algorithm;
            let result = backend.with_card(&certificate.reader, |ch| {
                session::sign_input(ch, card_type, certificate.slot, key, input, pin)
            });
            let signature = backend.forget_on_removal(&certificate.reader, result)?;
            if signature_check::made_by(&certificate.der, input, &signature) {
                return Ok(signature);
            }
            // Rewritten in the reader (same insertion, same ATR): the cache, in memory and on
            // disk, describes another card. Forget it; the signature is not handed out.
            tracing::warn!(
                reader = %certificate.reader,
                slot = ?certificate.slot,
                "the card's signature is not the listed certificate's key: its certificates were rewritten; reading it again"
            );
            backend.forget_card(&certificate.reader);
            Err(CardError::CertificatesChanged)
        })
    }

    /// Drop the card in `reader` from the cache, in memory and on disk.
    fn forget_card(&mut self, reader: &str) {
        self.cards.remove(reader);
        if let Some(disk) = &self.disk {
            disk.forget(reader);
        }
    }

    /// The card type of the card in `certificate.reader`, provided that card (this insertion)
    /// still holds the certificate: a card swapped since the listing never signs in its place.
    /// From the cache while the card stays: no APDU.
    fn still_holds(&mut self, certificate: &CardCertificate) -> Result<CardType, CardError> {
        let card = self.contents_for(&certificate.reader, Purpose::of(certificate.slot))?;
        if card
            .certificates
            .iter()
            .any(|c| c.info.id == certificate.info.id && c.slot == certificate.slot)
        {
            Ok(card.card_type)
        } else {
            Err(CardError::CertificateNotFound)
        }
    }
}

impl<S: Pcsc> Backend for PcscBackend<S> {
    fn name(&self) -> &'static str {
        "pcsc"
    }

    fn readers(&mut self) -> Result<Vec<ReaderStatus>, CardError> {
        self.with_service(|backend| {
            let names = backend.reader_names()?;
            names
                .iter()
                .map(|name| backend.reader_status(name))
                .collect()
        })
    }

    fn presence(&mut self) -> Result<Vec<(String, bool)>, CardError> {
        self.with_service(|backend| {
            let names = backend.reader_names()?;
            names
                .into_iter()
                .map(|name| {
                    let present = backend.insertion(&name)?.is_some();
                    if !present {
                        backend.cards.remove(&name);
                    }
                    Ok((name, present))
                })
                .collect()
        })
    }

    fn certificates(&mut self, reader: Option<&str>) -> Result<Vec<CardCertificate>, CardError> {
        self.certificates_for(reader, Purpose::All)
    }

    fn certificates_for(
        &mut self,
        reader: Option<&str>,
        purpose: Purpose,
    ) -> Result<Vec<CardCertificate>, CardError> {
        self.with_service(|backend| {
            let names = backend.reader_names()?;
            if names.is_empty() {
                return Err(CardError::NoReader);
            }
            let selected: Vec<&String> = match reader {
                Some(wanted) => {
                    let found: Vec<&String> = names.iter().filter(|n| *n == wanted).collect();
                    if found.is_empty() {
                        return Err(CardError::UnknownReader(wanted.to_owned()));
                    }
                    found
                }
                None => names.iter().collect(),
            };
            let mut failed = backend.read_concurrently(&selected, purpose)?;
            let mut certificates = Vec::new();
            let mut first_error = None;
            let mut cards_seen = 0;
            for name in selected {
                let contents = match failed.remove(name.as_str()) {
                    Some(err) => Err(err),
                    None => backend.contents_for(name, purpose),
                };
                match contents {
                    Ok(cached) => {
                        cards_seen += 1;
                        certificates.extend(
                            cached
                                .certificates
                                .iter()
                                .filter(|c| purpose.includes(c.slot))
                                .cloned(),
                        );
                    }
                    Err(CardError::NoCard) => {}
                    Err(CardError::PcscUnavailable) => return Err(CardError::PcscUnavailable),
                    Err(err) => {
                        tracing::info!(reader = %name, %err, "cannot read the card");
                        first_error.get_or_insert(err);
                    }
                }
            }
            match (cards_seen, first_error) {
                (0, Some(err)) => Err(err),
                (0, None) => Err(CardError::NoCard),
                _ => Ok(certificates),
            }
        })
    }

    fn sign_input(
        &mut self,
        certificate: &CardCertificate,
        input: &SignatureInput,
        pin: Option<&Pin>,
    ) -> Result<Vec<u8>, CardError> {
        let pin = pin.map_or(PinUse::Standing, PinUse::Verify);
        self.sign_with(certificate, input, pin)
    }

    fn insertion(&mut self, reader: &str) -> Result<Option<CardInsertion>, CardError> {
        self.with_service(|backend| {
            Ok(backend
                .insertion(reader)?
                .map(|insertion| CardInsertion::new(reader, insertion.event_count, &insertion.atr)))
        })
    }

    fn verify_pin(&mut self, reader: &str, pin: &Pin) -> Result<(), CardError> {
        self.with_service(|backend| {
            let card_type = backend
                .contents_for(reader, Purpose::Authentication)?
                .card_type;
            let result = backend.with_card(reader, |ch| session::verify_pin(ch, card_type, pin));
            backend.forget_on_removal(reader, result)
        })
    }

    fn forget(&mut self, reader: &str) -> Result<(), CardError> {
        self.forget_card(reader);
        Ok(())
    }

    fn apdu_count(&self) -> u64 {
        self.apdus
    }
}

/// The certificates read from the card in `reader`; one that does not parse is skipped (and
/// logged), so that it cannot hide the others.
fn inspected(
    reader: &str,
    read: Vec<(Slot, Vec<u8>)>,
) -> impl Iterator<Item = CardCertificate> + '_ {
    read.into_iter()
        .filter_map(move |(slot, der)| match inspect(&der) {
            Ok(info) => Some(CardCertificate {
                reader: reader.to_owned(),
                slot,
                der,
                info,
            }),
            Err(err) => {
                tracing::warn!(reader, ?slot, %err, "skipping certificate");
                None
            }
        })
}

fn run_transaction<C: PcscCard, R>(
    card: &mut C,
    op: &mut impl FnMut(&mut Channel<'_>) -> Result<R, CardError>,
    apdus: &mut u64,
    pin_sent: &mut bool,
) -> Result<R, CardError> {
    let protocol = card.protocol().map_err(CardError::from)?;
    let transaction = card.transaction().map_err(CardError::from)?;
    let mut transport = PcscTransport {
        transaction: &transaction,
        protocol,
        buffer: vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED],
    };
    let mut channel = Channel::new(&mut transport);
    let result = op(&mut channel);
    *apdus += u64::from(channel.apdu_count());
    *pin_sent |= channel.secret_sent();
    if channel.reset_requested() {
        // The PIN must not stay verified (a legacy CAC, or a PIV card refusing logout).
        if let Err(err) = transaction.end_with_reset() {
            tracing::warn!(%err, "could not reset the card after signing");
        }
    } else {
        // Dropping the transaction ends it with LeaveCard.
        drop(transaction);
    }
    result
}

struct PcscTransport<'a, T> {
    transaction: &'a T,
    protocol: Protocol,
    buffer: Vec<u8>,
}

impl<T: PcscTransaction> Transport for PcscTransport<'_, T> {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        match self.transaction.transmit(apdu, &mut self.buffer) {
            Ok(response) => Ok(response.to_vec()),
            Err(err) => Err(err.into()),
        }
    }

    fn protocol(&self) -> Protocol {
        self.protocol
    }
}

/// A connected card that is always released with LeaveCard.
struct Connection<C: PcscCard>(Option<C>);

impl<C: PcscCard> Connection<C> {
    fn card(&mut self) -> &mut C {
        self.0.as_mut().expect("connected until dropped")
    }
}

impl<C: PcscCard> Drop for Connection<C> {
    fn drop(&mut self) {
        if let Some(card) = self.0.take() {
            card.disconnect();
        }
    }
}
