//! Who started the host: each browser family passes different arguments.
//!
//! - Chrome, Chromium, Edge, Brave: `chrome-extension://<id>/`, and on Windows also
//!   `--parent-window=<handle>`.
//! - Firefox: `<path of the host manifest> <extension id>`.
//! - A Snap or Flatpak portal may pass nothing at all.
//!
//! The extension id is remembered for the policy checks of later commands; it is only as
//! trustworthy as the browser that launched us, which is the same trust a host manifest's
//! `allowed_origins` relies on. The check fails closed: a launch shaped like a browser's whose
//! id cannot be read is [`Caller::Unrecognized`], never a person's own process; only a launch
//! with no arguments at all is that.

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
    /// Launched the way a browser launches a host, with an id that is malformed or missing:
    /// trusted with nothing but `version` and `quit`.
    Unrecognized {
        arguments: String,
    },
}

impl Caller {
    pub fn extension_id(&self) -> Option<&str> {
        match self {
            Caller::Chromium { extension_id } | Caller::Firefox { extension_id, .. } => {
                Some(extension_id)
            }
            Caller::Unidentified | Caller::Unrecognized { .. } => None,
        }
    }

    /// The browser that started this host (its parent process), when a browser did.
    pub fn browser_process(&self) -> Option<u32> {
        self.family()?;
        cacbridge_channel::parent_of(std::process::id())
    }

    /// Which kind of browser started the host, when a browser did.
    pub fn family(&self) -> Option<crate::install::Family> {
        match self {
            Caller::Chromium { .. } => Some(crate::install::Family::Chromium),
            Caller::Firefox { .. } => Some(crate::install::Family::Firefox),
            Caller::Unidentified | Caller::Unrecognized { .. } => None,
        }
    }

    /// A person's own process: no browser launched it, so no browser allow-list applies.
    pub fn is_own_process(&self) -> bool {
        matches!(self, Caller::Unidentified)
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
            Caller::Unrecognized { arguments } => {
                write!(f, "unrecognized browser launch {arguments:?}")
            }
        }
    }
}

const CHROME_SCHEME: &str = "chrome-extension://";

/// CAC Bridge's Chrome-family id. A packaged build's comes from the key its CRX is signed
/// with (scripts/package sets `CACBRIDGE_CHROMIUM_ID`); any other build's is the development
/// key's in extension/ids.json, which the unpacked test builds carry.
pub const CHROMIUM_EXTENSION_ID: &str = match option_env!("CACBRIDGE_CHROMIUM_ID") {
    Some(id) => id,
    None => "hbgoeppihilglplcjaehcplpmmndoigi",
};
const _: () = assert!(
    is_chromium_id(CHROMIUM_EXTENSION_ID),
    "CACBRIDGE_CHROMIUM_ID is not a Chrome extension id (32 letters a-p)"
);

/// CAC Bridge's Firefox add-on id (`browser_specific_settings.gecko.id`).
pub const FIREFOX_EXTENSION_ID: &str = "cacbridge@cacbridge.app";

/// The extensions allowed to drive this host. The host manifests this program writes name the
/// same two (install.rs); a test checks that the shipped templates (manifests/) agree.
pub const ALLOWED_EXTENSIONS: [&str; 2] = [CHROMIUM_EXTENSION_ID, FIREFOX_EXTENSION_ID];

/// A Chrome extension id: 32 characters from a to p (a SHA-256 prefix in base 16, shifted).
pub const fn is_chromium_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.len() != 32 {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if !matches!(bytes[i], b'a'..=b'p') {
            return false;
        }
        i += 1;
    }
    true
}

pub fn is_allowed_extension(id: &str) -> bool {
    ALLOWED_EXTENSIONS.contains(&id)
}

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

/// Identify the caller from the launch arguments (program name excluded). No arguments: a
/// person's own process; a browser's shape with a readable id: that extension; anything
/// else: [`Caller::Unrecognized`].
pub fn identify(args: &[OsString]) -> Caller {
    if args.is_empty() {
        return Caller::Unidentified;
    }
    let unrecognized = || {
        let mut arguments = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        arguments.truncate(200);
        Caller::Unrecognized { arguments }
    };
    let Some(args) = args
        .iter()
        .map(|a| a.to_str())
        .collect::<Option<Vec<&str>>>()
    else {
        return unrecognized();
    };
    let origins: Vec<&&str> = args
        .iter()
        .filter(|a| a.starts_with(CHROME_SCHEME))
        .collect();
    if !origins.is_empty() {
        // Exactly one origin, and nothing else but Windows' --parent-window.
        let others_ok = args
            .iter()
            .all(|a| a.starts_with(CHROME_SCHEME) || a.starts_with("--parent-window="));
        let id = origins[0][CHROME_SCHEME.len()..].strip_suffix('/');
        return match id {
            Some(id) if origins.len() == 1 && others_ok && is_chromium_extension_id(id) => {
                Caller::Chromium {
                    extension_id: id.to_owned(),
                }
            }
            _ => unrecognized(),
        };
    }
    if let [manifest, extension_id] = args.as_slice() {
        if manifest.to_ascii_lowercase().ends_with(".json") && is_gecko_id(extension_id) {
            return Caller::Firefox {
                extension_id: (*extension_id).to_owned(),
                manifest: PathBuf::from(manifest),
            };
        }
    }
    unrecognized()
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
    fn malformed_ids_fail_closed() {
        for args in [
            vec!["chrome-extension://evil/"],
            vec!["chrome-extension://ABCDEFGHIJKLMNOPABCDEFGHIJKLMNOP/"],
            vec!["chrome-extension://abcdefghijklmnopabcdefghijklmnop"],
            vec!["chrome-extension://abcdefghijklmnopabcdefghijklmnop/x"],
            vec!["chrome-extension://"],
            vec!["--parent-window=1234"],
            vec![
                "chrome-extension://abcdefghijklmnopabcdefghijklmnop/",
                "chrome-extension://bbcdefghijklmnopabcdefghijklmnop/",
            ],
            vec![
                "chrome-extension://abcdefghijklmnopabcdefghijklmnop/",
                "extra",
            ],
            vec!["/x/m.json", "no spaces allowed@x"],
            vec!["/x/m.json", ""],
            vec!["/x/m.json", "noatsign"],
        ] {
            let caller = identify(&os(&args));
            assert!(
                matches!(caller, Caller::Unrecognized { .. }),
                "{args:?}: {caller:?}"
            );
            assert!(!caller.is_own_process());
            assert_eq!(caller.extension_id(), None);
        }
        assert!(identify(&[]).is_own_process());
    }
}
