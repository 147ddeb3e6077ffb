//! The backend's retry, release and cache rules over a scripted PC/SC service and scripted
//! cards, down to the APDUs (the real pcscd and virtual cards judge the same rules in
//! card/tests/virtual_cards.rs).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::crypto::HashFunction;
use crate::testing::{
    certificates, p256_certificate_with_key, PcscEvent, ScriptedCard, ScriptedPcsc,
};
use crate::Digest;

const READER: &str = "Scripted Reader 00 00";
const ATR: &[u8] = &[0x3B, 0x88, 0x80, 0x01];
const PIV_SELECT: &str = "00A4040009A0000003080000100000";
const READ_AUTHENTICATION: &str = "00CB3FFF055C035FC10500";
const VERIFY_123456: &str = "0020008008313233343536FFFF";
const LOGOUT: &str = "0020FF80";

fn hexu(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// BER-TLV with a definite length.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match value.len() {
        n @ 0..=0x7F => out.push(n as u8),
        n @ 0x80..=0xFF => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
    out
}

/// A PIV certificate object as GET DATA answers it: 53 { 70 cert, 71 00 (not compressed),
/// FE (no LRC) }.
fn certificate_object(der: &[u8]) -> String {
    let mut inner = tlv(0x70, der);
    inner.extend(tlv(0x71, &[0x00]));
    inner.extend(tlv(0xFE, &[]));
    format!("{}9000", hexu(&tlv(0x53, &inner)))
}

/// The APDUs of listing a PIV card's authentication certificate.
fn authentication_read(der: &[u8]) -> Vec<(String, String)> {
    vec![
        (PIV_SELECT.into(), "9000".into()),
        (READ_AUTHENTICATION.into(), certificate_object(der)),
    ]
}

/// The 9A certificate of the scripted cards that sign, and its key (made once per run): every
/// signature is checked against the listed certificate (signature_check.rs), so a scripted
/// card signs for real.
fn signing_card() -> &'static (Vec<u8>, p256::ecdsa::SigningKey) {
    static CARD: std::sync::OnceLock<(Vec<u8>, p256::ecdsa::SigningKey)> =
        std::sync::OnceLock::new();
    CARD.get_or_init(p256_certificate_with_key)
}

/// The DER ECDSA signature of `key` over the hash `hash` (deterministic, RFC 6979).
fn signed_by(key: &p256::ecdsa::SigningKey, hash: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::hazmat::PrehashSigner as _;
    let signature: p256::ecdsa::Signature = key.sign_prehash(hash).unwrap();
    signature.to_der().as_bytes().to_vec()
}

/// The APDUs of an ECDSA P-256 signature over `digest` by the key `key`: VERIFY, GENERAL
/// AUTHENTICATE, logout answered with `logout_answer`.
fn p256_signature_by(
    key: &p256::ecdsa::SigningKey,
    digest: &Digest,
    logout_answer: &str,
) -> Vec<(String, String)> {
    let mut answer = tlv(0x7C, &tlv(0x82, &signed_by(key, digest.bytes())));
    answer.extend([0x90, 0x00]);
    vec![
        (PIV_SELECT.into(), "9000".into()),
        (VERIFY_123456.into(), "9000".into()),
        (
            format!("0087119A267C2482008120{}00", hexu(digest.bytes())),
            hexu(&answer),
        ),
        (LOGOUT.into(), logout_answer.into()),
    ]
}

/// The same, by the key of [`signing_card`]'s certificate.
fn p256_signature(digest: &Digest, logout_answer: &str) -> Vec<(String, String)> {
    p256_signature_by(&signing_card().1, digest, logout_answer)
}

fn card(steps: &[Vec<(String, String)>]) -> ScriptedCard {
    let steps: Vec<(&str, &str)> = steps
        .iter()
        .flatten()
        .map(|(command, answer)| (command.as_str(), answer.as_str()))
        .collect();
    ScriptedCard::t1(&steps)
}

