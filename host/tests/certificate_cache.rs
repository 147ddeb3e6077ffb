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

/// Run yubico-piv-tool (a client nobody here wrote) on the card in `card.reader`, with the
/// test cards' management key: its output.
fn yubico_piv(card: &VirtualCard, args: &[&str]) -> Vec<u8> {
    let key = "--key=010203040506070801020304050607080102030405060708";
    let out = cacbridge_testbed::run(
        "yubico-piv-tool",
        &[&["-r", card.reader, key], args].concat(),
    );
    assert!(
        out.status.success(),
        "yubico-piv-tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Give the card in `card.reader` the CHUID `chuid` and read it back.
fn set_chuid(card: &VirtualCard, chuid: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("chuid");
    std::fs::write(&input, chuid).unwrap();
    yubico_piv(
        card,
        &[
            "-a",
            "write-object",
            "--id",
            "0x5fc102",
            "-f",
            "binary",
            "-i",
            input.to_str().unwrap(),
        ],
    );
    yubico_piv(
        card,
        &["-a", "read-object", "--id", "0x5fc102", "-f", "binary"],
    )
}

/// What ID Card Office Online's certificate update does on the person's own reader: a new key
/// generated in 9A on the card and a new certificate for it (from the test PKI's ID CA, in the
/// cards' own profile), written while the card stays in. The new certificate's DER.
fn rewrite_9a(card: &VirtualCard) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("9a.pub");
    let issued = dir.path().join("9a.der");
    yubico_piv(
        card,
        &[
            "-a",
            "generate",
            "-s",
            "9a",
            "-A",
            "RSA2048",
            "-o",
            public.to_str().unwrap(),
        ],
    );
    let pki = cacbridge_testbed::pki_dir();
    let profile = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/harness/pki.cnf");
    let serial = format!("0x{:x}{:08x}", std::process::id(), card.apdus());
    let out = Command::new("openssl")
        .args(["x509", "-new", "-force_pubkey"])
        .arg(&public)
        .args([
            "-subj",
            "/C=US/O=U.S. Government/OU=DoD/OU=PKI/OU=USA/CN=DOE.JOHN.A.1234567890",
            "-CA",
        ])
        .arg(pki.join("id-ca.pem"))
        .arg("-CAkey")
        .arg(pki.join("id-ca.key"))
        .args([
            "-set_serial",
            &serial,
            "-days",
            "365",
            "-sha256",
            "-extfile",
        ])
        .arg(profile)
        .args(["-extensions", "piv_auth", "-outform", "DER", "-out"])
        .arg(&issued)
        .env("UPN", &card.info.upn)
        .env("EMAIL", &card.info.email)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    yubico_piv(
        card,
        &[
            "-a",
            "import-certificate",
            "-s",
            "9a",
            "-K",
            "DER",
            "-i",
            issued.to_str().unwrap(),
        ],
    );
    std::fs::read(issued).unwrap()
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

const ORIGIN: &str = "https://portal.example.mil";
const NONCE: &str = "rewritten-card-nonce-0123456789abcdef-0123456789abcdef";

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn certificates_rewritten_in_the_reader_are_noticed_at_the_next_signature_and_never_signed_under() {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    let b64 = base64::engine::general_purpose::STANDARD;
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let (_, listed) = open_the_window(&card);
    let old_id = listed[0]["id"].as_str().unwrap().to_owned();
    let rewritten = rewrite_9a(&card);
    let new_id = hex::encode(Sha256::digest(&rewritten));

    // A new host: nothing the cache is keyed on changed (the same insertion and ATR), so the
    // listing is the old one...
    let mut host = HostProcess::spawn(&[CHROME_ORIGIN]);
    assert_eq!(
        authentication_certificates(&mut host)[0]["id"],
        old_id.as_str()
    );
    // ...but the signature shows it: the login is made with, and carries, the new certificate.
    let reply = host.call(
        "a",
        "authenticate",
        json!({"certificateId": old_id, "challengeNonce": NONCE, "origin": ORIGIN, "pin": card.info.pin}),
    );
    let token = &reply["result"];
    let presented = b64
        .decode(
            token["unverifiedCertificate"]
                .as_str()
                .unwrap_or_else(|| panic!("{reply}")),
        )
        .unwrap();
    assert_eq!(presented, rewritten, "{reply}");
    let signature = b64.decode(token["signature"].as_str().unwrap()).unwrap();
    let message = [
        Sha256::digest(ORIGIN).to_vec(),
        Sha256::digest(NONCE).to_vec(),
    ]
    .concat();
    assert!(cacbridge_testbed::openssl_verifies(
        &rewritten, &message, &signature
    ));
    assert_eq!(
        authentication_certificates(&mut host)[0]["id"],
        new_id.as_str(),
        "this host lists the new one"
    );
    drop(host);
    // The next host process lists the new certificate at once (the cache was corrected).
    let (_, again) = open_the_window(&card);
    assert_eq!(again[0]["id"], new_id.as_str());
}

/// pkcs11-tool with CAC Bridge's module, sharing the hosts' certificate cache.
fn pkcs11_tool(args: &[&str]) -> std::process::Output {
    Command::new("pkcs11-tool")
        .arg("--module")
        .arg(cacbridge_testbed::host::pkcs11_module())
        .args(args)
        .env("XDG_CACHE_HOME", cacbridge_testbed::host::cache_home())
        .output()
        .expect("pkcs11-tool (apt-get install opensc)")
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_module_refuses_to_sign_under_a_rewritten_certificate_and_then_offers_the_new_one() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let dir = tempfile::tempdir().unwrap();
    let (data, signature, certificate) = (
        dir.path().join("data"),
        dir.path().join("sig"),
        dir.path().join("cert"),
    );
    std::fs::write(&data, b"rewritten in the reader").unwrap();
    let read_9a = || {
        let out = pkcs11_tool(&[
            "--read-object",
            "--type",
            "cert",
            "--id",
            "01",
            "-o",
            certificate.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&certificate).unwrap()
    };
    let sign = || {
        pkcs11_tool(&[
            "--login",
            "--pin",
            &card.info.pin,
            "--sign",
            "--id",
            "01",
            "-m",
            "SHA256-RSA-PKCS",
            "-i",
            data.to_str().unwrap(),
            "-o",
            signature.to_str().unwrap(),
        ])
    };
    assert_eq!(
        read_9a(),
        card.info
            .certificate_of(cacbridge_card::Slot::PivAuthentication)
    );
    let rewritten = rewrite_9a(&card);

    // This process's module lists the old certificate (from the cache); its signature is
    // checked, found to be another key's, and not handed out: C_Sign answers
    // CKR_DEVICE_REMOVED (pkcs11-tool then tries C_SignFinal, which the forgotten login
    // refuses), and no signature is written.
    let first = sign();
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success(), "signed under the old certificate");
    assert!(
        said.contains("CKR_DEVICE_REMOVED") || said.contains("CKR_USER_NOT_LOGGED_IN"),
        "{said}"
    );
    assert!(!signature.exists(), "a signature was written");
    // The next one reads the card: the new certificate, and signatures that verify under it.
    assert_eq!(read_9a(), rewritten);
    let second = sign();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(cacbridge_testbed::openssl_verifies(
        &rewritten,
        b"rewritten in the reader",
        &std::fs::read(&signature).unwrap()
    ));
}
