//! A token behind a PKCS#11 module (vendor middleware, CACKey, OpenSC, an HSM), through the
//! `cryptoki` crate: the same [`Backend`] as the PC/SC backend, so every command above it works
//! unchanged.
//!
//! What the module gives and how it maps:
//! - a slot with a token is a reader with a card (the slot description is the reader name, as
//!   PC/SC modules such as OpenSC make it);
//! - certificates and their roles: `CKA_ID` 01..04 are the PIV keys 9A, 9C, 9D, 9E (OpenSC,
//!   and what a PIV-minded module does), then labels (OpenSC's "Certificate for PIV
//!   Authentication", CACKey's "Identity Certificate"), then key usage;
//! - signatures: `CKM_RSA_PKCS` on the DigestInfo taken back out of the PKCS#1 v1.5 block the
//!   layer above made (a module pads itself), `CKM_RSA_X_509` for any other block (PSS),
//!   `CKM_ECDSA` on the hash (r || s back to DER, as the other backend answers);
//! - the PIN: `C_Login` for each operation and `C_Logout` after; a key with
//!   `CKA_ALWAYS_AUTHENTICATE` gets a context-specific login after `C_SignInit`;
//! - PIN tries: PKCS#11 only has flags, so "final try" is 1 left and otherwise unknown.
//!
//! A module can hang (OpenSC's `C_Sign` when a card is pulled mid-operation): wrap this in
//! [`crate::timed::TimedBackend::reloading`], which abandons a stuck module and loads a fresh copy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot as Pkcs11Slot;
use cryptoki::types::RawAuthPin;

use crate::certificate::{inspect, KeyAlgorithm, KeyUsage};
use crate::crypto::ecdsa_fixed_to_der;
use crate::error::CardError;
use crate::model::{CardCertificate, CardStatus, CardType, PinStatus, ReaderStatus, Slot};
use crate::pin::Pin;
use crate::session::SignatureInput;
use crate::Backend;

/// Where a listed certificate's private key is: the module's slot and the shared `CKA_ID`.
#[derive(Debug, Clone)]
struct KeyPlace {
    slot: Pkcs11Slot,
    id: Vec<u8>,
}

pub struct Pkcs11Backend {
    path: PathBuf,
    context: Pkcs11,
    /// Certificate id (SHA-256 of the DER) -> its key, from the last listing.
    keys: HashMap<String, KeyPlace>,
}

impl Pkcs11Backend {
    /// Load and initialize the module at `path`.
    pub fn load(path: &Path) -> Result<Self, CardError> {
        let context = Pkcs11::new(path).map_err(|e| module_error(&e))?;
        match context.initialize(CInitializeArgs::OsThreads) {
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(err) => return Err(module_error(&err)),
        }
        Ok(Self {
            path: path.to_owned(),
            context,
            keys: HashMap::new(),
        })
    }

