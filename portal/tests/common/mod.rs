//! A portal process with a demo account, and clients that may come from several loopback
//! addresses (127.0.0.0/8 is all loopback on Linux), for tests that need no card.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const PORTAL: &str = env!("CARGO_BIN_EXE_cacbridge-portal");

pub struct Portal {
    process: Child,
    pub origin: String,
    pub mtls_origin: Option<String>,
    pub data: tempfile::TempDir,
    cert: Vec<u8>,
    _responder: Option<cacbridge_testbed::OcspResponder>,
}

impl Portal {
    pub fn start() -> Portal {
        Self::start_with(&[])
    }

    /// A portal started with `args` added to `serve`; `mtls_origin` is set when its banner
    /// names a mutual-TLS CAC host.
    /// As [`Portal::start_with`], checking revocation (the default policy, require) with the
    /// test PKI's OCSP responder: for tests that present cards.
    pub fn start_checking_revocation(args: &[&str]) -> Portal {
        Self::start_revoking(&[], args)
    }

    /// The same, with the certificates of the `revoked` cards revoked at the responder.
    pub fn start_revoking(revoked: &[&str], args: &[&str]) -> Portal {
        let responder = cacbridge_testbed::OcspResponder::start(revoked);
        let mut all: Vec<&str> = args.to_vec();
        let extra = responder.portal_args();
        all.extend(extra.iter().map(String::as_str));
        let mut portal = Self::start_with(&all);
        portal._responder = Some(responder);
        portal
    }

    /// Tests that present no card: revocation is off (nothing to check).
    pub fn start_with(args: &[&str]) -> Portal {
        let data = tempfile::tempdir().unwrap();
        let mut process = Command::new(PORTAL)
            .arg("--data-dir")
            .arg(data.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--demo-account"])
            .args(if args.contains(&"--ocsp-responder") {
                &[][..]
            } else {
                &["--revocation", "off"][..]
            })
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(process.stdout.take().unwrap());
        let mut banner = String::new();
        stdout.read_line(&mut banner).unwrap();
        let origin = banner.split_whitespace().nth(4).unwrap().to_owned();
        let mut mtls_origin = None;
        if args.contains(&"--mtls-listen") {
            let mut line = String::new();
            while stdout.read_line(&mut line).unwrap() > 0 {
                if let Some(rest) = line.strip_prefix("mutual-TLS CAC host: ") {
                    mtls_origin = Some(rest.trim().to_owned());
                    break;
                }
                line.clear();
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let cert = std::fs::read(data.path().join("portal-cert.pem")).unwrap();
        Portal {
            process,
            origin,
            mtls_origin,
            data,
            cert,
            _responder: None,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data.path().join("portal.db")
    }

    /// The portal's database, opened beside the server (SQLite in WAL mode allows it).
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db_path()).unwrap()
    }

    /// A browser-like client (cookies kept) whose connections come from `address`.
    pub fn client_from(&self, address: IpAddr) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.cert).unwrap())
            .cookie_store(true)
            .local_address(address)
            .build()
            .unwrap()
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The value of hidden field `name` in the first form that has it.
pub fn field(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

/// `127.0.0.N`.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}