/// A service with one reader holding a card that plays `steps`.
fn service_with(steps: &[Vec<(String, String)>]) -> ScriptedPcsc {
    let service = ScriptedPcsc::new();
    service.add_reader(READER);
    service.insert(READER, ATR, card(steps));
    service
}

fn list(backend: &mut PcscBackend<ScriptedPcsc>) -> Result<Vec<CardCertificate>, CardError> {
    backend.certificates_for(Some(READER), Purpose::Authentication)
}

fn sign(
    backend: &mut PcscBackend<ScriptedPcsc>,
    certificate: &CardCertificate,
    digest: &Digest,
) -> Result<Vec<u8>, CardError> {
    let pin = Pin::new("123456").unwrap();
    let input = SignatureInput::for_digest(certificate.info.key_algorithm, digest).unwrap();
    backend.sign_input(certificate, &input, Some(&pin))
}

/// One whole use of the card: connect, one transaction left as it was, disconnect.
fn one_use(ending: PcscEvent) -> Vec<PcscEvent> {
    vec![
        PcscEvent::Connected(READER.into()),
        PcscEvent::Began(READER.into()),
        ending,
        PcscEvent::Disconnected(READER.into()),
    ]
}

fn leaving() -> PcscEvent {
    PcscEvent::EndedLeaving(READER.into())
}

#[test]
fn a_reset_or_a_lost_service_is_retried_once_before_any_pin_left() {
    for error in [CardError::CardReset, CardError::PcscUnavailable] {
        assert!(may_retry(&error, 0, false), "{error:?}");
        assert!(!may_retry(&error, 1, false), "{error:?}");
    }
    assert!(!may_retry(&CardError::CardRemoved, 0, false));
}

#[test]
fn once_a_pin_left_for_the_card_nothing_is_retried_and_the_error_says_so() {
    for error in [CardError::CardReset, CardError::PcscUnavailable] {
        assert!(!may_retry(&error, 0, true), "{error:?}");
        assert_eq!(final_error(error, true), CardError::PinInterrupted);
    }
    assert_eq!(
        final_error(CardError::CardReset, false),
        CardError::CardReset
    );
    assert_eq!(
        final_error(
            CardError::PinIncorrect {
                retries_left: Some(2)
            },
            true
        ),
        CardError::PinIncorrect {
            retries_left: Some(2)
        }
    );
}

#[test]
fn a_card_is_read_once_per_insertion_and_always_left_as_it_was() {
    let service = service_with(&[authentication_read(certificates::P256)]);
    let mut backend = PcscBackend::over(service.clone());
    let first = list(&mut backend).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].slot, Slot::PivAuthentication);
    assert_eq!(first[0].der, certificates::P256);
    let mut expected = vec![PcscEvent::Established];
    expected.extend(one_use(leaving()));
    assert_eq!(service.take_events(), expected);

    // The second listing comes from memory: the transcript is played out, so any APDU would
    // fail the test, and the card is not even connected.
    let second = list(&mut backend).unwrap();
    assert_eq!(second, first);
    assert_eq!(service.take_events(), vec![]);
    assert_eq!(backend.apdu_count(), 2);
    service.assert_transcripts_done();
}

#[test]
fn a_signature_verifies_signs_and_logs_out_in_one_transaction() {
    let digest = Digest::of(HashFunction::Sha256, b"hello");
    let service = service_with(&[
        authentication_read(&signing_card().0),
        p256_signature(&digest, "9000"),
    ]);
    let mut backend = PcscBackend::over(service.clone());
    let certificate = list(&mut backend).unwrap().remove(0);
    service.take_events();
    assert_eq!(
        sign(&mut backend, &certificate, &digest).unwrap(),
        signed_by(&signing_card().1, digest.bytes())
    );
    assert_eq!(service.take_events(), one_use(leaving()));
    assert_eq!(backend.apdu_count(), 6);
    service.assert_transcripts_done();
}

