//! How card-layer values look on the wire (docs/protocol.md): serde structs, and the one place
//! that names slots, roles, card types and card errors for the protocol. The card layer knows
//! nothing of JSON.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use cacbridge_card::{CardCertificate, CardError, CardType, ReaderEvent, ReaderStatus, Slot};

use crate::messaging::protocol::{ErrorCode, WireError};
use crate::usage::usable_for;

/// A slot on the wire: "9A", "9C", "9D", "9E", "82".."95", or the CAC applet.
pub fn slot_label(slot: Slot) -> String {
    match slot {
        Slot::CacId => "CAC-ID".into(),
        Slot::CacEmailSignature => "CAC-EMAIL-SIGNATURE".into(),
        Slot::CacEmailEncryption => "CAC-EMAIL-ENCRYPTION".into(),
        piv => format!("{:02X}", piv.piv_key_reference().unwrap_or_default()),
    }
}

/// What a slot's key is for, in words a person reads (the chooser shows it).
pub fn slot_role(slot: Slot) -> String {
    match slot {
        Slot::PivAuthentication => "PIV Authentication".into(),
        Slot::DigitalSignature => "Digital Signature".into(),
        Slot::KeyManagement => "Key Management".into(),
        Slot::CardAuthentication => "Card Authentication".into(),
        Slot::RetiredKeyManagement(n) => format!("Retired Key Management {n}"),
        Slot::CacId => "CAC ID".into(),
        Slot::CacEmailSignature => "CAC Email Signature".into(),
        Slot::CacEmailEncryption => "CAC Email Encryption".into(),
    }
}

pub fn card_type_name(card_type: CardType) -> &'static str {
    match card_type {
        CardType::Piv => "PIV",
        CardType::Cac => "CAC",
        CardType::Unknown => "unknown",
    }
}

/// A certificate in `list-certificates`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateView {
    pub id: String,
    pub reader: String,
    pub slot: String,
    pub role: String,
    /// Base64 DER.
    pub certificate: String,
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    pub serial_number: String,
    pub not_before: String,
    pub not_after: String,
    pub key_algorithm: String,
    pub key_usage: Vec<&'static str>,
    pub extended_key_usage: Vec<String>,
    pub edipi: Option<String>,
    pub upn: Option<String>,
    pub email: Option<String>,
    /// The SAN's FASC-N, decoded (`cacbridge_cert::fascn`).
    pub fasc_n: Option<cacbridge_cert::fascn::FascN>,
    /// The SAN's `urn:uuid:` (the card's UUID).
    pub card_uuid: Option<String>,
    pub pin_required: bool,
    pub pin_always: bool,
    pub usable_for: Vec<crate::usage::Use>,
}

impl From<&CardCertificate> for CertificateView {
    fn from(cert: &CardCertificate) -> Self {
        let info = &cert.info;
        CertificateView {
            id: info.id.clone(),
            reader: cert.reader.clone(),
            slot: slot_label(cert.slot),
            role: slot_role(cert.slot),
            certificate: BASE64.encode(&cert.der),
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            common_name: info.common_name.clone(),
            serial_number: info.serial_number.clone(),
            not_before: info.not_before.clone(),
            not_after: info.not_after.clone(),
            key_algorithm: info.key_algorithm.name(),
            key_usage: info.key_usage.iter().map(|usage| usage.name()).collect(),
            extended_key_usage: info
                .extended_key_usage
                .iter()
                .map(|usage| usage.name().to_owned())
                .collect(),
            edipi: info.edipi.clone(),
            upn: info.upn.clone(),
            email: info.email.clone(),
            fasc_n: info.fasc_n.clone(),
            card_uuid: info.card_uuid.clone(),
            pin_required: cert.slot.pin_required(),
            pin_always: cert.slot.pin_always(),
            usable_for: usable_for(cert),
        }
    }
}

