//! Soak: one host process under a long pipelined stream of mixed requests with bad frames
//! mixed in, then many authentications on one virtual card. Every request gets exactly one
//! reply, memory and descriptors stay flat, every PIN reaches the card exactly once and the
//! card's PIN counter never moves.
//!
//! scripts/test runs the short form; `CACBRIDGE_SOAK=long` runs the long one (100,000
//! requests, 1,000 authentications), whose figures are in docs/RELIABILITY.md. The figures
//! of a run are printed (`-- --nocapture`).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::HashMap;

use cacbridge_testbed::{lock, VirtualCard};
use common::{frame, HostProcess, CHROME_ORIGIN};
use serde_json::{json, Value};

const ORIGIN: &str = "https://portal.example.mil";

/// (mixed requests, authentications)
fn sizes() -> (usize, usize) {
    if std::env::var("CACBRIDGE_SOAK").as_deref() == Ok("long") {
        (100_000, 1_000)
    } else {
        (10_000, 50)
    }
}

/// Resident memory (KiB) and open descriptors of a process.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn one_host_answers_every_request_once_and_stays_flat() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let (requests, authentications) = sizes();
    let mut host = HostProcess::spawn_with_log_level(&[CHROME_ORIGIN], "info");
    // Warm up (the certificate read, the allocator's first arenas), then measure from there.
    let listed = host.call("warm", "list-certificates", json!({}));
    let id = listed["result"]["certificates"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = footprint(host.pid());

    // Pipelined: everything written before the replies are read (a reader thread drains them).
    let mut expected: HashMap<String, &str> = HashMap::new();
    let mut bad_frames = 0;
    for n in 0..requests {
        let id = format!("r{n}");
        let (command, arguments, outcome) = match n % 10 {
            0..=3 => ("version", json!({}), "result"),
            4 => ("no-such-command", json!({}), "unknown-command"),
            5 => (
                "authenticate",
                json!({"certificateId": 7}),
                "invalid-argument",
            ),
            6 => (
                "sign",
                json!({"origin": "not an origin"}),
                "invalid-argument",
            ),
            7 if n % 100 == 7 => (
                "list-certificates",
                json!({"purpose": "authentication"}),
                "result",
            ),
            _ => {
                // A bad frame: a body that is not JSON. Answered with an error and no id.
                host.write_raw(&frame(b"{not json"));
                bad_frames += 1;
                continue;
            }
        };
        host.send(&json!({"id": id, "command": command, "arguments": arguments}));
        expected.insert(id, outcome);
    }
    let mut answered: HashMap<String, usize> = HashMap::new();
    let mut unaddressed = 0;
    while answered.values().sum::<usize>() < expected.len() || unaddressed < bad_frames {
        let reply = host.recv().expect("the host is running");
        match reply["id"].as_str() {
            Some(id) => {
                let outcome = if reply.get("result").is_some() {
                    "result"
                } else {
                    reply["error"]["code"].as_str().unwrap()
                };
                assert_eq!(expected.get(id), Some(&outcome), "{reply}");
                *answered.entry(id.to_owned()).or_default() += 1;
            }
            None => {
                assert_eq!(reply["error"]["code"], "invalid-json", "{reply}");
                unaddressed += 1;
            }
        }
    }
    assert!(
        answered.values().all(|&n| n == 1),
        "a request answered twice"
    );
    assert_eq!(answered.len(), expected.len());
    let after_stream = footprint(host.pid());

    // Authentications on the card: each PIN once, the counter untouched.
    let verifies_before = card
        .apdu_headers()
        .iter()
        .filter(|h| h.starts_with("00200080"))
        .count();
    for n in 0..authentications {
        let reply = host.call(
            &format!("a{n}"),
            "authenticate",
            json!({"certificateId": id, "challengeNonce": format!("soaknonce{n:035}"),
                   "origin": ORIGIN, "pin": card.info.pin}),
        );
        assert_eq!(reply["result"]["format"], "cacbridge:1", "{reply}");
    }
    let headers = card.apdu_headers();
    let verifies = headers.iter().filter(|h| h.starts_with("00200080")).count() - verifies_before;
    // One VERIFY with the PIN per authentication (the PIN-state reads are VERIFY without data
    // and are counted apart by the status command, not here: none were sent).
    assert_eq!(
        verifies, authentications,
        "each PIN reached the card exactly once"
    );
    let status = host.call("s", "status", json!({}));
    assert_eq!(
        status["result"]["readers"][0]["pinRetriesLeft"], 3,
        "{status}"
    );
    let end = footprint(host.pid());
    println!(
        "soak: {requests} requests ({bad_frames} bad frames) and {authentications} authentications; \
         RSS {} -> {} -> {} KiB, descriptors {} -> {} -> {}",
        start.0, after_stream.0, end.0, start.1, after_stream.1, end.1
    );
    assert!(
        end.0 < start.0 + 16 * 1024,
        "RSS grew: {start:?} -> {end:?}"
    );
    assert!(
        end.1 <= start.1 + 2,
        "descriptors grew: {start:?} -> {end:?}"
    );
    // Still serving.
    let version = host.call("v", "version", json!({}));
    assert!(version.get("result").is_some(), "{version}");
    let _: &Value = &version;
}
