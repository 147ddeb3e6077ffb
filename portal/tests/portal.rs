//! The reference portal over HTTPS, driven like a browser (cookies, forms) with tokens made by
//! the real host on virtual cards. Ignored by a plain `cargo test`; scripts/test runs them.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use cacbridge_testbed::host::{HostProcess, CHROME_ORIGIN};
use cacbridge_testbed::{lock, pki_dir, OcspResponder, PostgresServer, VirtualCard};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PORTAL: &str = env!("CARGO_BIN_EXE_cacbridge-portal");

struct Portal {
    process: Child,
    origin: String,
    _data: tempfile::TempDir,
    cert: Vec<u8>,
    _responder: OcspResponder,
}

impl Portal {
    /// The portal with its default revocation policy (require), asking the test PKI's OCSP
    /// responder.
    fn start() -> Portal {
        Self::start_revoking(&[])
    }

    /// The same, the certificates of the `revoked` cards revoked at the responder.
    fn start_revoking(revoked: &[&str]) -> Portal {
        Self::start_on(tempfile::tempdir().unwrap(), revoked)
    }

    /// Stop this portal and start another on its database, with the responder revoking the
    /// certificates of `revoked` cards.
    fn restart_revoking(mut self, revoked: &[&str]) -> Portal {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let data = std::mem::replace(&mut self._data, tempfile::tempdir().unwrap());
        Self::start_on(data, revoked)
    }

    fn start_on(data: tempfile::TempDir, revoked: &[&str]) -> Portal {
        Self::launch(data, revoked, &[], &[])
    }

    /// A portal with `args` added to `serve` and `env` in its environment.
    fn launch(
        data: tempfile::TempDir,
        revoked: &[&str],
        args: &[String],
        env: &[(&str, &str)],
    ) -> Portal {
        let responder = OcspResponder::start(revoked);
        let pki = pki_dir();
        let bundle = data.path().join("trust.pem");
        let mut pem = Vec::new();
        for name in ["root.pem", "id-ca.pem", "email-ca.pem"] {
            pem.extend(std::fs::read(pki.join(name)).unwrap());
        }
        std::fs::write(&bundle, pem).unwrap();
        let mut process = Command::new(PORTAL)
            .arg("--data-dir")
            .arg(data.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--demo-account",
                "--trust-bundle",
            ])
            .arg(&bundle)
            .args(responder.portal_args())
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        let mut stdout = BufReader::new(process.stdout.take().unwrap());
        stdout.read_line(&mut banner).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        // "CAC Bridge reference portal: ORIGIN (listening on port PORT)": this instance's
        // own address (ORIGIN is the public one, which `--origin` may set to another's).
        let port = banner
            .trim_end()
            .trim_end_matches(')')
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned();
        assert!(banner.contains("https://localhost:"), "{banner}");
        let origin = format!("https://localhost:{port}");
        let cert_path = args
            .windows(2)
            .find(|pair| pair[0] == "--tls-cert")
            .map(|pair| std::path::PathBuf::from(&pair[1]))
            .unwrap_or_else(|| data.path().join("portal-cert.pem"));
        let cert = std::fs::read(cert_path).unwrap();
        Portal {
            process,
            origin,
            _data: data,
            cert,
            _responder: responder,
        }
    }

    /// Kill the process outright (SIGKILL), as a crash would.
    fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Start again on the same data directory (the same SQLite file), with `args`.
    fn relaunch(mut self, args: &[String]) -> Portal {
        self.kill();
        let data = std::mem::replace(&mut self._data, tempfile::tempdir().unwrap());
        Self::launch(data, &[], args, &[])
    }

    fn browser(&self) -> Browser {
        let client = Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.cert).unwrap())
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .unwrap();
        Browser {
            client,
            origin: self.origin.clone(),
        }
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

struct Browser {
    client: Client,
    origin: String,
}

