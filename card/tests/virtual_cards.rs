//! The card layer against the real stack: pcscd, vpcd and virtual PIV cards personalized like
//! CACs (tests/harness/testbed-setup). Ignored by a plain `cargo test`; `scripts/test` runs
//! them with `--ignored` once the testbed is up.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cacbridge_card::{
    Backend, CardError, Digest, ExtendedKeyUsage, HashFunction, KeyAlgorithm, KeyUsage,
    PcscBackend, Pin, ReaderEvent, Slot,
};
use cacbridge_testbed::{lock, openssl_verifies, run, spki, CardOptions, VirtualCard, READERS};

const NEEDS: &str = "needs pcscd and virtual cards: run scripts/test";

fn certificate_of(
    backend: &mut PcscBackend,
    reader: &str,
    slot: Slot,
) -> cacbridge_card::CardCertificate {
    backend
        .certificates(Some(reader))
        .unwrap()
        .into_iter()
        .find(|c| c.slot == slot)
        .unwrap_or_else(|| panic!("no {slot:?} certificate in {reader}"))
}

/// Check a signature with the RustCrypto implementations, not with the code under test.
fn verify_independently(certificate: &[u8], key: KeyAlgorithm, message: &[u8], signature: &[u8]) {
    use p256::pkcs8::DecodePublicKey;
    let spki = spki(certificate);
    match key {
        KeyAlgorithm::Rsa { .. } => {
            use rsa::{pkcs8::DecodePublicKey as _, Pkcs1v15Sign, RsaPublicKey};
            use sha2::{Digest as _, Sha256};
            let public = RsaPublicKey::from_public_key_der(&spki).unwrap();
            public
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(message),
                    signature,
                )
                .expect("RSA signature verifies");
        }
        KeyAlgorithm::EcP256 => {
            use p256::ecdsa::signature::Verifier;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let sig = p256::ecdsa::Signature::from_der(signature).unwrap();
            key.verify(message, &sig).expect("P-256 signature verifies");
        }
        KeyAlgorithm::EcP384 => {
            use p384::ecdsa::signature::Verifier;
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let sig = p384::ecdsa::Signature::from_der(signature).unwrap();
            key.verify(message, &sig).expect("P-384 signature verifies");
        }
    }
}