    /// Load a private copy of the module at `path`: a module instance of its own (its own
    /// globals and locks), for when the one loaded before is stuck in a call that never
    /// returns (the same path would give the same, stuck, instance). The copy lives in a
    /// directory only this user can enter and is unlinked once loaded.
    pub fn load_copy(path: &Path, generation: u32) -> Result<Self, CardError> {
        let dir = std::env::temp_dir().join(format!(
            "cacbridge-module-{}-{generation}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        #[cfg_attr(not(unix), allow(unused_mut))]
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| CardError::Module(format!("{}: {e}", dir.display())))?;
        let copy = dir.join(path.file_name().unwrap_or_default());
        std::fs::copy(path, &copy)
            .map_err(|e| CardError::Module(format!("{}: {e}", path.display())))?;
        let loaded = Self::load(&copy);
        let _ = std::fs::remove_dir_all(&dir);
        let mut loaded = loaded?;
        loaded.path = path.to_owned();
        Ok(loaded)
    }

    /// The module's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every slot with its description, trimmed (the reader's name).
    fn slots(&self) -> Result<Vec<(Pkcs11Slot, String, bool)>, CardError> {
        let slots = self.context.get_all_slots().map_err(|e| card_error(&e))?;
        let mut named = Vec::new();
        for slot in slots {
            let info = self
                .context
                .get_slot_info(slot)
                .map_err(|e| card_error(&e))?;
            // A token not initialized (SoftHSM's free slot, a blank card) holds nothing.
            let present = info.token_present()
                && self
                    .context
                    .get_token_info(slot)
                    .is_ok_and(|token| token.token_initialized());
            named.push((slot, info.slot_description().trim().to_owned(), present));
        }
        Ok(named)
    }

    fn card_status(&self, slot: Pkcs11Slot) -> CardStatus {
        match self.context.get_token_info(slot) {
            Ok(token) => {
                let names = format!(
                    "{} {} {}",
                    token.label(),
                    token.manufacturer_id(),
                    token.model()
                )
                .to_ascii_uppercase();
                let card_type = if names.contains("PIV") {
                    CardType::Piv
                } else if names.contains("CAC") {
                    CardType::Cac
                } else {
                    CardType::Unknown
                };
                CardStatus {
                    atr: Vec::new(),
                    card_type,
                    dual_cac: false,
                    pin: Some(PinStatus {
                        retries_left: if token.user_pin_locked() {
                            Some(0)
                        } else if token.user_pin_final_try() {
                            Some(1)
                        } else {
                            None
                        },
                        blocked: token.user_pin_locked(),
                    }),
                    error: None,
                    backend: "pkcs11",
                }
            }
            Err(err) => CardStatus {
                atr: Vec::new(),
                card_type: CardType::Unknown,
                dual_cac: false,
                pin: None,
                error: Some(card_error(&err)),
                backend: "pkcs11",
            },
        }
    }

    /// The certificates on the token in `slot`, as the card layer lists them.
    fn read_certificates(
        &mut self,
        slot: Pkcs11Slot,
        reader: &str,
    ) -> Result<Vec<CardCertificate>, CardError> {
        let session = self
            .context
            .open_ro_session(slot)
            .map_err(|e| card_error(&e))?;
        let found = session
            .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
            .map_err(|e| card_error(&e))?;
        let mut certificates = Vec::new();
        for object in found {
            let attributes = session
                .get_attributes(
                    object,
                    &[
                        AttributeType::Value,
                        AttributeType::Id,
                        AttributeType::Label,
                    ],
                )
                .map_err(|e| card_error(&e))?;
            let (mut der, mut id, mut label) = (Vec::new(), Vec::new(), String::new());
            for attribute in attributes {
                match attribute {
                    Attribute::Value(value) => der = value,
                    Attribute::Id(value) => id = value,
                    Attribute::Label(value) => label = String::from_utf8_lossy(&value).into(),
                    _ => {}
                }
            }
            let info = match inspect(&der) {
                Ok(info) => info,
                Err(err) => {
                    tracing::warn!(reader, label, %err, "skipping certificate");
                    continue;
                }
            };
            let role = role_of(&id, &label, &info);
            self.keys.insert(
                info.id.clone(),
                KeyPlace {
                    slot,
                    id: id.clone(),
                },
            );
            certificates.push(CardCertificate {
                reader: reader.to_owned(),
                slot: role,
                der,
                info,
            });
        }
        certificates.sort_by_key(|c| c.slot.listing_rank());
        Ok(certificates)
    }

    /// The key of `certificate`, listing again if it was not seen yet.
    fn key_place(&mut self, certificate: &CardCertificate) -> Result<KeyPlace, CardError> {
        if let Some(place) = self.keys.get(&certificate.info.id) {
            return Ok(place.clone());
        }
        self.certificates(Some(&certificate.reader))?;
        self.keys
            .get(&certificate.info.id)
            .cloned()
            .ok_or(CardError::CertificateNotFound)
    }

    fn sign_in(
        &self,
        session: &Session,
        place: &KeyPlace,
        key_algorithm: KeyAlgorithm,
        input: &SignatureInput,
        pin: Option<&Pin>,
    ) -> Result<Vec<u8>, CardError> {
        let key = match private_key(session, &place.id) {
            // Keys are private objects: without a login a module does not show them.
            Err(CardError::KeyNotUsable(_)) if pin.is_none() => return Err(CardError::PinRequired),
            found => found?,
        };
        let always_authenticate = session
            .get_attributes(key, &[AttributeType::AlwaysAuthenticate])
            .ok()
            .and_then(|a| a.into_iter().next())
            .is_some_and(|a| matches!(a, Attribute::AlwaysAuthenticate(true)));
        let (mechanism, data) = match (input, key_algorithm) {
            (SignatureInput::RsaBlock(block), KeyAlgorithm::Rsa { .. }) => {
                match digest_info_of(block) {
                    Some(digest_info) => (Mechanism::RsaPkcs, digest_info.to_vec()),
                    None => (Mechanism::RsaX509, block.clone()),
                }
            }
            (SignatureInput::EcHash(hash), KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384) => {
                (Mechanism::Ecdsa, hash.clone())
            }
            _ => {
                return Err(CardError::KeyNotUsable(format!(
                    "{input:?} does not fit a {} key",
                    key_algorithm.name()
                )))
            }
        };
        let signature = if always_authenticate {
            // The key wants the PIN again right before this signature: a multi-part operation
            // leaves room for the login between C_SignInit and the data.
            session
                .sign_init(&mechanism, key)
                .map_err(|e| card_error(&e))?;
            let pin = pin.ok_or(CardError::PinRequired)?;
            login(session, UserType::ContextSpecific, pin)?;
            session.sign_update(&data).map_err(|e| card_error(&e))?;
            session.sign_final().map_err(|e| card_error(&e))?
        } else {
            session
                .sign(&mechanism, key, &data)
                .map_err(|e| card_error(&e))?
        };
        match key_algorithm {
            KeyAlgorithm::Rsa { .. } => Ok(signature),
            ec => ecdsa_fixed_to_der(&signature, ec.size_bytes()),
        }
    }

    /// A wrong PIN, with the tries the token's flags admit to.
    fn pin_incorrect(&self, slot: Pkcs11Slot) -> CardError {
        match self.context.get_token_info(slot) {
            Ok(token) if token.user_pin_locked() => CardError::PinBlocked,
            Ok(token) if token.user_pin_final_try() => CardError::PinIncorrect {
                retries_left: Some(1),
            },
            _ => CardError::PinIncorrect { retries_left: None },
        }
    }
}

impl Backend for Pkcs11Backend {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    fn readers(&mut self) -> Result<Vec<ReaderStatus>, CardError> {
        Ok(self
            .slots()?
            .into_iter()
            .map(|(slot, name, present)| ReaderStatus {
                name,
                card: present.then(|| self.card_status(slot)),
            })
            .collect())
    }

