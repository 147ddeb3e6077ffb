//! Revocation against real responders: a PKI made with the openssl tool, `openssl ocsp` as the
//! OCSP responder over HTTP, and its CRL (`openssl ca -gencrl`) served over HTTP. Good, revoked
//! and unknown certificates; a stale answer; a responder that is down, slow, or signs with
//! the wrong key; each under the policies it matters for.
#![allow(clippy::unwrap_used)]

use cacbridge_verify::RevocationError;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cacbridge_verify::{
    Revocation, RevocationPolicy, RevocationSettings, TrustStore, Verifier, VerifyError,
    VerifyPolicy,
};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pem_to_der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
}

/// A child process killed when the test ends.
struct Process(Child);
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Files over HTTP/1.0, counting requests: the CRL server.
struct FileServer {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl FileServer {
    fn start(root: PathBuf) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                        break;
                    }
                }
                let mut stream = stream;
                match std::fs::read(root.join(path.trim_start_matches('/'))) {
                    Ok(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body);
                    }
                    Err(_) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                        );
                    }
                }
            }
        });
        FileServer { port, hits }
    }
}

/// Accepts connections and never answers: a responder that hangs.
fn slow_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// Start `openssl ocsp` on `port` and wait until it listens. (Not by connecting to it: the
/// responder serves one connection at a time, and waits forever on a probe that sends nothing.)
fn ocsp_responder(dir: &Path, port: u16, signer: &str) -> Process {
    let log_path = dir.join(format!("ocsp-{port}-{signer}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-port",
            &port.to_string(),
            "-rsigner",
            &format!("{signer}.pem"),
            "-rkey",
            &format!("{signer}.key"),
            "-CA",
            "ca.pem",
            "-ndays",
            "1",
        ])
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("waiting for OCSP client connections")
    {
        assert!(Instant::now() < deadline, "openssl ocsp did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Process(child)
}

/// A root, an issuing CA, and end-entity authentication certificates naming an OCSP
/// responder (authorityInfoAccess) and a CRL (cRLDistributionPoints) on loopback ports.
struct Pki {
    dir: tempfile::TempDir,
    ocsp_port: u16,
    crl: FileServer,
}

const CA_CONFIG: &str = "
[ca]
default_ca = issuing
[issuing]
database = index.txt
crlnumber = crlnumber
certificate = ca.pem
private_key = ca.key
default_md = sha256
default_crl_days = 1
";

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = &dir.path().to_path_buf();
        let ocsp_port = free_port();
        let crl = FileServer::start(d.to_path_buf());
        std::fs::write(d.join("ca.cnf"), CA_CONFIG).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            d.join("ext.cnf"),
            format!(
                "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
                 [ee]\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n\
                 authorityInfoAccess=OCSP;URI:http://127.0.0.1:{ocsp_port}/\n\
                 crlDistributionPoints=URI:http://127.0.0.1:{}/ca.crl\n",
                crl.port
            ),
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            d,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "root.key",
                    "-out",
                    "root.pem",
                    "-subj",
                    "/O=Test/CN=REVOCATION TEST ROOT",
                    "-days",
                    "3650",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        openssl(
            d,
            &[
                &["req", "-new"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.csr",
                    "-subj",
                    "/O=Test/CN=REVOCATION TEST ID CA-1",
                ],
            ]
            .concat(),
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "ca.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-set_serial",
                "0x1001",
                "-days",
                "3650",
                "-extfile",
                "ext.cnf",
                "-extensions",
                "ca",
                "-out",
                "ca.pem",
            ],
        );
        // A key of the wrong signer: a responder nobody delegated.
        openssl(
            d,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "rogue.key",
                    "-out",
                    "rogue.pem",
                    "-subj",
                    "/CN=ROGUE RESPONDER",
                    "-days",
                    "30",
                ],
            ]
            .concat(),
        );
        let pki = Pki {
            dir,
            ocsp_port,
            crl,
        };
        for (name, serial) in [("good", "2001"), ("revoked", "2002"), ("unknown", "2003")] {
            pki.issue(name, serial);
        }
        // The CA's records: good valid, revoked revoked, unknown never recorded.
        std::fs::write(
            d.join("index.txt"),
            "V\t350101000000Z\t\t2001\tunknown\t/CN=GOOD.USER.1000000001\n\
             R\t350101000000Z\t260101000000Z,keyCompromise\t2002\tunknown\t/CN=REVOKED.USER.1000000002\n",
        )
        .unwrap();
        openssl(d, &["ca", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl"]);
        pki
    }

    fn issue(&self, name: &str, serial: &str) {
        let d = self.dir.path();
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={}.USER.100000000{}", name.to_uppercase(), &serial[3..]),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("0x{serial}"),
                "-days",
                "3000",
                "-extfile",
                "ext.cnf",
                "-extensions",
                "ee",
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    fn cert(&self, name: &str) -> Vec<u8> {
        pem_to_der(&self.dir.path().join(format!("{name}.pem")))
    }

    fn trust(&self) -> TrustStore {
        let d = self.dir.path();
        let pem = [
            std::fs::read(d.join("root.pem")).unwrap(),
            std::fs::read(d.join("ca.pem")).unwrap(),
        ]
        .concat();
        TrustStore::from_pem(&pem).unwrap()
    }

    fn verifier(&self, settings: RevocationSettings) -> Verifier {
        Verifier::new(self.trust(), VerifyPolicy::default()).with_revocation(settings)
    }

    fn responder(&self, signer: &str) -> Process {
        ocsp_responder(self.dir.path(), self.ocsp_port, signer)
    }
}

fn settings(policy: RevocationPolicy) -> RevocationSettings {
    RevocationSettings {
        policy,
        timeout: Duration::from_secs(1),
        ..Default::default()
    }
}

fn ocsp_only(policy: RevocationPolicy) -> RevocationSettings {
    RevocationSettings {
        crl: false,
        ..settings(policy)
    }
}

fn crl_only(policy: RevocationPolicy) -> RevocationSettings {
    RevocationSettings {
        ocsp: false,
        ..settings(policy)
    }
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
#[ignore = "needs the openssl tool: run scripts/test"]
fn ocsp_good_revoked_and_unknown_from_openssl_ocsp_with_a_cache() {
    let pki = Pki::new();
    let _responder = pki.responder("ca");
    let verifier = pki.verifier(ocsp_only(RevocationPolicy::Require));
    let now = SystemTime::now();

    let identity = verifier.verify_certificate(&pki.cert("good"), now).unwrap();
    assert_eq!(
        identity.revocation,
        Revocation::Good {
            source: format!("http://127.0.0.1:{}/", pki.ocsp_port)
        }
    );
    let err = verifier
        .verify_certificate(&pki.cert("revoked"), now)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Revocation(RevocationError::Revoked(_))),
        "{err}"
    );
    assert_eq!(err.code(), "certificate-revoked");
    let err = verifier
        .verify_certificate(&pki.cert("unknown"), now)
        .unwrap_err();
    assert_eq!(err.code(), "revocation-unknown", "{err}");

    // Answers are cached until their nextUpdate: asked again, nobody is asked.
    let fetches = verifier.revocation_fetches();
    assert_eq!(fetches, 3);
    verifier.verify_certificate(&pki.cert("good"), now).unwrap();
    assert!(verifier
        .verify_certificate(&pki.cert("revoked"), now)
        .is_err());
    assert_eq!(
        verifier.revocation_fetches(),
        fetches,
        "served from the cache"
    );

    // "unknown" refuses under prefer too: the responder answered, and does not know the card.
    let prefer = pki.verifier(ocsp_only(RevocationPolicy::Prefer));
    assert_eq!(
        prefer
            .verify_certificate(&pki.cert("unknown"), now)
            .unwrap_err()
            .code(),
        "revocation-unknown"
    );
}

