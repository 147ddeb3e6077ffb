//! `authenticate` and `sign` of the built host on virtual cards: tokens checked with RustCrypto
//! and openssl over `H(origin) || H(nonce)`, role rules, policy, PIN handling. Ignored by a
//! plain `cargo test`; scripts/test runs them against the testbed.
#![allow(clippy::unwrap_used)]

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cacbridge_testbed::{lock, openssl_verifies, spki, VirtualCard};
use cacbridge_verify::{CertificateError, TokenError};
use common::{HostProcess, CHROME_ORIGIN};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha384};

const ORIGIN: &str = "https://portal.example.mil";
const NONCE: &str = "q7l7bUy5L1t0H1h3kS8tJ0lXc0u2Y3RhbmNlbm9uY2U0NA==";

fn certificate_id(host: &mut HostProcess, slot: &str) -> String {
    let reply = host.call("list", "list-certificates", json!({}));
    reply["result"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slot"] == slot)
        .unwrap_or_else(|| panic!("no {slot}: {reply}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The message the card signed, rebuilt the way a server does.
fn message(sha384: bool, origin: &str, nonce: &str) -> Vec<u8> {
    if sha384 {
        [
            Sha384::digest(origin).to_vec(),
            Sha384::digest(nonce).to_vec(),
        ]
        .concat()
    } else {
        [
            Sha256::digest(origin).to_vec(),
            Sha256::digest(nonce).to_vec(),
        ]
        .concat()
    }
}

/// Check a token independently of the host's code.
fn verify_token(token: &Value, origin: &str, nonce: &str) {
    assert_eq!(token["format"], "cacbridge:1");
    assert!(token["appVersion"]
        .as_str()
        .unwrap()
        .starts_with("cacbridge-host/"));
    let cert = B64
        .decode(token["unverifiedCertificate"].as_str().unwrap())
        .unwrap();
    let signature = B64.decode(token["signature"].as_str().unwrap()).unwrap();
    let spki = spki(&cert);
    match token["algorithm"].as_str().unwrap() {
        "RS256" => {
            use rsa::{pkcs8::DecodePublicKey, Pkcs1v15Sign, RsaPublicKey};
            let key = RsaPublicKey::from_public_key_der(&spki).unwrap();
            let digest = Sha256::digest(message(false, origin, nonce));
            key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
                .expect("RS256 token");
        }
        "ES256" => {
            use p256::ecdsa::signature::Verifier;
            use p256::pkcs8::DecodePublicKey;
            assert_eq!(signature.len(), 64, "JWS r||s");
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let sig = p256::ecdsa::Signature::from_slice(&signature).unwrap();
            key.verify(&message(false, origin, nonce), &sig)
                .expect("ES256 token");
        }
        "ES384" => {
            use p384::ecdsa::signature::Verifier;
            use p384::pkcs8::DecodePublicKey;
            assert_eq!(signature.len(), 96, "JWS r||s");
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let sig = p384::ecdsa::Signature::from_slice(&signature).unwrap();
            key.verify(&message(true, origin, nonce), &sig)
                .expect("ES384 token");
        }
        other => panic!("unexpected algorithm {other}"),
    }
}

fn authenticate(host: &mut HostProcess, id: &str, pin: &str) -> Value {
    host.call(
        "auth",
        "authenticate",
        json!({"certificateId": id, "challengeNonce": NONCE, "origin": ORIGIN, "pin": pin}),
    )
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn an_rsa_token_verifies_independently_and_with_openssl() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    let id = certificate_id(&mut host, "9A");
    let reply = authenticate(&mut host, &id, &card.info.pin);
    let token = &reply["result"];
    assert_eq!(token["algorithm"], "RS256", "{reply}");
    assert_eq!(
        B64.decode(token["unverifiedCertificate"].as_str().unwrap())
            .unwrap(),
        card.info.certificate("9A")
    );
    verify_token(token, ORIGIN, NONCE);

    // openssl over the same bytes.
    let signature = B64.decode(token["signature"].as_str().unwrap()).unwrap();
    assert!(openssl_verifies(
        &card.info.certificate("9A"),
        &message(false, ORIGIN, NONCE),
        &signature
    ));

    // Bound to the origin: the same token does not verify for another one.
    let result = std::panic::catch_unwind(|| verify_token(token, "https://evil.example", NONCE));
    assert!(
        result.is_err(),
        "a token must not verify for another origin"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn an_es384_token_from_a_p384_card() {
    let _guard = lock();
    let card = VirtualCard::insert("smith", 1);
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    let id = certificate_id(&mut host, "9A");
    let reply = authenticate(&mut host, &id, &card.info.pin);
    assert_eq!(reply["result"]["algorithm"], "ES384", "{reply}");
    verify_token(&reply["result"], ORIGIN, NONCE);
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn only_authentication_certificates_log_in_and_only_signature_ones_sign() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    for slot in ["9C", "9D", "9E"] {
        let id = certificate_id(&mut host, slot);
        let reply = authenticate(&mut host, &id, &card.info.pin);
        assert_eq!(reply["error"]["code"], "key-not-usable", "{slot}: {reply}");
    }
    let hash = B64.encode(Sha256::digest(b"document"));
    let sign = |host: &mut HostProcess, id: &str, hash: &str, function: &str| {
        host.call(
            "sign",
            "sign",
            json!({"certificateId": id, "hash": hash, "hashFunction": function, "origin": ORIGIN, "pin": card.info.pin}),
        )
    };
    let auth_id = certificate_id(&mut host, "9A");
    assert_eq!(
        sign(&mut host, &auth_id, &hash, "SHA-256")["error"]["code"],
        "key-not-usable"
    );

    // 9C (P-256, PIN Always) signs a document hash; checked with p256.
    let sig_id = certificate_id(&mut host, "9C");
    let reply = sign(&mut host, &sig_id, &hash, "SHA-256");
    assert_eq!(reply["result"]["algorithm"], "ES256", "{reply}");
    // The signing certificate comes with the signature (the window need not list it again).
    assert_eq!(
        B64.decode(reply["result"]["certificate"].as_str().unwrap())
            .unwrap(),
        card.info.certificate("9C")
    );
    let signature = B64
        .decode(reply["result"]["signature"].as_str().unwrap())
        .unwrap();
    {
        use p256::ecdsa::signature::Verifier;
        use p256::pkcs8::DecodePublicKey;
        let key =
            p256::ecdsa::VerifyingKey::from_public_key_der(&spki(&card.info.certificate("9C")))
                .unwrap();
        key.verify(
            b"document",
            &p256::ecdsa::Signature::from_slice(&signature).unwrap(),
        )
        .unwrap();
    }
    let reply = sign(&mut host, &sig_id, &B64.encode([0u8; 20]), "SHA-256");
    assert_eq!(reply["error"]["reason"], "length", "{reply}");
    let reply = sign(&mut host, &sig_id, &hash, "MD5");
    assert_eq!(reply["error"]["reason"], "unsupported", "{reply}");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_wrong_pin_reports_tries_left_and_never_reaches_the_log() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let mut host = HostProcess::spawn_with_log_level(&[CHROME_ORIGIN], "trace");
    let id = certificate_id(&mut host, "9A");
    let reply = authenticate(&mut host, &id, "97531864");
    assert_eq!(reply["error"]["code"], "pin-incorrect", "{reply}");
    assert_eq!(reply["error"]["retriesLeft"], 2);
    let reply = authenticate(&mut host, &id, &card.info.pin);
    assert!(reply["result"].is_object(), "{reply}");
    let reply = authenticate(&mut host, &id, "12ab56");
    assert_eq!(reply["error"]["reason"], "pin-format");
    host.close_stdin();
    host.wait();
    let log = host.log_text();
    assert!(log.contains("authenticate"));
    for secret in ["97531864", &card.info.pin, "12ab56"] {
        assert!(!log.contains(secret), "PIN {secret} in the log");
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_policy_file_limits_origins_and_localhost_needs_it() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("system.json");
    std::fs::write(&system, json!({"allowedOrigins": [ORIGIN]}).to_string()).unwrap();
    let system = system.to_str().unwrap();
    let mut host = HostProcess::spawn_with_env(
        &[CHROME_ORIGIN],
        "info",
        &[("CACBRIDGE_SYSTEM_POLICY", system)],
    );
    let id = certificate_id(&mut host, "9A");
    let call = |host: &mut HostProcess, origin: &str| {
        host.call(
            "a",
            "authenticate",
            json!({"certificateId": id, "challengeNonce": NONCE, "origin": origin, "pin": card.info.pin}),
        )
    };
    assert!(call(&mut host, ORIGIN)["result"].is_object());
    let reply = call(&mut host, "https://other.example");
    assert_eq!(reply["error"]["code"], "origin-not-allowed", "{reply}");
    let reply = call(&mut host, "http://localhost:8080");
    assert_eq!(reply["error"]["reason"], "insecure-localhost", "{reply}");

    let dev = dir.path().join("dev.json");
    std::fs::write(&dev, json!({"allowInsecureLocalhost": true}).to_string()).unwrap();
    let mut host = HostProcess::spawn_with_env(
        &[CHROME_ORIGIN],
        "info",
        &[("CACBRIDGE_USER_POLICY", dev.to_str().unwrap())],
    );
    let reply = call(&mut host, "http://localhost:8080");
    assert!(reply["result"].is_object(), "{reply}");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{").unwrap();
    let mut host = HostProcess::spawn_with_env(
        &[CHROME_ORIGIN],
        "info",
        &[("CACBRIDGE_SYSTEM_POLICY", broken.to_str().unwrap())],
    );
    assert_eq!(call(&mut host, ORIGIN)["error"]["code"], "policy-error");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn tokens_from_the_card_pass_the_verify_library_and_only_for_their_origin() {
    use cacbridge_verify::{TrustStore, Verifier, VerifyError, VerifyPolicy};
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);
    let pki = cacbridge_testbed::pki_dir();
    let bundle = [
        std::fs::read(pki.join("root.pem")).unwrap(),
        std::fs::read(pki.join("id-ca.pem")).unwrap(),
    ]
    .concat();
    let verifier = Verifier::new(
        TrustStore::from_pem(&bundle).unwrap(),
        VerifyPolicy::from_lists(vec!["2.16.840.1.101.2.1.11.42".into()], vec![]),
    );
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    let reply = host.call("list", "list-certificates", json!({}));
    for card in [&doe, &smith] {
        let id = reply["result"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["slot"] == "9A" && c["reader"] == card.reader)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = authenticate(&mut host, &id, &card.info.pin)["result"].to_string();
        let identity = verifier
            .verify(&token, ORIGIN, NONCE, std::time::SystemTime::now())
            .unwrap();
        assert_eq!(identity.edipi.as_deref(), Some(card.info.edipi.as_str()));
        assert_eq!(identity.upn.as_deref(), Some(card.info.upn.as_str()));
        assert_eq!(
            verifier.verify(
                &token,
                "https://evil.example",
                NONCE,
                std::time::SystemTime::now()
            ),
            Err(VerifyError::Token(TokenError::BadSignature))
        );
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_document_signature_shaped_as_a_login_proof_is_refused_by_the_verifier() {
    // The attack: a page on one portal asks `sign` for SHA-256(H(originB) || H(nonceB)). The
    // 9C certificate carries clientAuth, Smart Card Logon and the same medium-hardware policy
    // as 9A (as DoD e-mail signing certificates do) and chains to a trusted CA, so only its
    // key usage can tell the verifier that the signature is not a login.
    use cacbridge_verify::{TrustStore, Verifier, VerifyError, VerifyPolicy};
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let victim_origin = "https://victim.example.mil";
    let victim_nonce = "bG9naW4tbm9uY2UtZm9yLXRoZS12aWN0aW0tcG9ydGFsLTE=";
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    let sig_id = certificate_id(&mut host, "9C");
    let hash = B64.encode(Sha256::digest(message(false, victim_origin, victim_nonce)));
    let reply = host.call(
        "sign",
        "sign",
        json!({"certificateId": sig_id, "hash": hash, "hashFunction": "SHA-256", "origin": ORIGIN, "pin": card.info.pin}),
    );
    assert_eq!(reply["result"]["algorithm"], "ES256", "{reply}");
    let forged = json!({
        "format": "cacbridge:1",
        "unverifiedCertificate": B64.encode(card.info.certificate("9C")),
        "algorithm": "ES256",
        "signature": reply["result"]["signature"],
        "appVersion": "cacbridge-host/0.1.0",
    });
    // The signature itself is good over the login message: nothing but the key usage is wrong.
    verify_token(&forged, victim_origin, victim_nonce);

    let pki = cacbridge_testbed::pki_dir();
    let bundle: Vec<u8> = ["root.pem", "id-ca.pem", "email-ca.pem"]
        .iter()
        .flat_map(|name| std::fs::read(pki.join(name)).unwrap())
        .collect();
    let trust = || TrustStore::from_pem(&bundle).unwrap();
    let medium_hardware = vec!["2.16.840.1.101.2.1.11.42".to_owned()];
    for policy in [
        VerifyPolicy::default(),
        VerifyPolicy::from_lists(medium_hardware.clone(), vec![]),
    ] {
        assert_eq!(
            Verifier::new(trust(), policy).verify(
                &forged.to_string(),
                victim_origin,
                victim_nonce,
                std::time::SystemTime::now()
            ),
            Err(VerifyError::Certificate(
                CertificateError::SigningCertificate
            ))
        );
    }

    // The login proof of 9A passes the same verifier, and with the ID CA family required.
    let auth_id = certificate_id(&mut host, "9A");
    let token = host.call(
        "auth",
        "authenticate",
        json!({"certificateId": auth_id, "challengeNonce": victim_nonce, "origin": victim_origin, "pin": card.info.pin}),
    );
    let verifier = Verifier::new(
        trust(),
        VerifyPolicy::from_lists(medium_hardware, vec!["CACBRIDGE TEST ID CA-".into()]),
    );
    let identity = verifier
        .verify(
            &token["result"].to_string(),
            victim_origin,
            victim_nonce,
            std::time::SystemTime::now(),
        )
        .unwrap();
    assert_eq!(identity.edipi.as_deref(), Some("1234567890"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_certificate_view_says_what_each_certificate_may_do() {
    let _guard = lock();
    let _card = VirtualCard::insert("doe", 0);
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    let reply = host.call("list", "list-certificates", json!({}));
    let usable: Vec<(String, Value)> = reply["result"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["slot"].as_str().unwrap().to_owned(),
                c["usableFor"].clone(),
            )
        })
        .collect();
    assert_eq!(
        usable,
        vec![
            ("9A".to_owned(), json!(["authenticate"])),
            ("9C".to_owned(), json!(["sign"])),
            ("9D".to_owned(), json!([])),
            ("9E".to_owned(), json!([])),
        ]
    );
}

/// Eight random digits, unlikely to sit anywhere in a process by chance.
fn random_pin() -> String {
    let mut bytes = [0u8; 8];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut bytes,
    )
    .unwrap();
    bytes.iter().map(|b| char::from(b'0' + b % 10)).collect()
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_pin_is_gone_from_the_host_memory_after_authenticate() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let pin = random_pin();
    let changed = cacbridge_testbed::run(
        "yubico-piv-tool",
        &[
            "-r",
            card.reader,
            "-a",
            "change-pin",
            "-P",
            &card.info.pin,
            "-N",
            &pin,
        ],
    );
    assert!(changed.status.success(), "{changed:?}");

    let mut host = HostProcess::spawn_with_log_level(&[CHROME_ORIGIN], "trace");
    let id = certificate_id(&mut host, "9A");
    let reply = authenticate(&mut host, &id, &pin);
    assert!(reply["result"].is_object(), "{reply}");
    // A wrong PIN takes the other path out of the card layer.
    let wrong = random_pin();
    let reply = authenticate(&mut host, &id, &wrong);
    assert_eq!(reply["error"]["code"], "pin-incorrect", "{reply}");
    // The host is idle and alive: nothing may hold either PIN any more.
    assert_eq!(
        host.call("v", "version", json!({}))["result"]["protocol"],
        1
    );
    let mut padded = pin.as_bytes().to_vec();
    padded.resize(8, 0xFF);
    for needle in [pin.as_bytes(), wrong.as_bytes(), &padded[..]] {
        let hits = host.memory_hits(needle);
        assert!(
            hits.is_empty(),
            "PIN bytes {:?} still in the host's memory at {hits:?}",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_card_that_stops_answering_gets_card_timeout_and_the_host_recovers() {
    use cacbridge_testbed::CardOptions;
    use std::time::{Duration, Instant};
    let _guard = lock();
    let stall = Duration::from_secs(6);
    let card = VirtualCard::insert_with(
        "doe",
        0,
        CardOptions {
            verify_stall: Some(stall),
            ..CardOptions::default()
        },
    );
    let mut host = HostProcess::spawn_with_env(
        &[CHROME_ORIGIN],
        "debug",
        &[("CACBRIDGE_CARD_TIMEOUT_MS", "1500")],
    );
    let id = certificate_id(&mut host, "9A");
    // The card holds the VERIFY for 6 s; the host gives up after 1.5 s.
    let started = Instant::now();
    let reply = authenticate(&mut host, &id, &card.info.pin);
    let waited = started.elapsed();
    assert_eq!(reply["error"]["code"], "card-timeout", "{reply}");
    assert!(
        (Duration::from_millis(1400)..Duration::from_secs(4)).contains(&waited),
        "answered after {waited:?}"
    );
    // The card lane is not stuck behind it: the next card command answers at once.
    let started = Instant::now();
    let reply = host.call("s", "status", json!({}));
    assert_eq!(reply["error"]["code"], "card-timeout", "{reply}");
    assert!(started.elapsed() < Duration::from_millis(500));
    // Once the card answers again, so does the host.
    std::thread::sleep(stall);
    let reply = host.call("s2", "status", json!({}));
    assert_eq!(
        reply["result"]["readers"][0]["cardPresent"], true,
        "{reply}"
    );
}

/// A host whose policy names these backends.
fn host_with_backends(dir: &std::path::Path, backends: &[&str]) -> HostProcess {
    let policy = dir.join("policy.json");
    std::fs::write(&policy, json!({ "backends": backends }).to_string()).unwrap();
    HostProcess::spawn_with_env(
        &[CHROME_ORIGIN],
        "debug",
        &[("CACBRIDGE_SYSTEM_POLICY", policy.to_str().unwrap())],
    )
}

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn over_opensc_s_module_the_commands_answer_as_over_pcsc() {
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut pcsc = HostProcess::spawn(&[CHROME_ORIGIN]);
    let over_pcsc = pcsc.call("l", "list-certificates", json!({}))["result"].clone();
    drop(pcsc);

    let mut host = host_with_backends(dir.path(), &[OPENSC]);
    // The same certificates, ids, slots and roles, in the same order.
    let over_module = host.call("l", "list-certificates", json!({}))["result"].clone();
    assert_eq!(over_module, over_pcsc);
    let status = host.call("s", "status", json!({}));
    let backends: Vec<_> = status["result"]["readers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cardPresent"] == true)
        .map(|r| r["backend"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backends, ["pkcs11", "pkcs11"], "{status}");
    // Tokens verify: RS256 from the RSA card, ES384 from the P-384 one.
    let id = certificate_id(&mut host, "9A");
    let reply = authenticate(&mut host, &id, &doe.info.pin);
    assert_eq!(reply["result"]["algorithm"], "RS256", "{reply}");
    verify_token(&reply["result"], ORIGIN, NONCE);
    let p384 = over_module["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["reader"] == smith.reader && c["slot"] == "9A")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = authenticate(&mut host, &p384, &smith.info.pin);
    assert_eq!(reply["result"]["algorithm"], "ES384", "{reply}");
    verify_token(&reply["result"], ORIGIN, NONCE);
    // A wrong PIN is pin-incorrect, as over PC/SC.
    let reply = authenticate(&mut host, &id, "97531864");
    assert_eq!(reply["error"]["code"], "pin-incorrect", "{reply}");
    drop(host);

    // doctor shows the policy's backend and the modules installed, and that they load.
    let doctor = std::process::Command::new(common::HOST)
        .arg("doctor")
        .env("CACBRIDGE_SYSTEM_POLICY", dir.path().join("policy.json"))
        .output()
        .unwrap();
    let doctor = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor.contains(&format!("ok    {OPENSC}: loads")),
        "{doctor}"
    );
    assert!(
        doctor.contains(&format!("ok    OpenSC: {OPENSC} loads")),
        "{doctor}"
    );
    assert!(doctor.contains("(pkcs11)"), "{doctor}");

    // Both backends, PC/SC first: each card once, served by PC/SC.
    let mut host = host_with_backends(dir.path(), &["pcsc", OPENSC]);
    let both = host.call("l", "list-certificates", json!({}))["result"].clone();
    assert_eq!(both, over_pcsc);
    let status = host.call("s", "status", json!({}));
    for reader in status["result"]["readers"].as_array().unwrap() {
        if reader["cardPresent"] == true {
            assert_eq!(reader["backend"], "pcsc", "{status}");
        }
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_card_pulled_during_a_signature_through_opensc_leaves_the_host_serving() {
    let _guard = lock();
    // A slow card, so that the signature is under way when the card goes.
    let mut card = VirtualCard::insert_with(
        "doe",
        0,
        cacbridge_testbed::CardOptions {
            apdu_delay: Some(std::time::Duration::from_millis(60)),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, json!({ "backends": [OPENSC] }).to_string()).unwrap();
    let mut host = HostProcess::spawn_with_env(
        &[CHROME_ORIGIN],
        "debug",
        &[
            ("CACBRIDGE_SYSTEM_POLICY", policy.to_str().unwrap()),
            ("CACBRIDGE_CARD_TIMEOUT_MS", "5000"),
        ],
    );
    let id = certificate_id(&mut host, "9A");
    host.send(
        &json!({"id": "pulled", "command": "authenticate", "arguments": {
        "certificateId": id, "challengeNonce": NONCE, "origin": ORIGIN, "pin": card.info.pin}}),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    card.remove_without_waiting();
    let started = std::time::Instant::now();
    let mut events = Vec::new();
    let reply = host.reply_to(&json!("pulled"), &mut events);
    let code = reply["error"]["code"].as_str().unwrap_or("none").to_owned();
    eprintln!("pulled mid-signature: {code}");
    assert!(
        [
            "card-removed",
            "card-timeout",
            "no-card",
            "certificate-not-found"
        ]
        .contains(&code.as_str()),
        "{reply}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    // The host keeps serving: the card back, the next request answers.
    card.reinsert();
    let mut listed = Value::Null;
    for _ in 0..20 {
        listed = host.call("again", "list-certificates", json!({}));
        if listed["result"]["certificates"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert_eq!(
        listed["result"]["certificates"].as_array().map(Vec::len),
        Some(4),
        "{listed}"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_support_report_has_what_a_helper_needs_and_nothing_of_the_person() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let logs = tempfile::tempdir().unwrap();
    let logs_dir = logs.path().to_str().unwrap();
    // A session worth reporting: a listing, a wrong PIN, a token (logged at trace).
    let mut host = HostProcess::spawn_with_log_level(&[CHROME_ORIGIN], "trace");
    let id = certificate_id(&mut host, "9A");
    let wrong = authenticate(&mut host, &id, "97531864");
    assert_eq!(wrong["error"]["code"], "pin-incorrect");
    let token = authenticate(&mut host, &id, &card.info.pin);
    assert_eq!(token["result"]["format"], "cacbridge:1");
    // The session's log, where doctor looks for it.
    std::fs::write(logs.path().join("host.log"), host.log_text()).unwrap();
    drop(host);

    // Installed for this person, so that the bundle has manifests to show.
    let home = tempfile::tempdir().unwrap();
    let installed = std::process::Command::new(common::HOST)
        .arg("install")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(installed.status.success());
    let report = logs.path().join("report.txt");
    let out = std::process::Command::new(common::HOST)
        .args(["doctor", "--report"])
        .arg(&report)
        .env("CACBRIDGE_LOG_DIR", logs_dir)
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = std::fs::read_to_string(&report).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&report).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // What a helper needs.
    for needed in [
        "cacbridge-host 0.",
        "(protocol 1)",
        "Operating system:",
        "Browsers:",
        "NativeMessagingHosts",
        "Virtual PCD 00 00: PIV card",
        "PIV Authentication certificate valid until 20",
        "Last 200 lines of the host's log:",
        "host started",
    ] {
        assert!(
            bundle.contains(needed),
            "{needed:?} missing from:\n{bundle}"
        );
    }
    // Nothing of the person: no PIN, certificate, EDIPI, name or address.
    let certificate_b64 = B64.encode(card.info.certificate("9A"));
    for secret in [
        "97531864",
        card.info.edipi.as_str(),
        card.info.cn.as_str(),
        "DOE.JOHN",
        card.info.email.as_str(),
        card.info.upn.as_str(),
        &certificate_b64[..48],
        &certificate_b64[certificate_b64.len() / 2..certificate_b64.len() / 2 + 48],
        id.as_str(),
    ] {
        assert!(
            !bundle.contains(secret),
            "{secret:?} in the bundle:\n{bundle}"
        );
    }
}
