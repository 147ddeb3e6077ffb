//! A legacy CAC (GSC-IS applets, no PIV) emulated by Debian's libcacard behind vpcd
//! (tests/virtual-cac). Ignored by a plain `cargo test`; scripts/test runs them.
#![allow(clippy::unwrap_used)]

use cacbridge_card::{Backend, CardError, CardType, Digest, HashFunction, PcscBackend, Pin, Slot};
use cacbridge_testbed::{lock, openssl_verifies, run, VirtualCard};

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_legacy_cac_is_listed_with_its_three_certificates() {
    let _guard = lock();
    let card = VirtualCard::insert("legacy", 1);
    let mut backend = PcscBackend::new();
    let certs = backend.certificates(Some(card.reader)).unwrap();
    eprintln!("legacy CAC listing: {} APDUs", backend.apdu_count());
    let slots: Vec<Slot> = certs.iter().map(|c| c.slot).collect();
    assert_eq!(slots, Slot::CAC.to_vec());
    for cert in &certs {
        let label = cacbridge_testbed::golden_label(cert.slot);
        assert_eq!(cert.der, card.info.certificate(&label), "{label}");
        assert_eq!(cert.info.edipi.as_deref(), Some("1122334455"));
    }
    assert_eq!(certs[0].slot, Slot::CacId);
    assert!(certs[0].slot.is_authentication());
    let readers = backend.readers().unwrap();
    let status = readers
        .iter()
        .find(|r| r.name == card.reader)
        .and_then(|r| r.card.clone())
        .unwrap();
    assert_eq!(status.card_type, CardType::Cac);
    assert_eq!(status.pin, None, "legacy CACs give no retry counter");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_legacy_cac_signs_and_the_signature_verifies_with_openssl() {
    let _guard = lock();
    let card = VirtualCard::insert("legacy", 1);
    let mut backend = PcscBackend::new();
    let certs = backend.certificates(Some(card.reader)).unwrap();
    let id = certs.iter().find(|c| c.slot == Slot::CacId).unwrap();
    let message = b"legacy CAC signature";
    let signature = backend
        .sign(
            id,
            &Digest::of(HashFunction::Sha256, message),
            &Pin::new(&card.info.pin).unwrap(),
        )
        .unwrap();
    assert_eq!(signature.len(), 256);
    assert!(openssl_verifies(&id.der, message, &signature));
    assert!(!openssl_verifies(&id.der, b"something else", &signature));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_wrong_pin_on_a_legacy_cac_is_refused() {
    let _guard = lock();
    let card = VirtualCard::insert("legacy", 1);
    let mut backend = PcscBackend::new();
    let certs = backend.certificates(Some(card.reader)).unwrap();
    let err = backend
        .sign(
            &certs[0],
            &Digest::of(HashFunction::Sha256, b"x"),
            &Pin::new("11112222").unwrap(),
        )
        .unwrap_err();
    assert_eq!(err, CardError::PinIncorrect { retries_left: None });
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_piv_card_and_a_legacy_cac_side_by_side() {
    let _guard = lock();
    let _doe = VirtualCard::insert("doe", 0);
    let _legacy = VirtualCard::insert("legacy", 1);
    let mut backend = PcscBackend::new();
    let all = backend.certificates(None).unwrap();
    assert_eq!(all.len(), 4 + 3);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn opensc_reads_the_same_legacy_certificates() {
    let _guard = lock();
    let card = VirtualCard::insert("legacy", 1);
    let mut backend = PcscBackend::new();
    let ours = backend.certificates(Some(card.reader)).unwrap();
    let out = run("pkcs15-tool", &["--reader", "1", "--list-certificates"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let ids: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ID"))
        .map(|l| l.trim_start_matches([' ', ':']).trim())
        .collect();
    assert_eq!(ids.len(), 3, "{listing}");
    let mut theirs = Vec::new();
    for id in ids {
        let out = run("pkcs15-tool", &["--reader", "1", "--read-certificate", id]);
        let (_, pem) = x509_parser::pem::parse_x509_pem(&out.stdout).unwrap();
        theirs.push(pem.contents);
    }
    for cert in &ours {
        assert!(theirs.contains(&cert.der), "OpenSC lacks {:?}", cert.slot);
    }
}

/// Another program on the same card, sending APDUs of its own through pcscd.
struct OtherProgram(pcsc::Card);

impl cacbridge_card::transport::Transport for OtherProgram {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        let mut buffer = [0u8; 512];
        Ok(self.0.transmit(apdu, &mut buffer)?.to_vec())
    }

    fn protocol(&self) -> cacbridge_card::transport::Protocol {
        cacbridge_card::transport::Protocol::T0
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn after_a_signature_no_other_program_finds_the_legacy_cac_verified() {
    use cacbridge_card::cac;
    use cacbridge_card::transport::Channel;
    let _guard = lock();
    let card = VirtualCard::insert("legacy", 1);
    let mut backend = PcscBackend::new();
    let certs = backend.certificates(Some(card.reader)).unwrap();
    let id = certs.iter().find(|c| c.slot == Slot::CacId).unwrap();
    backend
        .sign(
            id,
            &Digest::of(HashFunction::Sha256, b"login"),
            &Pin::new(&card.info.pin).unwrap(),
        )
        .unwrap();

    // A program that never typed the PIN asks the ID applet for a signature.
    let context = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let reader = std::ffi::CString::new(card.reader).unwrap();
    let other = context
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    let mut other = OtherProgram(other);
    let mut ch = Channel::new(&mut other);
    assert!(cac::select(&mut ch, &cac::applet_aid(Slot::CacId).unwrap()).unwrap());
    let mut block = vec![0xFFu8; 256];
    block[0] = 0x00;
    block[1] = 0x01;
    block[255] = 0x00;
    let result = cac::sign_raw(&mut ch, &block);
    assert!(
        result.is_err(),
        "the ID key signed for a program that never verified the PIN"
    );
}
