//! Test support for integration tests against the real stack: pcscd with vsmartcard's vpcd
//! driver, and virtual PIV cards (`virtual-piv`) personalized like CACs by
//! `tests/harness/personalize-cards`.
//!
//! `tests/harness/testbed-setup` (run by `scripts/test`) installs the packages, starts pcscd
//! and builds the golden cards. A test then takes the [`lock`] (there is one pcscd and two
//! reader slots), inserts cards, and removes them by dropping them.

pub mod host;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// vpcd's readers and the TCP ports their cards connect to.
pub const READERS: [(&str, u16); 2] = [("Virtual PCD 00 00", 35963), ("Virtual PCD 00 01", 35964)];

static LOCK: Mutex<()> = Mutex::new(());

/// Serialise tests that use pcscd and the virtual readers.
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// OpenSC's PKCS#11 conformance suite, as tests/harness/build-p11test built it from Debian's
/// source package.
pub fn p11test() -> PathBuf {
    let path = workspace().join("target/p11test/p11test");
    assert!(
        path.exists(),
        "{} missing: run tests/harness/build-p11test",
        path.display()
    );
    path
}

/// Where testbed-setup left its files.
pub fn testbed_dir() -> PathBuf {
    std::env::var_os("CACBRIDGE_TESTBED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/testbed"))
}

pub fn golden_dir() -> PathBuf {
    testbed_dir().join("golden")
}

/// The test PKI's files: `root.pem`, `id-ca.pem`, `email-ca.pem` and their keys.
pub fn pki_dir() -> PathBuf {
    golden_dir().join("pki")
}

fn virtual_cac() -> PathBuf {
    std::env::var_os("VIRTUAL_CAC")
        .map(PathBuf::from)
        .unwrap_or_else(|| testbed_dir().join("bin/virtual-cac"))
}

fn virtual_piv() -> PathBuf {
    std::env::var_os("VIRTUAL_PIV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/virtual-piv"))
}

/// Who a golden card belongs to and what it holds (`card.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct CardInfo {
    pub name: String,
    /// "piv" (a virtual-piv card) or "cac" (a legacy CAC emulated by libcacard).
    #[serde(default = "piv_kind")]
    pub kind: String,
    pub cn: String,
    pub edipi: String,
    pub upn: String,
    pub email: String,
    pub pin: String,
    pub puk: String,
    #[serde(rename = "pinTries")]
    pub pin_tries: u8,
    pub slots: std::collections::BTreeMap<String, SlotInfo>,
}