#[test]
fn a_card_that_cannot_log_out_ends_its_transaction_with_a_reset() {
    let digest = Digest::of(HashFunction::Sha256, b"hello");
    // A pre-800-73-4 card: P1 = FF is an incorrect parameter.
    let service = service_with(&[
        authentication_read(&signing_card().0),
        p256_signature(&digest, "6A86"),
    ]);
    let mut backend = PcscBackend::over(service.clone());
    let certificate = list(&mut backend).unwrap().remove(0);
    service.take_events();
    sign(&mut backend, &certificate, &digest).unwrap();
    assert_eq!(
        service.take_events(),
        one_use(PcscEvent::EndedWithReset(READER.into()))
    );
    service.assert_transcripts_done();
}

#[test]
fn a_card_swapped_since_the_listing_never_signs_in_its_place() {
    let digest = Digest::of(HashFunction::Sha256, b"hello");
    let service = service_with(&[authentication_read(certificates::P256)]);
    let mut backend = PcscBackend::over(service.clone());
    let certificate = list(&mut backend).unwrap().remove(0);
    // Another card goes in: the backend reads it (the cache was of the other insertion), finds
    // a certificate that is not the one asked for, and sends no PIN.
    service.insert(
        READER,
        ATR,
        card(&[authentication_read(certificates::RSA2048)]),
    );
    assert_eq!(
        sign(&mut backend, &certificate, &digest),
        Err(CardError::CertificateNotFound)
    );
    service.assert_transcripts_done();
}

#[test]
fn a_reset_by_another_program_is_followed_by_a_reconnect_and_one_retry() {
    let mut read = authentication_read(certificates::P256);
    // The SELECT reaches the card; the GET DATA meets the reset; the retry starts over.
    read.insert(0, (PIV_SELECT.into(), "9000".into()));
    let service = service_with(&[read]);
    service.reset_at_apdu(2);
    let mut backend = PcscBackend::over(service.clone());
    assert_eq!(list(&mut backend).unwrap().len(), 1);
    assert_eq!(
        service.take_events(),
        vec![
            PcscEvent::Established,
            PcscEvent::Connected(READER.into()),
            PcscEvent::Began(READER.into()),
            leaving(),
            PcscEvent::Reconnected(READER.into()),
            PcscEvent::Began(READER.into()),
            leaving(),
            PcscEvent::Disconnected(READER.into()),
        ]
    );
    service.assert_transcripts_done();
}

#[test]
fn a_reset_after_the_pin_left_is_reported_and_the_pin_is_not_sent_again() {
    let digest = Digest::of(HashFunction::Sha256, b"hello");
    // The SELECT and the VERIFY reach the card; the GENERAL AUTHENTICATE meets the reset.
    let mut signing = p256_signature(&digest, "9000");
    signing.truncate(2);
    let service = service_with(&[authentication_read(&signing_card().0), signing]);
    let mut backend = PcscBackend::over(service.clone());
    let certificate = list(&mut backend).unwrap().remove(0);
    service.take_events();
    service.reset_at_apdu(3);
    assert_eq!(
        sign(&mut backend, &certificate, &digest),
        Err(CardError::PinInterrupted)
    );
    assert_eq!(service.take_events(), one_use(leaving()));
    service.assert_transcripts_done();
}

#[test]
fn a_restarted_pcscd_gets_a_new_context_and_the_card_is_read_afresh() {
    let service = service_with(&[
        authentication_read(certificates::P256),
        authentication_read(certificates::P256),
    ]);
    let mut backend = PcscBackend::over(service.clone());
    let before = list(&mut backend).unwrap();
    service.restart_service();
    // pcscd's counters restarted with it: what was cached is not trusted.
    assert_eq!(list(&mut backend).unwrap(), before);
    let established = service
        .take_events()
        .into_iter()
        .filter(|e| *e == PcscEvent::Established)
        .count();
    assert_eq!(established, 2);
    service.assert_transcripts_done();
}

#[test]
fn no_pcscd_is_pcsc_unavailable() {
    let service = service_with(&[]);
    service.stop_service();
    let mut backend = PcscBackend::over(service.clone());
    assert_eq!(backend.readers(), Err(CardError::PcscUnavailable));
    assert_eq!(list(&mut backend), Err(CardError::PcscUnavailable));
}

