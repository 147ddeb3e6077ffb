//! Host policy: which origins may ask for signatures, and which token backends to use.
//!
//! An administrator's file in the system configuration directory sets the policy; a file in
//! the user's configuration directory can only narrow it. Both are optional. A file that exists
//! but cannot be read or parsed refuses every signature request (fail closed).
//!
//! | Platform | System file | User file |
//! |---|---|---|
//! | Linux | `/etc/cacbridge/policy.json` | `~/.config/cacbridge/policy.json` |
//! | macOS | `/Library/Application Support/CACBridge/policy.json` | `~/Library/Application Support/CACBridge/policy.json` |
//! | Windows | `%ProgramData%\CACBridge\policy.json` | `%APPDATA%\CACBridge\policy.json` |

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One policy file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyFile {
    /// Origins allowed to request signatures: `https://host[:port]`, or `https://*.domain`
    /// for every subdomain. Absent: every origin the extension lets through.
    pub allowed_origins: Option<Vec<String>>,
    /// Card backends in order of preference: `pcsc`, `pkcs11`. Absent: `["pcsc"]`.
    pub backends: Option<Vec<String>>,
    /// Let `http://localhost` and `http://127.0.0.1` ask, for portal developers. Off by
    /// default; a user can set it only where no system file exists.
    pub allow_insecure_localhost: Option<bool>,
    /// Minutes a card stays verified after the PIN is typed for a TLS login (mutual-TLS
    /// portals), so the next handshakes sign without asking again. 0: ask for every
    /// signature. Absent: 15. At most 480; a user file can only shorten it.
    pub tls_pin_minutes: Option<u32>,
}

/// How long a TLS login's PIN stays verified on the card unless a policy says otherwise.
pub const DEFAULT_TLS_PIN_MINUTES: u32 = 15;
/// The longest a policy may keep it (a working day).
pub const MAX_TLS_PIN_MINUTES: u32 = 480;

/// The effective policy of this host process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    system: Option<PolicyFile>,
    user: Option<PolicyFile>,
    /// Set when a policy file exists but is unusable: everything is refused.
    broken: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The origin is not on the allow-list.
    OriginNotAllowed,
    /// A policy file is unreadable or malformed.
    PolicyError(String),
}

impl Policy {
    pub fn new(system: Option<PolicyFile>, user: Option<PolicyFile>) -> Self {
        Self {
            system,
            user,
            broken: None,
        }
    }

    /// Load both files from their platform locations. In debug builds (tests) the environment
    /// variables `CACBRIDGE_SYSTEM_POLICY` and `CACBRIDGE_USER_POLICY` name other files;
    /// release builds ignore them, so a user cannot swap the administrator's file out.
    pub fn load() -> Self {
        let (system, user) = policy_paths();
        let mut broken = None;
        let mut read = |path: Option<PathBuf>| -> Option<PolicyFile> {
            let path = path?;
            match read_file(&path) {
                Ok(file) => file,
                Err(err) => {
                    tracing::error!(path = %path.display(), %err, "policy file unusable; refusing signatures");
                    broken = Some(format!("{}: {err}", path.display()));
                    None
                }
            }
        };
        let system = read(system);
        let user = read(user);
        Self {
            system,
            user,
            broken,
        }
    }

    pub fn allow_insecure_localhost(&self) -> bool {
        match (&self.system, &self.user) {
            (Some(system), user) => {
                system.allow_insecure_localhost.unwrap_or(false)
                    && user
                        .as_ref()
                        .and_then(|u| u.allow_insecure_localhost)
                        .unwrap_or(true)
            }
            (None, Some(user)) => user.allow_insecure_localhost.unwrap_or(false),
            (None, None) => false,
        }
    }

    /// May `origin` (already validated) request signatures?
    pub fn check_origin(&self, origin: &str) -> Result<(), Refusal> {
        if let Some(reason) = &self.broken {
            return Err(Refusal::PolicyError(reason.clone()));
        }
        for file in [&self.system, &self.user].into_iter().flatten() {
            if let Some(list) = &file.allowed_origins {
                if !list.iter().any(|pattern| origin_matches(pattern, origin)) {
                    return Err(Refusal::OriginNotAllowed);
                }
            }
        }
        Ok(())
    }

    /// How long the card stays verified after a TLS login's PIN (zero: not at all).
    pub fn tls_pin_session(&self) -> std::time::Duration {
        let system = self
            .system
            .as_ref()
            .and_then(|f| f.tls_pin_minutes)
            .unwrap_or(DEFAULT_TLS_PIN_MINUTES);
        let user = self
            .user
            .as_ref()
            .and_then(|f| f.tls_pin_minutes)
            .unwrap_or(u32::MAX);
        let minutes = system.min(user).min(MAX_TLS_PIN_MINUTES);
        std::time::Duration::from_secs(u64::from(minutes) * 60)
    }

    /// Backends to use, in order: the system's list narrowed by the user's.
    pub fn backends(&self) -> Vec<String> {
        let system = self
            .system
            .as_ref()
            .and_then(|f| f.backends.clone())
            .unwrap_or_else(|| vec!["pcsc".into()]);
        match self.user.as_ref().and_then(|f| f.backends.as_ref()) {
            Some(user) => system.into_iter().filter(|b| user.contains(b)).collect(),
            None => system,
        }
    }
}

fn read_file(path: &Path) -> Result<Option<PolicyFile>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.to_string()),
    }
}