/// The hash an algorithm's standard verifier applies to the message.
fn hash_for(key: KeyAlgorithm) -> HashFunction {
    match key {
        KeyAlgorithm::EcP384 => HashFunction::Sha384,
        _ => HashFunction::Sha256,
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn lists_every_certificate_byte_identical_with_dod_fields() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut backend = PcscBackend::new();
    let certs = backend.certificates(Some(card.reader)).unwrap();
    let slots: Vec<Slot> = certs.iter().map(|c| c.slot).collect();
    assert_eq!(slots, Slot::PIV_CURRENT.to_vec(), "{NEEDS}");
    for cert in &certs {
        let label = cacbridge_testbed::golden_label(cert.slot);
        assert_eq!(
            cert.der,
            card.info.certificate(&label),
            "{label} differs from what was written"
        );
        assert_eq!(cert.reader, card.reader);
        assert_eq!(
            cert.info.edipi.as_deref(),
            Some(card.info.edipi.as_str()),
            "{label}"
        );
        assert_eq!(
            cert.info.common_name.as_deref(),
            Some(card.info.cn.as_str())
        );
    }
    // 9A was stored gzip-compressed: equality above proves it was inflated.
    assert_eq!(card.info.slots["9A"].storage, "gzip");
    let auth = &certs[0].info;
    assert_eq!(auth.key_algorithm, KeyAlgorithm::Rsa { bits: 2048 });
    assert_eq!(auth.upn.as_deref(), Some(card.info.upn.as_str()));
    assert!(auth
        .extended_key_usage
        .contains(&ExtendedKeyUsage::ClientAuth));
    assert!(auth
        .extended_key_usage
        .contains(&ExtendedKeyUsage::SmartcardLogon));
    assert_eq!(auth.key_usage, vec![KeyUsage::DigitalSignature]);
    assert_eq!(auth.id.len(), 64);
    let signature = &certs[1].info;
    assert_eq!(signature.key_algorithm, KeyAlgorithm::EcP256);
    assert_eq!(signature.email.as_deref(), Some(card.info.email.as_str()));
    assert_eq!(
        signature.key_usage,
        vec![KeyUsage::DigitalSignature, KeyUsage::NonRepudiation]
    );
    assert!(certs[3]
        .info
        .extended_key_usage
        .contains(&ExtendedKeyUsage::PivCardAuth));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_repeated_listing_sends_no_apdu_while_the_card_stays() {
    let _guard = lock();
    let mut card = VirtualCard::insert("doe", 0);
    let mut backend = PcscBackend::new();
    let first = backend.certificates(None).unwrap();
    let cold = backend.apdu_count();
    eprintln!(
        "cold listing: {cold} APDUs for {} certificates",
        first.len()
    );
    // One SELECT, four certificate objects and the Key History, with their 61xx continuations.
    assert!((6..=24).contains(&cold), "cold listing took {cold} APDUs");
    let again = backend.certificates(None).unwrap();
    assert_eq!(first, again);
    assert_eq!(
        backend.apdu_count(),
        cold,
        "a cached listing must not touch the card"
    );

    // A new insertion is a new card as far as the cache knows.
    card.remove();
    assert_eq!(backend.certificates(None).unwrap_err(), CardError::NoCard);
    card.reinsert();
    assert_eq!(backend.certificates(None).unwrap(), first);
    assert_eq!(backend.apdu_count(), 2 * cold);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn signatures_verify_independently_for_rsa_and_ecc() {
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);
    let mut backend = PcscBackend::new();
    let message = b"CAC Bridge signs this";
    for (card, slot) in [
        (&doe, Slot::PivAuthentication),   // RSA-2048, stored compressed
        (&doe, Slot::DigitalSignature),    // P-256, PIN Always
        (&smith, Slot::PivAuthentication), // P-384
        (&smith, Slot::DigitalSignature),  // RSA-2048, PIN Always
    ] {
        let cert = certificate_of(&mut backend, card.reader, slot);
        let key = cert.info.key_algorithm;
        let digest = Digest::of(hash_for(key), message);
        let pin = Pin::new(&card.info.pin).unwrap();
        let signature = backend.sign(&cert, &digest, &pin).unwrap();
        verify_independently(&cert.der, key, message, &signature);
        // A second signature with a PIN Always key needs (and gets) a fresh VERIFY.
        let again = backend.sign(&cert, &digest, &pin).unwrap();
        verify_independently(&cert.der, key, message, &again);
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn signatures_verify_with_openssl() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut backend = PcscBackend::new();
    let message = b"checked by openssl";
    for slot in [Slot::PivAuthentication, Slot::DigitalSignature] {
        let cert = certificate_of(&mut backend, card.reader, slot);
        let digest = Digest::of(HashFunction::Sha256, message);
        let signature = backend
            .sign(&cert, &digest, &Pin::new(&card.info.pin).unwrap())
            .unwrap();
        assert!(openssl_verifies(&cert.der, message, &signature), "{slot:?}");
        assert!(!openssl_verifies(&cert.der, b"another message", &signature));
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn certificates_match_what_opensc_reads() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut backend = PcscBackend::new();
    let ours = backend.certificates(Some(card.reader)).unwrap();
    for (id, cert) in ["01", "02", "03", "04"].iter().zip(&ours) {
        let out = run("pkcs15-tool", &["--reader", "0", "--read-certificate", id]);
        assert!(
            out.status.success(),
            "pkcs15-tool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem = String::from_utf8(out.stdout).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert_eq!(pem.contents, cert.der, "OpenSC id {id} ({:?})", cert.slot);
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_wrong_pin_costs_a_try_and_a_right_one_restores_them() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut backend = PcscBackend::new();
    let tries = |backend: &mut PcscBackend| {
        let readers = backend.readers().unwrap();
        let reader = readers.iter().find(|r| r.name == card.reader).unwrap();
        reader.card.as_ref().unwrap().pin.unwrap()
    };
    assert_eq!(tries(&mut backend).retries_left, Some(card.info.pin_tries));
    let cert = certificate_of(&mut backend, card.reader, Slot::PivAuthentication);
    let digest = Digest::of(HashFunction::Sha256, b"x");
    let wrong = Pin::new("000000").unwrap();
    assert_eq!(
        backend.sign(&cert, &digest, &wrong).unwrap_err(),
        CardError::PinIncorrect {
            retries_left: Some(2)
        }
    );
    assert_eq!(tries(&mut backend).retries_left, Some(2));
    backend
        .sign(&cert, &digest, &Pin::new(&card.info.pin).unwrap())
        .unwrap();
    assert_eq!(tries(&mut backend).retries_left, Some(3));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn three_wrong_pins_block_it_and_then_even_the_right_one_fails() {
    let _guard = lock();
    let card = VirtualCard::insert("smith", 1);
    let mut backend = PcscBackend::new();
    let cert = certificate_of(&mut backend, card.reader, Slot::PivAuthentication);
    let digest = Digest::of(HashFunction::Sha384, b"x");
    let wrong = Pin::new("11111111").unwrap();
    assert_eq!(
        backend.sign(&cert, &digest, &wrong).unwrap_err(),
        CardError::PinIncorrect {
            retries_left: Some(2)
        }
    );
    assert_eq!(
        backend.sign(&cert, &digest, &wrong).unwrap_err(),
        CardError::PinIncorrect {
            retries_left: Some(1)
        }
    );
    assert_eq!(
        backend.sign(&cert, &digest, &wrong).unwrap_err(),
        CardError::PinBlocked
    );
    let right = Pin::new(&card.info.pin).unwrap();
    assert_eq!(
        backend.sign(&cert, &digest, &right).unwrap_err(),
        CardError::PinBlocked
    );
    let readers = backend.readers().unwrap();
    let status = readers
        .iter()
        .find(|r| r.name == card.reader)
        .unwrap()
        .card
        .as_ref()
        .unwrap();
    assert!(status.pin.unwrap().blocked);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_card_pulled_out_mid_operation_fails_cleanly_and_is_forgotten() {
    let _guard = lock();
    let mut card = VirtualCard::insert_with(
        "doe",
        0,
        CardOptions {
            apdu_delay: Some(Duration::from_millis(100)),
            ..CardOptions::default()
        },
    );
    let mut backend = PcscBackend::new();
    let reader = card.reader;
    let puller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(450));
        card.remove_without_waiting();
        card
    });
    let result = backend.certificates(Some(reader));
    let mut card = puller.join().unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(err, CardError::CardRemoved | CardError::NoCard),
        "{err:?}"
    );
    // Back in, it is read afresh.
    card.reinsert();
    assert_eq!(backend.certificates(Some(reader)).unwrap().len(), 4);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn two_cards_in_two_readers() {
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);
    let mut backend = PcscBackend::new();
    let all = backend.certificates(None).unwrap();
    assert_eq!(all.len(), 4 + 3);
    let smiths = backend.certificates(Some(smith.reader)).unwrap();
    assert_eq!(smiths.len(), 3, "smith's card has no 9D");
    assert!(smiths
        .iter()
        .all(|c| c.info.edipi.as_deref() == Some("1098765432")));
    assert!(all
        .iter()
        .filter(|c| c.reader == doe.reader)
        .all(|c| c.info.edipi.as_deref() == Some("1234567890")));
    assert_eq!(
        backend.certificates(Some("No Such Reader 00")).unwrap_err(),
        CardError::UnknownReader("No Such Reader 00".into())
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn an_empty_reader_says_no_card() {
    let _guard = lock();
    cacbridge_testbed::ensure_pcscd();
    let mut backend = PcscBackend::new();
    assert_eq!(
        backend.certificates(Some(READERS[0].0)).unwrap_err(),
        CardError::NoCard
    );
    let readers = backend.readers().unwrap();
    assert!(readers.iter().all(|r| r.card.is_none()), "{readers:?}");
    assert_eq!(readers.len(), 2);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn survives_pcscd_stopping_and_restarting() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut backend = PcscBackend::new();
    let before = backend.certificates(None).unwrap();
    cacbridge_testbed::stop_pcscd();
    assert_eq!(
        backend.certificates(None).unwrap_err(),
        CardError::PcscUnavailable
    );
    cacbridge_testbed::start_pcscd();
    // The virtual card reconnects to the new pcscd on its own, as a card left in a reader.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cacbridge_testbed::card_present(card.reader) {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(backend.certificates(None).unwrap(), before);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_monitor_reports_insertion_and_removal() {
    let _guard = lock();
    cacbridge_testbed::ensure_pcscd();
    let (tx, rx) = std::sync::mpsc::channel();
    let monitor = cacbridge_card::monitor::watch(move |event| tx.send(event).is_ok());
    std::thread::sleep(Duration::from_millis(300));
    let mut card = VirtualCard::insert("doe", 0);
    let event = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(&event, ReaderEvent::CardInserted { reader, atr } if reader == card.reader && !atr.is_empty()),
        "{event:?}"
    );
    card.remove();
    let event = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        event,
        ReaderEvent::CardRemoved {
            reader: card.reader.to_owned()
        }
    );
    drop(monitor);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn pcscd_restarting_while_the_card_checks_the_pin_never_sends_it_twice() {
    let _guard = lock();
    let verifies = tempfile_path("verify-log");
    let card = VirtualCard::insert_with(
        "doe",
        0,
        CardOptions {
            verify_log: Some(verifies.clone()),
            verify_stall: Some(Duration::from_millis(1500)),
            ..CardOptions::default()
        },
    );
    let mut backend = PcscBackend::new();
    let auth = backend
        .certificates(None)
        .unwrap()
        .into_iter()
        .find(|c| c.slot == Slot::PivAuthentication)
        .unwrap();
    let pin = Pin::new(&card.info.pin).unwrap();
    let digest = Digest::of(HashFunction::Sha256, b"login");
    let signer = std::thread::spawn(move || backend.sign(&auth, &digest, &pin));

    // The VERIFY has reached the card: the service goes away before the card answers it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !verifies.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no VERIFY reached the card"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    cacbridge_testbed::stop_pcscd();
    cacbridge_testbed::start_pcscd();

    let result = signer.join().unwrap();
    assert_eq!(result.unwrap_err(), CardError::PinInterrupted);
    // Give a retry, had there been one, time to reach the card.
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        std::fs::read_to_string(&verifies).unwrap().lines().count(),
        1,
        "the PIN went to the card more than once"
    );
    let _ = std::fs::remove_file(&verifies);
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("cacbridge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn two_readers_are_read_at_the_same_time() {
    let _guard = lock();
    let slow = || CardOptions {
        apdu_delay: Some(Duration::from_millis(80)),
        ..CardOptions::default()
    };
    let doe = VirtualCard::insert_with("doe", 0, slow());
    let smith = VirtualCard::insert_with("smith", 1, slow());
    let mut backend = PcscBackend::new();
    let listed = backend.certificates(None).unwrap();
    assert_eq!(listed.iter().filter(|c| c.reader == doe.reader).count(), 4);
    assert_eq!(
        listed.iter().filter(|c| c.reader == smith.reader).count(),
        3
    );
    // Each card took over a second at 80 ms an APDU; their reads overlapped.
    let (doe_first, doe_last) = doe.apdu_span().unwrap();
    let (smith_first, smith_last) = smith.apdu_span().unwrap();
    assert!(
        smith_first < doe_last && doe_first < smith_last,
        "doe {doe_first}..{doe_last}, smith {smith_first}..{smith_last}: one after the other"
    );
    assert_eq!(
        backend.apdu_count(),
        (doe.apdus() + smith.apdus()) as u64,
        "every APDU counted once"
    );
    // Listed in reader order, as before.
    assert_eq!(listed[0].reader, doe.reader);
}
