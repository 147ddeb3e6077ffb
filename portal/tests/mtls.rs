//! The mutual-TLS CAC host, walked with a client nobody here wrote: curl, with OpenSSL's
//! pkcs11 engine and CAC Bridge's PKCS#11 module, so that the virtual card in pcscd signs
//! every TLS handshake. Ignored by a plain `cargo test`; scripts/test runs it on the stack.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use cacbridge_testbed::{lock, pki_dir, VirtualCard};
use common::{field, Portal};

/// The PKCS#11 module of this build.
fn module() -> PathBuf {
    cacbridge_testbed::host::pkcs11_module()
}

/// A person with curl: a cookie jar, and the card in the reader for client authentication.
struct Browser {
    dir: tempfile::TempDir,
    token: String,
    pin: String,
}

impl Browser {
    fn new(card: &VirtualCard, token: &str) -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let pem = Command::new("openssl")
            .args(["x509", "-inform", "DER", "-outform", "PEM"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(&card.info.certificate("9A"))?;
                child.wait_with_output()
            })
            .unwrap()
            .stdout;
        std::fs::write(dir.path().join("card.pem"), pem).unwrap();
        std::fs::write(
            dir.path().join("engine.cnf"),
            format!(
                "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
                 [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n\
                 dynamic_path = /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so\n\
                 MODULE_PATH = {}\ninit = 0\n",
                module().display()
            ),
        )
        .unwrap();
        Browser {
            dir,
            token: token.into(),
            pin: card.info.pin.clone(),
        }
    }

    /// One request; `with_card` presents the card's certificate in the handshake. Returns the
    /// status, the redirect target and the body.
    fn request(&self, url: &str, form: Option<&str>, with_card: bool) -> (u16, String, String) {
        let body = self.dir.path().join("body");
        let jar = self.dir.path().join("jar");
        let mut curl = Command::new("curl");
        curl.args(["-sk", "-o"])
            .arg(&body)
            .arg("-c")
            .arg(&jar)
            .arg("-b")
            .arg(&jar);
        curl.args(["-w", "%{http_code} %{redirect_url}"]);
        if let Some(form) = form {
            curl.args(["--data", form]);
        }
        if with_card {
            let key = format!(
                "pkcs11:token={};id=%01;type=private;pin-value={}",
                self.token, self.pin
            );
            curl.env("OPENSSL_CONF", self.dir.path().join("engine.cnf"))
                .args([
                    "--engine",
                    "pkcs11",
                    "--key-type",
                    "ENG",
                    "--key",
                    &key,
                    "--cert",
                ])
                .arg(self.dir.path().join("card.pem"));
        }
        let out = curl.arg(url).output().expect("curl");
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, redirect) = written.split_once(' ').unwrap();
        let page = std::fs::read_to_string(&body).unwrap_or_default();
        (status.parse().unwrap(), redirect.to_owned(), page)
    }

    fn log_in_with_password(&self, portal: &Portal) {
        let (_, _, page) = self.request(&format!("{}/login", portal.origin), None, false);
        let csrf = field(&page, "csrf");
        let form = format!("csrf={csrf}&username=demo&password=demo-password");
        let (status, _, _) = self.request(&format!("{}/login", portal.origin), Some(&form), false);
        assert_eq!(status, 303);
    }
}

fn mtls_portal() -> Portal {
    mtls_portal_revoking(&[])
}

/// The portal with its mutual-TLS CAC host, checking revocation (require) at the test PKI's
/// OCSP responder, which says the `revoked` cards' certificates are revoked.
fn mtls_portal_revoking(revoked: &[&str]) -> Portal {
    let dir = pki_dir();
    let trust: Vec<u8> = ["root.pem", "id-ca.pem", "email-ca.pem"]
        .iter()
        .flat_map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let bundle =
        std::env::temp_dir().join(format!("cacbridge-mtls-trust-{}.pem", std::process::id()));
    std::fs::write(&bundle, trust).unwrap();
    Portal::start_revoking(
        revoked,
        &[
            "--mtls-listen",
            "127.0.0.1:0",
            "--trust-bundle",
            bundle.to_str().unwrap(),
        ],
    )
}

