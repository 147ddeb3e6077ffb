//! The module's state and rules, in safe Rust: slots (one per reader), tokens (a card in a
//! reader), sessions and object searches, over the card layer's [`Backend`]. `ffi.rs` turns C
//! calls into calls here and results into `CK_RV`s.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

use cryptoki_sys::*;

use cacbridge_card::crypto::ecdsa_der_to_fixed;
use cacbridge_card::monitor::{self, Monitor};
use cacbridge_card::ReaderEvent;
use cacbridge_card::{Backend, CardCertificate, CardError, KeyAlgorithm, Pin};

use crate::mechanisms;
use crate::objects::{objects_for, Object};
use crate::window::WindowSigner;

pub use crate::Rv;

/// The return value for a card-layer error.
pub fn rv_of(err: &CardError) -> Rv {
    match err {
        CardError::NoCard => CKR_TOKEN_NOT_PRESENT,
        CardError::CardRemoved => CKR_DEVICE_REMOVED,
        CardError::NoReader | CardError::UnknownReader(_) => CKR_SLOT_ID_INVALID,
        CardError::PinIncorrect { .. } => CKR_PIN_INCORRECT,
        CardError::PinBlocked => CKR_PIN_LOCKED,
        CardError::PinFormat => CKR_PIN_LEN_RANGE,
        CardError::PinRequired => CKR_USER_NOT_LOGGED_IN,
        CardError::KeyNotUsable(_) => CKR_KEY_FUNCTION_NOT_PERMITTED,
        CardError::CertificateNotFound => CKR_OBJECT_HANDLE_INVALID,
        // Rewritten in the reader: for the caller, the token it knew is gone (NSS then reads the
        // slot's token again, and finds the new certificates).
        CardError::CertificatesChanged => CKR_DEVICE_REMOVED,
        // Every other fault of the card, its reader or the service.
        CardError::CardInUse
        | CardError::CardReset
        | CardError::PinInterrupted
        | CardError::PcscUnavailable
        | CardError::Pcsc(_)
        | CardError::UnsupportedCard(_)
        | CardError::CardStatus { .. }
        | CardError::NoResponse
        | CardError::Timeout
        | CardError::Malformed(_)
        | CardError::Module(_) => CKR_DEVICE_ERROR,
    }
}

/// How a signature operation ends.
pub enum Finished {
    /// The card signed (the PKCS#11 form of the signature).
    Signed(Vec<u8>),
    /// CAC Bridge's window collects the PIN first: [`WindowSignature::complete`] runs without
    /// the module's lock, so the browser's other PKCS#11 calls (its other connections, its
    /// slot polling) do not wait for the person to type.
    InWindow(Box<WindowSignature>),
}

impl Finished {
    /// The signature, asking the window first where it must.
    pub fn complete(self) -> Result<Vec<u8>, Rv> {
        match self {
            Finished::Signed(signature) => Ok(signature),
            Finished::InWindow(pending) => pending.complete(),
        }
    }

    /// The reader of a signature the window makes (whose card the host may find changed).
    pub fn window_reader(&self) -> Option<&str> {
        match self {
            Finished::Signed(_) => None,
            Finished::InWindow(pending) => Some(&pending.certificate.reader),
        }
    }
}

/// A signature waiting for the PIN typed in CAC Bridge's window.
pub struct WindowSignature {
    window: Arc<dyn WindowSigner>,
    certificate: CardCertificate,
    input: cacbridge_card::SignatureInput,
}

impl WindowSignature {
    /// Ask the window (through the host) and return the signature in PKCS#11's form.
    pub fn complete(self) -> Result<Vec<u8>, Rv> {
        let signature = self.window.sign(&self.certificate, &self.input)?;
        pkcs11_signature(self.certificate.info.key_algorithm, signature)
    }
}

/// A card's signature as PKCS#11 gives it: RSA as is, ECDSA as r || s.
fn pkcs11_signature(key: KeyAlgorithm, signature: Vec<u8>) -> Result<Vec<u8>, Rv> {
    match key {
        KeyAlgorithm::Rsa { .. } => Ok(signature),
        ec => ecdsa_der_to_fixed(&signature, ec.size_bytes()).map_err(|_| CKR_DEVICE_ERROR),
    }
}