struct Page {
    status: StatusCode,
    url: String,
    body: String,
}

impl Page {
    fn meta(&self, name: &str) -> Option<String> {
        let marker = format!("<meta name=\"{name}\" content=\"");
        let start = self.body.find(&marker)? + marker.len();
        Some(self.body[start..].split('"').next()?.to_owned())
    }

    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }

    fn challenge(&self) -> String {
        self.meta("cacbridge-challenge")
            .expect("the page carries a challenge")
    }
}

impl Browser {
    fn get(&self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.origin))
            .send()
            .unwrap();
        Page {
            status: response.status(),
            url: response.url().to_string(),
            body: response.text().unwrap(),
        }
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.origin))
            .form(form)
            .send()
            .unwrap();
        Page {
            status: response.status(),
            url: response.url().to_string(),
            body: response.text().unwrap(),
        }
    }

    fn login(&self, username: &str, password: &str) -> Page {
        let page = self.get("/login");
        self.post(
            "/login",
            &[
                ("csrf", &page.csrf()),
                ("username", username),
                ("password", password),
            ],
        )
    }
}

/// The real host on the virtual card: what the extension does for the page.
struct Host(HostProcess);

impl Host {
    fn start() -> Host {
        Host(HostProcess::spawn(&[CHROME_ORIGIN]))
    }

    fn call(&mut self, command: &str, arguments: Value) -> Value {
        self.0.call("1", command, arguments)
    }

    /// A token from the PIV Authentication certificate of the card in `reader`.
    fn token(&mut self, card: &VirtualCard, origin: &str, nonce: &str) -> String {
        let list = self.call("list-certificates", json!({"reader": card.reader}));
        let id = list["result"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["slot"] == "9A")
            .unwrap()["id"]
            .clone();
        let reply = self.call(
            "authenticate",
            json!({"certificateId": id, "challengeNonce": nonce, "origin": origin, "pin": card.info.pin}),
        );
        assert!(reply["result"].is_object(), "{reply}");
        reply["result"].to_string()
    }

    /// The cross-use attack: a page has the 9C signing key sign the digest of the login
    /// message `H(origin) || H(nonce)` as a "document", then dresses the signature as a token.
    fn signature_shaped_as_token(
        &mut self,
        card: &VirtualCard,
        origin: &str,
        nonce: &str,
    ) -> String {
        use base64::Engine as _;
        use sha2::{Digest as _, Sha256};
        let b64 = base64::engine::general_purpose::STANDARD;
        let list = self.call("list-certificates", json!({"reader": card.reader}));
        let signing = list["result"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["slot"] == "9C")
            .unwrap()
            .clone();
        let message = [Sha256::digest(origin), Sha256::digest(nonce)].concat();
        let reply = self.call(
            "sign",
            json!({"certificateId": signing["id"], "hash": b64.encode(Sha256::digest(message)),
                   "hashFunction": "SHA-256", "origin": "https://attacker.example.mil",
                   "pin": card.info.pin}),
        );
        assert_eq!(reply["result"]["algorithm"], "ES256", "{reply}");
        json!({
            "format": "cacbridge:1",
            "unverifiedCertificate": signing["certificate"],
            "algorithm": "ES256",
            "signature": reply["result"]["signature"],
            "appVersion": "cacbridge-host/0.1.0",
        })
        .to_string()
    }
}

/// Log in as demo, open the registration page, and submit a token for it.
fn register(browser: &Browser, host: &mut Host, card: &VirtualCard, password: &str) -> Page {
    let page = browser.get("/account/cac");
    assert_eq!(
        page.meta("cacbridge-page").as_deref(),
        Some("cac-registration")
    );
    let token = host.token(card, &browser.origin, &page.challenge());
    browser.post(
        "/account/cac/register",
        &[
            ("csrf", &page.csrf()),
            ("cacbridge_challenge", &page.challenge()),
            ("cacbridge_token", &token),
            ("password", password),
        ],
    )
}