#[test]
#[ignore = "needs the openssl tool: run scripts/test"]
fn a_stale_ocsp_answer_is_no_answer_but_a_stale_revoked_is_still_revoked() {
    let pki = Pki::new();
    let _responder = pki.responder("ca");
    // The responder's answers run to nextUpdate = now + 1 day; two days on, they are stale.
    let later = SystemTime::now() + 2 * DAY;
    let require = pki.verifier(ocsp_only(RevocationPolicy::Require));
    let err = require
        .verify_certificate(&pki.cert("good"), later)
        .unwrap_err();
    assert_eq!(err.code(), "revocation-unavailable", "{err}");
    assert!(err.to_string().contains("stale"), "{err}");
    let err = require
        .verify_certificate(&pki.cert("revoked"), later)
        .unwrap_err();
    assert_eq!(err.code(), "certificate-revoked", "{err}");
    let prefer = pki.verifier(ocsp_only(RevocationPolicy::Prefer));
    let identity = prefer.verify_certificate(&pki.cert("good"), later).unwrap();
    assert!(
        matches!(identity.revocation, Revocation::Unavailable { .. }),
        "{:?}",
        identity.revocation
    );
    // Nothing stale is cached: the next check asks again.
    let before = require.revocation_fetches();
    let _ = require.verify_certificate(&pki.cert("good"), later);
    assert_eq!(require.revocation_fetches(), before + 1);
}

