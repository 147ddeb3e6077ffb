//! Who started the host: each browser family passes different arguments.
//!
//! - Chrome, Chromium, Edge, Brave: `chrome-extension://<id>/`, and on Windows also
//!   `--parent-window=<handle>`.
//! - Firefox: `<path of the host manifest> <extension id>`.
//! - A Snap or Flatpak portal may pass nothing at all.
//!
//! The extension id is remembered for the policy checks of later commands; it is only as
//! trustworthy as the browser that launched us, which is the same trust a host manifest's
//! `allowed_origins` relies on.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Chromium {
        extension_id: String,
    },
    Firefox {
        extension_id: String,
        manifest: PathBuf,
    },
    /// Launched without arguments (a portal, a terminal, a test).
    Unidentified,
}

impl Caller {
    pub fn extension_id(&self) -> Option<&str> {
        match self {
            Caller::Chromium { extension_id } | Caller::Firefox { extension_id, .. } => {
                Some(extension_id)
            }
            Caller::Unidentified => None,
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Chromium { extension_id } => {
                write!(f, "chromium-family extension {extension_id}")
            }
            Caller::Firefox { extension_id, .. } => write!(f, "firefox extension {extension_id}"),
            Caller::Unidentified => f.write_str("unidentified caller"),
        }
    }
}

const CHROME_SCHEME: &str = "chrome-extension://";

/// True when the arguments look like a browser launching a native-messaging host, rather than
/// a person running a subcommand.
pub fn is_browser_launch(args: &[OsString]) -> bool {
    match args.first().and_then(|a| a.to_str()) {
        None => args.is_empty(),
        Some(first) => {
            first.starts_with(CHROME_SCHEME)
                || first.starts_with("--parent-window=")
                || (args.len() == 2 && first.to_ascii_lowercase().ends_with(".json"))
        }
    }
}

/// Identify the caller from the launch arguments (program name excluded).
pub fn identify(args: &[OsString]) -> Caller {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    if let Some(origin) = args.iter().find(|a| a.starts_with(CHROME_SCHEME)) {
        let id = origin[CHROME_SCHEME.len()..].trim_end_matches('/');
        if is_chromium_extension_id(id) {
            return Caller::Chromium {
                extension_id: id.to_owned(),
            };
        }
        return Caller::Unidentified;
    }
    if let [manifest, extension_id] = args.as_slice() {
        if manifest.to_ascii_lowercase().ends_with(".json") && is_gecko_id(extension_id) {
            return Caller::Firefox {
                extension_id: (*extension_id).to_owned(),
                manifest: PathBuf::from(manifest),
            };
        }
    }
    Caller::Unidentified
}

/// Chromium ids are 32 letters a-p (a hex SHA-256 prefix mapped 0-f -> a-p).
fn is_chromium_extension_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| (b'a'..=b'p').contains(&b))
}

/// Gecko ids are an email-like `name@domain` or a `{GUID}`.
fn is_gecko_id(id: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"@._-{}+".contains(&b);
    !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(allowed)
        && (id.contains('@') || id.starts_with('{'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    const CHROME_ID: &str = "abcdefghijklmnopabcdefghijklmnop";

    #[test]
    fn chrome_style_launch() {
        let args = os(&[&format!("chrome-extension://{CHROME_ID}/")]);
        assert!(is_browser_launch(&args));
        assert_eq!(
            identify(&args),
            Caller::Chromium {
                extension_id: CHROME_ID.into()
            }
        );
    }

    #[test]
    fn chrome_on_windows_adds_parent_window() {
        let args = os(&[
            &format!("chrome-extension://{CHROME_ID}/"),
            "--parent-window=1234",
        ]);
        assert!(is_browser_launch(&args));
        assert_eq!(identify(&args).extension_id(), Some(CHROME_ID));
        let args = os(&[
            "--parent-window=1234",
            &format!("chrome-extension://{CHROME_ID}/"),
        ]);
        assert!(is_browser_launch(&args));
        assert_eq!(identify(&args).extension_id(), Some(CHROME_ID));
    }

    #[test]
    fn firefox_style_launch() {
        let args = os(&[
            "/usr/lib/mozilla/native-messaging-hosts/mil.cacbridge.host.json",
            "host@cacbridge.mil",
        ]);
        assert!(is_browser_launch(&args));
        assert_eq!(identify(&args).extension_id(), Some("host@cacbridge.mil"));
    }

    #[test]
    fn no_arguments_is_a_portal_launch() {
        assert!(is_browser_launch(&[]));
        assert_eq!(identify(&[]), Caller::Unidentified);
    }

    #[test]
    fn subcommands_are_not_browser_launches() {
        assert!(!is_browser_launch(&os(&["version"])));
        assert!(!is_browser_launch(&os(&["--help"])));
        assert!(!is_browser_launch(&os(&["list", "--json"])));
    }

    #[test]
    fn malformed_ids_are_not_trusted() {
        assert_eq!(
            identify(&os(&["chrome-extension://evil/"])),
            Caller::Unidentified
        );
        assert_eq!(
            identify(&os(&[
                "chrome-extension://ABCDEFGHIJKLMNOPABCDEFGHIJKLMNOP/"
            ])),
            Caller::Unidentified
        );
        assert_eq!(
            identify(&os(&["/x/m.json", "no spaces allowed@x"])),
            Caller::Unidentified
        );
    }
}
