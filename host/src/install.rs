//! `cacbridge-host install` / `uninstall`: the native-messaging host manifests, written where
//! each browser family looks for them (the paths are listed in docs/install.md). The manifests' contents come from `manifests/` in the repository, so the
//! extension IDs are defined in one place.

use std::path::{Path, PathBuf};

use crate::messaging::protocol::HOST_NAME;

const CHROMIUM_MANIFEST: &str = include_str!("../../manifests/chromium/org.cacbridge.host.json");
const FIREFOX_MANIFEST: &str = include_str!("../../manifests/firefox/org.cacbridge.host.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Chromium,
    Firefox,
}

/// One browser's manifest directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub browser: &'static str,
    pub family: Family,
    pub dir: PathBuf,
}

/// Where a manifest directory is: a fixed path, or one under the person's home.
#[derive(Debug, Clone, Copy)]
enum Place {
    Fixed(&'static str),
    Home(&'static str),
}

/// One row of a platform's table: the browser, its family, where it looks.
type Row = (&'static str, Family, Place);

use Family::{Chromium, Firefox};
use Place::{Fixed, Home};

/// Linux, for every user (Chrome and Brave share Chrome's directory).
const LINUX_SYSTEM: &[Row] = &[
    (
        "Google Chrome and Brave",
        Chromium,
        Fixed("/etc/opt/chrome/native-messaging-hosts"),
    ),
    (
        "Chromium",
        Chromium,
        Fixed("/etc/chromium/native-messaging-hosts"),
    ),
    (
        "Microsoft Edge",
        Chromium,
        Fixed("/etc/opt/edge/native-messaging-hosts"),
    ),
    (
        "Vivaldi",
        Chromium,
        Fixed("/etc/opt/vivaldi/native-messaging-hosts"),
    ),
    (
        "Firefox",
        Firefox,
        Fixed("/usr/lib/mozilla/native-messaging-hosts"),
    ),
];

/// Linux, for the person.
const LINUX_USER: &[Row] = &[
    (
        "Google Chrome",
        Chromium,
        Home(".config/google-chrome/NativeMessagingHosts"),
    ),
    (
        "Chromium",
        Chromium,
        Home(".config/chromium/NativeMessagingHosts"),
    ),
    (
        "Microsoft Edge",
        Chromium,
        Home(".config/microsoft-edge/NativeMessagingHosts"),
    ),
    (
        "Brave",
        Chromium,
        Home(".config/BraveSoftware/Brave-Browser/NativeMessagingHosts"),
    ),
    (
        "Vivaldi",
        Chromium,
        Home(".config/vivaldi/NativeMessagingHosts"),
    ),
    ("Firefox", Firefox, Home(".mozilla/native-messaging-hosts")),
];

/// macOS, for every user.
const MACOS_SYSTEM: &[Row] = &[
    (
        "Google Chrome",
        Chromium,
        Fixed("/Library/Google/Chrome/NativeMessagingHosts"),
    ),
    (
        "Chromium",
        Chromium,
        Fixed("/Library/Application Support/Chromium/NativeMessagingHosts"),
    ),
    (
        "Microsoft Edge",
        Chromium,
        Fixed("/Library/Microsoft/Edge/NativeMessagingHosts"),
    ),
    (
        "Firefox",
        Firefox,
        Fixed("/Library/Application Support/Mozilla/NativeMessagingHosts"),
    ),
];

/// macOS, for the person.
const MACOS_USER: &[Row] = &[
    (
        "Google Chrome",
        Chromium,
        Home("Library/Application Support/Google/Chrome/NativeMessagingHosts"),
    ),
    (
        "Chromium",
        Chromium,
        Home("Library/Application Support/Chromium/NativeMessagingHosts"),
    ),
    (
        "Microsoft Edge",
        Chromium,
        Home("Library/Application Support/Microsoft Edge/NativeMessagingHosts"),
    ),
    (
        "Brave",
        Chromium,
        Home("Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts"),
    ),
    (
        "Firefox",
        Firefox,
        Home("Library/Application Support/Mozilla/NativeMessagingHosts"),
    ),
];

/// Where each browser looks, for the user (`system == false`) or for every user.
pub fn locations(home: &Path, system: bool) -> Vec<Location> {
    if cfg!(windows) {
        // Windows reads no directory: each browser's registry key names the manifest file
        // (windows_registry below). The files live in CAC Bridge's own data directory.
        let base = if system {
            std::env::var_os("ProgramData").map(PathBuf::from)
        } else {
            std::env::var_os("LOCALAPPDATA").map(PathBuf::from)
        }
        .unwrap_or_else(|| home.join("AppData/Local"))
        .join("CACBridge/NativeMessagingHosts");
        return vec![
            Location {
                browser: "Chrome family",
                family: Chromium,
                dir: base.join("chromium"),
            },
            Location {
                browser: "Firefox",
                family: Firefox,
                dir: base.join("firefox"),
            },
        ];
    }
    let table = match (cfg!(target_os = "macos"), system) {
        (true, true) => MACOS_SYSTEM,
        (true, false) => MACOS_USER,
        (false, true) => LINUX_SYSTEM,
        (false, false) => LINUX_USER,
    };
    table
        .iter()
        .map(|&(browser, family, place)| Location {
            browser,
            family,
            dir: match place {
                Fixed(path) => PathBuf::from(path),
                Home(relative) => home.join(relative),
            },
        })
        .collect()
}

/// The extensions the shipped manifests name.
#[cfg(test)]
fn manifest_extension_ids() -> Vec<String> {
    let mut ids = Vec::new();
    for (template, key, prefix) in [
        (CHROMIUM_MANIFEST, "allowed_origins", "chrome-extension://"),
        (FIREFOX_MANIFEST, "allowed_extensions", ""),
    ] {
        let value: serde_json::Value = serde_json::from_str(template).unwrap_or_default();
        for entry in value[key].as_array().into_iter().flatten() {
            if let Some(id) = entry.as_str().and_then(|e| e.strip_prefix(prefix)) {
                ids.push(id.trim_end_matches('/').to_owned());
            }
        }
    }
    ids
}

/// The manifest for `family`, pointing at `host`.
pub fn manifest(family: Family, host: &Path) -> Result<String, String> {
    let template = match family {
        Family::Chromium => CHROMIUM_MANIFEST,
        Family::Firefox => FIREFOX_MANIFEST,
    };
    let mut value: serde_json::Value = serde_json::from_str(template).map_err(|e| e.to_string())?;
    value["path"] = serde_json::Value::String(host.to_string_lossy().into_owned());
    // The ids are this build's (a packaged build's Chrome-family id follows its signing key).
    match family {
        Family::Chromium => {
            value["allowed_origins"] = serde_json::json!([format!(
                "chrome-extension://{}/",
                crate::caller::CHROMIUM_EXTENSION_ID
            )]);
        }
        Family::Firefox => {
            value["allowed_extensions"] = serde_json::json!([crate::caller::FIREFOX_EXTENSION_ID]);
        }
    }
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

/// Owner and permission bits of a path, as [`std::fs::metadata`] reports them.
pub type Ownership = (u32, u32);

#[cfg(unix)]
fn ownership(path: &Path) -> Option<Ownership> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.mode()))
}

/// Windows: the system-wide checks are the installer's (an MSI writes under Program Files,
/// which only administrators can change).
#[cfg(not(unix))]
fn ownership(_path: &Path) -> Option<Ownership> {
    None
}

/// Home directories of people (uid 1000 and up) and root's, from /etc/passwd.
fn home_directories(own_home: &Path) -> Vec<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let mut homes: Vec<PathBuf> = passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let uid: u32 = fields.get(2)?.parse().ok()?;
            let home = fields.get(5)?;
            ((uid == 0 || (1000..65534).contains(&uid)) && home.len() > 1).then(|| home.into())
        })
        .collect();
    homes.extend([PathBuf::from("/home"), own_home.to_owned()]);
    homes
}