/// Handles of one slot's objects: slot in the high bits, so a handle names its token.
const HANDLES_PER_SLOT: CK_OBJECT_HANDLE = 1 << 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub description: String,
    pub token_present: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The cardholder's name, from the authentication certificate's CN.
    pub label: String,
    pub serial: String,
    pub model: String,
    /// `CKF_USER_PIN_COUNT_LOW`, `CKF_USER_PIN_FINAL_TRY`, `CKF_USER_PIN_LOCKED` as the card
    /// says (a legacy CAC keeps no counter: none).
    pub pin_flags: CK_FLAGS,
}

struct Session {
    slot: CK_SLOT_ID,
    /// Opened read/write (the token has nothing to write, but programs such as OpenSC's
    /// p11test ask for it and a PIV module customarily grants it; writes are not offered).
    read_write: bool,
    /// The results of the current search, not yet returned.
    found: Option<Vec<CK_OBJECT_HANDLE>>,
    /// The signature being made: key, mechanism, data so far.
    signing: Option<Signing>,
}

struct Signing {
    certificate: CardCertificate,
    mechanism: CK_MECHANISM_TYPE,
    pss: Option<mechanisms::PssParams>,
    data: Vec<u8>,
}

/// Readers whose card came or went, as the reader monitor saw them, for `C_WaitForSlotEvent`.
#[derive(Default)]
pub struct SlotEvents {
    readers: Mutex<VecDeque<String>>,
    arrived: Condvar,
}

impl SlotEvents {
    /// The next reader with an event, waiting up to `timeout` for one.
    pub fn next(&self, timeout: std::time::Duration) -> Option<String> {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.is_empty() {
            readers = self
                .arrived
                .wait_timeout(readers, timeout)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        readers.pop_front()
    }

    fn push(&self, reader: String) {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        // A caller that never asks must not grow this without bound.
        if readers.len() < 256 {
            readers.push_back(reader);
        }
        self.arrived.notify_all();
    }
}

/// A token's login: the PIN, and the card it was checked on (its certificates' ids), so that
/// a PIN is never sent to another card put into the same reader.
struct Login {
    pin: Pin,
    card: Vec<String>,
}

pub struct Module {
    token: Box<dyn Backend>,
    /// Started by the first `C_WaitForSlotEvent`; stops when the module is finalized.
    monitor: Option<Monitor>,
    events: Arc<SlotEvents>,
    /// Reader names by slot id - 1. Append-only: a reader keeps its slot id while the module
    /// is loaded, even if it goes away and comes back.
    readers: Vec<String>,
    sessions: HashMap<CK_SESSION_HANDLE, Session>,
    next_session: CK_SESSION_HANDLE,
    /// The PIN of each logged-in token, checked on the card at `C_Login` and wiped at
    /// `C_Logout` (a `Pin` zeroizes itself). The card is never left verified: each signature
    /// verifies and logs out again in one transaction.
    logged_in: HashMap<CK_SLOT_ID, Login>,
    /// Each slot's objects, built once per set of certificates (callers read attributes one
    /// at a time, dozens of times).
    objects: HashMap<CK_SLOT_ID, (Vec<String>, Vec<Object>)>,
    /// In a browser: CAC Bridge's window collects the PIN for each signature that needs one,
    /// so the browser never logs in (and never shows its own prompt).
    window: Option<Arc<dyn WindowSigner>>,
}

impl Module {
    pub fn new(token: Box<dyn Backend>) -> Self {
        Self {
            token,
            monitor: None,
            events: Arc::new(SlotEvents::default()),
            readers: Vec::new(),
            sessions: HashMap::new(),
            next_session: 1,
            logged_in: HashMap::new(),
            objects: HashMap::new(),
            window: None,
        }
    }

    /// The module as a browser loads it: no login, the PIN typed in CAC Bridge's window.
    pub fn for_browser(token: Box<dyn Backend>, window: Arc<dyn WindowSigner>) -> Self {
        Self {
            window: Some(window),
            ..Self::new(token)
        }
    }

