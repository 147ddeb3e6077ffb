//! How card-layer values look on the wire (docs/protocol.md). The card layer knows nothing of
//! JSON; this is the one place that decides field names.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use cacbridge_card::{CardCertificate, CardError, CardType, ReaderEvent, ReaderStatus, Slot};

use crate::messaging::protocol::{ErrorCode, WireError};

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

pub fn certificate(cert: &CardCertificate) -> Value {
    let info = &cert.info;
    json!({
        "id": info.id,
        "reader": cert.reader,
        "slot": slot_label(cert.slot),
        "role": slot_role(cert.slot),
        "certificate": BASE64.encode(&cert.der),
        "subject": info.subject,
        "issuer": info.issuer,
        "commonName": info.common_name,
        "serialNumber": info.serial_number,
        "notBefore": info.not_before,
        "notAfter": info.not_after,
        "keyAlgorithm": info.key_algorithm.name(),
        "keyUsage": info.key_usage,
        "extendedKeyUsage": info.extended_key_usage,
        "edipi": info.edipi,
        "upn": info.upn,
        "email": info.email,
        "pinRequired": cert.slot.pin_required(),
        "pinAlways": cert.slot.pin_always(),
        "usableFor": crate::signing::usable_for(cert),
    })
}

pub fn reader(status: &ReaderStatus) -> Value {
    let Some(card) = &status.card else {
        return json!({ "name": status.name, "cardPresent": false });
    };
    let mut view = json!({
        "name": status.name,
        "cardPresent": true,
        "atr": hex::encode_upper(&card.atr),
        "cardType": card_type_name(card.card_type),
        "dualCac": card.dual_cac,
        "pinRetriesLeft": card.pin.and_then(|p| p.retries_left),
        "pinBlocked": card.pin.is_some_and(|p| p.blocked),
    });
    if let Some(err) = &card.error {
        view["error"] = serde_json::to_value(card_error(err)).unwrap_or(Value::Null);
    }
    view
}

pub fn event(event: &ReaderEvent) -> (&'static str, Value) {
    match event {
        ReaderEvent::ReaderAdded { reader } => ("reader-added", json!({ "reader": reader })),
        ReaderEvent::ReaderRemoved { reader } => ("reader-removed", json!({ "reader": reader })),
        ReaderEvent::CardInserted { reader, atr } => (
            "card-inserted",
            json!({ "reader": reader, "atr": hex::encode_upper(atr) }),
        ),
        ReaderEvent::CardRemoved { reader } => ("card-removed", json!({ "reader": reader })),
    }
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
        CardError::CardStatus { .. } | CardError::Malformed(_) | CardError::NoResponse => {
            C::CardError
        }
        CardError::CertificateNotFound => C::CertificateNotFound,
        CardError::KeyNotUsable(_) => C::KeyNotUsable,
        CardError::Module(_) => C::ModuleError,
        // CardError is non-exhaustive: a new card error is a card error until named here.
        _ => C::CardError,
    }
}

impl From<&CardError> for WireError {
    fn from(err: &CardError) -> Self {
        card_error(err)
    }
}

/// A card-layer error as the protocol's error object, with its details.
pub fn card_error(err: &CardError) -> WireError {
    let wire = WireError::new(code_of(err), err.to_string());
    match err {
        CardError::PinIncorrect { retries_left } => wire.with_detail("retriesLeft", *retries_left),
        CardError::PinBlocked => wire.with_detail("retriesLeft", 0),
        CardError::CardStatus { status, operation } => wire
            .with_detail("statusWord", format!("{status}"))
            .with_detail("operation", *operation),
        CardError::UnknownReader(reader) => wire.with_detail("reader", reader.as_str()),
        _ => wire,
    }
}
