//! Registering CAC Bridge's PKCS#11 module (`libcacbridge_pkcs11.so`) with the browsers, so
//! that a mutual-TLS portal can ask for the card's certificate (docs/install.md):
//! - Chrome, Chromium and the Chrome family on Linux read the NSS shared database
//!   `~/.pki/nssdb`; the module is added with NSS's own `modutil`, which never corrupts the
//!   other entries. A database owned by someone else is reported, not touched.
//! - Firefox: a PKCS#11 manifest (`~/.mozilla/pkcs11-modules/cacbridge.json`, or the system
//!   directory), which lets the CAC Bridge extension load the module through Firefox's
//!   `pkcs11` API; with `--system`, also the `SecurityDevices` enterprise policy, so Firefox
//!   loads it for everyone without the extension.
//!
//! Everything here is undone by [`unregister`]; [`report`] is what `doctor` shows.

use std::path::{Path, PathBuf};
use std::process::Command;

mod dod_roots;
mod firefox;
mod first_start;
mod nssdb;

pub use dod_roots::{
    dod_roots, firefox_profile, roots_in, trust_dod_roots, untrust_dod_roots, DodRoot, RootState,
};
pub use firefox::FirefoxAddon;
use firefox::*;
pub(crate) use firefox::{add_firefox_policy, remove_firefox_policy};
pub use first_start::{forget_first_start, register_at_first_start, registered_since, FirstStart};
use nssdb::*;
pub use nssdb::{browser_database, browser_setup, fix_nssdb, BrowserSetup};

/// Why the module could not be registered or unregistered somewhere; its text is what
/// `install` and `doctor` print.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An NSS tool could not run, failed, or was refused (as root on another user's database).
    #[error("{0}")]
    NssTool(String),
    /// A policy file that is not what CAC Bridge can merge into: left as it is.
    #[error("{}: {why}; not changed", path.display())]
    Policy { path: PathBuf, why: String },
    /// A database another user owns: left as it is.
    #[error("{} belongs to another user: not changed (run `cacbridge-host install` as its owner)", path.display())]
    ForeignDatabase { path: PathBuf },
    #[error("no PKCS#11 module at {}", .0.display())]
    NoModule(PathBuf),
}

/// A file error about `path`.
pub(crate) fn at(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::File {
        path: path.to_owned(),
        source,
    }
}

/// The name NSS and Firefox show for the module.
pub const MODULE_NAME: &str = "CAC Bridge";
/// The Firefox PKCS#11 manifest's name (its file is `<name>.json`).
pub const FIREFOX_MANIFEST_NAME: &str = "cacbridge";
pub const LIBRARY: &str = "libcacbridge_pkcs11.so";
use crate::caller::FIREFOX_EXTENSION_ID;
/// The name browsers load the same library under: the module then takes the PIN from CAC
/// Bridge's window instead of the browser's prompt (pkcs11/src/ffi.rs, docs/pkcs11.md).
pub use cacbridge_channel::BROWSER_LIBRARY;
/// Where Firefox (the deb, ESR and the snap) reads enterprise policies on Linux.
pub const FIREFOX_POLICIES: &str = "/etc/firefox/policies/policies.json";

/// The module beside this host (a build tree, or a package's library directory).
pub fn find_module(host: &Path) -> Option<PathBuf> {
    let dir = host.parent()?;
    [
        dir.join(LIBRARY),
        dir.join("../lib/cacbridge").join(LIBRARY),
        PathBuf::from("/usr/lib/cacbridge").join(LIBRARY),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .and_then(|p| p.canonicalize().ok())
}

/// Whether this process runs as root on a home that belongs to someone else (`sudo -E`,
/// `sudo HOME=...`, `su -m`): then nothing in it may be parsed, loaded or followed, since
/// its owner controls every file and link there. The home's owner, when so.
pub fn root_on_anothers_home(home: &Path) -> Option<u32> {
    if own_uid() != Some(0) {
        return None;
    }
    let owner = std::fs::symlink_metadata(home)
        .ok()
        .and_then(|m| owner_of(&m))
        .map_or(u32::MAX, |(uid, _)| uid);
    (owner != 0).then_some(owner)
}

/// The owner (uid, gid) of a file where the platform has one.
#[cfg(unix)]
fn owner_of(metadata: &std::fs::Metadata) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    Some((metadata.uid(), metadata.gid()))
}

#[cfg(not(unix))]
fn owner_of(_metadata: &std::fs::Metadata) -> Option<(u32, u32)> {
    None
}