    /// Whether callers must `C_Login` before using private keys (`CKF_LOGIN_REQUIRED`): yes,
    /// unless CAC Bridge's window asks for the PIN (loaded under the browsers' name). Fixed for
    /// the module's life: NSS reads it once per token insertion, usually at browser start.
    pub fn login_required(&self) -> bool {
        self.window.is_none()
    }

    /// The readers now connected, each given a slot id on first sight.
    fn connected(&mut self) -> Result<Vec<(CK_SLOT_ID, bool)>, Rv> {
        // Presence only: no card is asked anything (slot lists are asked for often).
        let readers = match self.token.presence() {
            Ok(readers) => readers,
            Err(CardError::NoReader) => Vec::new(),
            Err(err) => return Err(rv_of(&err)),
        };
        Ok(readers
            .iter()
            .map(|(name, present)| (self.slot_of(name), *present))
            .collect())
    }

    /// The reader behind `slot`. A caller may name a slot it has not listed in this process
    /// (it remembered the id, or `C_GetSlotInfo` told it): the readers are then looked up once
    /// before the id is refused, so that every function accepts the ids the slot list gives.
    fn reader(&mut self, slot: CK_SLOT_ID) -> Result<String, Rv> {
        let index = usize::try_from(slot)
            .ok()
            .and_then(|index| index.checked_sub(1))
            .ok_or(CKR_SLOT_ID_INVALID)?;
        if index >= self.readers.len() {
            self.connected()?;
        }
        self.readers.get(index).cloned().ok_or(CKR_SLOT_ID_INVALID)
    }

    /// The slot events, with the reader monitor running (started on first use: it has a thread
    /// and a PC/SC context of its own, so the card lane is never used for watching).
    pub fn slot_events(&mut self) -> Arc<SlotEvents> {
        if self.monitor.is_none() {
            let events = Arc::clone(&self.events);
            self.monitor = Some(monitor::watch(move |event| {
                let reader = match event {
                    ReaderEvent::ReaderAdded { reader }
                    | ReaderEvent::ReaderRemoved { reader }
                    | ReaderEvent::CardInserted { reader, .. }
                    | ReaderEvent::CardRemoved { reader } => reader,
                };
                events.push(reader);
                true
            }));
        }
        Arc::clone(&self.events)
    }

    /// The slot id of `reader`, given one on first sight.
    pub fn slot_of(&mut self, reader: &str) -> CK_SLOT_ID {
        let index = match self.readers.iter().position(|r| r == reader) {
            Some(index) => index,
            None => {
                self.readers.push(reader.to_owned());
                self.readers.len() - 1
            }
        };
        index as CK_SLOT_ID + 1
    }

    pub fn slot_list(&mut self, token_present: bool) -> Result<Vec<CK_SLOT_ID>, Rv> {
        Ok(self
            .connected()?
            .into_iter()
            .filter(|(_, present)| !token_present || *present)
            .map(|(slot, _)| slot)
            .collect())
    }

