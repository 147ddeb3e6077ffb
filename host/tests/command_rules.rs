//! The rules of `authenticate` and `sign` in a plain `cargo test`, against the card layer's
//! FakeBackend: which certificate may do what, the JWS mapping, the digest the card is asked to
//! sign, error details, and the order of card operations (one listing, then one signature).
#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha384};

use cacbridge_card::testing::{certificate, Call, FakeBackend};
use cacbridge_card::{
    CardError, Digest, ExtendedKeyUsage, HashFunction, KeyAlgorithm, KeyUsage, Slot,
};
use cacbridge_host::commands::authenticate::{authenticate, AuthenticateRequest};
use cacbridge_host::commands::sign::{sign, SignRequest};
use cacbridge_host::messaging::protocol::{Arguments, ErrorCode, WireError};
use cacbridge_host::policy::Policy;

const ORIGIN: &str = "https://portal.example.mil";
const NONCE: &str = "q7l7bUy5L1t0H1h3kS8tJ0lXc0u2Y3RhbmNlbm9uY2U0NA==";
const AUTH_KU: &[KeyUsage] = &[KeyUsage::DigitalSignature];
const AUTH_EKU: &[ExtendedKeyUsage] = &[
    ExtendedKeyUsage::ClientAuth,
    ExtendedKeyUsage::SmartcardLogon,
];
const SIGNING_KU: &[KeyUsage] = &[KeyUsage::DigitalSignature, KeyUsage::NonRepudiation];
const SIGNING_EKU: &[ExtendedKeyUsage] = &[
    ExtendedKeyUsage::EmailProtection,
    ExtendedKeyUsage::ClientAuth,
    ExtendedKeyUsage::SmartcardLogon,
];
const RSA: KeyAlgorithm = KeyAlgorithm::Rsa { bits: 2048 };

/// A card with the four PIV certificates of a DoD CAC.
fn card(auth_key: KeyAlgorithm) -> FakeBackend {
    FakeBackend::new(vec![
        certificate(0xA1, Slot::PivAuthentication, auth_key, AUTH_KU, AUTH_EKU),
        certificate(
            0xC1,
            Slot::DigitalSignature,
            KeyAlgorithm::EcP256,
            SIGNING_KU,
            SIGNING_EKU,
        ),
        certificate(
            0xD1,
            Slot::KeyManagement,
            RSA,
            &[KeyUsage::KeyEncipherment],
            &[],
        ),
        certificate(
            0xE1,
            Slot::CardAuthentication,
            KeyAlgorithm::EcP256,
            AUTH_KU,
            &[ExtendedKeyUsage::PivCardAuth],
        ),
    ])
}

fn id(token: &FakeBackend, slot: Slot) -> String {
    token
        .certificates
        .iter()
        .find(|c| c.slot == slot)
        .unwrap()
        .info
        .id
        .clone()
}

fn arguments(value: Value) -> Arguments {
    let Value::Object(map) = value else {
        panic!("an object")
    };
    Arguments::new(map)
}

fn run_authenticate(
    token: &mut FakeBackend,
    certificate_id: &str,
    pin: &str,
) -> Result<Value, WireError> {
    let request = AuthenticateRequest::parse(
        &arguments(
            json!({"certificateId": certificate_id, "challengeNonce": NONCE, "origin": ORIGIN, "pin": pin}),
        ),
        &Policy::new(None, None),
    )?;
    authenticate(token, request).map(|t| serde_json::to_value(t).unwrap())
}

fn run_sign(
    token: &mut FakeBackend,
    certificate_id: &str,
    hash: &[u8],
    function: &str,
) -> Result<Value, WireError> {
    let request = SignRequest::parse(
        &arguments(
            json!({"certificateId": certificate_id, "hash": B64.encode(hash), "hashFunction": function, "origin": ORIGIN, "pin": "123456"}),
        ),
        &Policy::new(None, None),
    )?;
    sign(token, request).map(|s| serde_json::to_value(s).unwrap())
}

/// A DER ECDSA signature with r and s of `width` bytes (high bit set, so each gets a 00).
fn der_ecdsa(width: usize) -> Vec<u8> {
    let integer = |byte: u8| [vec![0x02, (width + 1) as u8, 0x00], vec![byte; width]].concat();
    let body = [integer(0x81), integer(0x82)].concat();
    let mut der = vec![0x30];
    if body.len() > 127 {
        der.push(0x81);
    }
    der.push(body.len() as u8);
    der.extend(body);
    der
}

#[test]
fn an_rsa_login_lists_once_then_signs_the_origin_bound_digest() {
    let mut token = card(RSA);
    let auth = id(&token, Slot::PivAuthentication);
    let result = run_authenticate(&mut token, &auth, "123456").unwrap();
    assert_eq!(result["format"], "cacbridge:1");
    assert_eq!(result["algorithm"], "RS256");
    assert_eq!(result["signature"], B64.encode([0x5A; 256]));
    assert_eq!(result["unverifiedCertificate"], B64.encode([0x30, 0xA1]));
    assert!(result["appVersion"]
        .as_str()
        .unwrap()
        .starts_with("cacbridge-host/"));
    let message = [
        Sha256::digest(ORIGIN).to_vec(),
        Sha256::digest(NONCE).to_vec(),
    ]
    .concat();
    assert_eq!(
        token.calls,
        vec![
            Call::Certificates { reader: None },
            Call::Sign {
                certificate_id: auth,
                digest: Digest::of(HashFunction::Sha256, &message)
            },
        ],
        "one listing, then one signature: no second listing before it"
    );
}

