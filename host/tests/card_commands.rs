//! `status`, `list-certificates`, `subscribe` and `cacbridge-host list` of the built host,
//! against pcscd with virtual cards. Ignored by a plain `cargo test`; scripts/test runs them
//! once tests/harness/testbed-setup has started the testbed.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use cacbridge_testbed::{lock, CardOptions, VirtualCard, READERS};
use common::{HostProcess, CHROME_ORIGIN, HOST};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn host() -> HostProcess {
    HostProcess::spawn(&[CHROME_ORIGIN])
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn status_reports_readers_card_type_and_pin_tries() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut host = host();
    let reply = host.call("s", "status", json!({}));
    let readers = reply["result"]["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 2, "{reply}");
    let with_card = &readers[0];
    assert_eq!(with_card["name"], card.reader);
    assert_eq!(with_card["cardPresent"], true);
    assert_eq!(with_card["cardType"], "PIV");
    assert_eq!(with_card["pinRetriesLeft"], 3);
    assert_eq!(with_card["pinBlocked"], false);
    assert!(with_card["atr"].as_str().unwrap().starts_with("3B"));
    assert_eq!(
        readers[1],
        json!({"name": READERS[1].0, "cardPresent": false})
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn list_certificates_gives_the_documented_view() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut host = host();
    let reply = host.call("l", "list-certificates", json!({}));
    let certs = reply["result"]["certificates"].as_array().unwrap();
    let slots: Vec<&str> = certs.iter().map(|c| c["slot"].as_str().unwrap()).collect();
    assert_eq!(slots, ["9A", "9C", "9D", "9E"]);
    let roles: Vec<&str> = certs.iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "PIV Authentication",
            "Digital Signature",
            "Key Management",
            "Card Authentication"
        ]
    );
    for cert in certs {
        let slot = cert["slot"].as_str().unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(cert["certificate"].as_str().unwrap())
            .unwrap();
        assert_eq!(der, card.info.certificate(slot), "{slot}");
        assert_eq!(cert["id"], hex::encode(Sha256::digest(&der)));
        assert_eq!(cert["reader"], card.reader);
        assert_eq!(cert["edipi"], "1234567890");
        for field in [
            "subject",
            "issuer",
            "serialNumber",
            "notBefore",
            "notAfter",
            "keyAlgorithm",
        ] {
            assert!(
                cert[field].as_str().is_some_and(|v| !v.is_empty()),
                "{slot} {field}"
            );
        }
    }
    let auth = &certs[0];
    assert_eq!(auth["keyAlgorithm"], "RSA-2048");
    assert_eq!(auth["upn"], card.info.upn);
    assert_eq!(auth["pinRequired"], true);
    assert_eq!(auth["pinAlways"], false);
    assert_eq!(auth["keyUsage"], json!(["digitalSignature"]));
    assert_eq!(
        auth["extendedKeyUsage"],
        json!(["clientAuth", "smartcardLogon"])
    );
    assert!(auth["subject"]
        .as_str()
        .unwrap()
        .contains("CN=DOE.JOHN.A.1234567890"));
    assert_eq!(certs[1]["pinAlways"], true);
    assert_eq!(certs[1]["keyAlgorithm"], "EC-P256");
    assert_eq!(certs[1]["email"], card.info.email);
    assert_eq!(certs[3]["pinRequired"], false);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn list_certificates_of_one_reader_and_the_errors_around_it() {
    let _guard = lock();
    let mut host = host();
    cacbridge_testbed::ensure_pcscd();
    let reply = host.call("e", "list-certificates", json!({}));
    assert_eq!(reply["error"]["code"], "no-card", "{reply}");

    let _doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);
    let reply = host.call("r", "list-certificates", json!({"reader": smith.reader}));
    let certs = reply["result"]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 3);
    assert!(certs.iter().all(|c| c["edipi"] == "1098765432"));
    assert_eq!(certs[0]["keyAlgorithm"], "EC-P384");

    let reply = host.call("u", "list-certificates", json!({"reader": "Nope 00 00"}));
    assert_eq!(reply["error"]["code"], "no-reader");
    assert_eq!(reply["error"]["reader"], "Nope 00 00");

    let reply = host.call("b", "list-certificates", json!({"reader": 7}));
    assert_eq!(reply["error"]["code"], "invalid-argument");
    assert_eq!(reply["error"]["argument"], "reader");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn version_is_never_stuck_behind_a_card_operation() {
    let _guard = lock();
    // Each APDU takes 60 ms: a cold listing takes over a second.
    let _card = VirtualCard::insert_with(
        "doe",
        0,
        CardOptions {
            apdu_delay: Some(Duration::from_millis(60)),
            ..CardOptions::default()
        },
    );
    let mut host = host();
    host.send(&json!({"id": "slow", "command": "list-certificates"}));
    host.send(&json!({"id": "status", "command": "status"}));
    host.send(&json!({"id": "fast", "command": "version"}));
    let order: Vec<Value> = (0..3).map(|_| host.recv().unwrap()["id"].clone()).collect();
    assert_eq!(
        order,
        vec![json!("fast"), json!("slow"), json!("status")],
        "card work is serialized in arrival order; version is not"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn subscribe_reports_cards_coming_and_going() {
    let _guard = lock();
    cacbridge_testbed::ensure_pcscd();
    let mut host = host();
    let reply = host.call("sub", "subscribe", json!({}));
    assert!(reply["result"]["events"]
        .as_array()
        .unwrap()
        .contains(&json!("card-inserted")));
    std::thread::sleep(Duration::from_millis(300));
    let mut card = VirtualCard::insert("smith", 1);
    let event = host.recv().unwrap();
    assert_eq!(event["event"], "card-inserted", "{event}");
    assert_eq!(event["data"]["reader"], card.reader);
    card.remove();
    let event = host.recv().unwrap();
    assert_eq!(
        event,
        json!({"event": "card-removed", "data": {"reader": card.reader}})
    );
    // Requests still work with events flowing.
    host.assert_version_works("after-events");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_stopped_pcscd_is_reported_and_a_restarted_one_is_used() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut host = host();
    assert!(host.call("1", "list-certificates", json!({}))["result"].is_object());
    cacbridge_testbed::stop_pcscd();
    let reply = host.call("2", "status", json!({}));
    assert_eq!(reply["error"]["code"], "pcsc-unavailable", "{reply}");
    cacbridge_testbed::start_pcscd();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cacbridge_testbed::card_present(card.reader) {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let reply = host.call("3", "list-certificates", json!({}));
    assert_eq!(
        reply["result"]["certificates"].as_array().unwrap().len(),
        4,
        "{reply}"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn list_subcommand_prints_a_table_and_json() {
    let _guard = lock();
    let _card = VirtualCard::insert("doe", 0);
    let out = Command::new(HOST).arg("list").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Virtual PCD 00 00: PIV, PIN: 3 tries left"),
        "{text}"
    );
    assert!(text.contains("PIV Authentication"));
    assert!(text.contains("DOE.JOHN.A.1234567890"));
    assert!(text.contains("Virtual PCD 00 01: no card"));

    let out = Command::new(HOST)
        .args(["list", "--json"])
        .output()
        .unwrap();
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["certificates"].as_array().unwrap().len(), 4);
    assert_eq!(view["readers"][0]["pinRetriesLeft"], 3);
}