    fn presence(&mut self) -> Result<Vec<(String, bool)>, CardError> {
        Ok(self
            .slots()?
            .into_iter()
            .map(|(_, name, present)| (name, present))
            .collect())
    }

    fn certificates(&mut self, reader: Option<&str>) -> Result<Vec<CardCertificate>, CardError> {
        let slots = self.slots()?;
        if let Some(reader) = reader {
            if !slots.iter().any(|(_, name, _)| name == reader) {
                return Err(CardError::UnknownReader(reader.to_owned()));
            }
        }
        let mut certificates = Vec::new();
        let mut cards_seen = 0;
        let mut first_error = None;
        for (slot, name, present) in slots {
            if reader.is_some_and(|r| r != name) || !present {
                continue;
            }
            // One token that fails to read must not hide the others.
            match self.read_certificates(slot, &name) {
                Ok(list) => {
                    cards_seen += 1;
                    certificates.extend(list);
                }
                Err(err) => {
                    tracing::info!(reader = %name, %err, "cannot read the token");
                    first_error.get_or_insert(err);
                }
            }
        }
        match (cards_seen, first_error) {
            (0, Some(err)) => Err(err),
            (0, None) => Err(CardError::NoCard),
            _ => Ok(certificates),
        }
    }

    fn sign_input(
        &mut self,
        certificate: &CardCertificate,
        input: &SignatureInput,
        pin: Option<&Pin>,
    ) -> Result<Vec<u8>, CardError> {
        let place = self.key_place(certificate)?;
        let session = self
            .context
            .open_ro_session(place.slot)
            .map_err(|e| card_error(&e))?;
        // Every PIV card numbers its keys alike: a card swapped in since the listing must not
        // sign in the listed one's place.
        if !holds_certificate(&session, &place.id, &certificate.der)? {
            self.keys.remove(&certificate.info.id);
            return Err(CardError::CertificateNotFound);
        }
        if let Some(pin) = pin {
            login(&session, UserType::User, pin).map_err(|err| match err {
                CardError::PinIncorrect { .. } => self.pin_incorrect(place.slot),
                err => err,
            })?;
        }
        let signed = self.sign_in(&session, &place, certificate.info.key_algorithm, input, pin);
        if pin.is_some() {
            // The PIN is not left logged in for other sessions of this module.
            let _ = session.logout();
        }
        signed
    }

    fn verify_pin(&mut self, reader: &str, pin: &Pin) -> Result<(), CardError> {
        let (slot, _, present) = self
            .slots()?
            .into_iter()
            .find(|(_, name, _)| name == reader)
            .ok_or_else(|| CardError::UnknownReader(reader.to_owned()))?;
        if !present {
            return Err(CardError::NoCard);
        }
        let session = self
            .context
            .open_ro_session(slot)
            .map_err(|e| card_error(&e))?;
        login(&session, UserType::User, pin).map_err(|err| match err {
            CardError::PinIncorrect { .. } => self.pin_incorrect(slot),
            err => err,
        })?;
        let _ = session.logout();
        Ok(())
    }
}

fn login(session: &Session, user: UserType, pin: &Pin) -> Result<(), CardError> {
    let secret = RawAuthPin::new(pin.digits().to_vec());
    match session.login_with_raw(user, &secret) {
        Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(err) => Err(card_error(&err)),
    }
}

/// Whether the token still shows `der` as the certificate with `CKA_ID` `id`.
fn holds_certificate(session: &Session, id: &[u8], der: &[u8]) -> Result<bool, CardError> {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(id.to_vec()),
        ])
        .map_err(|e| card_error(&e))?;
    for object in found {
        let value = session
            .get_attributes(object, &[AttributeType::Value])
            .map_err(|e| card_error(&e))?;
        if value
            .iter()
            .any(|a| matches!(a, Attribute::Value(v) if v.as_slice() == der))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The private key with `CKA_ID` `id`.
fn private_key(session: &Session, id: &[u8]) -> Result<ObjectHandle, CardError> {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id.to_vec()),
        ])
        .map_err(|e| card_error(&e))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            CardError::KeyNotUsable("the module shows no key for this certificate".into())
        })
}