fn piv_kind() -> String {
    "piv".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlotInfo {
    pub algorithm: String,
    pub storage: String,
}

impl CardInfo {
    pub fn load(name: &str) -> CardInfo {
        let path = golden_dir().join("cards").join(name).join("card.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "{} missing: run tests/harness/testbed-setup first (scripts/test does)",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("card.json")
    }

    /// The DER certificate written to `slot` ("9a", "9c", ..., "cac-id", ...).
    /// The certificate written to `slot` of this golden card.
    pub fn certificate_of(&self, slot: cacbridge_card::Slot) -> Vec<u8> {
        self.certificate(&golden_label(slot))
    }

    /// The certificate written to `slot` ("9A" .. "9E", "CAC-ID", ...) of this golden card.
    pub fn certificate(&self, slot: &str) -> Vec<u8> {
        let path = golden_dir()
            .join("cards")
            .join(&self.name)
            .join(format!("{}.der", slot.to_ascii_lowercase()));
        std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing", path.display()))
    }
}

/// Options for a virtual card.
#[derive(Debug, Clone, Default)]
pub struct CardOptions {
    /// Delay before each answer, to catch the card in the middle of an operation.
    pub apdu_delay: Option<Duration>,
    /// Every VERIFY carrying a PIN appends a line to this file, and waits `verify_stall`
    /// before it is answered.
    pub verify_log: Option<PathBuf>,
    pub verify_stall: Option<Duration>,
}

/// A virtual card in a reader. Dropping it pulls it out.
pub struct VirtualCard {
    pub info: CardInfo,
    pub reader: &'static str,
    port: u16,
    state: tempfile::TempDir,
    options: CardOptions,
    process: Option<Child>,
}

impl VirtualCard {
    /// A fresh copy of golden card `name` inserted into reader `slot` (0 or 1).
    pub fn insert(name: &str, slot: usize) -> VirtualCard {
        Self::insert_with(name, slot, CardOptions::default())
    }

    pub fn insert_with(name: &str, slot: usize, options: CardOptions) -> VirtualCard {
        ensure_pcscd();
        let info = CardInfo::load(name);
        let (reader, port) = READERS[slot];
        assert!(
            !card_present(reader),
            "{reader} already holds a card: a stray virtual-piv process? (pkill -f virtual-piv)"
        );
        let state = tempfile::tempdir().expect("temp dir");
        let golden = golden_dir().join("cards").join(name);
        let (from, files): (PathBuf, &[&str]) = if info.kind == "cac" {
            (golden.join("nssdb"), &["cert9.db", "key4.db", "pkcs11.txt"])
        } else {
            (golden.join("state"), &["internal.bin", "external.bin"])
        };
        for file in files {
            std::fs::copy(from.join(file), state.path().join(file))
                .unwrap_or_else(|e| panic!("copy golden card {name} ({file}): {e}"));
        }
        let mut card = VirtualCard {
            info,
            reader,
            port,
            state,
            options,
            process: None,
        };
        card.reinsert();
        card
    }

    fn apdu_log(&self) -> PathBuf {
        self.state.path().join("apdus.log")
    }

    /// APDUs this virtual PIV card has answered since it was first inserted (a legacy CAC
    /// keeps no count: 0).
    pub fn apdus(&self) -> usize {
        self.apdu_headers().len()
    }

    /// The CLA INS P1 P2 of every APDU answered so far, in hex; a GET DATA with its data
    /// (`00cb3fff055c035fc105` asks for the PIV Authentication certificate).
    pub fn apdu_headers(&self) -> Vec<String> {
        self.apdu_lines()
            .into_iter()
            .map(|(header, _)| header)
            .collect()
    }

    /// When the first and the last APDU arrived, in Unix milliseconds.
    pub fn apdu_span(&self) -> Option<(u128, u128)> {
        let lines = self.apdu_lines();
        Some((lines.first()?.1, lines.last()?.1))
    }

    fn apdu_lines(&self) -> Vec<(String, u128)> {
        std::fs::read_to_string(self.apdu_log())
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let (header, at) = line.split_once(' ').unwrap_or((line, "0"));
                (header.to_owned(), at.parse().unwrap_or(0))
            })
            .collect()
    }

    /// Put the card (with everything it stored) back into its reader.
    pub fn reinsert(&mut self) {
        assert!(self.process.is_none(), "the card is already inserted");
        let (program, mut command) = if self.info.kind == "cac" {
            let mut command = Command::new(virtual_cac());
            command.arg(self.port.to_string()).arg(self.state.path());
            (virtual_cac(), command)
        } else {
            let mut command = Command::new(virtual_piv());
            command
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--state")
                .arg(self.state.path());
            command.arg("--apdu-log").arg(self.apdu_log());
            if let Some(delay) = self.options.apdu_delay {
                command.arg("--delay-ms").arg(delay.as_millis().to_string());
            }
            if let Some(log) = &self.options.verify_log {
                command.arg("--verify-log").arg(log);
            }
            if let Some(stall) = self.options.verify_stall {
                command
                    .arg("--verify-stall-ms")
                    .arg(stall.as_millis().to_string());
            }
            (virtual_piv(), command)
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {}: {e} (run tests/harness/testbed-setup)",
                    program.display()
                )
            });
        self.process = Some(child);
        wait_for_card(self.reader, true);
    }

    /// Pull the card out of its reader (its storage is kept for [`VirtualCard::reinsert`]).
    pub fn remove(&mut self) {
        self.remove_without_waiting();
        wait_for_card(self.reader, false);
    }

    /// Pull the card out and return at once, as a person yanking it mid-operation does.
    pub fn remove_without_waiting(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        if self.process.is_some() {
            self.remove();
        }
    }
}

/// Is a card present in `reader`, as pcscd sees it?
pub fn card_present(reader: &str) -> bool {
    let Ok(context) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let mut states = [pcsc::ReaderState::new(
        CString::new(reader).expect("reader name"),
        pcsc::State::UNAWARE,
    )];
    context
        .get_status_change(Duration::ZERO, &mut states)
        .is_ok()
        && states[0].event_state().contains(pcsc::State::PRESENT)
}

