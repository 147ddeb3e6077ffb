//! The card layer over a PKCS#11 module nobody here wrote: OpenSC's `opensc-pkcs11.so` on the
//! virtual PIV cards (pcscd, vpcd), against the PC/SC backend on the same card. Ignored by a
//! plain `cargo test`; `scripts/test` runs them with `--ignored` once the testbed is up.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use cacbridge_card::{
    Backend, CardError, Digest, HashFunction, KeyAlgorithm, PcscBackend, Pin, Pkcs11Backend, Slot,
};
use cacbridge_testbed::{lock, openssl_verifies, openssl_verifies_with, VirtualCard};

const NEEDS: &str = "needs pcscd and virtual cards: run scripts/test";
const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

fn opensc() -> Pkcs11Backend {
    Pkcs11Backend::load(Path::new(OPENSC)).unwrap()
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn opensc_lists_the_same_certificates_byte_for_byte_with_the_same_ids_and_roles() {
    let _ = NEEDS;
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut pcsc = PcscBackend::new();
    let mut module = opensc();
    let over_pcsc = pcsc.certificates(Some(card.reader)).unwrap();
    let over_module = module.certificates(Some(card.reader)).unwrap();
    let view = |list: &[cacbridge_card::CardCertificate]| {
        list.iter()
            .map(|c| (c.reader.clone(), c.slot, c.der.clone(), c.info.id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(over_module.len(), 4);
    assert_eq!(view(&over_module), view(&over_pcsc));
    // The reader is there with its card, as over PC/SC; a PIV card, the PIN not blocked.
    let readers = module.readers().unwrap();
    let reader = readers.iter().find(|r| r.name == card.reader).unwrap();
    let status = reader.card.as_ref().unwrap();
    assert_eq!(status.card_type, cacbridge_card::CardType::Piv);
    assert!(!status.pin.as_ref().unwrap().blocked);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn opensc_signs_with_the_pin_rsa_and_ecdsa_and_the_signing_key_logs_in_again() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut module = opensc();
    let pin = Pin::new(&card.info.pin).unwrap();
    let listed = module.certificates(Some(card.reader)).unwrap();
    let message = b"CAC Bridge over OpenSC's module";
    let digest = Digest::of(HashFunction::Sha256, message);

    // 9A, RSA-2048: CKM_RSA_PKCS on the DigestInfo.
    let authentication = listed
        .iter()
        .find(|c| c.slot == Slot::PivAuthentication)
        .unwrap();
    let signature = module.sign(authentication, &digest, &pin).unwrap();
    assert!(openssl_verifies(&authentication.der, message, &signature));

    // 9C, P-256 and CKA_ALWAYS_AUTHENTICATE: a context-specific login; DER as from a card.
    let signing = listed
        .iter()
        .find(|c| c.slot == Slot::DigitalSignature)
        .unwrap();
    assert_eq!(signing.info.key_algorithm, KeyAlgorithm::EcP256);
    let signature = module.sign(signing, &digest, &pin).unwrap();
    assert_eq!(signature[0], 0x30, "DER");
    assert!(openssl_verifies_with(
        &signing.der,
        "sha256",
        message,
        &signature
    ));

    // Without a PIN the module refuses: nothing was left logged in.
    let unlocked = module.sign_input(
        authentication,
        &cacbridge_card::SignatureInput::for_digest(authentication.info.key_algorithm, &digest)
            .unwrap(),
        None,
    );
    assert!(
        matches!(unlocked, Err(CardError::PinRequired)),
        "{unlocked:?}"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_wrong_pin_through_opensc_counts_down_to_the_final_try_and_blocks() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut module = opensc();
    let mut pcsc = PcscBackend::new();
    let wrong = Pin::new("97531864").unwrap();
    let tries = |pcsc: &mut PcscBackend| {
        pcsc.readers()
            .unwrap()
            .into_iter()
            .find(|r| r.name == card.reader)
            .and_then(|r| r.card?.pin?.retries_left)
    };
    assert_eq!(tries(&mut pcsc), Some(3));
    // PKCS#11 says only "wrong" until its flags say "final try".
    assert_eq!(
        module.verify_pin(card.reader, &wrong),
        Err(CardError::PinIncorrect { retries_left: None })
    );
    assert_eq!(tries(&mut pcsc), Some(2), "the card counted it");
    assert_eq!(
        module.verify_pin(card.reader, &wrong),
        Err(CardError::PinIncorrect {
            retries_left: Some(1)
        })
    );
    assert_eq!(
        module.verify_pin(card.reader, &wrong),
        Err(CardError::PinBlocked)
    );
    assert_eq!(tries(&mut pcsc), Some(0));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_card_removed_is_card_removed_or_no_card() {
    let _guard = lock();
    let mut card = VirtualCard::insert("doe", 0);
    let mut module = opensc();
    let listed = module.certificates(Some(card.reader)).unwrap();
    card.remove();
    let pin = Pin::new(&card.info.pin).unwrap();
    let digest = Digest::of(HashFunction::Sha256, b"gone");
    let err = module.sign(&listed[0], &digest, &pin).unwrap_err();
    assert!(
        matches!(err, CardError::CardRemoved | CardError::NoCard),
        "{err:?}"
    );
    assert_eq!(
        module.certificates(Some(card.reader)).unwrap_err(),
        CardError::NoCard
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_softhsm_token_personalized_like_a_cac_lists_and_signs() {
    let _guard = lock();
    let token = cacbridge_testbed::SoftHsmToken::personalize("hsm");
    let mut module = Pkcs11Backend::load(Path::new(cacbridge_testbed::SOFTHSM)).unwrap();
    let listed = module.certificates(None).unwrap();
    let roles: Vec<_> = listed.iter().map(|c| (c.slot, c.der.clone())).collect();
    assert_eq!(
        roles,
        [
            (Slot::PivAuthentication, token.info.certificate("01")),
            (Slot::DigitalSignature, token.info.certificate("02")),
        ]
    );
    assert_eq!(
        listed[0].info.common_name.as_deref(),
        Some(token.info.cn.as_str())
    );
    let pin = Pin::new(&token.info.pin).unwrap();
    let message = b"CAC Bridge over SoftHSM";
    let digest = Digest::of(HashFunction::Sha256, message);
    for certificate in &listed {
        let signature = module.sign(certificate, &digest, &pin).unwrap();
        assert!(
            openssl_verifies(&certificate.der, message, &signature),
            "{:?}",
            certificate.slot
        );
    }
    let wrong = Pin::new("97531864").unwrap();
    assert!(matches!(
        module.sign(&listed[0], &digest, &wrong),
        Err(CardError::PinIncorrect { .. })
    ));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn loopback_cac_bridge_s_own_module_through_the_pkcs11_backend() {
    let _guard = lock();
    let card = VirtualCard::insert("smith", 0);
    let mut pcsc = PcscBackend::new();
    let mut module = Pkcs11Backend::load(&cacbridge_testbed::host::pkcs11_module()).unwrap();
    let over_pcsc = pcsc.certificates(Some(card.reader)).unwrap();
    let over_module = module.certificates(Some(card.reader)).unwrap();
    let view = |list: &[cacbridge_card::CardCertificate]| {
        list.iter()
            .map(|c| (c.slot, c.der.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&over_module), view(&over_pcsc));
    let pin = Pin::new(&card.info.pin).unwrap();
    let message = b"loopback";
    for certificate in &over_module {
        let digest = match certificate.info.key_algorithm {
            KeyAlgorithm::EcP384 => Digest::of(HashFunction::Sha384, message),
            _ => Digest::of(HashFunction::Sha256, message),
        };
        let hash = match certificate.info.key_algorithm {
            KeyAlgorithm::EcP384 => "sha384",
            _ => "sha256",
        };
        let signature = module.sign(certificate, &digest, &pin).unwrap();
        assert!(
            openssl_verifies_with(&certificate.der, hash, message, &signature),
            "{:?}",
            certificate.slot
        );
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_card_swapped_since_the_listing_never_signs_in_its_place() {
    let _guard = lock();
    let mut card = VirtualCard::insert("doe", 0);
    let mut module = opensc();
    let listed = module.certificates(Some(card.reader)).unwrap();
    let authentication = listed
        .iter()
        .find(|c| c.slot == Slot::PivAuthentication)
        .unwrap()
        .clone();
    card.remove();
    drop(card);
    // Another card of the same person in the same reader: its key 01 is another key.
    let other = VirtualCard::insert("doe2", 0);
    let _ = module.certificates(Some(other.reader));
    let pin = Pin::new(&other.info.pin).unwrap();
    let digest = Digest::of(HashFunction::Sha256, b"swapped");
    assert_eq!(
        module.sign(&authentication, &digest, &pin),
        Err(CardError::CertificateNotFound)
    );
}