/// Log in with CAC: the login page's challenge, a token for it, the CAC login form.
fn cac_login(browser: &Browser, host: &mut Host, card: &VirtualCard) -> Page {
    let login = browser.get("/login");
    assert_eq!(login.meta("cacbridge-page").as_deref(), Some("cac-login"));
    let token = host.token(card, &browser.origin, &login.challenge());
    browser.post(
        "/login/cac",
        &[
            ("csrf", &login.csrf()),
            ("cacbridge_challenge", &login.challenge()),
            ("cacbridge_token", &token),
        ],
    )
}

/// The link page's form: username, password and a fresh proof from `card` for its challenge.
fn link(
    browser: &Browser,
    host: &mut Host,
    link: &Page,
    card: &VirtualCard,
    password: &str,
) -> Page {
    let token = host.token(card, &browser.origin, &link.challenge());
    browser.post(
        "/login/cac/link",
        &[
            ("csrf", &link.csrf()),
            ("cacbridge_challenge", &link.challenge()),
            ("cacbridge_token", &token),
            ("username", "demo"),
            ("password", password),
        ],
    )
}

const NEEDS: &str = "needs pcscd and virtual cards: run scripts/test";

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn registration_walks_the_guide_and_prints_a_confirmation() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = Portal::start();
    let browser = portal.browser();
    let mut host = Host::start();

    let account = browser.login("demo", "demo-password");
    assert_eq!(account.status, StatusCode::OK, "{NEEDS}");
    assert!(account.url.ends_with("/account"));
    assert!(account.body.contains("My Account"));
    assert!(account.body.contains(">CAC/Certificate Registration</a>"));

    let before = browser.get("/account/cac");
    assert!(before.body.contains("id=\"no-registrations\""));
    assert!(before
        .body
        .contains("id=\"cacbridge-register-button\">Register</button>"));

    let confirmation = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(confirmation.status, StatusCode::OK, "{}", confirmation.body);
    assert!(confirmation.url.contains("/account/cac/registrations/"));
    assert!(confirmation
        .body
        .contains("<dd id=\"confirmation-edipi\">1234567890</dd>"));
    assert!(confirmation.body.contains("DOE.JOHN.A.1234567890"));
    assert!(confirmation.body.contains("id=\"print\">Print</button>"));
    assert!(confirmation.body.contains("@media print"));

    let after = browser.get("/account/cac");
    assert!(after.body.contains("<td class=\"edipi\">1234567890</td>"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_revoked_cac_neither_registers_nor_logs_in() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let browser_of = |portal: &Portal| {
        let browser = portal.browser();
        browser.login("demo", "demo-password");
        browser
    };
    let mut host = Host::start();
    // Registered while good...
    let portal = Portal::start();
    let browser = browser_of(&portal);
    let registered = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    // ...then revoked: the same database, the responder now says "revoked".
    let portal = portal.restart_revoking(&["doe"]);
    let browser = browser_of(&portal);
    let refused = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("revoked"), "{}", refused.body);
    let anonymous = portal.browser();
    let login = cac_login(&anonymous, &mut host, &card);
    assert_eq!(login.status, StatusCode::FORBIDDEN, "{}", login.body);
    assert!(
        login.body.contains("the certificate is revoked"),
        "{}",
        login.body
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_same_card_twice_the_wrong_password_and_a_reissued_card() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = Portal::start();
    let browser = portal.browser();
    let mut host = Host::start();
    browser.login("demo", "demo-password");

    let wrong = register(&browser, &mut host, &card, "not-the-password");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The password is incorrect"));
    assert!(
        wrong.body.contains("id=\"no-registrations\""),
        "nothing was stored"
    );

    assert_eq!(
        register(&browser, &mut host, &card, "demo-password").status,
        StatusCode::OK
    );
    let again = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("already registered to your account"));
    assert_eq!(again.body.matches("<td class=\"edipi\">").count(), 1);

    // A reissued card: same person, same EDIPI, new certificate; registered alongside.
    drop(card);
    let reissued = VirtualCard::insert("doe2", 0);
    assert_eq!(
        register(&browser, &mut host, &reissued, "demo-password").status,
        StatusCode::OK
    );
    let list = browser.get("/account/cac");
    assert_eq!(
        list.body
            .matches("<td class=\"edipi\">1234567890</td>")
            .count(),
        2
    );
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn replayed_tokens_and_tokens_for_another_origin_are_forbidden() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = Portal::start();
    let browser = portal.browser();
    let mut host = Host::start();
    browser.login("demo", "demo-password");

    let page = browser.get("/account/cac");
    let token = host.token(&card, &browser.origin, &page.challenge());
    let form = [
        ("csrf", page.csrf()),
        ("cacbridge_challenge", page.challenge()),
        ("cacbridge_token", token.clone()),
        ("password", "demo-password".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        browser.post("/account/cac/register", &form).status,
        StatusCode::OK
    );

    // The same token again: its challenge is spent.
    let replay = browser.post("/account/cac/register", &form);
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    assert!(replay.body.contains("403: Access Forbidden"));
    // Even with the page's new challenge, an old token does not match it.
    let fresh = browser.get("/account/cac");
    let form = [
        ("csrf", fresh.csrf()),
        ("cacbridge_challenge", fresh.challenge()),
        ("cacbridge_token", token.clone()),
        ("password", "demo-password".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let replay = browser.post("/account/cac/register", &form);
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    assert!(
        replay.body.contains("does not match this origin and nonce"),
        "{}",
        replay.body
    );

    // Bound to another origin: refused even with the right challenge.
    let page = browser.get("/account/cac");
    let foreign = host.token(&card, "https://evil.example", &page.challenge());
    let refused = browser.post(
        "/account/cac/register",
        &[
            ("csrf", &page.csrf()),
            ("cacbridge_challenge", &page.challenge()),
            ("cacbridge_token", &foreign),
            ("password", "demo-password"),
        ],
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused
        .body
        .contains("does not match this origin and nonce"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn a_document_signature_replayed_as_a_login_token_is_refused() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let portal = Portal::start();
    let browser = portal.browser();
    let mut host = Host::start();
    browser.login("demo", "demo-password");

    // Registration: the page's own challenge and origin, signed by the signing key.
    let page = browser.get("/account/cac");
    let forged = host.signature_shaped_as_token(&card, &browser.origin, &page.challenge());
    let refused = browser.post(
        "/account/cac/register",
        &[
            ("csrf", &page.csrf()),
            ("cacbridge_challenge", &page.challenge()),
            ("cacbridge_token", &forged),
            ("password", "demo-password"),
        ],
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("document-signing certificate"),
        "{}",
        refused.body
    );
    assert!(browser
        .get("/account/cac")
        .body
        .contains("id=\"no-registrations\""));

    // With the card registered properly, the same trick still cannot log in.
    assert_eq!(
        register(&browser, &mut host, &card, "demo-password").status,
        StatusCode::OK
    );
    let other = portal.browser();
    let login = other.get("/login");
    let forged = host.signature_shaped_as_token(&card, &other.origin, &login.challenge());
    let refused = other.post(
        "/login/cac",
        &[
            ("csrf", &login.csrf()),
            ("cacbridge_challenge", &login.challenge()),
            ("cacbridge_token", &forged),
        ],
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!other.get("/account").url.ends_with("/account"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn cac_login_of_a_registered_card_and_linking_an_unregistered_one() {
    let _guard = lock();
    let doe = VirtualCard::insert("doe", 0);
    let smith = VirtualCard::insert("smith", 1);
    let portal = Portal::start();
    let mut host = Host::start();

    // Register doe's card, then log out.
    let browser = portal.browser();
    browser.login("demo", "demo-password");
    assert_eq!(
        register(&browser, &mut host, &doe, "demo-password").status,
        StatusCode::OK
    );
    let account = browser.get("/account");
    let out = browser.post("/logout", &[("csrf", &account.csrf())]);
    assert!(out.url.ends_with("/login"));

    // Log in with the registered card.
    let in_ = cac_login(&browser, &mut host, &doe);
    assert!(in_.url.ends_with("/account"), "{}", in_.url);
    assert!(in_.body.contains("Signed in as <strong>demo</strong>"));

    // An unregistered card asks for the password once, then registers and logs in.
    let other = portal.browser();
    let link = cac_login(&other, &mut host, &smith);
    assert_eq!(link.status, StatusCode::OK);
    assert!(link.body.contains("SMITH.JANE.1098765432"));
    let wrong = self::link(&other, &mut host, &link, &smith, "nope-nope");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // The password alone is not enough: the form needs a fresh proof from the card.
    let no_proof = other.post(
        "/login/cac/link",
        &[
            ("csrf", &wrong.csrf()),
            ("cacbridge_challenge", &wrong.challenge()),
            ("username", "demo"),
            ("password", "demo-password"),
        ],
    );
    assert_eq!(no_proof.status, StatusCode::FORBIDDEN);
    // Nor does another card's proof link the card that logged in.
    let relog = cac_login(&other, &mut host, &smith);
    let swapped = self::link(&other, &mut host, &relog, &doe, "demo-password");
    assert_eq!(swapped.status, StatusCode::FORBIDDEN);
    assert!(
        swapped.body.contains("not the card waiting"),
        "{}",
        swapped.body
    );
    let relog = cac_login(&other, &mut host, &smith);
    let linked = self::link(&other, &mut host, &relog, &smith, "demo-password");
    assert!(
        linked
            .body
            .contains("<dd id=\"confirmation-edipi\">1098765432</dd>"),
        "{}",
        linked.body
    );
    // The card's holder beside the account, so a mismatch shows.
    assert!(linked.body.contains(
        "The CAC of <strong id=\"confirmation-holder\">SMITH.JANE.1098765432</strong> is registered to the account <strong id=\"confirmation-account\">demo</strong>"
    ));
    // From now on that card logs in by itself.
    let third = portal.browser();
    let in_ = cac_login(&third, &mut host, &smith);
    assert!(in_.url.ends_with("/account"));
}

#[test]
#[ignore = "needs pcscd and virtual cards: run scripts/test"]
fn the_403_page_and_csrf() {
    let _guard = lock();
    let portal = Portal::start();
    let browser = portal.browser();
    let page = browser.get("/403");
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Clear this site"));
    assert!(page.body.contains("Close all open browser windows"));

    let forged = browser.post(
        "/login",
        &[
            ("csrf", "forged"),
            ("username", "demo"),
            ("password", "demo-password"),
        ],
    );
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = browser.login("demo", "wrong-password");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong
        .body
        .contains("The username or password is incorrect."));
    let no_token = browser.get("/login");
    let refused = browser.post(
        "/login/cac",
        &[
            ("csrf", &no_token.csrf()),
            ("cacbridge_challenge", &no_token.challenge()),
            ("cacbridge_token", ""),
        ],
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("no CAC Bridge token arrived"));
    let no_challenge = browser.post(
        "/login/cac",
        &[("csrf", &no_token.csrf()), ("cacbridge_token", "{}")],
    );
    assert_eq!(no_challenge.status, StatusCode::FORBIDDEN);
    assert!(no_challenge
        .body
        .contains("no challenge came with the form"));
}

/// Two portal instances on one PostgreSQL database, as behind a load balancer: one public
/// origin (A's), one TLS certificate, and whatever a browser did at one is known at the other.
fn two_instances(db: &PostgresServer) -> (Portal, Portal) {
    let a = Portal::launch(
        tempfile::tempdir().unwrap(),
        &[],
        &["--database".into(), db.url.clone()],
        &[],
    );
    let b = Portal::launch(
        tempfile::tempdir().unwrap(),
        &[],
        &[
            "--database".into(),
            db.url.clone(),
            "--origin".into(),
            a.origin.clone(),
            "--tls-cert".into(),
            a._data.path().join("portal-cert.pem").display().to_string(),
            "--tls-key".into(),
            a._data.path().join("portal-key.pem").display().to_string(),
        ],
        &[],
    );
    (a, b)
}

#[test]
#[ignore = "needs pcscd, virtual cards and PostgreSQL: run scripts/test"]
fn two_instances_on_postgresql_share_challenges_sessions_and_registrations() {
    let _guard = lock();
    let card = VirtualCard::insert("doe", 0);
    let db = PostgresServer::start();
    let (a, b) = two_instances(&db);
    assert_ne!(a.origin, b.origin, "two servers");
    let mut host = Host::start();
    // One browser (one cookie jar: cookies do not tell ports apart), at either instance.
    let at_a = a.browser();
    let at_b = Browser {
        client: at_a.client.clone(),
        origin: b.origin.clone(),
    };
    // A session made at A is valid at B.
    assert_eq!(at_a.login("demo", "demo-password").status, StatusCode::OK);
    let account = at_b.get("/account");
    assert!(account.body.contains("My Account"), "{}", account.body);

    // A's page, challenge and CSRF token, submitted to B: B consumes A's challenge.
    let page = at_a.get("/account/cac");
    let token = host.token(&card, &a.origin, &page.challenge());
    let form = [
        ("csrf", page.csrf()),
        ("cacbridge_challenge", page.challenge()),
        ("cacbridge_token", token),
        ("password", "demo-password".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registered = at_b.post("/account/cac/register", &form);
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    assert!(registered
        .body
        .contains("<dd id=\"confirmation-edipi\">1234567890</dd>"));
    // The registration made at B is visible at A at once.
    let listed = at_a.get("/account/cac");
    assert!(
        listed.body.contains("<td class=\"edipi\">1234567890</td>"),
        "{}",
        listed.body
    );
    // The same form again, at either instance: the challenge was used.
    for (name, at) in [("A", &at_a), ("B", &at_b)] {
        let replay = at.post("/account/cac/register", &form);
        assert_eq!(replay.status, StatusCode::FORBIDDEN, "replay at {name}");
        assert!(
            replay.body.contains("already used"),
            "replay at {name}: {}",
            replay.body
        );
    }
    assert_eq!(db.query("SELECT count(*) FROM registrations"), "1");
    assert_eq!(
        db.query("SELECT count(*) FROM account_events WHERE what LIKE 'CAC registered%'"),
        "1"
    );
}

/// `kill -9` of a portal inside a registration's transaction (held open by the fault
/// injection pause) leaves neither the registration nor its history entry; the portal started
/// again registers the card.
fn killed_mid_registration_leaves_nothing_half_written(
    database: Option<&PostgresServer>,
    count: &dyn Fn(&Portal, &str) -> String,
) {
    let card = VirtualCard::insert("doe", 0);
    let data = tempfile::tempdir().unwrap();
    let args: Vec<String> = database
        .map(|db| vec!["--database".into(), db.url.clone()])
        .unwrap_or_default();
    let mut portal = Portal::launch(
        data,
        &[],
        &args,
        &[("CACBRIDGE_PORTAL_FAULT_REGISTRATION_PAUSE_MS", "5000")],
    );
    let mut host = Host::start();
    let browser = portal.browser();
    browser.login("demo", "demo-password");
    let page = browser.get("/account/cac");
    let token = host.token(&card, &browser.origin, &page.challenge());
    let (csrf, challenge) = (page.csrf(), page.challenge());
    let submit = std::thread::spawn(move || {
        browser
            .client
            .post(format!("{}/account/cac/register", browser.origin))
            .form(&[
                ("csrf", csrf.as_str()),
                ("cacbridge_challenge", challenge.as_str()),
                ("cacbridge_token", token.as_str()),
                ("password", "demo-password"),
            ])
            .send()
    });
    // The registration is inside its transaction, paused between its two writes.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    portal.kill();
    assert!(
        submit.join().unwrap().is_err(),
        "no answer from a killed portal"
    );
    assert_eq!(count(&portal, "registrations"), "0", "no registration row");
    assert_eq!(count(&portal, "account_events"), "0", "no history row");

    // Started again on the same database (no pause): the card registers, once.
    let portal = portal.relaunch(&args);
    let browser = portal.browser();
    browser.login("demo", "demo-password");
    let registered = register(&browser, &mut host, &card, "demo-password");
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    assert_eq!(count(&portal, "registrations"), "1");
    assert_eq!(count(&portal, "account_events"), "1");
}

#[test]
#[ignore = "needs pcscd, virtual cards and PostgreSQL: run scripts/test"]
fn kill_9_mid_registration_leaves_no_half_written_rows_on_postgresql_or_sqlite() {
    let _guard = lock();
    let db = PostgresServer::start();
    killed_mid_registration_leaves_nothing_half_written(Some(&db), &|_, table| {
        db.query(&format!("SELECT count(*) FROM {table}"))
    });
    killed_mid_registration_leaves_nothing_half_written(None, &|portal, table| {
        let conn = rusqlite::Connection::open(portal._data.path().join("portal.db")).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
        .to_string()
    });
}

/// The account throttle's writes, the same on both databases: failures count up, the
/// `lock_after`-th locks (the streak restarts, the lock's time is kept), no write shortens a
/// stored wait, and a failure after a lock counts again without touching the lock's record.
async fn account_failures_count_and_lock(db: &cacbridge_portal::db::Db) {
    let id = db.create_user("throttled", "hash", 1000).await.unwrap();
    let retry_at = |failures: u32| 5000 + i64::from(failures);
    let failure = |now| cacbridge_portal::db::PasswordFailure {
        now,
        retry_at: &retry_at,
        lock_after: 3,
        lock_seconds: 900,
    };
    let mut user = db.user_by_id(id).await.unwrap().unwrap();
    let mut seen = Vec::new();
    for now in [2000, 2001, 2002, 2003] {
        user = db
            .password_failed(&user, user.failed_logins, 7, &failure(now))
            .await
            .unwrap();
        seen.push((
            user.failed_logins,
            user.retry_at,
            user.locked_until,
            user.last_locked_at,
        ));
    }
    assert_eq!(
        seen,
        [
            (1, 5001, 0, None),
            (2, 5002, 0, None),
            // A stored wait is never shortened: the lock's own end (2902) is earlier than
            // the wait already stored (5002).
            (0, 5002, 2902, Some(2002)),
            (1, 5002, 2902, Some(2002)),
        ],
        "{}",
        db.kind()
    );
}

/// One guess per account in flight: a claimed slot refuses a second claim, the failure written
/// under it frees it, a wait already stored is never shortened, and a released slot is free.
async fn one_attempt_slot_per_account(db: &cacbridge_portal::db::Db) {
    let id = db.create_user("slotted", "hash", 1000).await.unwrap();
    let retry_at = |failures: u32| 3000 + i64::from(failures);
    let failure = cacbridge_portal::db::PasswordFailure {
        now: 2000,
        retry_at: &retry_at,
        lock_after: 10,
        lock_seconds: 900,
    };
    assert_eq!(
        db.claim_password_attempt(id, 2000, 11, 2030).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        db.claim_password_attempt(id, 2000, 12, 2030).await.unwrap(),
        None
    );
    let user = db.user_by_id(id).await.unwrap().unwrap();
    let user = db.password_failed(&user, 0, 11, &failure).await.unwrap();
    assert_eq!(
        (user.failed_logins, user.retry_at),
        (1, 3001),
        "{}",
        db.kind()
    );
    // Waiting until 3001: no slot before then.
    assert_eq!(
        db.claim_password_attempt(id, 3000, 13, 3030).await.unwrap(),
        None
    );
    assert_eq!(
        db.claim_password_attempt(id, 3001, 13, 3031).await.unwrap(),
        Some(1)
    );
    // A late write computed from a lower count cannot shorten the stored wait.
    let shorter = |_: u32| 2500;
    let late = cacbridge_portal::db::PasswordFailure {
        retry_at: &shorter,
        ..failure
    };
    let user = db.password_failed(&user, 0, 99, &late).await.unwrap();
    assert_eq!(user.retry_at, 3001, "{}", db.kind());
    assert_eq!(
        db.claim_password_attempt(id, 3001, 14, 3031).await.unwrap(),
        None,
        "13 still holds it"
    );
    db.release_password_attempt(id, 13).await.unwrap();
    assert_eq!(
        db.claim_password_attempt(id, 3001, 14, 3031).await.unwrap(),
        Some(1)
    );
    // A slot left by a crashed instance frees itself at its end.
    assert_eq!(
        db.claim_password_attempt(id, 3031, 15, 3061).await.unwrap(),
        Some(1)
    );
}

#[test]
#[ignore = "needs PostgreSQL: run scripts/test"]
fn the_account_throttle_writes_the_same_on_postgresql_and_sqlite() {
    let pg = PostgresServer::start();
    let sqlite = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for location in [
            pg.url.clone(),
            sqlite.path().join("portal.db").display().to_string(),
        ] {
            let db = cacbridge_portal::db::Db::open(&location).await.unwrap();
            account_failures_count_and_lock(&db).await;
            one_attempt_slot_per_account(&db).await;
        }
    });
}

/// 40 wrong passwords for one account sent at once, spread over `portals`: each guess the
/// portals checked is counted, and one at a time is checked (the review's M1: all 40 were
/// checked, the count read before Argon2 went up by one). `failures` reads the account's
/// failures since its last login.
fn a_burst_of_guesses_is_checked_one_at_a_time(portals: &[&Portal], failures: &dyn Fn() -> String) {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(40));
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let browser = portals[i % portals.len()].browser();
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                let page = browser.get("/login");
                let form = [
                    ("csrf", page.csrf()),
                    ("username", "demo".to_owned()),
                    ("password", format!("wrong-guess-{i}")),
                ];
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                barrier.wait();
                browser.post("/login", &form).status
            })
        })
        .collect();
    let statuses: Vec<StatusCode> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert_eq!(
        failures(),
        checked.to_string(),
        "every checked guess counted"
    );
    // One in flight at a time, and waits after the account's 3 free failures: a burst gets
    // only a few guesses checked.
    assert!(
        (1..=3).contains(&checked),
        "{checked} checked: {statuses:?}"
    );
}

#[test]
#[ignore = "needs PostgreSQL: run scripts/test"]
fn a_burst_of_wrong_passwords_cannot_race_the_lockout_on_sqlite_or_two_postgresql_instances() {
    let _guard = lock();
    let sqlite = Portal::start();
    a_burst_of_guesses_is_checked_one_at_a_time(&[&sqlite], &|| {
        let conn = rusqlite::Connection::open(sqlite._data.path().join("portal.db")).unwrap();
        conn.query_row(
            "SELECT failures_since_login FROM users WHERE username = 'demo'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        .to_string()
    });
    let db = PostgresServer::start();
    let (a, b) = two_instances(&db);
    a_burst_of_guesses_is_checked_one_at_a_time(&[&a, &b], &|| {
        db.query("SELECT failures_since_login FROM users WHERE username = 'demo'")
    });
}
