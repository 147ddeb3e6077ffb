//! The reference portal over HTTPS, driven like a browser (cookies, forms) with tokens made by
//! the real host on virtual cards: what the guide's tests and the scale-out tests share.
#![allow(dead_code)]

pub use std::io::{BufRead, BufReader};
pub use std::process::{Child, Command, Stdio};

pub use cacbridge_testbed::host::{HostProcess, CHROME_ORIGIN};
pub use cacbridge_testbed::{lock, pki_dir, OcspResponder, VirtualCard};
pub use reqwest::blocking::Client;
pub use reqwest::StatusCode;
pub use serde_json::{json, Value};

pub const PORTAL: &str = env!("CARGO_BIN_EXE_cacbridge-portal");

pub struct Portal {
    pub process: Child,
    pub origin: String,
    pub _data: tempfile::TempDir,
    pub cert: Vec<u8>,
    pub _responder: OcspResponder,
}

impl Portal {
    /// The portal with its default revocation policy (require), asking the test PKI's OCSP
    /// responder.
    pub fn start() -> Portal {
        Self::start_revoking(&[])
    }

    /// The same, the certificates of the `revoked` cards revoked at the responder.
    pub fn start_revoking(revoked: &[&str]) -> Portal {
        Self::start_on(tempfile::tempdir().unwrap(), revoked)
    }

    /// Stop this portal and start another on its database, with the responder revoking the
    /// certificates of `revoked` cards.
    pub fn restart_revoking(mut self, revoked: &[&str]) -> Portal {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let data = std::mem::replace(&mut self._data, tempfile::tempdir().unwrap());
        Self::start_on(data, revoked)
    }

    pub fn start_on(data: tempfile::TempDir, revoked: &[&str]) -> Portal {
        Self::launch(data, revoked, &[], &[])
    }

    /// A portal with `args` added to `serve` and `env` in its environment.
    pub fn launch(
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
    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Start again on the same data directory (the same SQLite file), with `args`.
    pub fn relaunch(mut self, args: &[String]) -> Portal {
        self.kill();
        let data = std::mem::replace(&mut self._data, tempfile::tempdir().unwrap());
        Self::launch(data, &[], args, &[])
    }

    pub fn browser(&self) -> Browser {
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

pub struct Browser {
    pub client: Client,
    pub origin: String,
}

pub struct Page {
    pub status: StatusCode,
    pub url: String,
    pub body: String,
}

impl Page {
    pub fn meta(&self, name: &str) -> Option<String> {
        let marker = format!("<meta name=\"{name}\" content=\"");
        let start = self.body.find(&marker)? + marker.len();
        Some(self.body[start..].split('"').next()?.to_owned())
    }

    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }

    pub fn challenge(&self) -> String {
        self.meta("cacbridge-challenge")
            .expect("the page carries a challenge")
    }
}

impl Browser {
    pub fn get(&self, path: &str) -> Page {
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

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
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

    pub fn login(&self, username: &str, password: &str) -> Page {
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
pub struct Host(pub HostProcess);

impl Host {
    pub fn start() -> Host {
        Host(HostProcess::spawn(&[CHROME_ORIGIN]))
    }

    pub fn call(&mut self, command: &str, arguments: Value) -> Value {
        self.0.call("1", command, arguments)
    }

    /// A token from the PIV Authentication certificate of the card in `reader`.
    pub fn token(&mut self, card: &VirtualCard, origin: &str, nonce: &str) -> String {
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
    pub fn signature_shaped_as_token(
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
pub fn register(browser: &Browser, host: &mut Host, card: &VirtualCard, password: &str) -> Page {
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
pub fn cac_login(browser: &Browser, host: &mut Host, card: &VirtualCard) -> Page {
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
pub fn link(
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

pub const NEEDS: &str = "needs pcscd and virtual cards: run scripts/test";