/// The DigestInfo inside a PKCS#1 v1.5 signature block (00 01 FF.. 00 DigestInfo), or `None`
/// for any other block.
fn digest_info_of(block: &[u8]) -> Option<&[u8]> {
    let rest = block.strip_prefix(&[0x00, 0x01])?;
    let padding = rest.iter().take_while(|&&b| b == 0xFF).count();
    if padding < 8 {
        return None;
    }
    rest[padding..].strip_prefix(&[0x00])
}

/// The role of a certificate from what the module says of it: `CKA_ID` as PIV modules number
/// the keys, then the label conventions of OpenSC and CACKey, then key usage.
fn role_of(id: &[u8], label: &str, info: &crate::CertificateInfo) -> Slot {
    match id {
        [0x01] => return Slot::PivAuthentication,
        [0x02] => return Slot::DigitalSignature,
        [0x03] => return Slot::KeyManagement,
        [0x04] => return Slot::CardAuthentication,
        [n @ 0x05..=0x18] => return Slot::RetiredKeyManagement(n - 4),
        _ => {}
    }
    let label = label.to_ascii_lowercase();
    let by_label = [
        ("piv authentication", Slot::PivAuthentication),
        ("digital signature", Slot::DigitalSignature),
        ("key management", Slot::KeyManagement),
        ("card authentication", Slot::CardAuthentication),
        ("identity certificate", Slot::CacId),
        ("email signature", Slot::CacEmailSignature),
        ("email encryption", Slot::CacEmailEncryption),
    ];
    if let Some((_, slot)) = by_label.iter().find(|(needle, _)| label.contains(needle)) {
        return *slot;
    }
    if info.key_usage.contains(&KeyUsage::NonRepudiation) {
        Slot::DigitalSignature
    } else if info.key_usage.contains(&KeyUsage::DigitalSignature) {
        Slot::PivAuthentication
    } else {
        Slot::KeyManagement
    }
}

/// A module that failed to load or initialize.
fn module_error(err: &Pkcs11Error) -> CardError {
    CardError::Module(err.to_string())
}

/// The one place a module's return value becomes a card-layer error.
fn card_error(err: &Pkcs11Error) -> CardError {
    let Pkcs11Error::Pkcs11(rv, function) = err else {
        return module_error(err);
    };
    match rv {
        RvError::PinIncorrect => CardError::PinIncorrect { retries_left: None },
        RvError::PinLocked => CardError::PinBlocked,
        RvError::PinLenRange | RvError::PinInvalid => CardError::PinFormat,
        RvError::UserNotLoggedIn => CardError::PinRequired,
        RvError::DeviceRemoved
        | RvError::TokenNotPresent
        | RvError::SessionHandleInvalid
        | RvError::SessionClosed => CardError::CardRemoved,
        RvError::TokenNotRecognized => {
            CardError::UnsupportedCard("the module does not recognize the card".into())
        }
        RvError::SlotIdInvalid => CardError::NoReader,
        RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent => {
            CardError::KeyNotUsable(format!("{function}: {rv}"))
        }
        _ => CardError::Module(format!("{function}: {rv}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_digest_info_comes_back_out_of_a_pkcs1_block_and_nothing_else_does() {
        let digest = crate::Digest::of(crate::HashFunction::Sha256, b"x");
        let block = crate::crypto::pkcs1_v15_block(&digest, 256).unwrap();
        let info = digest_info_of(&block).unwrap();
        assert_eq!(info.len(), 19 + 32);
        assert!(info.ends_with(digest.bytes()));
        // A PSS block, a short padding, a wrong header: not v1.5.
        assert!(digest_info_of(&[0x7A; 256]).is_none());
        assert!(digest_info_of(&[0x00, 0x01, 0xFF, 0x00, 0x30]).is_none());
        assert!(digest_info_of(&[0x00, 0x02, 0xFF, 0xFF]).is_none());
    }
}