/// Why a host binary must not be registered for every user: every browser of every person
/// would run it, so only root may be able to change it, and no person's home may hold it.
/// `None` when it is fit.
pub fn system_host_problem(
    host: &Path,
    homes: &[PathBuf],
    ownership: impl Fn(&Path) -> Option<Ownership>,
) -> Option<String> {
    if let Some(home) = homes
        .iter()
        .find(|home| home.as_os_str().len() > 1 && host.starts_with(home))
    {
        return Some(format!(
            "{} is under the home directory {}: install the host under /usr or /opt first",
            host.display(),
            home.display()
        ));
    }
    for path in host.ancestors() {
        let Some((uid, mode)) = ownership(path) else {
            return Some(format!("cannot read the owner of {}", path.display()));
        };
        if uid != 0 {
            return Some(format!(
                "{} is owned by uid {uid}, not root: that user could replace the host every browser runs",
                path.display()
            ));
        }
        if mode & 0o022 != 0 {
            return Some(format!(
                "{} is writable by others than root (mode {:o}): they could replace the host every browser runs",
                path.display(),
                mode & 0o7777
            ));
        }
    }
    None
}

/// Write the manifests; returns the files written. For every user (`system`), the host binary
/// must be one only root can change ([`system_host_problem`]).
pub fn install(home: &Path, system: bool, host: &Path) -> Result<Vec<PathBuf>, String> {
    if !host.is_absolute() {
        return Err(format!(
            "the host path must be absolute: {}",
            host.display()
        ));
    }
    if system {
        if let Some(problem) = system_host_problem(host, &home_directories(home), ownership) {
            return Err(format!("refusing a system-wide install: {problem}"));
        }
    }
    let mut written = Vec::new();
    for location in locations(home, system) {
        std::fs::create_dir_all(&location.dir)
            .map_err(|e| format!("{}: {e}", location.dir.display()))?;
        let file = location.dir.join(format!("{HOST_NAME}.json"));
        std::fs::write(&file, manifest(location.family, host)? + "\n")
            .map_err(|e| format!("{}: {e}", file.display()))?;
        #[cfg(windows)]
        windows_registry::register(location.family, system, &file)?;
        written.push(file);
    }
    Ok(written)
}