    pub fn slot_info(&mut self, slot: CK_SLOT_ID) -> Result<SlotInfo, Rv> {
        let connected = self.connected()?;
        let present = connected
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, present)| *present);
        let description = self.reader(slot)?;
        Ok(SlotInfo {
            description,
            token_present: present.unwrap_or(false),
        })
    }

    pub fn token_info(&mut self, slot: CK_SLOT_ID) -> Result<TokenInfo, Rv> {
        let reader = self.reader(slot)?;
        let certificates = self
            .token
            .certificates(Some(&reader))
            .map_err(|e| rv_of(&e))?;
        let holder = certificates
            .iter()
            .find(|c| c.slot.is_authentication())
            .or(certificates.first());
        let label = holder
            .and_then(|c| c.info.common_name.clone())
            .unwrap_or_else(|| "CAC".into());
        let serial = holder
            .map(|c| c.info.id[..16].to_uppercase())
            .unwrap_or_default();
        let model = if certificates
            .iter()
            .any(|c| c.slot.piv_key_reference().is_some())
        {
            "PIV"
        } else {
            "CAC"
        };
        let pin = self
            .token
            .readers()
            .map_err(|e| rv_of(&e))?
            .into_iter()
            .find(|r| r.name == reader)
            .and_then(|r| r.card)
            .and_then(|card| card.pin);
        let pin_flags = match pin {
            Some(pin) if pin.blocked => CKF_USER_PIN_LOCKED,
            Some(pin) => match pin.retries_left {
                Some(1) => CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY,
                Some(n) if n < 3 => CKF_USER_PIN_COUNT_LOW,
                _ => 0,
            },
            None => 0,
        };
        Ok(TokenInfo {
            label,
            serial,
            model: model.into(),
            pin_flags,
        })
    }

    pub fn open_session(
        &mut self,
        slot: CK_SLOT_ID,
        read_write: bool,
    ) -> Result<CK_SESSION_HANDLE, Rv> {
        let reader = self.reader(slot)?;
        // A token must be there: listing its certificates says so (and caches them).
        self.token
            .certificates(Some(&reader))
            .map_err(|e| rv_of(&e))?;
        let handle = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            handle,
            Session {
                slot,
                read_write,
                found: None,
                signing: None,
            },
        );
        Ok(handle)
    }

    pub fn close_session(&mut self, session: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let slot = self
            .sessions
            .remove(&session)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?
            .slot;
        // The login belongs to the token's sessions: the last one closed logs out.
        if !self.sessions.values().any(|s| s.slot == slot) {
            self.logged_in.remove(&slot);
        }
        Ok(())
    }

    pub fn close_all_sessions(&mut self, slot: CK_SLOT_ID) -> Result<(), Rv> {
        self.reader(slot)?;
        self.sessions.retain(|_, s| s.slot != slot);
        self.logged_in.remove(&slot);
        Ok(())
    }

    pub fn is_logged_in(&self, slot: CK_SLOT_ID) -> bool {
        self.logged_in.contains_key(&slot)
    }

    /// `C_Login`: the PIN is checked on the card, once; a wrong one is never retried here.
    pub fn login(
        &mut self,
        session: CK_SESSION_HANDLE,
        user: CK_USER_TYPE,
        pin: &[u8],
    ) -> Result<(), Rv> {
        let slot = self.session_slot(session)?;
        match user {
            CKU_USER if self.logged_in.contains_key(&slot) => {
                return Err(CKR_USER_ALREADY_LOGGED_IN)
            }
            CKU_USER | CKU_CONTEXT_SPECIFIC => {}
            CKU_SO => return Err(CKR_USER_TYPE_INVALID),
            _ => return Err(CKR_USER_TYPE_INVALID),
        }
        let digits = std::str::from_utf8(pin).map_err(|_| CKR_PIN_INCORRECT)?;
        let pin = Pin::new(digits).map_err(|_| CKR_PIN_LEN_RANGE)?;
        let reader = self.reader(slot)?;
        let card = self
            .token
            .certificates(Some(&reader))
            .map_err(|e| rv_of(&e))?
            .into_iter()
            .map(|c| c.info.id)
            .collect();
        self.token
            .verify_pin(&reader, &pin)
            .map_err(|e| rv_of(&e))?;
        self.logged_in.insert(slot, Login { pin, card });
        Ok(())
    }

    pub fn logout(&mut self, session: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let slot = self.session_slot(session)?;
        self.logged_in
            .remove(&slot)
            .map(|_| ())
            .ok_or(CKR_USER_NOT_LOGGED_IN)
    }

    /// The certificate whose private key is object `handle`.
    fn private_key(
        &mut self,
        session: CK_SESSION_HANDLE,
        handle: CK_OBJECT_HANDLE,
    ) -> Result<CardCertificate, Rv> {
        let object = self.object(session, handle)?;
        if object.class() != Some(CKO_PRIVATE_KEY) {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        let slot = self.session_slot(session)?;
        let reader = self.reader(slot)?;
        let index = ((handle % HANDLES_PER_SLOT) - 1) / 3;
        self.token
            .certificates(Some(&reader))
            .map_err(|e| rv_of(&e))?
            .into_iter()
            .nth(index as usize)
            .ok_or(CKR_KEY_HANDLE_INVALID)
    }

    pub fn sign_init(
        &mut self,
        session: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        pss: Option<mechanisms::PssParams>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        if mechanisms::is_pss(mechanism) && pss.is_none() {
            return Err(CKR_MECHANISM_PARAM_INVALID);
        }
        if self
            .sessions
            .get(&session)
            .is_some_and(|s| s.signing.is_some())
        {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let certificate = self.private_key(session, key)?;
        if !mechanisms::fits(mechanism, certificate.info.key_algorithm) {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        let slot = self.session_slot(session)?;
        if certificate.slot.pin_required() && !self.is_logged_in(slot) && self.window.is_none() {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.signing = Some(Signing {
                certificate,
                mechanism,
                pss,
                data: Vec::new(),
            });
        }
        Ok(())
    }

    pub fn sign_update(&mut self, session: CK_SESSION_HANDLE, data: &[u8]) -> Result<(), Rv> {
        let signing = self
            .sessions
            .get_mut(&session)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?
            .signing
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if signing.data.len() + data.len() > 1 << 20 {
            return Err(CKR_DATA_LEN_RANGE);
        }
        signing.data.extend_from_slice(data);
        Ok(())
    }

    /// How long the signature of the session's operation will be (the size query of
    /// `C_Sign`, which leaves the operation active).
    pub fn signature_len(&self, session: CK_SESSION_HANDLE) -> Result<usize, Rv> {
        let signing = self
            .sessions
            .get(&session)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?
            .signing
            .as_ref()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        Ok(mechanisms::signature_len(
            signing.certificate.info.key_algorithm,
        ))
    }

    /// Finish the operation: the card signs, or (in a browser, for a key that needs the PIN)
    /// the window's signature is prepared; the operation ends whatever the outcome.
    pub fn sign_final(&mut self, session: CK_SESSION_HANDLE) -> Result<Finished, Rv> {
        let slot = self.session_slot(session)?;
        let signing = self
            .sessions
            .get_mut(&session)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?
            .signing
            .take()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let key = signing.certificate.info.key_algorithm;
        let input = mechanisms::input(signing.mechanism, key, &signing.data, signing.pss.as_ref())?;
        // The login belongs to the card it was checked on; another card in the reader is a
        // new token, and never gets that PIN.
        if self
            .logged_in
            .get(&slot)
            .is_some_and(|login| !login.card.contains(&signing.certificate.info.id))
        {
            self.logged_in.remove(&slot);
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let needs_pin =
            signing.certificate.slot.pin_required() && !self.logged_in.contains_key(&slot);
        match (needs_pin, &self.window) {
            (true, Some(window)) => Ok(Finished::InWindow(Box::new(WindowSignature {
                window: Arc::clone(window),
                certificate: signing.certificate,
                input,
            }))),
            (true, None) => Err(CKR_USER_NOT_LOGGED_IN),
            (false, _) => {
                let signature = self.sign_on_card(slot, &signing.certificate, &input)?;
                pkcs11_signature(key, signature).map(Finished::Signed)
            }
        }
    }

    /// Forget the card in `reader` and its login: the host found it is not the card this
    /// module listed (gone, or rewritten in the reader), so the next listing reads it again.
    pub fn forget_card(&mut self, reader: &str) {
        if let Err(err) = self.token.forget(reader) {
            tracing::info!(reader, %err, "could not forget the card");
        }
        if let Some(index) = self.readers.iter().position(|r| r == reader) {
            self.logged_in.remove(&(index as CK_SLOT_ID + 1));
        }
    }

    /// Sign here, with the PIN of the slot's login (if any).
    fn sign_on_card(
        &mut self,
        slot: CK_SLOT_ID,
        certificate: &CardCertificate,
        input: &cacbridge_card::SignatureInput,
    ) -> Result<Vec<u8>, Rv> {
        let pin = self.logged_in.get(&slot).map(|login| &login.pin);
        self.token.sign_input(certificate, input, pin).map_err(|e| {
            if matches!(e, CardError::PinIncorrect { .. } | CardError::PinBlocked) {
                // The stored PIN no longer works (changed elsewhere): log out.
                self.logged_in.remove(&slot);
            }
            rv_of(&e)
        })
    }

    /// Whether `session` was opened read/write.
    pub fn session_read_write(&self, session: CK_SESSION_HANDLE) -> Result<bool, Rv> {
        self.sessions
            .get(&session)
            .map(|s| s.read_write)
            .ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    pub fn session_slot(&self, session: CK_SESSION_HANDLE) -> Result<CK_SLOT_ID, Rv> {
        self.sessions
            .get(&session)
            .map(|s| s.slot)
            .ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    /// The objects of the token in `slot`: from the card layer's cache while the card stays.
    fn objects(&mut self, slot: CK_SLOT_ID) -> Result<&[Object], Rv> {
        let reader = self.reader(slot)?;
        let certificates = match self.token.certificates(Some(&reader)) {
            Ok(certificates) => certificates,
            Err(err) => {
                if matches!(err, CardError::NoCard | CardError::CardRemoved) {
                    // The token is gone, and its login with it.
                    self.logged_in.remove(&slot);
                    self.objects.remove(&slot);
                }
                return Err(rv_of(&err));
            }
        };
        let ids: Vec<String> = certificates.iter().map(|c| c.info.id.clone()).collect();
        let cached = self
            .objects
            .get(&slot)
            .is_some_and(|(cached_ids, _)| *cached_ids == ids);
        if !cached {
            let mut objects = Vec::new();
            // A browser sees the authentication certificate alone: a TLS login is a login, and
            // an e-mail signing certificate offered for one is the classic wrong choice.
            // (Handles keep their place in the full list, which private_key() relies on.)
            let browser = self.window.is_some();
            for (i, cert) in certificates.iter().enumerate() {
                if browser && !cert.slot.is_authentication() {
                    continue;
                }
                let first = slot * HANDLES_PER_SLOT + 1 + 3 * i as CK_OBJECT_HANDLE;
                match objects_for(cert, first) {
                    Ok(found) => objects.extend(found),
                    Err(err) => tracing::warn!(%err, "certificate skipped"),
                }
            }
            self.objects.insert(slot, (ids, objects));
        }
        self.objects
            .get(&slot)
            .map(|(_, objects)| objects.as_slice())
            .ok_or(CKR_GENERAL_ERROR)
    }

    pub fn find_init(
        &mut self,
        session: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<(), Rv> {
        let slot = self.session_slot(session)?;
        if self
            .sessions
            .get(&session)
            .is_some_and(|s| s.found.is_some())
        {
            return Err(CKR_OPERATION_ACTIVE);
        }
        // Private objects (the keys that need the PIN) appear only after C_Login, as the
        // standard says: callers such as OpenSSL's pkcs11 engine log in when they miss them.
        let logged_in = self.is_logged_in(slot) || self.window.is_some();
        let private = vec![CK_TRUE];
        let found = self
            .objects(slot)?
            .iter()
            .filter(|o| logged_in || o.attribute(CKA_PRIVATE) != Some(private.as_slice()))
            .filter(|o| o.matches(template))
            .map(|o| o.handle)
            .rev()
            .collect();
        if let Some(s) = self.sessions.get_mut(&session) {
            s.found = Some(found);
        }
        Ok(())
    }

    pub fn find(
        &mut self,
        session: CK_SESSION_HANDLE,
        max: usize,
    ) -> Result<Vec<CK_OBJECT_HANDLE>, Rv> {
        let state = self
            .sessions
            .get_mut(&session)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?;
        let found = state.found.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let mut out = Vec::new();
        while out.len() < max {
            match found.pop() {
                Some(handle) => out.push(handle),
                None => break,
            }
        }
        Ok(out)
    }

    pub fn find_final(&mut self, session: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let state = self
            .sessions
            .get_mut(&session)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?;
        state
            .found
            .take()
            .map(|_| ())
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)
    }

    /// The object `handle` of the session's token.
    pub fn object(
        &mut self,
        session: CK_SESSION_HANDLE,
        handle: CK_OBJECT_HANDLE,
    ) -> Result<Object, Rv> {
        let slot = self.session_slot(session)?;
        if handle / HANDLES_PER_SLOT != slot {
            return Err(CKR_OBJECT_HANDLE_INVALID);
        }
        self.objects(slot)?
            .iter()
            .find(|o| o.handle == handle)
            .cloned()
            .ok_or(CKR_OBJECT_HANDLE_INVALID)
    }
}
