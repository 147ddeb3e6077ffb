//! The certificate cache across host processes (card/src/disk_cache.rs), on the real stack:
//! a new host finds what the last one read while the card stayed in its reader, and never
//! shows one card's certificates for another, even one with the same CHUID and ATR.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use cacbridge_testbed::{lock, VirtualCard};
use common::{HostProcess, CHROME_ORIGIN};
use serde_json::{json, Value};

fn authentication_certificates(host: &mut HostProcess) -> Vec<Value> {
    let reply = host.call(
        "l",
        "list-certificates",
        json!({"purpose": "authentication"}),
    );
    reply["result"]["certificates"].as_array().unwrap().clone()
}

/// What the Register window asks for: the PIN state and the authentication certificate. The
/// APDUs the card answered for it.
fn open_the_window(card: &VirtualCard) -> (usize, Vec<Value>) {
    let before = card.apdus();
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    let status = host.call("s", "status", json!({}));
    assert_eq!(
        status["result"]["readers"][0]["pinRetriesLeft"], 3,
        "{status}"
    );
    let certificates = authentication_certificates(&mut host);
    drop(host);
    (card.apdus() - before, certificates)
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_new_host_process_reads_nothing_again_while_the_card_stays() {
    let _guard = lock();
    let mut card = VirtualCard::insert("doe", 0);
    let (first, certificates) = open_the_window(&card);
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0]["slot"], "9A");
    // SELECT, empty VERIFY, CCC; SELECT, GET DATA 9A and its GET RESPONSEs.
    assert!((4..=9).contains(&first), "first window: {first} APDUs");

    let (again, certificates_again) = open_the_window(&card);
    assert_eq!(certificates_again, certificates);
    assert_eq!(
        again, 2,
        "a new process: SELECT and the empty VERIFY for the PIN tries"
    );

    // Pulled and put back: pcscd counts a new insertion, and the card is read afresh.
    card.remove();
    card.reinsert();
    let (reinserted, _) = open_the_window(&card);
    assert_eq!(reinserted, first, "read afresh after a reinsertion");
}

/// Give the card in `card.reader` the CHUID `chuid` (through yubico-piv-tool, a client
/// nobody here wrote) and read it back.
fn set_chuid(card: &VirtualCard, chuid: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("chuid");
    std::fs::write(&input, chuid).unwrap();
    let piv = |args: &[&str]| {
        let out = Command::new("yubico-piv-tool")
            .args([
                "-r",
                card.reader,
                "--key=010203040506070801020304050607080102030405060708",
            ])
            .args(args)
            .output()
            .expect("yubico-piv-tool");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    piv(&[
        "-a",
        "write-object",
        "--id",
        "0x5fc102",
        "-f",
        "binary",
        "-i",
        input.to_str().unwrap(),
    ]);
    piv(&["-a", "read-object", "--id", "0x5fc102", "-f", "binary"])
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_card_with_the_same_chuid_and_atr_but_other_certificates_never_gets_the_cache() {
    let _guard = lock();
    // FASC-N, GUID, expiry, an empty issuer signature: the same bytes on both cards.
    let chuid = [
        &[0x30, 0x19][..],
        &[0xD4; 25],
        &[0x34, 0x10],
        &[0x42; 16],
        &[0x35, 0x08],
        b"20301231",
        &[0x3E, 0x00, 0xFE, 0x00],
    ]
    .concat();
    let doe = VirtualCard::insert("doe", 0);
    let doe_chuid = set_chuid(&doe, &chuid);
    let (_, doe_certificates) = open_the_window(&doe);
    let doe_atr = {
        let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
        host.call("s", "status", json!({}))["result"]["readers"][0]["atr"].clone()
    };
    drop(doe);

    let smith = VirtualCard::insert("smith", 0);
    assert_eq!(set_chuid(&smith, &chuid), doe_chuid, "the same CHUID");
    let (apdus, smith_certificates) = open_the_window(&smith);
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    assert_eq!(
        host.call("s", "status", json!({}))["result"]["readers"][0]["atr"],
        doe_atr,
        "the same ATR"
    );
    assert_eq!(smith_certificates.len(), 1);
    assert_ne!(smith_certificates[0]["id"], doe_certificates[0]["id"]);
    assert_eq!(smith_certificates[0]["commonName"], "SMITH.JANE.1098765432");
    assert!(apdus > 2, "smith's card was read: {apdus} APDUs");
}

/// Each APDU answered after 80 ms, slower than a real CAC's (docs/PERFORMANCE.md), so that a
/// request can arrive while a read is under way.
fn slow_card(name: &str) -> VirtualCard {
    VirtualCard::insert_with(
        name,
        0,
        cacbridge_testbed::CardOptions {
            apdu_delay: Some(std::time::Duration::from_millis(80)),
            ..Default::default()
        },
    )
}

/// How many times the PIV Authentication certificate (object 5FC105) was asked for.
fn authentication_reads(card: &VirtualCard) -> usize {
    card.apdu_headers()
        .iter()
        .filter(|h| h.starts_with("00cb3fff055c035fc105"))
        .count()
}

/// The APDU count once it has stopped moving (the prefetch is done).
fn settled(card: &VirtualCard) -> usize {
    let mut last = card.apdus();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = card.apdus();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_subscribed_host_reads_an_inserted_card_before_anyone_asks() {
    let _guard = lock();
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    host.call("e", "subscribe", json!({}));
    let mut card = slow_card("doe");
    assert_eq!(host.recv().unwrap()["event"], "card-inserted");
    let prefetched = settled(&card);
    assert!(prefetched >= 2, "read on insertion: {prefetched} APDUs");
    assert_eq!(authentication_reads(&card), 1);
    assert_eq!(
        card.apdu_headers()
            .iter()
            .filter(|h| h.starts_with("00cb"))
            .count(),
        1,
        "the authentication certificate alone"
    );

    // The window: the PIN state from the card, the certificate from the prefetch.
    let status = host.call("s", "status", json!({}));
    assert_eq!(status["result"]["readers"][0]["pinRetriesLeft"], 3);
    assert_eq!(authentication_certificates(&mut host).len(), 1);
    let window = card.apdus() - prefetched;
    assert!(
        window <= 3,
        "SELECT, empty VERIFY, CCC once: {window} APDUs"
    );

    // A request that arrives while the prefetch is reading waits for it: one read, not two.
    card.remove();
    assert_eq!(host.recv().unwrap()["event"], "card-removed");
    let before = card.apdus();
    card.reinsert();
    assert_eq!(host.recv().unwrap()["event"], "card-inserted");
    let sent_at = card.apdus() - before;
    assert!(
        sent_at + 1 < prefetched,
        "the request must arrive mid-read to test this: {sent_at} of {prefetched} APDUs done"
    );
    let listed = authentication_certificates(&mut host);
    assert_eq!(listed[0]["slot"], "9A");
    assert_eq!(
        authentication_reads(&card),
        2,
        "one read for this insertion, shared"
    );
}