#[test]
#[ignore = "needs the openssl tool: run scripts/test"]
fn an_answer_signed_by_the_wrong_key_refuses_under_require_and_prefer() {
    let pki = Pki::new();
    let _responder = pki.responder("rogue");
    let now = SystemTime::now();
    for policy in [RevocationPolicy::Require, RevocationPolicy::Prefer] {
        let err = pki
            .verifier(ocsp_only(policy))
            .verify_certificate(&pki.cert("good"), now)
            .unwrap_err();
        assert_eq!(err.code(), "revocation-invalid", "{policy:?}: {err}");
        assert!(err.to_string().contains("not signed by"), "{err}");
    }
    // The same rogue answers are accepted when that responder is configured as trusted (a
    // DoD relying party's responder certificate): the configuration decides, not the answer.
    let trusted = pki.verifier(RevocationSettings {
        ocsp_signers: vec![pki.cert("rogue")],
        ..ocsp_only(RevocationPolicy::Require)
    });
    assert!(matches!(
        trusted
            .verify_certificate(&pki.cert("good"), now)
            .unwrap()
            .revocation,
        Revocation::Good { .. }
    ));
}

#[test]
#[ignore = "needs the openssl tool: run scripts/test"]
fn a_responder_down_or_slow_under_each_policy() {
    let pki = Pki::new();
    let now = SystemTime::now();
    let down = format!("http://127.0.0.1:{}/", free_port());
    let slow = format!("http://127.0.0.1:{}/", slow_server());
    for (what, url) in [("down", &down), ("slow", &slow)] {
        let with = |policy| RevocationSettings {
            ocsp_responder: Some(url.clone()),
            ..ocsp_only(policy)
        };
        let started = Instant::now();
        let err = pki
            .verifier(with(RevocationPolicy::Require))
            .verify_certificate(&pki.cert("good"), now)
            .unwrap_err();
        assert_eq!(err.code(), "revocation-unavailable", "{what}: {err}");
        // The timeout bounds the wait (1 s here).
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: {:?}",
            started.elapsed()
        );

        let identity = pki
            .verifier(with(RevocationPolicy::Prefer))
            .verify_certificate(&pki.cert("good"), now)
            .unwrap();
        assert!(
            matches!(&identity.revocation, Revocation::Unavailable { reason } if reason.contains(url.as_str())),
            "{what}: {:?}",
            identity.revocation
        );
        // A revoked certificate passes too when nobody can say so: that is what prefer means.
        assert!(pki
            .verifier(with(RevocationPolicy::Prefer))
            .verify_certificate(&pki.cert("revoked"), now)
            .is_ok());

        let off = pki.verifier(with(RevocationPolicy::Off));
        let identity = off.verify_certificate(&pki.cert("revoked"), now).unwrap();
        assert_eq!(identity.revocation, Revocation::NotChecked);
        assert_eq!(off.revocation_fetches(), 0, "off asks nobody");
    }
}

#[test]
#[ignore = "needs the openssl tool: run scripts/test"]
fn crls_from_the_distribution_point_cached_until_next_update() {
    let pki = Pki::new();
    let now = SystemTime::now();
    let verifier = pki.verifier(crl_only(RevocationPolicy::Require));
    let identity = verifier.verify_certificate(&pki.cert("good"), now).unwrap();
    assert_eq!(
        identity.revocation,
        Revocation::Good {
            source: format!("http://127.0.0.1:{}/ca.crl", pki.crl.port)
        }
    );
    let err = verifier
        .verify_certificate(&pki.cert("revoked"), now)
        .unwrap_err();
    assert_eq!(err.code(), "certificate-revoked", "{err}");
    // "unknown" is simply not on the CRL: a CRL lists the revoked only.
    assert!(verifier
        .verify_certificate(&pki.cert("unknown"), now)
        .is_ok());
    assert_eq!(
        pki.crl.hits.load(Ordering::SeqCst),
        1,
        "one download, then the cache"
    );
    // Kept 6 hours at most, whatever its nextUpdate (1 day) says.
    let hours = |h: u64| Duration::from_secs(h * 3600);
    verifier
        .verify_certificate(&pki.cert("good"), now + hours(5))
        .unwrap();
    assert_eq!(pki.crl.hits.load(Ordering::SeqCst), 1);
    verifier
        .verify_certificate(&pki.cert("good"), now + hours(7))
        .unwrap();
    assert_eq!(
        pki.crl.hits.load(Ordering::SeqCst),
        2,
        "refetched after 6 h"
    );

    // Past its nextUpdate (1 day) the CRL is fetched again; the server's copy is as stale.
    let later = SystemTime::now() + 2 * DAY;
    let err = verifier
        .verify_certificate(&pki.cert("good"), later)
        .unwrap_err();
    assert_eq!(err.code(), "revocation-unavailable", "{err}");
    assert_eq!(pki.crl.hits.load(Ordering::SeqCst), 3);
    assert_eq!(
        verifier
            .verify_certificate(&pki.cert("revoked"), later)
            .unwrap_err()
            .code(),
        "revocation-unavailable",
        "webpki will not read an expired CRL at all"
    );
}