/// A reader in `status`: the card's fields only when a card is present.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReaderView {
    pub name: String,
    pub card_present: bool,
    #[serde(flatten)]
    pub card: Option<CardView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardView {
    /// Hex, upper case.
    pub atr: String,
    pub card_type: &'static str,
    pub dual_cac: bool,
    pub pin_retries_left: Option<u8>,
    pub pin_blocked: bool,
    /// The backend serving the card: "pcsc", or "pkcs11" for a module (docs/policy.md).
    pub backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

impl From<&ReaderStatus> for ReaderView {
    fn from(status: &ReaderStatus) -> Self {
        ReaderView {
            name: status.name.clone(),
            card_present: status.card.is_some(),
            card: status.card.as_ref().map(|card| CardView {
                atr: hex::encode_upper(&card.atr),
                card_type: card_type_name(card.card_type),
                dual_cac: card.dual_cac,
                pin_retries_left: card.pin.and_then(|p| p.retries_left),
                pin_blocked: card.pin.is_some_and(|p| p.blocked),
                backend: card.backend,
                error: card.error.as_ref().map(WireError::from),
            }),
        }
    }
}

pub fn event(event: &ReaderEvent) -> (&'static str, Value) {
    use crate::commands::Event as E;
    let (name, data) = match event {
        ReaderEvent::ReaderAdded { reader } => (E::ReaderAdded, json!({ "reader": reader })),
        ReaderEvent::ReaderRemoved { reader } => (E::ReaderRemoved, json!({ "reader": reader })),
        ReaderEvent::CardInserted { reader, atr } => (
            E::CardInserted,
            json!({ "reader": reader, "atr": hex::encode_upper(atr) }),
        ),
        ReaderEvent::CardRemoved { reader } => (E::CardRemoved, json!({ "reader": reader })),
    };
    (name.name(), data)
}

/// The one place a card-layer error becomes a wire code.
fn code_of(err: &CardError) -> ErrorCode {
    use ErrorCode as C;
    match err {
        CardError::NoReader | CardError::UnknownReader(_) => C::NoReader,
        CardError::NoCard => C::NoCard,
        CardError::CardRemoved => C::CardRemoved,
        CardError::CardInUse => C::CardInUse,
        CardError::CardReset => C::CardReset,
        CardError::PinInterrupted => C::PinInterrupted,
        CardError::PcscUnavailable => C::PcscUnavailable,
        CardError::Pcsc(_) => C::PcscError,
        CardError::UnsupportedCard(_) => C::UnsupportedCard,
        CardError::PinIncorrect { .. } => C::PinIncorrect,
        CardError::PinBlocked => C::PinBlocked,
        CardError::PinFormat => C::PinFormat,
        // A key that wanted a PIN the request did not bring (a 9E key some card protects):
        // the card's own rule, nothing the person can fix by typing again.
        CardError::CardStatus { .. }
        | CardError::Malformed(_)
        | CardError::NoResponse
        | CardError::PinRequired => C::CardError,
        // The listed certificate is not the card's any more (rewritten in the reader): for the
        // caller it is gone; its next listing shows the new one.
        CardError::CertificateNotFound | CardError::CertificatesChanged => C::CertificateNotFound,
        CardError::KeyNotUsable(_) => C::KeyNotUsable,
        CardError::Module(_) => C::ModuleError,
        CardError::Timeout => C::CardTimeout,
    }
}

/// A card-layer error as the protocol's error object, with its details.
impl From<&CardError> for WireError {
    fn from(err: &CardError) -> Self {
        let wire = WireError::new(code_of(err), err.to_string());
        match err {
            CardError::PinIncorrect { retries_left } => {
                wire.with_detail("retriesLeft", *retries_left)
            }
            CardError::PinBlocked => wire.with_detail("retriesLeft", 0),
            CardError::CardStatus { status, operation } => wire
                .with_detail("statusWord", format!("{status}"))
                .with_detail("operation", *operation),
            CardError::UnknownReader(reader) => wire.with_detail("reader", reader.as_str()),
            CardError::CertificatesChanged => wire.with_detail("rewritten", true),
            _ => wire,
        }
    }
}

impl From<CardError> for WireError {
    fn from(err: CardError) -> Self {
        WireError::from(&err)
    }
}