fn wait_for_card(reader: &str, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while card_present(reader) != present {
        assert!(
            Instant::now() < deadline,
            "card did not {} {reader} within 10 s",
            if present { "appear in" } else { "leave" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The running pcscd. A killed pcscd that this test process started stays a zombie until the
/// process ends (nobody waits for it): that one is not running.
fn pcscd_pid() -> Option<u32> {
    let out = Command::new("pgrep").args(["-x", "pcscd"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .find(|pid: &u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "PID (comm) STATE ...": gone or a zombie is not running.
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            !matches!(state, None | Some('Z'))
        })
}

/// vpcd listens on its ports once pcscd has loaded it.
fn vpcd_listening() -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    READERS.iter().all(|(_, port)| {
        let needle = format!(":{port:04X} ");
        table.lines().any(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|l| format!("{l} ").ends_with(&needle))
                && line.split_whitespace().nth(3) == Some("0A")
        })
    })
}

/// Start pcscd (with vpcd) unless it runs.
pub fn ensure_pcscd() {
    if pcscd_pid().is_some() && vpcd_listening() {
        return;
    }
    start_pcscd();
}

pub fn start_pcscd() {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(testbed_dir().join("pcscd.log"))
        .or_else(|_| std::fs::File::create("/dev/null"))
        .expect("pcscd log");
    // pcscd outlives this test process on purpose (the next test binary uses it): no wait().
    #[allow(clippy::zombie_processes)]
    Command::new("pcscd")
        .arg("--foreground")
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start pcscd (apt-get install pcscd vsmartcard-vpcd)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !vpcd_listening() {
        assert!(Instant::now() < deadline, "pcscd/vpcd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stop pcscd (SIGTERM: it closes its readers) and wait until it is gone.
pub fn stop_pcscd() {
    signal_pcscd("-TERM");
}

/// Kill pcscd outright (SIGKILL: a crash, nothing cleaned up) and wait until it is gone.
pub fn kill_pcscd() {
    signal_pcscd("-KILL");
    // What a service manager does after a crash: a killed pcscd leaves its socket and pid file,
    // and a new one refuses to start while the pid names a process (here the killed one may be
    // a zombie of this test process until it ends).
    for stale in ["/run/pcscd/pcscd.pid", "/run/pcscd/pcscd.comm"] {
        let _ = std::fs::remove_file(stale);
    }
}

fn signal_pcscd(signal: &str) {
    if let Some(pid) = pcscd_pid() {
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pcscd_pid().is_some() {
            assert!(Instant::now() < deadline, "pcscd did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Build a command for a tool of the test PKI (openssl, pkcs15-tool, ...), output captured.
pub fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// Does OpenSSL accept `signature` (PKCS#1 v1.5, or DER ECDSA) over SHA-256 of `message` with
/// the public key of `certificate` (DER)? An independent check: OpenSSL, not the code under
/// test.
pub fn openssl_verifies(certificate: &[u8], message: &[u8], signature: &[u8]) -> bool {
    openssl_verifies_with(certificate, "sha256", message, signature)
}

/// As [`openssl_verifies`], with the hash `digest` ("sha256", "sha384", ...).
pub fn openssl_verifies_with(
    certificate: &[u8],
    digest: &str,
    message: &[u8],
    signature: &[u8],
) -> bool {
    openssl_verifies_options(certificate, digest, &[], message, signature)
}

/// An RSA-PSS signature (salt length recovered from the signature), checked by openssl.
pub fn openssl_verifies_pss(
    certificate: &[u8],
    digest: &str,
    message: &[u8],
    signature: &[u8],
) -> bool {
    openssl_verifies_options(
        certificate,
        digest,
        &[
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:-1",
        ],
        message,
        signature,
    )
}

fn openssl_verifies_options(
    certificate: &[u8],
    digest: &str,
    options: &[&str],
    message: &[u8],
    signature: &[u8],
) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(path("cert.der"), certificate).expect("write certificate");
    std::fs::write(path("message"), message).expect("write message");
    std::fs::write(path("signature"), signature).expect("write signature");
    let key = run(
        "openssl",
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            &path("cert.der"),
            "-pubkey",
            "-noout",
            "-out",
            &path("key.pem"),
        ],
    );
    assert!(key.status.success(), "openssl cannot read the certificate");
    let digest = format!("-{digest}");
    let (key, signature, message) = (path("key.pem"), path("signature"), path("message"));
    let mut args = vec!["dgst", digest.as_str()];
    args.extend_from_slice(options);
    args.extend(["-verify", &key, "-signature", &signature, &message]);
    let verify = run("openssl", &args);
    verify.status.success() && String::from_utf8_lossy(&verify.stdout).trim() == "Verified OK"
}

/// How the golden cards' files name a slot (tests/harness/personalize-cards).
pub fn golden_label(slot: cacbridge_card::Slot) -> String {
    use cacbridge_card::Slot;
    match slot {
        Slot::CacId => "CAC-ID".into(),
        Slot::CacEmailSignature => "CAC-EMAIL-SIGNATURE".into(),
        Slot::CacEmailEncryption => "CAC-EMAIL-ENCRYPTION".into(),
        piv => format!("{:02X}", piv.piv_key_reference().unwrap_or_default()),
    }
}

/// The SubjectPublicKeyInfo of a certificate, DER.
pub fn spki(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).expect("a certificate");
    cert.public_key().raw.to_vec()
}

/// SoftHSM2's PKCS#11 module (Debian's softhsm2).
pub const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A fresh SoftHSM2 token personalized like a CAC from golden identity `name` (keys and
/// certificates made by tests/harness/personalize-cards), in a token directory of its own.
/// Loading SoftHSM in this process afterwards finds it: `SOFTHSM2_CONF` is set here.
pub struct SoftHsmToken {
    pub info: CardInfo,
    /// Give this to another process (a host) as its `SOFTHSM2_CONF`.
    pub conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl SoftHsmToken {
    pub fn personalize(name: &str) -> SoftHsmToken {
        let info = CardInfo::load(name);
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let init = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                &info.cn,
                "--pin",
                &info.pin,
            ])
            .args(["--so-pin", "12345678"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util (apt-get install softhsm2)");
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let golden = golden_dir().join("cards").join(name);
        let labels = [
            ("01", "Certificate for PIV Authentication"),
            ("02", "Certificate for Digital Signature"),
        ];
        for (id, label) in labels {
            for (kind, file) in [
                ("privkey", format!("{id}.key.der")),
                ("cert", format!("{id}.der")),
            ] {
                let out = Command::new("pkcs11-tool")
                    .args(["--module", SOFTHSM, "--token-label", &info.cn, "--login"])
                    .args(["--pin", &info.pin, "--write-object"])
                    .arg(golden.join(&file))
                    .args(["--type", kind, "--id", id, "--label", label])
                    .env("SOFTHSM2_CONF", &conf)
                    .output()
                    .expect("pkcs11-tool (apt-get install opensc)");
                assert!(
                    out.status.success(),
                    "pkcs11-tool --write-object {file}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        SoftHsmToken {
            info,
            conf,
            _dir: dir,
        }
    }
}

/// An OCSP responder for the test PKI's ID CA (`tests/harness/ocsp-responder`: `openssl ocsp`
/// over HTTP on a loopback port, signing as the CA), which a portal under test is pointed at.
/// The certificates of `revoked` cards answer "revoked". Stopped when dropped.
pub struct OcspResponder {
    process: Child,
    pub url: String,
}

impl OcspResponder {
    pub fn start(revoked: &[&str]) -> OcspResponder {
        use std::io::BufRead as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut process = Command::new(workspace().join("tests/harness/ocsp-responder"))
            .arg(port.to_string())
            .args(revoked)
            .env("CACBRIDGE_TESTBED", testbed_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tests/harness/ocsp-responder");
        let mut lines = std::io::BufReader::new(process.stdout.take().expect("stdout")).lines();
        // Ready once it says so (a connection to probe it would hold the one-at-a-time
        // responder forever).
        for line in lines.by_ref() {
            if line
                .expect("responder output")
                .contains("waiting for OCSP client connections")
            {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        OcspResponder {
            process,
            url: format!("http://127.0.0.1:{port}/"),
        }
    }

    /// The portal's (and cacbridge-verify's) options that point revocation checks here.
    pub fn portal_args(&self) -> Vec<String> {
        vec![
            "--ocsp-responder".into(),
            self.url.clone(),
            "--revocation-sources".into(),
            "ocsp".into(),
        ]
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        // The script's trap stops openssl and removes its files.
        let _ = Command::new("kill")
            .arg(self.process.id().to_string())
            .status();
        let _ = self.process.wait();
    }
}

/// A PostgreSQL server of its own (Debian's postgresql package), in a temporary directory, on
/// a loopback port, run as an unprivileged user: `postgres` when the tests run as root
/// (PostgreSQL refuses root), else the current user. Stopped when dropped.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub url: String,
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL (apt-get install postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("PostgreSQL's initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = PostgresServer {
            url: format!("postgres://cacbridge@127.0.0.1:{port}/postgres"),
            dir,
            bin,
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the PostgreSQL directory");
        }
        let data = server.dir.path().join("data");
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "cacbridge",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // fsync off: a test server, thrown away (crash safety is about transactions, which
        // PostgreSQL keeps either way within a running server's lifetime).
        let options = format!(
            "-h 127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=200",
            server.dir.path().display()
        );
        server.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                server.dir.path().join("server.log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        server
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let output = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        } else {
            Command::new(&program)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        }
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// One SQL query through psql, its rows as text (`|`-separated columns).
    pub fn query(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args([&self.url, "-tAc", sql])
            .output()
            .expect("psql");
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let program = self.bin.join("pg_ctl");
        let args = ["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}

/// Do the tests run as root? (/proc/self belongs to the process's user.)
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