/// The registry keys through which Windows browsers find a native-messaging host: one a
/// browser, under HKCU (this user) or HKLM (every user), whose default value is the manifest's
/// path.
#[cfg(windows)]
mod windows_registry {
    use std::path::Path;

    use winreg::enums::{HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE};
    use winreg::RegKey;

    use super::{Family, HOST_NAME};

    /// Each browser's key, below `Software\`.
    pub fn keys(family: Family) -> &'static [&'static str] {
        match family {
            Family::Chromium => &[
                r"Google\Chrome\NativeMessagingHosts",
                r"Chromium\NativeMessagingHosts",
                r"Microsoft\Edge\NativeMessagingHosts",
                r"BraveSoftware\Brave-Browser\NativeMessagingHosts",
                r"Vivaldi\NativeMessagingHosts",
            ],
            Family::Firefox => &[r"Mozilla\NativeMessagingHosts"],
        }
    }

    fn hive(system: bool) -> RegKey {
        RegKey::predef(if system {
            HKEY_LOCAL_MACHINE
        } else {
            HKEY_CURRENT_USER
        })
    }

    pub fn register(family: Family, system: bool, manifest: &Path) -> Result<(), String> {
        for key in keys(family) {
            let path = format!(r"Software\{key}\{HOST_NAME}");
            let (entry, _) = hive(system)
                .create_subkey(&path)
                .map_err(|e| format!("{path}: {e}"))?;
            entry
                .set_value("", &manifest.to_string_lossy().into_owned())
                .map_err(|e| format!("{path}: {e}"))?;
        }
        Ok(())
    }

    pub fn unregister(family: Family, system: bool) {
        for key in keys(family) {
            let _ = hive(system).delete_subkey_all(format!(r"Software\{key}\{HOST_NAME}"));
        }
    }
}

/// Remove the manifests; returns the files removed.
pub fn uninstall(home: &Path, system: bool) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    for location in locations(home, system) {
        #[cfg(windows)]
        windows_registry::unregister(location.family, system);
        let file = location.dir.join(format!("{HOST_NAME}.json"));
        match std::fs::remove_file(&file) {
            Ok(()) => removed.push(file),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(format!("{}: {err}", file.display())),
        }
    }
    Ok(removed)
}

