//! Logging to a file in the platform's state directory. Never to stdout (the protocol) and,
//! in native-messaging mode, never to stderr (the browser's own log, which people paste into
//! bug reports).
//!
//! `CACBRIDGE_LOG` sets the filter (`info` by default, `off` to disable, `debug`,
//! `cacbridge_host=trace`, ...). `CACBRIDGE_LOG_DIR` overrides the directory.

use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

pub const LOG_FILE: &str = "host.log";
/// When the log passes this size at start-up it is moved to `host.log.1`.
const ROTATE_AT: u64 = 4 * 1024 * 1024;

/// Where the log file lives on this platform.
pub fn log_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CACBRIDGE_LOG_DIR") {
        return Some(PathBuf::from(dir));
    }
    if cfg!(target_os = "macos") {
        dirs::home_dir().map(|home| home.join("Library/Logs/CACBridge"))
    } else if cfg!(windows) {
        dirs::data_local_dir().map(|dir| dir.join("CACBridge").join("logs"))
    } else {
        state_dir()
    }
}

/// The host's own state on Linux: `$XDG_STATE_HOME/cacbridge`, i.e. ~/.local/state/cacbridge.
pub fn state_dir() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(|| dirs::home_dir().map(|home| home.join(".local/state")))
        .map(|dir| dir.join("cacbridge"))
}

/// The logs in the state directory (Linux), deleted: the package's removal runs this as each
/// person. A directory `CACBRIDGE_LOG_DIR` names is someone's own and is left alone. The paths
/// of the files removed.
pub fn forget_logs() -> std::io::Result<Vec<PathBuf>> {
    let Some(dir) = state_dir().filter(|_| cfg!(target_os = "linux")) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for name in [LOG_FILE.to_owned(), format!("{LOG_FILE}.1")] {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(removed)
}

/// Install the global subscriber. Logging is best effort: a host that cannot write its log
/// still serves the browser.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("CACBRIDGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if filter.max_level_hint() == Some(tracing::level_filters::LevelFilter::OFF) {
        return;
    }
    let Some(file) = log_dir().and_then(|dir| open_log(dir).ok()) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

fn open_log(dir: PathBuf) -> std::io::Result<File> {
    fs::create_dir_all(&dir)?;
    let path = dir.join(LOG_FILE);
    if fs::metadata(&path).is_ok_and(|m| m.len() > ROTATE_AT) {
        let _ = fs::rename(&path, dir.join(format!("{LOG_FILE}.1")));
    }
    OpenOptions::new().create(true).append(true).open(path)
}