#[test]
fn a_card_held_exclusively_for_a_moment_is_waited_for() {
    let service = service_with(&[authentication_read(certificates::P256)]);
    service.refuse_connections(3);
    let mut backend = PcscBackend::over(service.clone());
    assert_eq!(list(&mut backend).unwrap().len(), 1);
    service.assert_transcripts_done();
}

#[test]
fn a_card_held_exclusively_for_long_is_card_in_use() {
    let service = service_with(&[]);
    service.refuse_connections(u32::MAX);
    let mut backend = PcscBackend::over(service.clone());
    let started = std::time::Instant::now();
    assert_eq!(list(&mut backend), Err(CardError::CardInUse));
    assert!(started.elapsed() >= IN_USE_PATIENCE);
}

#[test]
fn a_card_pulled_out_mid_read_is_card_removed_and_forgotten() {
    let service = service_with(&[vec![(PIV_SELECT.into(), "9000".into())]]);
    service.remove_at_apdu(2);
    let mut backend = PcscBackend::over(service.clone());
    assert_eq!(list(&mut backend), Err(CardError::CardRemoved));
    assert_eq!(list(&mut backend), Err(CardError::NoCard));
    assert!(backend.cards.is_empty());
}

#[test]
fn cards_in_two_readers_are_read_side_by_side() {
    const OTHER: &str = "Scripted Reader 01 00";
    let service = service_with(&[authentication_read(certificates::P256)]);
    service.add_reader(OTHER);
    service.insert(OTHER, ATR, card(&[authentication_read(certificates::P384)]));
    let mut backend = PcscBackend::over(service.clone());
    let listed = backend
        .certificates_for(None, Purpose::Authentication)
        .unwrap();
    let mut found: Vec<(&str, &[u8])> = listed
        .iter()
        .map(|c| (c.reader.as_str(), c.der.as_slice()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![(READER, certificates::P256), (OTHER, certificates::P384)]
    );
    assert_eq!(backend.apdu_count(), 4);
    service.assert_transcripts_done();
}

#[test]
fn a_later_process_finds_the_certificates_in_the_disk_cache_until_the_card_moves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cards.json");
    let service = service_with(&[authentication_read(certificates::P256)]);
    let with_cache = |service: &ScriptedPcsc| {
        let mut backend = PcscBackend::over(service.clone());
        backend.disk = Some(DiskCache::for_instance(path.clone(), "boot:1:100"));
        backend
    };
    let first = list(&mut with_cache(&service)).unwrap();
    let mut later = with_cache(&service);
    assert_eq!(list(&mut later).unwrap(), first);
    assert_eq!(later.apdu_count(), 0);

    // The same card taken out and put back is a new insertion: read again.
    service.remove(READER);
    service.insert(
        READER,
        ATR,
        card(&[authentication_read(certificates::P256)]),
    );
    let mut after_reinsertion = with_cache(&service);
    assert_eq!(list(&mut after_reinsertion).unwrap(), first);
    assert_eq!(after_reinsertion.apdu_count(), 2);
    service.assert_transcripts_done();
}

#[test]
fn a_card_rewritten_in_the_reader_signs_nothing_under_the_old_certificate_and_is_read_again() {
    let digest = Digest::of(HashFunction::Sha256, b"hello");
    // The same insertion (no removal, the same ATR): 9A got a new key and certificate in the
    // reader after the listing. The card signs with the new key.
    let (rewritten, new_key) = p256_certificate_with_key();
    let service = service_with(&[
        authentication_read(&signing_card().0),
        p256_signature_by(&new_key, &digest, "9000"),
        authentication_read(&rewritten),
    ]);
    let mut backend = PcscBackend::over(service.clone());
    let listed = list(&mut backend).unwrap().remove(0);
    assert_eq!(
        sign(&mut backend, &listed, &digest),
        Err(CardError::CertificatesChanged)
    );
    // Forgotten: the next listing reads the card, and finds the new certificate.
    let now = list(&mut backend).unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].der, rewritten);
    service.assert_transcripts_done();
}
