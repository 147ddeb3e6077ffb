//! How card-layer values look on the wire (docs/protocol.md). The card layer knows nothing of
//! JSON; this is the one place that decides field names.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use cacbridge_card::{CardCertificate, CardError, ReaderEvent, ReaderStatus};

use crate::messaging::protocol::{ErrorCode, WireError};

pub fn certificate(cert: &CardCertificate) -> Value {
    let info = &cert.info;
    json!({
        "id": info.id,
        "reader": cert.reader,
        "slot": cert.slot.label(),
        "role": cert.slot.role(),
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
        "cardType": card.card_type.name(),
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

/// A card-layer error as the protocol's error object, with its details.
pub fn card_error(err: &CardError) -> WireError {
    let wire = WireError::new(ErrorCode::Command(err.code()), err.to_string());
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
