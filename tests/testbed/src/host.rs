//! Spawning the built host and speaking native messaging to it over pipes: the framing, a
//! reader thread with a timeout, and a look into the live process's memory.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const CHROME_ORIGIN: &str = "chrome-extension://hbgoeppihilglplcjaehcplpmmndoigi/";
pub const CAP: usize = 64 * 1024;

pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_ne_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The certificate cache the hosts of this test process share (never the user's own).
pub fn cache_home() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cacbridge-test-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct HostProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::Receiver<Option<Value>>,
    _logs: tempfile::TempDir,
    log_dir: std::path::PathBuf,
}

impl HostProcess {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_log_level(args, "debug")
    }

    pub fn spawn_with_log_level(args: &[&str], level: &str) -> Self {
        Self::spawn_with_env(args, level, &[])
    }

    pub fn spawn_with_env(args: &[&str], level: &str, env: &[(&str, &str)]) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let mut child = Command::new(host_binary())
            .args(args)
            .env("XDG_CACHE_HOME", cache_home())
            .envs(env.iter().copied())
            .env("CACBRIDGE_LOG_DIR", logs.path())
            .env("CACBRIDGE_LOG", level)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let log_dir = logs.path().to_owned();
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || read_replies(stdout, tx));
        Self {
            child,
            stdin,
            replies,
            _logs: logs,
            log_dir,
        }
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, request: &Value) {
        self.write_raw(&frame(request.to_string().as_bytes()));
    }

    /// Read one reply or event; `None` at end of stdout. Panics after 20 s of silence, so a
    /// missing reply fails the test instead of hanging it.
    pub fn recv(&mut self) -> Option<Value> {
        match self.replies.recv_timeout(Duration::from_secs(20)) {
            Ok(message) => message,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no message from the host within 20 s"),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The reply with `id`, keeping any events that arrive first.
    pub fn reply_to(&mut self, id: &Value, events: &mut Vec<Value>) -> Value {
        loop {
            let message = self.recv().expect("the host answered");
            if message.get("event").is_some() {
                events.push(message);
            } else {
                assert_eq!(&message["id"], id, "{message}");
                return message;
            }
        }
    }

    /// Send a request and return its reply (events before it are discarded).
    pub fn call(&mut self, id: &str, command: &str, arguments: Value) -> Value {
        self.send(&json!({"id": id, "command": command, "arguments": arguments}));
        self.reply_to(&json!(id), &mut Vec::new())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where `needle` occurs in the live process's writable memory (heap, stacks, data):
    /// the mapping name and offset of each hit. Reads /proc/PID/mem, as a debugger would.
    pub fn memory_hits(&self, needle: &[u8]) -> Vec<String> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let pid = self.pid();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
        let mut hits = Vec::new();
        for line in maps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (range, perms) = (fields[0], fields[1]);
            if !perms.starts_with("rw") {
                continue;
            }
            let name = fields.get(5).copied().unwrap_or("[anonymous]");
            let (start, end) = range.split_once('-').unwrap();
            let start = u64::from_str_radix(start, 16).unwrap();
            let end = u64::from_str_radix(end, 16).unwrap();
            let mut bytes = vec![0u8; (end - start) as usize];
            if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut bytes).is_err() {
                continue; // guard pages and the like
            }
            for (offset, window) in bytes.windows(needle.len()).enumerate() {
                if window == needle {
                    let from = offset.saturating_sub(48);
                    let context =
                        String::from_utf8_lossy(&bytes[from..(offset + 48).min(bytes.len())])
                            .replace(|c: char| !c.is_ascii_graphic(), ".");
                    hits.push(format!("{name}+{offset:#x} {context}"));
                }
            }
        }
        hits
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "host did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log_text(&self) -> String {
        read_dir_text(&self.log_dir)
    }

    pub fn assert_version_works(&mut self, id: &str) {
        self.send(&json!({"id": id, "command": "version"}));
        let reply = self.recv().expect("a reply to version");
        assert_eq!(reply["id"], id, "{reply}");
        assert_eq!(reply["result"]["protocol"], 1, "{reply}");
        // The testbed is a workspace member: its version is the host's.
        assert_eq!(reply["result"]["version"], env!("CARGO_PKG_VERSION"));
    }
}

pub fn read_dir_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    text
}

fn read_replies(mut stdout: ChildStdout, tx: mpsc::Sender<Option<Value>>) {
    loop {
        let mut prefix = [0u8; 4];
        if stdout.read_exact(&mut prefix).is_err() {
            let _ = tx.send(None);
            return;
        }
        let len = u32::from_ne_bytes(prefix) as usize;
        assert!(len <= 1024 * 1024, "reply over the browser's cap: {len}");
        let mut body = vec![0u8; len];
        stdout.read_exact(&mut body).unwrap();
        let value = serde_json::from_slice(&body).expect("every message is JSON");
        if tx.send(Some(value)).is_err() {
            return;
        }
    }
}

/// A file the build this test belongs to made: beside the test executable's `deps` folder
/// (so the profile and target directory are the ones in use). `cargo build --workspace`
/// makes them all.
fn built(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test executable in target/<profile>/deps")
        .join(name);
    assert!(
        path.exists(),
        "{} missing: cargo build --workspace",
        path.display()
    );
    path
}

/// The host binary of this build.
pub fn host_binary() -> std::path::PathBuf {
    built("cacbridge-host")
}

/// CAC Bridge's PKCS#11 module of this build.
pub fn pkcs11_module() -> std::path::PathBuf {
    built("libcacbridge_pkcs11.so")
}