fn registrations(portal: &Portal) -> Vec<(i64, String, String)> {
    let db = portal.db();
    let mut statement = db
        .prepare("SELECT user_id, fingerprint, how FROM registrations ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn register_then_log_in_with_the_card_signing_each_handshake() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = mtls_portal();
    let mtls = portal.mtls_origin.clone().expect("the mutual-TLS host");
    let browser = Browser::new(&card, "DOE.JOHN.A.1234567890");

    // Without a certificate: the guide's 403 page, with its advice.
    browser.log_in_with_password(&portal);
    let (status, _, page) = browser.request(&format!("{mtls}/account/cac"), None, false);
    assert_eq!(status, 403);
    assert!(page.contains("presented no certificate"), "{page}");
    assert!(page.contains("Close all open browser windows"), "{page}");

    // My Account -> CAC/Certificate Registration on the CAC host: the certificate of the
    // handshake, the password again, Register, the printable confirmation.
    let signatures_before = card.apdus();
    let (status, _, page) = browser.request(&format!("{mtls}/account/cac"), None, true);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(r#"id="mtls-presented">DOE.JOHN.A.1234567890"#),
        "{page}"
    );
    // TLS 1.3: the RSA card's handshake signature is RSA-PSS (RFC 8446 allows nothing else).
    assert!(page.contains(r#"id="mtls-protocol">TLS 1.3"#), "{page}");
    assert!(
        card.apdu_headers()[signatures_before..]
            .iter()
            .any(|h| h.starts_with("0087")),
        "the handshake was signed on the card (GENERAL AUTHENTICATE)"
    );
    let csrf = field(&page, "csrf");
    let wrong = format!("csrf={csrf}&password=not-the-password");
    let (status, _, _) =
        browser.request(&format!("{mtls}/account/cac/register"), Some(&wrong), true);
    assert_eq!(status, 401);
    assert!(registrations(&portal).is_empty());
    let form = format!("csrf={csrf}&password=demo-password");
    let (status, redirect, _) =
        browser.request(&format!("{mtls}/account/cac/register"), Some(&form), true);
    assert_eq!(status, 303);
    let (status, _, page) = browser.request(&redirect, None, true);
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"id="confirmation-holder">DOE.JOHN.A.1234567890"#),
        "{page}"
    );
    let fingerprint = hex_sha256(&card.info.certificate("9A"));
    assert_eq!(
        registrations(&portal),
        [(1, fingerprint, "registration".to_owned())]
    );

    // Another person's session: CAC login with the card alone. The GET shows the card and a
    // button, and logs nobody in (a link on another site cannot: the review's L4); the POST
    // without the page's CSRF token is refused.
    let stranger = Browser::new(&card, "DOE.JOHN.A.1234567890");
    let (status, _, page) = stranger.request(&format!("{mtls}/login/cac"), None, true);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"mtls-login-button\""), "{page}");
    let (status, redirect, _) =
        stranger.request(&format!("{}/account", portal.origin), None, false);
    assert_eq!(
        (status, redirect.ends_with("/login")),
        (303, true),
        "no session from a GET"
    );
    let (status, _, _) = stranger.request(&format!("{mtls}/login/cac"), Some("csrf=forged"), true);
    assert_eq!(status, 403, "a forged form");
    let form = format!("csrf={}", field(&page, "csrf"));
    let (status, redirect, _) = stranger.request(&format!("{mtls}/login/cac"), Some(&form), true);
    assert_eq!(status, 303);
    assert_eq!(redirect, format!("{}/account", portal.origin));
    let (status, _, page) = stranger.request(&redirect, None, false);
    assert_eq!(status, 200);
    assert!(
        page.contains("Signed in as <strong>demo</strong>"),
        "{page}"
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn an_unregistered_p384_card_logs_in_once_with_the_password_and_is_registered() {
    let _guard = lock();
    let card = VirtualCard::insert("smith", 0);
    let portal = mtls_portal();
    let mtls = portal.mtls_origin.clone().unwrap();
    let browser = Browser::new(&card, "SMITH.JANE.1098765432");
    let (_, _, page) = browser.request(&format!("{mtls}/login/cac"), None, true);
    let form = format!("csrf={}", field(&page, "csrf"));
    let (status, _, page) = browser.request(&format!("{mtls}/login/cac"), Some(&form), true);
    assert_eq!(status, 200);
    assert!(
        page.contains("is not registered to an account yet"),
        "{page}"
    );
    let csrf = field(&page, "csrf");
    let form = format!("csrf={csrf}&username=demo&password=demo-password");
    let (status, redirect, _) =
        browser.request(&format!("{mtls}/login/cac/link"), Some(&form), true);
    assert_eq!(status, 303, "linked");
    let (_, _, page) = browser.request(&redirect, None, true);
    assert!(
        page.contains(r#"id="confirmation-holder">SMITH.JANE.1098765432"#),
        "{page}"
    );
    assert_eq!(registrations(&portal)[0].2, "cac-login");
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_revoked_card_presented_in_the_handshake_neither_registers_nor_logs_in() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = mtls_portal_revoking(&["doe"]);
    let mtls = portal.mtls_origin.clone().unwrap();
    let browser = Browser::new(&card, "DOE.JOHN.A.1234567890");
    browser.log_in_with_password(&portal);
    // The handshake succeeds (the card signs it); the portal then refuses the certificate.
    let (status, _, page) = browser.request(&format!("{mtls}/account/cac"), None, true);
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("the certificate is revoked"), "{page}");
    let stranger = Browser::new(&card, "DOE.JOHN.A.1234567890");
    let (status, _, page) = stranger.request(&format!("{mtls}/login/cac"), None, true);
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("the certificate is revoked"), "{page}");
    assert!(registrations(&portal).is_empty());
}

fn hex_sha256(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn silent_connections_cannot_hold_the_cac_host() {
    use std::io::Read as _;
    let _guard = lock();
    let portal = mtls_portal();
    let mtls = portal.mtls_origin.clone().unwrap();
    let address = mtls
        .trim_start_matches("https://")
        .replace("localhost", "127.0.0.1");
    // Slow-loris: connections that never send a ClientHello (the review's L4: each held a
    // handshake for 180 s). One address gets 16 handshakes in progress; the 17th is closed
    // at once, and the silent ones after 10 s.
    let started = std::time::Instant::now();
    let silent: Vec<std::net::TcpStream> = (0..16)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut extra = std::net::TcpStream::connect(&address).unwrap();
    extra
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(extra.read(&mut byte).unwrap_or(0), 0, "closed at once");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    for mut stream in silent {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        assert_eq!(stream.read(&mut byte).unwrap_or(0), 0);
    }
    let held = started.elapsed();
    assert!(
        held >= std::time::Duration::from_secs(9) && held < std::time::Duration::from_secs(15),
        "{held:?}"
    );
    // The host still serves: a handshake without a card gets the guide's 403 page.
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{mtls}/login/cac"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
}
