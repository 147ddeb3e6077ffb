//! `cacbridge-host install` / `uninstall`: the native-messaging host manifests, written where
//! each browser family looks for them (docs and paths: ../shared anchors, mirrored in
//! docs/install.md). The manifests' contents come from `manifests/` in the repository, so the
//! extension IDs are defined in one place.

use std::path::{Path, PathBuf};

pub const HOST_NAME: &str = "org.cacbridge.host";
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

/// Where each browser looks, for the user (`system == false`) or for every user.
pub fn locations(home: &Path, system: bool) -> Vec<Location> {
    let l = |browser, family, dir: PathBuf| Location {
        browser,
        family,
        dir,
    };
    if cfg!(target_os = "macos") {
        if system {
            vec![
                l(
                    "Google Chrome",
                    Family::Chromium,
                    "/Library/Google/Chrome/NativeMessagingHosts".into(),
                ),
                l(
                    "Chromium",
                    Family::Chromium,
                    "/Library/Application Support/Chromium/NativeMessagingHosts".into(),
                ),
                l(
                    "Microsoft Edge",
                    Family::Chromium,
                    "/Library/Microsoft/Edge/NativeMessagingHosts".into(),
                ),
                l(
                    "Firefox",
                    Family::Firefox,
                    "/Library/Application Support/Mozilla/NativeMessagingHosts".into(),
                ),
            ]
        } else {
            let support = home.join("Library/Application Support");
            vec![
                l(
                    "Google Chrome",
                    Family::Chromium,
                    support.join("Google/Chrome/NativeMessagingHosts"),
                ),
                l(
                    "Chromium",
                    Family::Chromium,
                    support.join("Chromium/NativeMessagingHosts"),
                ),
                l(
                    "Microsoft Edge",
                    Family::Chromium,
                    support.join("Microsoft Edge/NativeMessagingHosts"),
                ),
                l(
                    "Brave",
                    Family::Chromium,
                    support.join("BraveSoftware/Brave-Browser/NativeMessagingHosts"),
                ),
                l(
                    "Firefox",
                    Family::Firefox,
                    support.join("Mozilla/NativeMessagingHosts"),
                ),
            ]
        }
    } else if system {
        vec![
            l(
                "Google Chrome and Brave",
                Family::Chromium,
                "/etc/opt/chrome/native-messaging-hosts".into(),
            ),
            l(
                "Chromium",
                Family::Chromium,
                "/etc/chromium/native-messaging-hosts".into(),
            ),
            l(
                "Microsoft Edge",
                Family::Chromium,
                "/etc/opt/edge/native-messaging-hosts".into(),
            ),
            l(
                "Vivaldi",
                Family::Chromium,
                "/etc/opt/vivaldi/native-messaging-hosts".into(),
            ),
            l(
                "Firefox",
                Family::Firefox,
                "/usr/lib/mozilla/native-messaging-hosts".into(),
            ),
        ]
    } else {
        let config = home.join(".config");
        vec![
            l(
                "Google Chrome",
                Family::Chromium,
                config.join("google-chrome/NativeMessagingHosts"),
            ),
            l(
                "Chromium",
                Family::Chromium,
                config.join("chromium/NativeMessagingHosts"),
            ),
            l(
                "Microsoft Edge",
                Family::Chromium,
                config.join("microsoft-edge/NativeMessagingHosts"),
            ),
            l(
                "Brave",
                Family::Chromium,
                config.join("BraveSoftware/Brave-Browser/NativeMessagingHosts"),
            ),
            l(
                "Vivaldi",
                Family::Chromium,
                config.join("vivaldi/NativeMessagingHosts"),
            ),
            l(
                "Firefox",
                Family::Firefox,
                home.join(".mozilla/native-messaging-hosts"),
            ),
        ]
    }
}

/// The extensions allowed to drive this host: those named in the shipped manifests.
pub fn allowed_extension_ids() -> Vec<String> {
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
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

/// Write the manifests; returns the files written.
pub fn install(home: &Path, system: bool, host: &Path) -> Result<Vec<PathBuf>, String> {
    if !host.is_absolute() {
        return Err(format!(
            "the host path must be absolute: {}",
            host.display()
        ));
    }
    let mut written = Vec::new();
    for location in locations(home, system) {
        std::fs::create_dir_all(&location.dir)
            .map_err(|e| format!("{}: {e}", location.dir.display()))?;
        let file = location.dir.join(format!("{HOST_NAME}.json"));
        std::fs::write(&file, manifest(location.family, host)? + "\n")
            .map_err(|e| format!("{}: {e}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

/// Remove the manifests; returns the files removed.
pub fn uninstall(home: &Path, system: bool) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    for location in locations(home, system) {
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
            chromium["allowed_origins"][0],
            "chrome-extension://hbgoeppihilglplcjaehcplpmmndoigi/"
        );
        let firefox: serde_json::Value = serde_json::from_str(
            &manifest(Family::Firefox, Path::new("/opt/cb/cacbridge-host")).unwrap(),
        )
        .unwrap();
        assert_eq!(firefox["allowed_extensions"][0], "cacbridge@cacbridge.app");
    }

    #[test]
    fn the_allowed_extensions_are_the_manifests_ones() {
        assert_eq!(
            allowed_extension_ids(),
            vec![
                "hbgoeppihilglplcjaehcplpmmndoigi",
                "cacbridge@cacbridge.app"
            ]
        );
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