#[test]
#[ignore = "needs the openssl tool: run scripts/test"]
fn a_forged_crl_is_never_cached_and_the_real_one_is_used_once_it_is_back() {
    let pki = Pki::new();
    let d = pki.dir.path();
    // A CRL with the CA's name, signed by another key, listing the good certificate (the
    // review's M2: served over plain HTTP, it was cached until its nextUpdate and kept the
    // CA's every certificate refused after the real CRL was back).
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "forged.key",
            "-out",
            "forged.pem",
            "-subj",
            "/O=Test/CN=REVOCATION TEST ID CA-1",
            "-days",
            "30",
        ],
    );
    std::fs::write(
        d.join("forged.cnf"),
        CA_CONFIG
            .replace("index.txt", "forged-index.txt")
            .replace("crlnumber", "forged-crlnumber")
            .replace("ca.pem", "forged.pem")
            .replace("ca.key", "forged.key"),
    )
    .unwrap();
    std::fs::write(
        d.join("forged-index.txt"),
        "R\t350101000000Z\t260101000000Z,keyCompromise\t2001\tunknown\t/CN=GOOD.USER.1000000001\n",
    )
    .unwrap();
    std::fs::write(d.join("forged-crlnumber"), "01\n").unwrap();
    std::fs::rename(d.join("ca.crl"), d.join("real.crl")).unwrap();
    openssl(
        d,
        &["ca", "-config", "forged.cnf", "-gencrl", "-out", "ca.crl"],
    );

    let verifier = pki.verifier(crl_only(RevocationPolicy::Require));
    let now = SystemTime::now();
    for _ in 0..2 {
        let err = verifier
            .verify_certificate(&pki.cert("good"), now)
            .unwrap_err();
        assert_eq!(err.code(), "revocation-invalid", "{err}");
    }
    assert_eq!(
        pki.crl.hits.load(Ordering::SeqCst),
        2,
        "the forged CRL was kept"
    );
    // The real CRL back: the next check fetches it, and it is the one kept.
    std::fs::rename(d.join("real.crl"), d.join("ca.crl")).unwrap();
    assert!(verifier.verify_certificate(&pki.cert("good"), now).is_ok());
    assert!(verifier.verify_certificate(&pki.cert("good"), now).is_ok());
    assert_eq!(pki.crl.hits.load(Ordering::SeqCst), 3);
}

#[test]
#[ignore = "needs the openssl tool: run scripts/test"]
fn a_token_whose_signature_fails_makes_no_revocation_fetch() {
    use base64::Engine as _;
    let pki = Pki::new();
    let verifier = pki.verifier(settings(RevocationPolicy::Require));
    // A revoked certificate anyone could have, and a signature of zeros (the review's M3: the
    // answer said "revoked", after an OCSP and a CRL fetch made on the caller's behalf).
    let b64 = base64::engine::general_purpose::STANDARD;
    let token = serde_json::json!({
        "format": "cacbridge:1",
        "unverifiedCertificate": b64.encode(pki.cert("revoked")),
        "algorithm": "ES256",
        "signature": b64.encode([0u8; 64]),
        "appVersion": "cacbridge-host/0.1.0",
    })
    .to_string();
    let nonce = "A".repeat(44);
    let err = verifier
        .verify(&token, "https://portal.example", &nonce, SystemTime::now())
        .unwrap_err();
    assert_eq!(err.code(), "bad-signature", "{err}");
    assert_eq!(verifier.revocation_fetches(), 0);
    assert_eq!(pki.crl.hits.load(Ordering::SeqCst), 0);
}

#[test]
#[ignore = "needs the openssl tool: run scripts/test"]
fn ocsp_down_falls_back_to_the_crl() {
    let pki = Pki::new();
    // No OCSP responder runs on the port the certificates name.
    let verifier = pki.verifier(settings(RevocationPolicy::Require));
    let now = SystemTime::now();
    assert!(matches!(
        verifier.verify_certificate(&pki.cert("good"), now).unwrap().revocation,
        Revocation::Good { source } if source.ends_with("/ca.crl")
    ));
    assert_eq!(
        verifier
            .verify_certificate(&pki.cert("revoked"), now)
            .unwrap_err()
            .code(),
        "certificate-revoked"
    );
}