/// The user this process runs as.
#[cfg(unix)]
pub fn own_uid() -> Option<u32> {
    cacbridge_channel::own_uid().ok()
}

#[cfg(not(unix))]
pub fn own_uid() -> Option<u32> {
    None
}

/// A second name for `target` (a symbolic link; a copy where there are none).
fn second_name(target: &Path, name: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::symlink(target, name);
    #[cfg(not(unix))]
    return std::fs::copy(target, name).map(|_| ());
}

/// Add the module to Firefox's `SecurityDevices` policy, keeping every other policy. A file
/// that does not parse is reported and left alone.
/// The add-on's page on addons.mozilla.org, from which Firefox's `ExtensionSettings` policy
/// installs it (the listing's slug).
pub const FIREFOX_ADDON_URL: &str =
    "https://addons.mozilla.org/firefox/downloads/latest/cac-bridge/latest.xpi";

fn write(file: &Path, contents: impl AsRef<[u8]>) -> Result<(), InstallError> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
    }
    std::fs::write(file, contents).map_err(at(file))
}

/// The browsers' name for `module`: the link beside it (a package ships it), else one made
/// there, else one in `~/.local/lib/cacbridge/` when the module's directory is not ours.
pub fn browser_library(home: &Path, module: &Path) -> Result<PathBuf, InstallError> {
    let beside = module.with_file_name(BROWSER_LIBRARY);
    if beside.is_file() {
        return Ok(beside);
    }
    if second_name(module, &beside).is_ok() {
        return Ok(beside);
    }
    let dir = home.join(".local/lib/cacbridge");
    std::fs::create_dir_all(&dir).map_err(at(&dir))?;
    let link = dir.join(BROWSER_LIBRARY);
    let _ = std::fs::remove_file(&link);
    second_name(module, &link).map_err(at(&link))?;
    Ok(link)
}

/// Who asks for the PIN when a browser's TLS login needs the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinEntry {
    /// CAC Bridge's window (the module under the browsers' name, [`BROWSER_LIBRARY`]).
    Window,
    /// The browser's own prompt (the module under its own name: `CKF_LOGIN_REQUIRED`), for
    /// browsers without the CAC Bridge extension.
    BrowserPrompt,
}

/// Register `module` with every browser (under the browsers' name, [`BROWSER_LIBRARY`], for
/// [`PinEntry::Window`]); one line per place, saying what was done. The NSS database is per
/// user: with `system`, the Firefox manifest and policy are system-wide and each user's NSS
/// database is left to that user's own `install`.
pub fn register(
    home: &Path,
    system: bool,
    module: &Path,
    pin_entry: PinEntry,
) -> Result<Vec<String>, InstallError> {
    if !module.is_absolute() || !module.is_file() {
        return Err(InstallError::NoModule(module.to_owned()));
    }
    let module = &match pin_entry {
        PinEntry::Window => browser_library(home, module)?,
        PinEntry::BrowserPrompt => module.to_path_buf(),
    };
    let mut done = Vec::new();
    if !system {
        done.push(register_nssdb(home, module)?);
    }
    let manifest = firefox_manifest_dir(home, system).join(format!("{FIREFOX_MANIFEST_NAME}.json"));
    write(&manifest, firefox_manifest(module))?;
    done.push(format!(
        "{}: Firefox (the CAC Bridge extension loads it)",
        manifest.display()
    ));
    if system {
        done.push(add_firefox_policy(
            Path::new(FIREFOX_POLICIES),
            module,
            None,
            &[],
        )?);
    }
    Ok(done)
}