fn policy_paths() -> (Option<PathBuf>, Option<PathBuf>) {
    if cfg!(debug_assertions) {
        let system = std::env::var_os("CACBRIDGE_SYSTEM_POLICY").map(PathBuf::from);
        let user = std::env::var_os("CACBRIDGE_USER_POLICY").map(PathBuf::from);
        if system.is_some() || user.is_some() {
            return (system, user);
        }
    }
    let system = if cfg!(target_os = "macos") {
        Some(PathBuf::from(
            "/Library/Application Support/CACBridge/policy.json",
        ))
    } else if cfg!(windows) {
        std::env::var_os("ProgramData")
            .map(|d| PathBuf::from(d).join("CACBridge").join("policy.json"))
    } else {
        Some(PathBuf::from("/etc/cacbridge/policy.json"))
    };
    let user_dir = if cfg!(target_os = "macos") || cfg!(windows) {
        dirs::config_dir().map(|d| d.join("CACBridge"))
    } else {
        dirs::config_dir().map(|d| d.join("cacbridge"))
    };
    (system, user_dir.map(|d| d.join("policy.json")))
}

/// `https://a.example` matches itself; `https://*.example` matches `https://x.example` and
/// `https://y.x.example`, on the default port only (a port in the origin must be in the
/// pattern too: `https://*.example:8443`).
fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == origin {
        return true;
    }
    let Some((scheme, wildcard_host)) = pattern.split_once("://*.") else {
        return false;
    };
    let Some(rest) = origin
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    // Compare host[:port] of the origin with *.<suffix>[:port] of the pattern.
    rest.strip_suffix(wildcard_host)
        .is_some_and(|label| label.len() > 1 && label.ends_with('.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(origins: Option<&[&str]>, localhost: Option<bool>) -> PolicyFile {
        PolicyFile {
            allowed_origins: origins.map(|o| o.iter().map(|s| s.to_string()).collect()),
            backends: None,
            allow_insecure_localhost: localhost,
            tls_pin_minutes: None,
        }
    }

    #[test]
    fn the_tls_pin_session_is_the_shortest_asked_and_capped() {
        let minutes = |system: Option<u32>, user: Option<u32>| {
            let with = |m| PolicyFile {
                tls_pin_minutes: m,
                ..PolicyFile::default()
            };
            Policy::new(Some(with(system)), Some(with(user)))
                .tls_pin_session()
                .as_secs()
                / 60
        };
        assert_eq!(minutes(None, None), 15);
        assert_eq!(minutes(Some(60), None), 60);
        assert_eq!(minutes(Some(60), Some(5)), 5);
        assert_eq!(minutes(Some(5), Some(60)), 5, "a user only shortens it");
        assert_eq!(minutes(Some(0), None), 0);
        assert_eq!(minutes(Some(100_000), None), 480);
        assert_eq!(Policy::new(None, None).tls_pin_session().as_secs(), 15 * 60);
    }

    #[test]
    fn no_files_allow_every_origin_but_not_localhost() {
        let policy = Policy::new(None, None);
        assert!(policy.check_origin("https://portal.example").is_ok());
        assert!(!policy.allow_insecure_localhost());
        assert_eq!(policy.backends(), vec!["pcsc"]);
    }

    #[test]
    fn the_system_list_restricts_and_the_user_can_only_narrow() {
        let system = file(Some(&["https://a.example", "https://*.army.mil"]), None);
        let user = file(Some(&["https://a.example", "https://b.example"]), None);
        let policy = Policy::new(Some(system.clone()), Some(user));
        assert!(policy.check_origin("https://a.example").is_ok());
        // On the user's list but not the administrator's: refused.
        assert_eq!(
            policy.check_origin("https://b.example"),
            Err(Refusal::OriginNotAllowed)
        );
        // On the administrator's list but not the user's: refused too (narrowed).
        assert_eq!(
            policy.check_origin("https://x.army.mil"),
            Err(Refusal::OriginNotAllowed)
        );
        let policy = Policy::new(Some(system), None);
        assert!(policy.check_origin("https://x.army.mil").is_ok());
        assert!(policy.check_origin("https://deep.x.army.mil").is_ok());
        assert_eq!(
            policy.check_origin("https://army.mil"),
            Err(Refusal::OriginNotAllowed)
        );
        assert_eq!(
            policy.check_origin("https://evilarmy.mil"),
            Err(Refusal::OriginNotAllowed)
        );
        assert_eq!(
            policy.check_origin("https://x.army.mil:8443"),
            Err(Refusal::OriginNotAllowed)
        );
    }

    #[test]
    fn localhost_needs_the_administrator_when_there_is_one() {
        assert!(Policy::new(None, Some(file(None, Some(true)))).allow_insecure_localhost());
        assert!(
            !Policy::new(Some(file(None, None)), Some(file(None, Some(true))))
                .allow_insecure_localhost()
        );
        assert!(Policy::new(Some(file(None, Some(true))), None).allow_insecure_localhost());
        assert!(
            !Policy::new(Some(file(None, Some(true))), Some(file(None, Some(false))))
                .allow_insecure_localhost()
        );
    }

    #[test]
    fn a_broken_file_refuses_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, "{ not json").unwrap();
        assert!(read_file(&path).is_err());
        std::fs::write(&path, r#"{"allowedOrigins": [], "surprise": 1}"#).unwrap();
        assert!(read_file(&path).is_err(), "unknown fields are refused");
        assert_eq!(read_file(&dir.path().join("absent.json")).unwrap(), None);
    }

    #[test]
    fn backends_are_narrowed_by_the_user() {
        let mut system = file(None, None);
        system.backends = Some(vec!["pcsc".into(), "pkcs11".into()]);
        let mut user = file(None, None);
        user.backends = Some(vec!["pkcs11".into()]);
        assert_eq!(
            Policy::new(Some(system), Some(user)).backends(),
            vec!["pkcs11"]
        );
    }
}