/// What `doctor` reports per browser: is a manifest there, and does it point at a host that
/// exists?
pub fn check(home: &Path) -> Vec<(Location, Result<PathBuf, String>)> {
    [false, true]
        .into_iter()
        .flat_map(|system| locations(home, system))
        .map(|location| {
            let file = location.dir.join(format!("{HOST_NAME}.json"));
            let verdict = std::fs::read_to_string(&file)
                .map_err(|_| "no manifest".to_owned())
                .and_then(|text| {
                    serde_json::from_str::<serde_json::Value>(&text)
                        .map_err(|e| format!("unreadable: {e}"))
                })
                .and_then(|value| {
                    let path = PathBuf::from(value["path"].as_str().unwrap_or_default());
                    if path.is_file() {
                        Ok(path)
                    } else {
                        Err(format!(
                            "points at {}, which does not exist",
                            path.display()
                        ))
                    }
                });
            (location, verdict)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn manifests_carry_the_extension_ids_and_the_path() {
        let chromium: serde_json::Value = serde_json::from_str(
            &manifest(Family::Chromium, Path::new("/opt/cb/cacbridge-host")).unwrap(),
        )
        .unwrap();
        assert_eq!(chromium["name"], HOST_NAME);
        assert_eq!(chromium["path"], "/opt/cb/cacbridge-host");
        assert_eq!(chromium["type"], "stdio");
        assert_eq!(
            chromium["allowed_origins"],
            serde_json::json!([format!(
                "chrome-extension://{}/",
                crate::caller::CHROMIUM_EXTENSION_ID
            )])
        );
        let firefox: serde_json::Value = serde_json::from_str(
            &manifest(Family::Firefox, Path::new("/opt/cb/cacbridge-host")).unwrap(),
        )
        .unwrap();
        assert_eq!(firefox["allowed_extensions"][0], "cacbridge@cacbridge.app");
    }

    #[test]
    fn the_allowed_extensions_are_the_manifests_ones() {
        // The templates carry the development id; a packaged build writes its own (above).
        if option_env!("CACBRIDGE_CHROMIUM_ID").is_none() {
            assert_eq!(
                manifest_extension_ids(),
                crate::caller::ALLOWED_EXTENSIONS.to_vec()
            );
        }
    }

    #[test]
    fn a_system_install_takes_only_a_host_that_only_root_can_change() {
        let homes = [PathBuf::from("/home"), PathBuf::from("/root")];
        let owners = |table: &'static [(&'static str, Ownership)]| {
            move |path: &Path| {
                table
                    .iter()
                    .find(|(p, _)| Path::new(p) == path)
                    .map(|(_, o)| *o)
            }
        };
        const GOOD: &[(&str, Ownership)] = &[
            ("/", (0, 0o40755)),
            ("/usr", (0, 0o40755)),
            ("/usr/bin", (0, 0o40755)),
            ("/usr/bin/cacbridge-host", (0, 0o100755)),
        ];
        let host = Path::new("/usr/bin/cacbridge-host");
        assert_eq!(system_host_problem(host, &homes, owners(GOOD)), None);

        const WORLD_WRITABLE: &[(&str, Ownership)] = &[
            ("/", (0, 0o40755)),
            ("/usr", (0, 0o40755)),
            ("/usr/bin", (0, 0o40755)),
            ("/usr/bin/cacbridge-host", (0, 0o100777)),
        ];
        let problem = system_host_problem(host, &homes, owners(WORLD_WRITABLE)).unwrap();
        assert!(problem.contains("writable by others"), "{problem}");

        const USER_OWNED_DIR: &[(&str, Ownership)] = &[
            ("/", (0, 0o40755)),
            ("/opt", (0, 0o40755)),
            ("/opt/cacbridge", (1000, 0o40755)),
            ("/opt/cacbridge/cacbridge-host", (0, 0o100755)),
        ];
        let problem = system_host_problem(
            Path::new("/opt/cacbridge/cacbridge-host"),
            &homes,
            owners(USER_OWNED_DIR),
        )
        .unwrap();
        assert!(problem.contains("uid 1000"), "{problem}");

        for home in [
            "/home/jane/.cargo/bin/cacbridge-host",
            "/root/bin/cacbridge-host",
        ] {
            let problem = system_host_problem(Path::new(home), &homes, owners(GOOD)).unwrap();
            assert!(problem.contains("home directory"), "{problem}");
        }
    }

    #[test]
    fn the_real_file_system_is_read_for_owners() {
        // /usr/bin/env: root's, 0755, in root's 0755 directories.
        let homes = home_directories(Path::new("/nonexistent-home"));
        assert_eq!(
            system_host_problem(Path::new("/usr/bin/env"), &homes, ownership),
            None
        );
        // /tmp is writable by everyone.
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let host = dir.path().join("cacbridge-host");
        std::fs::write(&host, b"#!/bin/sh\n").unwrap();
        assert!(system_host_problem(&host, &homes, ownership).is_some());
        let err = install(Path::new("/nonexistent-home"), true, &host).unwrap_err();
        assert!(err.starts_with("refusing a system-wide install"), "{err}");
    }

    #[test]
    fn install_and_uninstall_in_a_home() {
        let home = tempfile::tempdir().unwrap();
        let host = home.path().join("cacbridge-host");
        std::fs::write(&host, "").unwrap();
        let written = install(home.path(), false, &host).unwrap();
        assert!(written
            .iter()
            .any(|f| f.ends_with(".mozilla/native-messaging-hosts/org.cacbridge.host.json")));
        assert!(written
            .iter()
            .any(|f| f.ends_with("chromium/NativeMessagingHosts/org.cacbridge.host.json")));
        let report = check(home.path());
        assert!(report
            .iter()
            .filter(|(l, _)| l.dir.starts_with(home.path()))
            .all(|(_, v)| v.is_ok()));
        assert_eq!(uninstall(home.path(), false).unwrap().len(), written.len());
        assert!(check(home.path())
            .iter()
            .all(|(_, v)| v.is_err() || !v.as_ref().unwrap().starts_with(home.path())));
        assert!(install(home.path(), false, Path::new("relative/host")).is_err());
    }
}