/// Undo [`register`]; one line per place changed.
pub fn unregister(home: &Path, system: bool) -> Result<Vec<String>, InstallError> {
    let mut done = Vec::new();
    if !system {
        let dir = nssdb(home);
        if dir.join("cert9.db").exists() && foreign_files(&dir).is_empty() {
            if let Ok(Some(_)) = registered_library(&dir) {
                let database = sql(&dir);
                nss_tool(
                    "modutil",
                    &["-dbdir", &database, "-delete", MODULE_NAME, "-force"],
                )?;
                done.push(format!("{}: module removed", dir.display()));
            }
        }
    }
    let manifest = firefox_manifest_dir(home, system).join(format!("{FIREFOX_MANIFEST_NAME}.json"));
    match std::fs::remove_file(&manifest) {
        Ok(()) => done.push(format!("{}: removed", manifest.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(at(&manifest)(err)),
    }
    if system {
        if let Some(line) = remove_firefox_policy(Path::new(FIREFOX_POLICIES), &[])? {
            done.push(line);
        }
    }
    Ok(done)
}

/// What `doctor` says about the module: where it is registered, other smart-card modules that
/// would show the same card twice, and sandboxed browsers.
pub fn report(root: &Path, home: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let dir = nssdb(home);
    lines.push(match registered_library(&dir) {
        Ok(Some(path)) if Path::new(&path).is_file() => {
            format!("  ok    Chrome/Chromium (NSS {}): {path}", dir.display())
        }
        Ok(Some(path)) => format!(
            "  FAIL  Chrome/Chromium (NSS {}): points at {path}, which does not exist",
            dir.display()
        ),
        Ok(None) => format!(
            "  --    Chrome/Chromium: not registered in {} (cacbridge-host install)",
            dir.display()
        ),
        Err(err) => format!("  --    Chrome/Chromium: {err}"),
    });
    for system in [false, true] {
        let manifest =
            firefox_manifest_dir(home, system).join(format!("{FIREFOX_MANIFEST_NAME}.json"));
        if manifest.is_file() {
            lines.push(format!("  ok    Firefox: {}", manifest.display()));
        }
    }
    for line in competing_modules(home) {
        lines.push(format!("  WARN  {line}"));
    }
    for line in sandboxed_browsers(root, home) {
        lines.push(format!("  NOTE  {line}"));
    }
    lines
}

/// Other smart-card middleware registered where browsers look: each would show the card a
/// second time, and its own PIN prompt.
fn competing_modules(home: &Path) -> Vec<String> {
    const OTHERS: [(&str, &str); 3] = [
        ("opensc", "OpenSC"),
        ("cackey", "CACKey"),
        (
            "p11-kit-proxy",
            "p11-kit's proxy (which loads OpenSC when installed)",
        ),
    ];
    let mut found = Vec::new();
    let mut databases = vec![nssdb(home).join("pkcs11.txt")];
    if let Ok(profiles) = std::fs::read_dir(home.join(".mozilla/firefox")) {
        databases.extend(profiles.flatten().map(|p| p.path().join("pkcs11.txt")));
    }
    for file in databases {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().filter_map(|l| l.strip_prefix("library=")) {
            if let Some((_, name)) = OTHERS
                .iter()
                .find(|(needle, _)| line.to_ascii_lowercase().contains(needle))
            {
                found.push(format!(
                    "{name} is registered in {} ({line}): the card would appear twice; remove it with `modutil -dbdir sql:{} -delete <name>` or in the browser's security devices",
                    file.display(),
                    file.parent().map(|d| d.display().to_string()).unwrap_or_default()
                ));
            }
        }
    }
    if Path::new("/usr/share/p11-kit/modules/opensc.module").exists() {
        found.push("OpenSC is registered with p11-kit (/usr/share/p11-kit/modules/opensc.module): browsers that load p11-kit-proxy see the card twice".into());
    }
    found
}

/// Snap and Flatpak browsers, found under `root` (`/`, or a test's fake layout), and what
/// works in each with the fix for what does not.
pub fn sandboxed_browsers(root: &Path, home: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let at = |path: &str| root.join(path.trim_start_matches('/'));
    if at("/snap/bin/firefox").exists() || at("/snap/firefox").exists() {
        found.push(
            "Firefox is a Snap: the CAC Bridge extension reaches the host through the \
             WebExtensions desktop portal after a one-time prompt (Ubuntu 22.04 or later), so \
             page-API portals work; it cannot load CAC Bridge's PKCS#11 module from /usr/lib, \
             so portals that ask for a client certificate do not. Fix: Firefox from Mozilla's \
             APT repository, or firefox-esr, as a .deb"
                .to_owned(),
        );
    }
    if at("/snap/bin/chromium").exists() || at("/snap/chromium").exists() {
        found.push(
            "Chromium is a Snap: it has no native messaging, so CAC Bridge cannot work in it \
             (its certificate database is ~/snap/chromium/current/.pki/nssdb besides). Fix: \
             Google Chrome or Chromium as a .deb, or Firefox"
                .to_owned(),
        );
    }
    for (app, name) in [
        ("org.mozilla.firefox", "Firefox"),
        ("org.chromium.Chromium", "Chromium"),
        ("com.google.Chrome", "Google Chrome"),
    ] {
        let system = at("/var/lib/flatpak/app").join(app);
        let user = home.join(".local/share/flatpak/app").join(app);
        if system.exists() || user.exists() {
            found.push(format!(
                "{name} is a Flatpak ({app}): its sandbox reaches neither native-messaging \
                 hosts nor the card (PC/SC), so CAC Bridge cannot work in it. Fix: the \
                 distribution's {name} package (.deb)"
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn snap_and_flatpak_browsers_are_found_with_what_works_and_the_fix() {
        let root = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        assert!(sandboxed_browsers(root.path(), home.path()).is_empty());
        for path in ["snap/bin/firefox", "snap/bin/chromium"] {
            let file = root.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, "").unwrap();
        }
        std::fs::create_dir_all(
            root.path()
                .join("var/lib/flatpak/app/org.chromium.Chromium"),
        )
        .unwrap();
        std::fs::create_dir_all(
            home.path()
                .join(".local/share/flatpak/app/org.mozilla.firefox"),
        )
        .unwrap();
        let said = sandboxed_browsers(root.path(), home.path()).join("\n");
        assert!(
            said.contains("Firefox is a Snap") && said.contains("desktop portal"),
            "{said}"
        );
        assert!(
            said.contains("Chromium is a Snap: it has no native messaging"),
            "{said}"
        );
        assert!(
            said.contains("Chromium is a Flatpak (org.chromium.Chromium)"),
            "{said}"
        );
        assert!(
            said.contains("Firefox is a Flatpak (org.mozilla.firefox)"),
            "{said}"
        );
        assert_eq!(said.matches("Fix:").count(), 4);
    }

    #[test]
    fn dod_roots_count_only_when_trusted_for_web_sites() {
        let listing = "\nCertificate Nickname                                         Trust Attributes\n                                                             SSL,S/MIME,JAR/XPI\n\nDoD Root CA 3                                                CT,C,C\n";
        assert!(super::trusts_dod_roots(listing));
        assert!(!super::trusts_dod_roots(&listing.replace("CT,C,C", ",,")));
        assert!(!super::trusts_dod_roots("Some Other Root   CT,C,C\n"));
    }

    #[test]
    fn the_firefox_policy_keeps_other_policies_and_refuses_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policies.json");
        std::fs::write(&file, r#"{"policies": {"DisableTelemetry": true}}"#).unwrap();
        let module = Path::new("/usr/lib/cacbridge/libcacbridge_pkcs11.so");
        add_firefox_policy(&file, module, None, &[]).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(value["policies"]["DisableTelemetry"], true);
        assert_eq!(
            value["policies"]["SecurityDevices"]["Add"][MODULE_NAME],
            module.to_str().unwrap()
        );
        assert!(remove_firefox_policy(&file, &[]).unwrap().is_some());
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(value["policies"]["DisableTelemetry"], true);
        assert!(value["policies"]["SecurityDevices"]["Add"]
            .get(MODULE_NAME)
            .is_none());

        std::fs::write(&file, "{ damaged").unwrap();
        assert!(add_firefox_policy(&file, module, None, &[])
            .unwrap_err()
            .to_string()
            .contains("not changed"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{ damaged");
    }

    #[test]
    fn a_registration_is_read_from_pkcs11_txt() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(registered_library(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join("pkcs11.txt"),
            "library=\nname=NSS Internal PKCS #11 Module\nparameters=configdir='sql:/x'\n\n\
             library=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so\nname=OpenSC\n\n\
             library=/usr/lib/cacbridge/libcacbridge_pkcs11.so\nname=CAC Bridge\n",
        )
        .unwrap();
        assert_eq!(
            registered_library(dir.path()).unwrap().as_deref(),
            Some("/usr/lib/cacbridge/libcacbridge_pkcs11.so")
        );
    }

    #[test]
    fn the_packaged_firefox_manifest_is_the_one_install_writes() {
        let packaged: serde_json::Value =
            serde_json::from_str(include_str!("../../../packaging/firefox/cacbridge.json"))
                .unwrap();
        let written: serde_json::Value = serde_json::from_str(&firefox_manifest(
            &Path::new("/usr/lib/cacbridge").join(BROWSER_LIBRARY),
        ))
        .unwrap();
        assert_eq!(packaged, written);
    }

    #[test]
    fn the_firefox_manifest_names_the_extension_and_the_library() {
        let value: serde_json::Value =
            serde_json::from_str(&firefox_manifest(Path::new("/x/libcacbridge_pkcs11.so")))
                .unwrap();
        assert_eq!(value["type"], "pkcs11");
        assert_eq!(value["name"], FIREFOX_MANIFEST_NAME);
        assert_eq!(value["allowed_extensions"][0], FIREFOX_EXTENSION_ID);
        assert!(super::super::install::manifest(
            super::super::install::Family::Firefox,
            Path::new("/h")
        )
        .unwrap()
        .contains(FIREFOX_EXTENSION_ID));
    }
}
