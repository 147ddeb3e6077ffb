//! The module as programs nobody here wrote load it: OpenSC's pkcs11-tool lists the slots and
//! tokens, lists the objects, and reads every certificate back byte for byte as the card holds
//! it, on PIV and legacy CAC cards. Ignored by a plain `cargo test`; scripts/test runs them.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use cacbridge_card::Slot;
use cacbridge_testbed::{lock, VirtualCard};

/// The module of this build.
fn module() -> PathBuf {
    cacbridge_testbed::host::pkcs11_module()
}

fn pkcs11_tool(args: &[&str]) -> String {
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module())
        .args(args)
        .output()
        .expect("pkcs11-tool (apt-get install opensc)");
    assert!(
        out.status.success(),
        "pkcs11-tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Read the certificate with `CKA_ID` `id` from the token in `slot_index` (0-based, as
/// pkcs11-tool counts).
fn read_certificate(slot_index: usize, id: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cert.der");
    pkcs11_tool(&[
        "--slot-index",
        &slot_index.to_string(),
        "--read-object",
        "--type",
        "cert",
        "--id",
        id,
        "-o",
        file.to_str().unwrap(),
    ]);
    std::fs::read(file).unwrap()
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn pkcs11_tool_sees_the_piv_card_and_reads_every_certificate_byte_for_byte() {
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);

    let slots = pkcs11_tool(&["-L"]);
    assert!(slots.contains("Virtual PCD 00 00"), "{slots}");
    assert!(
        slots.contains("token label        : DOE.JOHN.A.1234567890"),
        "{slots}"
    );
    assert!(
        slots.contains("token label        : SMITH.JANE.1098765432"),
        "{slots}"
    );
    assert!(slots.contains("pin min/max        : 6/8"), "{slots}");

    let objects = pkcs11_tool(&["--slot-index", "0", "-O"]);
    for (id, role) in [
        ("01", "PIV AUTH"),
        ("02", "SIGN"),
        ("03", "KEY MAN"),
        ("04", "CARD AUTH"),
    ] {
        assert!(
            objects.contains(&format!("label:      {role} DOE.JOHN.A.1234567890")),
            "{objects}"
        );
        assert!(objects.contains(&format!("ID:         {id}")), "{objects}");
    }
    assert_eq!(objects.matches("Certificate Object").count(), 4);
    assert_eq!(objects.matches("Public Key Object").count(), 4);
    // Before login only the key that needs no PIN (Card Authentication) is visible.
    assert_eq!(
        objects.matches("Private Key Object").count(),
        1,
        "{objects}"
    );
    assert!(objects.contains("Public Key Object; RSA 2048 bits"));
    assert!(
        objects.contains("EC_PARAMS:  06082a8648ce3d030107"),
        "P-256 curve"
    );
    let logged_in = pkcs11_tool(&["--slot-index", "0", "--login", "--pin", &doe.info.pin, "-O"]);
    assert_eq!(
        logged_in.matches("Private Key Object").count(),
        4,
        "{logged_in}"
    );
    // The Digital Signature key wants the PIN before every use, as on the card.
    assert!(logged_in.contains("always authenticate"));

    for (id, slot) in [
        ("01", Slot::PivAuthentication),
        ("02", Slot::DigitalSignature),
        ("03", Slot::KeyManagement),
        ("04", Slot::CardAuthentication),
    ] {
        assert_eq!(
            read_certificate(0, id),
            doe.info.certificate_of(slot),
            "doe {id}"
        );
    }
    // The P-384 card in the other reader.
    assert_eq!(
        read_certificate(1, "01"),
        smith.info.certificate_of(Slot::PivAuthentication)
    );
    let objects = pkcs11_tool(&["--slot-index", "1", "-O"]);
    assert!(
        objects.contains("EC_PARAMS:  06052b81040022"),
        "P-384 curve: {objects}"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn pkcs11_tool_reads_a_legacy_cac() {
    let _guard = lock();
    let card = VirtualCard::insert("legacy", 1);
    let slots = pkcs11_tool(&["-L"]);
    assert!(
        slots.contains("token label        : JONES.ROBERT.B.1122334455"),
        "{slots}"
    );
    assert!(slots.contains("token model        : CAC"), "{slots}");
    for (id, slot) in [
        ("01", Slot::CacId),
        ("02", Slot::CacEmailSignature),
        ("03", Slot::CacEmailEncryption),
    ] {
        assert_eq!(
            read_certificate(1, id),
            card.info.certificate_of(slot),
            "legacy {id}"
        );
    }
}

/// Sign `data` with the key `id` of the token in `slot_index` through pkcs11-tool.
fn sign(
    slot_index: usize,
    id: &str,
    pin: &str,
    mechanism: &str,
    data: &[u8],
) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data");
    let output = dir.path().join("signature");
    std::fs::write(&input, data).unwrap();
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module())
        .args([
            "--slot-index",
            &slot_index.to_string(),
            "--login",
            "--pin",
            pin,
            "--sign",
            "--id",
            id,
            "-m",
            mechanism,
        ])
        .args(["--signature-format", "openssl", "-i"])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(std::fs::read(output).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn signatures_made_on_the_card_verify_with_openssl_and_a_wrong_pin_is_refused() {
    use cacbridge_testbed::{openssl_verifies, openssl_verifies_pss, openssl_verifies_with};
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);
    let message = b"a TLS handshake, as far as the card knows";

    let doe_auth = doe.info.certificate_of(Slot::PivAuthentication);
    let rsa = sign(0, "01", &doe.info.pin, "SHA256-RSA-PKCS", message).unwrap();
    assert!(openssl_verifies(&doe_auth, message, &rsa));
    // RSA-PSS, which TLS 1.3 requires: padded here (EMSA-PSS), signed raw on the card.
    let pss = sign(0, "01", &doe.info.pin, "SHA256-RSA-PKCS-PSS", message).unwrap();
    assert!(openssl_verifies_pss(&doe_auth, "sha256", message, &pss));
    assert!(!openssl_verifies_pss(&doe_auth, "sha256", b"other", &pss));
    // The Digital Signature key (P-256, PIN Always): pkcs11-tool logs in for it again.
    let ec = sign(0, "02", &doe.info.pin, "ECDSA-SHA256", message).unwrap();
    assert!(openssl_verifies(
        &doe.info.certificate_of(Slot::DigitalSignature),
        message,
        &ec
    ));
    let p384 = sign(1, "01", &smith.info.pin, "ECDSA-SHA384", message).unwrap();
    let smith_auth = smith.info.certificate_of(Slot::PivAuthentication);
    assert!(openssl_verifies_with(&smith_auth, "sha384", message, &p384));
    assert!(!openssl_verifies_with(
        &smith_auth,
        "sha384",
        b"other",
        &p384
    ));

    let wrong = sign(0, "01", "97531864", "SHA256-RSA-PKCS", message).unwrap_err();
    assert!(wrong.contains("CKR_PIN_INCORRECT"), "{wrong}");
    let slots = pkcs11_tool(&["-L"]);
    assert!(
        slots.contains("user PIN count low"),
        "two tries left shows: {slots}"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn several_programs_sign_on_one_card_at_once() {
    use cacbridge_testbed::openssl_verifies;
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let certificate = card.info.certificate_of(Slot::PivAuthentication);
    // Four pkcs11-tool processes, each loading the module, logging in and signing three
    // times: card transactions in shared mode keep every VERIFY and its signature together.
    let programs: Vec<_> = (0..4)
        .map(|program| {
            let pin = card.info.pin.clone();
            std::thread::spawn(move || {
                (0..3)
                    .map(|round| {
                        let message = format!("program {program}, round {round}").into_bytes();
                        let signature = sign(0, "01", &pin, "SHA256-RSA-PKCS", &message);
                        (message, signature)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for program in programs {
        for (message, signature) in program.join().unwrap() {
            let signature = signature.unwrap_or_else(|err| panic!("a program failed: {err}"));
            assert!(openssl_verifies(&certificate, &message, &signature));
        }
    }
    let slots = pkcs11_tool(&["-L"]);
    assert!(
        !slots.contains("user PIN count low"),
        "no PIN try was lost: {slots}"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_legacy_cac_signs_through_the_module() {
    use cacbridge_testbed::openssl_verifies;
    let _guard = lock();
    let card = VirtualCard::insert("legacy", 1);
    let message = b"legacy";
    let signature = sign(1, "01", &card.info.pin, "SHA256-RSA-PKCS", message).unwrap();
    assert!(openssl_verifies(
        &card.info.certificate_of(Slot::CacId),
        message,
        &signature
    ));
}

fn run_ok(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Some tools report on stderr (p11tool's --test-sign does): both, in order of kind.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn nss_lists_the_certificates_as_user_certificates_and_pairs_them_with_keys() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let db = tempfile::tempdir().unwrap();
    let dir = format!("sql:{}", db.path().display());
    run_ok("certutil", &["-N", "-d", &dir, "--empty-password"], &[]);
    let module = module();
    let added = Command::new("modutil")
        .args(["-dbdir", &dir, "-add", "cacbridge", "-libfile"])
        .arg(&module)
        .arg("-force")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");

    // "u,u,u": a user certificate, i.e. NSS found its private key on the token.
    let certificates = run_ok("certutil", &["-L", "-d", &dir, "-h", "all"], &[]);
    for role in ["PIV AUTH", "SIGN", "KEY MAN", "CARD AUTH"] {
        let line = format!("DOE.JOHN.A.1234567890:{role} DOE.JOHN.A.1234567890");
        let found = certificates.lines().find(|l| l.starts_with(&line));
        assert!(
            found.is_some_and(|l| l.trim_end().ends_with("u,u,u")),
            "{role}: {certificates}"
        );
    }
    let pin_file = db.path().join("pin");
    std::fs::write(&pin_file, format!("{}\n", card.info.pin)).unwrap();
    let keys = run_ok(
        "certutil",
        &[
            "-K",
            "-d",
            &dir,
            "-h",
            "all",
            "-f",
            pin_file.to_str().unwrap(),
        ],
        &[],
    );
    for (kind, id) in [("rsa", "01"), ("ec", "02"), ("rsa", "03"), ("ec", "04")] {
        assert!(
            keys.lines()
                .any(|l| l.contains(kind) && l.split_whitespace().any(|w| w == id)),
            "key {id}: {keys}"
        );
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn gnutls_p11tool_lists_the_certificates_and_signs_with_rsa_and_ec_keys() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let module = module();
    let provider = module.to_str().unwrap();
    let env = [("GNUTLS_PIN", card.info.pin.as_str())];
    let listed = run_ok(
        "p11tool",
        &["--provider", provider, "--list-all-certs"],
        &env,
    );
    assert_eq!(listed.matches("type=cert").count(), 4, "{listed}");
    assert!(listed.contains("token=DOE.JOHN.A.1234567890"), "{listed}");
    for id in ["%01", "%04"] {
        let url = format!("pkcs11:token=DOE.JOHN.A.1234567890;id={id};type=private");
        let signed = run_ok(
            "p11tool",
            &["--provider", provider, "--login", "--test-sign", &url],
            &env,
        );
        assert!(
            signed.contains("Verifying against public key in the token... ok"),
            "{id}: {signed}"
        );
    }
}

/// A TLS 1.3 handshake in which an OpenSSL client proves its certificate with the card's key,
/// through this module and OpenSSL's pkcs11 engine (libp11; Debian 12 has no pkcs11-provider),
/// against `openssl s_server` that requires a client certificate from the test PKI. The
/// server's status page (`-www`) reports the peer's signature type and certificate.
fn tls13_handshake(card: &VirtualCard, reader_token: &str, slot: Slot) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let pki = cacbridge_testbed::pki_dir();
    let ca: Vec<u8> = ["root.pem", "id-ca.pem"]
        .iter()
        .flat_map(|f| std::fs::read(pki.join(f)).unwrap())
        .collect();
    std::fs::write(path("ca.pem"), ca).unwrap();
    run_ok(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &path("server.key"),
            "-out",
            &path("server.pem"),
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
        ],
        &[],
    );
    std::fs::write(path("client.der"), card.info.certificate_of(slot)).unwrap();
    run_ok(
        "openssl",
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            &path("client.der"),
            "-out",
            &path("client.pem"),
        ],
        &[],
    );
    std::fs::write(
        path("engine.cnf"),
        format!(
            "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
             [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n\
             dynamic_path = /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so\nMODULE_PATH = {}\n\
             PIN = {}\ninit = 0\n",
            module().display(),
            card.info.pin
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-cert",
            &path("server.pem"),
        ])
        .args([
            "-key",
            &path("server.key"),
            "-Verify",
            "2",
            "-CAfile",
            &path("ca.pem"),
        ])
        .args(["-tls1_3", "-www", "-naccept", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let key = format!(
        "pkcs11:token={reader_token};id=%{:02x};type=private",
        crate_key_id(slot)
    );
    let mut client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("localhost:{port}"),
            "-tls1_3",
            "-quiet",
        ])
        .args(["-engine", "pkcs11", "-keyform", "engine", "-key", &key])
        .args(["-cert", &path("client.pem"), "-CAfile", &path("server.pem")])
        .env("OPENSSL_CONF", path("engine.cnf"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = client.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn crate_key_id(slot: Slot) -> u8 {
    cacbridge_pkcs11::objects::key_id(slot)
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_tls13_handshake_signed_on_the_card_rsa_pss_and_p384() {
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let page = tls13_handshake(&doe, "DOE.JOHN.A.1234567890", Slot::PivAuthentication);
    assert!(page.contains("HTTP/1.0 200 ok"), "{page}");
    assert!(
        page.contains("Peer signature type: RSA-PSS"),
        "TLS 1.3 with RSA is PSS: {page}"
    );
    assert!(page.contains("CN=DOE.JOHN.A.1234567890"), "{page}");
    drop(doe);

    let smith = VirtualCard::insert("smith", 0);
    let page = tls13_handshake(&smith, "SMITH.JANE.1098765432", Slot::PivAuthentication);
    assert!(page.contains("Peer signature type: ECDSA"), "{page}");
    assert!(page.contains("Peer signing digest: SHA384"), "{page}");
    assert!(page.contains("CN=SMITH.JANE.1098765432"), "{page}");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn cards_coming_and_going_are_slot_events_polled_or_waited_for() {
    use cryptoki::context::{CInitializeArgs, Pkcs11};
    use std::time::{Duration, Instant};
    let _guard = lock();
    cacbridge_testbed::ensure_pcscd();
    let pkcs11 = Pkcs11::new(module()).unwrap();
    pkcs11.initialize(CInitializeArgs::OsThreads).unwrap();
    // The first call starts the reader monitor; nothing has happened yet.
    assert!(pkcs11.get_slot_event().unwrap().is_none());
    std::thread::sleep(Duration::from_millis(1200));

    let next_event = |pkcs11: &Pkcs11| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(slot) = pkcs11.get_slot_event().unwrap() {
                return slot;
            }
            assert!(Instant::now() < deadline, "no slot event");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut card = VirtualCard::insert("doe", 0);
    let slot = next_event(&pkcs11);
    let info = pkcs11.get_slot_info(slot).unwrap();
    assert_eq!(info.slot_description().trim(), "Virtual PCD 00 00");
    assert!(info.token_present());
    card.remove();
    assert_eq!(next_event(&pkcs11), slot, "the removal, in the same slot");
    assert!(!pkcs11.get_slot_info(slot).unwrap().token_present());

    // Blocking: a thread waits; the card arrives; the thread wakes with the slot.
    let waiter = {
        let pkcs11 = pkcs11.clone();
        std::thread::spawn(move || pkcs11.wait_for_slot_event().map(|s| s.id()))
    };
    std::thread::sleep(Duration::from_millis(300));
    card.reinsert();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiter.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the waiting thread was not woken"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(waiter.join().unwrap().unwrap(), slot.id());
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_card_pulled_between_login_and_sign_fails_cleanly_and_works_again_when_back() {
    use cryptoki::context::{CInitializeArgs, Pkcs11};
    use cryptoki::error::{Error, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let _guard = lock();
    let mut card = VirtualCard::insert("doe", 0);
    let pkcs11 = Pkcs11::new(module()).unwrap();
    pkcs11.initialize(CInitializeArgs::OsThreads).unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let pin = AuthPin::new(card.info.pin.clone());
    let sign_once = |pkcs11: &Pkcs11| -> Result<Vec<u8>, Error> {
        let session = pkcs11.open_ro_session(slot)?;
        session.login(UserType::User, Some(&pin))?;
        let key = session.find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])?[0];
        session.sign(&Mechanism::Sha256RsaPkcs, key, b"before and after")
    };
    assert_eq!(sign_once(&pkcs11).unwrap().len(), 256);

    let session = pkcs11.open_ro_session(slot).unwrap();
    session.login(UserType::User, Some(&pin)).unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .unwrap()[0];
    card.remove();
    let err = session
        .sign(&Mechanism::Sha256RsaPkcs, key, b"no card")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Pkcs11(RvError::TokenNotPresent | RvError::DeviceRemoved, _)
        ),
        "{err:?}"
    );
    card.reinsert();
    // The old login went with the card: signing in that session now needs a new login.
    let err = session
        .sign(&Mechanism::Sha256RsaPkcs, key, b"stale")
        .unwrap_err();
    assert!(
        matches!(err, Error::Pkcs11(RvError::UserNotLoggedIn, _)),
        "{err:?}"
    );
    drop(session);
    assert_eq!(
        sign_once(&pkcs11).unwrap().len(),
        256,
        "works again once back"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_card_that_stops_answering_fails_the_call_in_time_and_the_module_recovers() {
    use cacbridge_testbed::CardOptions;
    use cryptoki::context::{CInitializeArgs, Pkcs11};
    use cryptoki::error::{Error, RvError};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
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
    // Read once, at C_Initialize: later tests in this process load the module with the default.
    std::env::set_var("CACBRIDGE_CARD_TIMEOUT_MS", "1500");
    let pkcs11 = Pkcs11::new(module()).unwrap();
    pkcs11.initialize(CInitializeArgs::OsThreads).unwrap();
    std::env::remove_var("CACBRIDGE_CARD_TIMEOUT_MS");
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let session = pkcs11.open_ro_session(slot).unwrap();

    // The card holds the VERIFY for 6 s: C_Login gives up after 1.5 s.
    let started = Instant::now();
    let err = session
        .login(UserType::User, Some(&AuthPin::new(card.info.pin.clone())))
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, Error::Pkcs11(RvError::DeviceError, _)),
        "{err:?}"
    );
    assert!(
        (Duration::from_millis(1400)..Duration::from_secs(4)).contains(&waited),
        "C_Login returned after {waited:?}"
    );
    // While the card is still busy, card work fails at once instead of queueing behind it.
    let started = Instant::now();
    let err = pkcs11.get_token_info(slot).unwrap_err();
    assert!(
        matches!(err, Error::Pkcs11(RvError::DeviceError, _)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(500));

    // Once the card answers again, so does the module, and the failed login left none behind.
    std::thread::sleep(stall);
    let info = pkcs11.get_token_info(slot).unwrap();
    assert_eq!(info.label().trim(), "DOE.JOHN.A.1234567890");
    assert_eq!(
        session.get_session_info().unwrap().session_state(),
        cryptoki::session::SessionState::RoPublic
    );
}
