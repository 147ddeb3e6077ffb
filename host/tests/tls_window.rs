//! A TLS signature through CAC Bridge's window, on the real stack: this test process plays the
//! browser. It starts the host as Chrome does (so it is the host's parent), loads CAC Bridge's
//! PKCS#11 module under the browsers' name through cryptoki, and answers the host's
//! `pin-request` as the extension's window would. The module never sees the PIN.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cacbridge_testbed::{lock, openssl_verifies, VirtualCard};
use common::{HostProcess, CHROME_ORIGIN};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use serde_json::{json, Value};

/// The module of this build, under the name `cacbridge-host install` registers for browsers.
fn browser_module(dir: &Path) -> PathBuf {
    let link = dir.join("libcacbridge_pkcs11_browser.so");
    std::os::unix::fs::symlink(cacbridge_testbed::host::pkcs11_module(), &link).unwrap();
    link
}

fn next_event(host: &mut HostProcess, name: &str) -> Value {
    loop {
        let message = host.recv().expect("the host is running");
        if message["event"] == name {
            return message["data"].clone();
        }
    }
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_module_in_a_browser_signs_with_the_pin_typed_in_the_window() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let runtime = tempfile::tempdir().unwrap();
    // The host and this "browser" agree on the runtime directory, as a desktop session does.
    std::env::set_var("XDG_RUNTIME_DIR", runtime.path());
    // The browser loads the module at its start, before the extension starts the host.
    let pkcs11 = Pkcs11::new(browser_module(runtime.path())).unwrap();
    pkcs11.initialize(CInitializeArgs::OsThreads).unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];

    let mut host = HostProcess::spawn_with_env(
        &[CHROME_ORIGIN],
        "debug",
        &[("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())],
    );
    // Wait for the local channel.
    let socket = runtime
        .path()
        .join(format!("cacbridge/host-{}.sock", std::process::id()));
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(socket.exists(), "{} missing", socket.display());
    let mode = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o700
    );

    // The browser never logs in: no CKF_LOGIN_REQUIRED, and the keys are visible without it.
    assert!(!pkcs11.get_token_info(slot).unwrap().login_required());
    let session = pkcs11.open_ro_session(slot).unwrap();
    let keys = |id: u8| {
        session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(vec![id]),
            ])
            .unwrap()
    };
    let authentication = keys(1)[0];
    // The browser sees the authentication certificate alone: no e-mail signing key (02) to
    // pick by mistake for a TLS login, no key management or card authentication key.
    for other in [2, 3, 4] {
        assert!(
            keys(other).is_empty(),
            "key {other:02} visible to the browser"
        );
    }
    let certificates = session
        .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
        .unwrap();
    assert_eq!(certificates.len(), 1);
    let message = HANDSHAKE;
    // C_Sign blocks in the "browser" while the person types the PIN in the window.
    let sign_elsewhere = |session| sign_in_browser(session, authentication);

    let session = {
        let signer = sign_elsewhere(session);
        let request = next_event(&mut host, "pin-request");
        assert_eq!(request["reader"], card.reader);
        let request_id = request["requestId"].as_str().unwrap().to_owned();
        // While the person types, the browser's other PKCS#11 calls (its other connections,
        // its slot polling) are answered: the module does not hold its lock over the window.
        let started = std::time::Instant::now();
        assert!(!pkcs11.get_token_info(slot).unwrap().label().is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
        // A wrong PIN: the window hears how many tries are left, and the request stays open.
        let wrong = host.call(
            "w",
            "tls-pin",
            json!({"requestId": request_id, "pin": "97531864"}),
        );
        assert_eq!(wrong["error"]["code"], "pin-incorrect", "{wrong}");
        assert_eq!(wrong["error"]["retriesLeft"], 2, "{wrong}");
        let right = host.call(
            "r",
            "tls-pin",
            json!({"requestId": request_id, "pin": card.info.pin}),
        );
        assert_eq!(right["result"]["done"], true, "{right}");
        let (session, signed) = signer.join().unwrap();
        assert!(openssl_verifies(
            &card.info.certificate("9A"),
            message,
            &signed.unwrap()
        ));
        session
    };

    let session = {
        // The host holds the PIN for the TLS login (the policy's 15 minutes by default): the
        // next handshake signs at once, with no window, the held PIN verified, the signature
        // made and the card logged out in one transaction.
        let before = card.apdus();
        let (session, signed) = sign_elsewhere(session).join().unwrap();
        assert!(openssl_verifies(
            &card.info.certificate("9A"),
            message,
            &signed.unwrap()
        ));
        let sent = card.apdu_headers().split_off(before);
        let order: Vec<&str> = sent
            .iter()
            .filter_map(|h| match &h[..8] {
                "00200080" => Some("verify"),
                "00870000" | "0087079a" | "0087079A" => Some("sign"),
                "0020ff80" | "0020FF80" => Some("logout"),
                _ if h.starts_with("0087") => Some("sign"),
                _ => None,
            })
            .collect();
        assert_eq!(order, ["verify", "sign", "logout"], "{sent:?}");
        // The held PIN is in the host's memory once: the locked page, zeros after it (no
        // stray copies; the digits alone also occur in the certificates' names).
        let mut held = card.info.pin.as_bytes().to_vec();
        held.extend([0u8; 8]);
        let copies = host.memory_hits(&held);
        assert_eq!(copies.len(), 1, "{copies:#?}");
        session
    };

    // Between handshakes the card is not verified: another program of this user, knowing no
    // PIN, finds an empty VERIFY refused and its GENERAL AUTHENTICATE on 9A refused (the
    // reproduction of the review's H3: a card left verified signed a page-API login for it).
    let mut elsewhere = cacbridge_card::PcscBackend::new();
    assert_eq!(
        empty_verify(card.reader),
        "63c3",
        "PIN status, not verified"
    );
    assert!(!card_is_verified(&mut elsewhere, &card));

    // A process the browser started (sh -> python3, as another extension's native host or an
    // application the browser opened would be) is refused too: no signature, no window.
    let grandchild = runtime.path().join("grandchild.txt");
    // `; true`: sh forks python3 rather than exec it, so python3 is a grandchild.
    let status = std::process::Command::new("sh")
        .args(["-c", "python3 -c \"$1\"; true", "sh"])
        .arg(module_like_client(
            &socket,
            &authentication_id(&card),
            &grandchild,
            false,
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let said = read_when_written(&grandchild);
    assert!(said.starts_with("refused"), "{said}");
    no_window_opened(&mut host, "g");

    // The card taken out and put back: the held PIN was for that insertion, so the next
    // handshake asks the window again.
    let mut card = card;
    drop(session);
    card.remove();
    card.reinsert();
    let (session, authentication) = key_session(&pkcs11);
    let sign_elsewhere = |session| sign_in_browser(session, authentication);
    let session = {
        let signer = sign_elsewhere(session);
        let request = next_event(&mut host, "pin-request");
        let right = host.call(
            "r1",
            "tls-pin",
            json!({"requestId": request["requestId"], "pin": card.info.pin}),
        );
        assert_eq!(right["result"]["done"], true, "{right}");
        let (session, signed) = signer.join().unwrap();
        signed.unwrap();
        session
    };
    // Out and in once more, so that the next handshakes start without a held PIN.
    drop(session);
    card.remove();
    card.reinsert();
    let (session, authentication) = key_session(&pkcs11);
    let sign_elsewhere = |session| sign_in_browser(session, authentication);

    let session = {
        // The person cancels: the handshake's signature fails as cancelled.
        let signer = sign_elsewhere(session);
        let request = next_event(&mut host, "pin-request");
        host.call(
            "c",
            "tls-cancel",
            json!({"requestId": request["requestId"]}),
        );
        let (session, signed) = signer.join().unwrap();
        let err = signed.unwrap_err();
        assert!(
            matches!(err, Error::Pkcs11(RvError::FunctionCanceled, _)),
            "{err:?}"
        );
        session
    };

    // Asked directly for the e-mail signing key (a module of another vendor, or a forged
    // client), the host refuses, and no window opens.
    let signing_id = certificate_id(&card, "9C");
    let reply = over_the_local_channel(
        &socket,
        json!({"id": 1, "command": "tls-sign", "arguments": {
            "certificateId": signing_id, "kind": "ec-hash", "input": "VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVU="}}),
    );
    assert_eq!(reply["error"]["code"], "key-not-usable", "{reply}");
    no_window_opened(&mut host, "s");
    // A program of the same user that is not this browser (a daemon, detached from it) gets
    // nothing: the host hangs up without an answer (perhaps before the request is even sent),
    // and no window opens.
    let outsider = runtime.path().join("outsider.txt");
    let script = module_like_client(&socket, &authentication_id(&card), &outsider, true);
    let status = std::process::Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    let said = read_when_written(&outsider);
    let log = host.log_text();
    let channel: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("local channel"))
        .collect();
    assert!(said.starts_with("refused"), "{said}: {channel:#?}");
    no_window_opened(&mut host, "s2");

    // A TLS login ends when the browser does: the held PIN goes with the host, and the card
    // was never left verified.
    let (session, signed) = {
        let signer = sign_elsewhere(session);
        let request = next_event(&mut host, "pin-request");
        let right = host.call(
            "r2",
            "tls-pin",
            json!({"requestId": request["requestId"], "pin": card.info.pin}),
        );
        assert_eq!(right["result"]["done"], true, "{right}");
        signer.join().unwrap()
    };
    signed.unwrap();
    assert!(!card_is_verified(&mut elsewhere, &card), "left verified");
    drop(session);
    drop(pkcs11);
    host.close_stdin();
    assert!(host.wait().success());
    assert!(!card_is_verified(&mut elsewhere, &card));
    assert_eq!(empty_verify(card.reader), "63c3");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_host_killed_between_verify_and_logout_leaves_the_card_unverified() {
    let _guard = lock();
    let scratch = tempfile::tempdir().unwrap();
    let verify_log = scratch.path().join("verify.log");
    // Each APDU answered after 400 ms: the host is killed while the card signs, after the
    // PIN went to it and before the logout.
    let card = VirtualCard::insert_with(
        "doe",
        0,
        cacbridge_testbed::CardOptions {
            apdu_delay: Some(Duration::from_millis(400)),
            verify_log: Some(verify_log.clone()),
            ..Default::default()
        },
    );
    std::env::set_var("XDG_RUNTIME_DIR", scratch.path());
    let pkcs11 = Pkcs11::new(browser_module(scratch.path())).unwrap();
    pkcs11.initialize(CInitializeArgs::OsThreads).unwrap();
    let mut host = HostProcess::spawn_with_env(
        &[CHROME_ORIGIN],
        "debug",
        &[("XDG_RUNTIME_DIR", scratch.path().to_str().unwrap())],
    );
    let (session, key) = key_session(&pkcs11);
    let signer = std::thread::spawn(move || {
        session
            .sign(&Mechanism::Sha256RsaPkcs, key, b"handshake")
            .is_ok()
    });
    let request = next_event(&mut host, "pin-request");
    host.send(&json!({"id": "p", "command": "tls-pin",
        "arguments": {"requestId": request["requestId"], "pin": card.info.pin}}));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&verify_log)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no VERIFY reached the card"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-9", &host.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    host.wait();
    assert!(!signer.join().unwrap(), "no signature from a killed host");
    // pcscd ends the dead client's transaction with a reset (pcsc-lite's MSGRemoveContext),
    // which clears the PIN's security status.
    assert_eq!(empty_verify(card.reader), "63c3", "left verified");
    let mut elsewhere = cacbridge_card::PcscBackend::new();
    assert!(!card_is_verified(&mut elsewhere, &card));
}

/// Whether the card signs with its authentication key without a PIN now (it never spends a
/// try: an unverified card answers 6982). The PKCS#1 block is a valid one: the virtual card
/// signs any block once verified.
fn card_is_verified(token: &mut cacbridge_card::PcscBackend, card: &VirtualCard) -> bool {
    use cacbridge_card::{Backend, CardError, SignatureInput};
    let certificate = token
        .certificates(Some(card.reader))
        .unwrap()
        .into_iter()
        .find(|c| c.slot == cacbridge_card::Slot::PivAuthentication)
        .unwrap();
    let block = SignatureInput::RsaBlock(vec![0x01; 256]);
    match token.sign_input(&certificate, &block, None) {
        Ok(_) => true,
        Err(CardError::PinRequired) => false,
        Err(err) => panic!("{err}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One request over the host's local channel, as the module sends it.
fn over_the_local_channel(socket: &Path, request: Value) -> Value {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let body = request.to_string();
    stream
        .write_all(&(body.len() as u32).to_ne_bytes())
        .unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut reply = vec![0u8; u32::from_ne_bytes(length) as usize];
    stream.read_exact(&mut reply).unwrap();
    serde_json::from_slice(&reply).unwrap()
}

/// What the "browser" signs: a TLS 1.3 handshake's CertificateVerify content, as NSS hands it.
const HANDSHAKE: &[u8] = b"TLS 1.3, CertificateVerify";

/// `C_Sign` of [`HANDSHAKE`] with `key` on a thread of its own, as the browser's TLS stack
/// calls it (it blocks while the person types the PIN in the window).
fn sign_in_browser(
    session: cryptoki::session::Session,
    key: cryptoki::object::ObjectHandle,
) -> std::thread::JoinHandle<(cryptoki::session::Session, Result<Vec<u8>, Error>)> {
    std::thread::spawn(move || {
        let signed = session.sign(&Mechanism::Sha256RsaPkcs, key, HANDSHAKE);
        (session, signed)
    })
}

/// A session on the module's first token and its authentication key.
fn key_session(pkcs11: &Pkcs11) -> (cryptoki::session::Session, cryptoki::object::ObjectHandle) {
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let session = pkcs11.open_ro_session(slot).unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .unwrap()[0];
    (session, key)
}

/// SELECT PIV and an empty VERIFY, as any program on the reader may send: the status word in
/// hex (9000 when the card is verified, 63cX with the tries left when not).
fn empty_verify(reader: &str) -> String {
    let context = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = std::ffi::CString::new(reader).unwrap();
    let card = context
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    let mut buffer = [0u8; 258];
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x00,
    ];
    let answer = card.transmit(&select, &mut buffer).unwrap();
    assert_eq!(answer[answer.len() - 2..], [0x90, 0x00]);
    let answer = card
        .transmit(&[0x00, 0x20, 0x00, 0x80], &mut buffer)
        .unwrap();
    let status = hex(&answer[answer.len() - 2..]);
    let _ = card.disconnect(pcsc::Disposition::LeaveCard);
    status
}

/// The id of the card's certificate in `slot` ("9A", "9C", ...).
fn certificate_id(card: &VirtualCard, slot: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(card.info.certificate(slot)))
}

/// The id of the card's authentication certificate.
fn authentication_id(card: &VirtualCard) -> String {
    certificate_id(card, "9A")
}

/// A Python program that asks the socket for a `tls-sign` as the module would and writes to
/// `outcome` whether it was answered, with its chain of parent pids. `detached`: it first
/// leaves its parents (double fork and a new session), as a daemon of the same user would.
fn module_like_client(socket: &Path, id: &str, outcome: &Path, detached: bool) -> String {
    let detach = if detached {
        "if os.fork(): os._exit(0)\n\
         os.setsid()\n\
         if os.fork(): os._exit(0)\n\
         import time; time.sleep(0.5)\n"
    } else {
        ""
    };
    format!(
        "import os, socket, struct, json\n\
         {detach}\
         s = socket.socket(socket.AF_UNIX); s.connect({socket:?})\n\
         body = json.dumps({{'id': 1, 'command': 'tls-sign', 'arguments': {{'certificateId': '{id}', 'kind': 'ec-hash', 'input': 'VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVU='}}}}).encode()\n\
         try: s.sendall(struct.pack('=I', len(body)) + body); answer = s.recv(4)\n\
         except (BrokenPipeError, ConnectionResetError): answer = b''\n\
         pid = os.getpid(); chain = []\n\
         while pid > 1 and len(chain) < 10:\n\
         \x20   chain.append(pid); pid = int(open(f'/proc/{{pid}}/stat').read().rsplit(')', 1)[1].split()[1])\n\
         open({outcome:?}, 'w').write(('answered' if answer else 'refused') + ' ' + repr(chain))\n",
        socket = socket.to_str().unwrap(),
        outcome = outcome.to_str().unwrap(),
    )
}

/// The file's words once they are in it.
fn read_when_written(path: &Path) -> String {
    for _ in 0..100 {
        let said = std::fs::read_to_string(path).unwrap_or_default();
        if !said.is_empty() {
            return said;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} was never written", path.display())
}

/// A status request answered with no `pin-request` before it.
fn no_window_opened(host: &mut HostProcess, id: &str) {
    host.send(&json!({"id": id, "command": "status", "arguments": {}}));
    loop {
        let message = host.recv().unwrap();
        assert_ne!(message["event"], "pin-request", "a window opened");
        if message["id"] == id {
            break;
        }
    }
}

/// A "browser" that is a person's process, not root's: a Python program, run as uid 4242 when
/// this test runs as root, starts the host as its child and asks its local channel for a
/// signature. The host, non-dumpable, must still see its own user and its parent: an answer
/// comes back (no card here: an error code), not a hang-up.
#[test]
#[ignore = "needs pcscd: run scripts/test"]
fn a_persons_own_browser_is_answered_on_the_local_channel() {
    let _guard = lock();
    let runtime = tempfile::tempdir().unwrap();
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt as _;
        m.uid() == 0
    });
    let as_person = root.unwrap_or(false);
    if as_person {
        std::os::unix::fs::chown(runtime.path(), Some(4242), Some(4242)).unwrap();
    }
    let script = format!(
        "import os, socket, struct, json, subprocess, time\n\
         env = dict(os.environ, XDG_RUNTIME_DIR={runtime:?}, HOME={runtime:?}, CACBRIDGE_LOG_DIR={runtime:?})\n\
         host = subprocess.Popen([{host:?}, {origin:?}], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)\n\
         path = os.path.join({runtime:?}, 'cacbridge', 'host-%d.sock' % os.getpid())\n\
         for _ in range(100):\n\
         \x20   if os.path.exists(path): break\n\
         \x20   time.sleep(0.05)\n\
         s = socket.socket(socket.AF_UNIX); s.connect(path)\n\
         body = json.dumps({{'id': 1, 'command': 'tls-sign', 'arguments': {{'certificateId': 'ab' * 32, 'kind': 'ec-hash', 'input': 'VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVU='}}}}).encode()\n\
         s.sendall(struct.pack('=I', len(body)) + body)\n\
         head = s.recv(4)\n\
         reply = s.recv(struct.unpack('=I', head)[0]) if len(head) == 4 else b''\n\
         print(reply.decode() or 'hung up')\n\
         host.stdin.close(); host.wait()\n",
        runtime = runtime.path().to_str().unwrap(),
        host = cacbridge_testbed::host::host_binary().to_str().unwrap(),
        origin = CHROME_ORIGIN,
    );
    let mut command = if as_person {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=4242",
            "--regid=4242",
            "--clear-groups",
            "/usr/bin/python3",
        ]);
        c
    } else {
        std::process::Command::new("/usr/bin/python3")
    };
    let out = command.arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    let reply: Value = serde_json::from_str(said.trim())
        .unwrap_or_else(|_| panic!("no answer from the host's local channel: {said}"));
    assert_eq!(reply["id"], 1, "{reply}");
    assert!(reply["error"]["code"].is_string(), "{reply}");
}