#[test]
fn a_p384_login_is_es384_over_sha384_with_a_fixed_width_signature() {
    let mut token = card(KeyAlgorithm::EcP384);
    token.signature = Ok(der_ecdsa(48));
    let auth = id(&token, Slot::PivAuthentication);
    let result = run_authenticate(&mut token, &auth, "123456").unwrap();
    assert_eq!(result["algorithm"], "ES384");
    let signature = B64.decode(result["signature"].as_str().unwrap()).unwrap();
    assert_eq!(
        signature,
        [vec![0x81; 48], vec![0x82; 48]].concat(),
        "JWS r || s"
    );
    let message = [
        Sha384::digest(ORIGIN).to_vec(),
        Sha384::digest(NONCE).to_vec(),
    ]
    .concat();
    assert!(
        matches!(&token.calls[1], Call::Sign { digest, .. } if *digest == Digest::of(HashFunction::Sha384, &message))
    );
}

#[test]
fn only_the_authentication_certificate_logs_in_and_the_card_is_never_asked() {
    for slot in [
        Slot::DigitalSignature,
        Slot::KeyManagement,
        Slot::CardAuthentication,
    ] {
        let mut token = card(RSA);
        let certificate_id = id(&token, slot);
        let err = run_authenticate(&mut token, &certificate_id, "123456").unwrap_err();
        assert_eq!(err.code, ErrorCode::KeyNotUsable, "{slot:?}");
        assert!(err.details.contains_key("role"), "{slot:?}");
        // Not among the authentication certificates, then found among all: its role named.
        assert_eq!(token.listings(), 2);
        assert!(
            !token.calls.iter().any(|c| matches!(c, Call::Sign { .. })),
            "{slot:?} signed"
        );
    }
    // A 9A slot holding a signing certificate: refused, and the reason says why.
    let mut token = FakeBackend::new(vec![certificate(
        0xA2,
        Slot::PivAuthentication,
        RSA,
        SIGNING_KU,
        SIGNING_EKU,
    )]);
    let err = run_authenticate(&mut token, &"a2".repeat(32), "123456").unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyNotUsable);
    assert!(
        err.details["reason"]
            .as_str()
            .unwrap()
            .contains(KeyUsage::NonRepudiation.name()),
        "{err:?}"
    );
}

#[test]
fn a_document_signature_names_key_and_hash_and_refuses_login_keys() {
    let mut token = card(RSA);
    token.signature = Ok(der_ecdsa(32));
    let signing = id(&token, Slot::DigitalSignature);
    let hash = Sha384::digest(b"document").to_vec();
    let result = run_sign(&mut token, &signing, &hash, "SHA-384").unwrap();
    assert_eq!(result["algorithm"], "ES384", "P-256 key, SHA-384 hash");
    assert_eq!(
        B64.decode(result["signature"].as_str().unwrap())
            .unwrap()
            .len(),
        64
    );
    assert_eq!(
        token.calls.last(),
        Some(&Call::Sign {
            certificate_id: signing,
            digest: Digest::new(HashFunction::Sha384, hash).unwrap()
        })
    );

    let mut token = card(RSA);
    let auth = id(&token, Slot::PivAuthentication);
    let err = run_sign(&mut token, &auth, &[0; 32], "SHA-256").unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyNotUsable);
    // A signature slot holding an authentication certificate would sign login proofs.
    let mut token = FakeBackend::new(vec![certificate(
        0xC2,
        Slot::DigitalSignature,
        RSA,
        AUTH_KU,
        AUTH_EKU,
    )]);
    let err = run_sign(&mut token, &"c2".repeat(32), &[0; 32], "SHA-256").unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyNotUsable);
    assert!(err.details["reason"]
        .as_str()
        .unwrap()
        .contains("authentication profile"));
    assert!(!token.calls.iter().any(|c| matches!(c, Call::Sign { .. })));
}

#[test]
fn card_errors_arrive_with_their_details_and_bad_arguments_never_reach_the_card() {
    let mut token = card(RSA);
    token.signature = Err(CardError::PinIncorrect {
        retries_left: Some(2),
    });
    let auth = id(&token, Slot::PivAuthentication);
    let err = run_authenticate(&mut token, &auth, "654321").unwrap_err();
    assert_eq!(err.code, ErrorCode::PinIncorrect);
    assert_eq!(err.details["retriesLeft"], 2);

    let mut token = card(RSA);
    let err = run_authenticate(&mut token, &"ff".repeat(32), "123456").unwrap_err();
    assert_eq!(err.code, ErrorCode::CertificateNotFound);

    let mut token = card(RSA);
    for (pin, reason) in [("12ab56", "pin-format"), ("123", "pin-format")] {
        let err = run_authenticate(&mut token, &auth, pin).unwrap_err();
        assert_eq!(
            (err.code, err.details["reason"].as_str().unwrap()),
            (ErrorCode::InvalidArgument, reason)
        );
    }
    let err = run_sign(&mut token, &auth, &[0; 20], "SHA-256").unwrap_err();
    assert_eq!(err.details["reason"], "length");
    assert!(
        token.calls.is_empty(),
        "the card was touched: {:?}",
        token.calls
    );
}
