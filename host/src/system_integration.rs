//! What the `cacbridge-browser-integration` package sets up for every user of the computer
//! (its maintainer scripts run `cacbridge-host system-integration [--remove]` as root):
//! - the extension in the Chrome family, through the browsers' external-extension files
//!   (`<id>.json` naming the package's CRX, or the Chrome Web Store);
//! - the add-on in Firefox, through its `ExtensionSettings` policy (the package's XPI, or
//!   addons.mozilla.org), and the PKCS#11 module through `SecurityDevices`.
//!
//! As root this reads only what root owns: the release descriptor the package ships
//! ([`RELEASE`]) and the administrator's settings ([`SETTINGS`]). An administrator's own
//! entries (an external-extension file or a policy under the same name) are never replaced nor
//! removed; removal takes back exactly what this wrote, and the directories it made.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::caller::CHROMIUM_EXTENSION_ID;
use crate::module_install::{
    add_firefox_policy, at, remove_firefox_policy, FirefoxAddon, InstallError, FIREFOX_ADDON_URL,
    FIREFOX_POLICIES,
};

/// What the package ships of the extension, written by scripts/package.
pub const RELEASE: &str = "/usr/share/cacbridge/extension/release.json";
/// The administrator's choices (a conffile): where the extension comes from.
pub const SETTINGS: &str = "/etc/cacbridge/browser-integration.json";
/// The directories this made, deepest first, so that removal takes back those alone.
const MADE_DIRS: &str = "/var/lib/cacbridge/made-dirs";
/// The Chrome Web Store's update service, for the store route.
pub const CHROME_STORE_UPDATE_URL: &str = "https://clients2.google.com/service/update2/crx";

/// Where each Chrome-family browser on Linux looks for external-extension files, and the
/// directory that must exist first (the browser installed) when that place is the browser's
/// own. Chrome and Chromium read a directory under /usr/share whether installed or not; the
/// others read `extensions/` beside their program.
const CHROME_FAMILY: &[(&str, &str, Option<&str>)] = &[
    ("Google Chrome", "/usr/share/google-chrome/extensions", None),
    ("Chromium", "/usr/share/chromium/extensions", None),
    (
        "Microsoft Edge",
        "/opt/microsoft/msedge/extensions",
        Some("/opt/microsoft/msedge"),
    ),
    (
        "Brave",
        "/opt/brave.com/brave/extensions",
        Some("/opt/brave.com/brave"),
    ),
    ("Vivaldi", "/opt/vivaldi/extensions", Some("/opt/vivaldi")),
];

/// The extension the package ships.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    /// The Chrome-family id, from the key the CRX is signed with.
    pub chromium_id: String,
    pub version: String,
    pub crx: PathBuf,
    pub xpi: PathBuf,
    /// Whether Mozilla signed the XPI (release builds of Firefox take no other).
    pub xpi_signed: bool,
}

/// Where the extension comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The CRX and XPI inside the package.
    #[default]
    Bundled,
    /// The Chrome Web Store and addons.mozilla.org (once listings exist).
    Store,
}

/// The administrator's settings ([`SETTINGS`]); a missing file is all defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub extension: Source,
    /// The add-on's addons.mozilla.org download URL, for the store route.
    #[serde(default)]
    pub firefox_store_url: Option<String>,
    /// Let Firefox ESR install the package's XPI although Mozilla did not sign it: this turns
    /// off add-on signature checks for every add-on (locked), which release Firefox ignores.
    #[serde(default)]
    pub firefox_allow_unsigned: bool,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, InstallError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|err| InstallError::Policy {
                path: path.to_owned(),
                why: format!("not understood ({err})"),
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(at(path)(err)),
    }
}

/// `path` under `root` (a directory standing for / in tests).
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

impl Settings {
    fn store_url(&self) -> &str {
        self.firefox_store_url
            .as_deref()
            .unwrap_or(FIREFOX_ADDON_URL)
    }
}

/// The external-extension file's contents for `source`.
fn chrome_external(source: Source, release: &Release) -> serde_json::Value {
    match source {
        Source::Bundled => serde_json::json!({
            "external_crx": release.crx.to_string_lossy(),
            "external_version": release.version,
        }),
        Source::Store => serde_json::json!({ "external_update_url": CHROME_STORE_UPDATE_URL }),
    }
}

/// Whether an external-extension file is one this wrote (either route, any version).
fn is_our_external(value: &serde_json::Value, release: &Release) -> bool {
    let crx = release.crx.to_string_lossy();
    let bundled = value.get("external_crx").and_then(|v| v.as_str()) == Some(&crx)
        && value.get("external_version").is_some_and(|v| v.is_string())
        && value.as_object().is_some_and(|o| o.len() == 2);
    bundled || *value == chrome_external(Source::Store, release)
}

/// Every Firefox add-on source this may have written, so that a switch of route or a new
/// version replaces its own entries (and removal finds them).
fn our_firefox_addons(release: &Release, settings: &Settings) -> Vec<FirefoxAddon> {
    let bundled = format!("file://{}", release.xpi.display());
    let mut ours = vec![
        FirefoxAddon::from_store(FIREFOX_ADDON_URL),
        FirefoxAddon::from_store(settings.store_url()),
        FirefoxAddon::from_store(&bundled),
    ];
    ours.push(FirefoxAddon {
        install_url: bundled,
        unsigned: true,
    });
    ours
}

/// What the package's Firefox entries are for these settings, and what to tell the
/// administrator about an unsigned XPI.
fn firefox_addon(release: &Release, settings: &Settings) -> (FirefoxAddon, Option<String>) {
    match settings.extension {
        Source::Store => (FirefoxAddon::from_store(settings.store_url()), None),
        Source::Bundled => {
            let addon = FirefoxAddon {
                install_url: format!("file://{}", release.xpi.display()),
                unsigned: !release.xpi_signed && settings.firefox_allow_unsigned,
            };
            let note = (!release.xpi_signed && !settings.firefox_allow_unsigned).then(|| {
                format!(
                    "{}: not signed by Mozilla, so Firefox will not install it. Firefox ESR \
                     takes it once signature checks are off for every add-on: set \
                     \"firefoxAllowUnsigned\": true in {SETTINGS} and run `dpkg-reconfigure \
                     cacbridge-browser-integration`. Release builds of Firefox need a \
                     Mozilla-signed XPI (scripts/package, CACBRIDGE_SIGNED_XPI)",
                    release.xpi.display()
                )
            });
            (addon, note)
        }
    }
}

/// Set up (or with `add` false, take back) the extension and the module for every user.
/// `root` stands for / (tests). One line per place changed.
pub fn system_integration(
    root: &Path,
    add: bool,
    module: &Path,
) -> Result<Vec<String>, InstallError> {
    let release_file = under(root, RELEASE);
    let release: Release = read_json(&release_file)?
        .ok_or_else(|| at(&release_file)(std::io::ErrorKind::NotFound.into()))?;
    if release.chromium_id != CHROMIUM_EXTENSION_ID {
        // The host accepts one Chrome-family extension: a CRX of another key would install
        // and never reach it.
        return Err(InstallError::Policy {
            path: release_file,
            why: format!(
                "names the extension {}, but this host serves {CHROMIUM_EXTENSION_ID}",
                release.chromium_id
            ),
        });
    }
    let settings: Settings = read_json(&under(root, SETTINGS))?.unwrap_or_default();
    let mut made = Made::load(root);
    let mut done = Vec::new();
    let file_name = format!("{}.json", release.chromium_id);
    for (browser, dir, needs) in CHROME_FAMILY {
        let file = under(root, dir).join(&file_name);
        let existing: Option<serde_json::Value> = std::fs::read_to_string(&file)
            .ok()
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::Null));
        let theirs = existing
            .as_ref()
            .is_some_and(|value| !is_our_external(value, &release));
        if theirs {
            done.push(format!(
                "{}: the administrator's own, kept as it is",
                file.display()
            ));
            continue;
        }
        if add {
            if needs.is_some_and(|needs| !under(root, needs).is_dir()) {
                continue;
            }
            made.note_missing(root, file.parent().unwrap_or(root));
            let value = chrome_external(settings.extension, &release);
            write_new(&file, &(value.to_string() + "\n"))?;
            done.push(format!(
                "{}: {browser} installs the extension",
                file.display()
            ));
        } else if existing.is_some() {
            std::fs::remove_file(&file).map_err(at(&file))?;
            done.push(format!("{}: removed", file.display()));
        }
    }
    let policies = under(root, FIREFOX_POLICIES);
    let ours = our_firefox_addons(&release, &settings);
    if add {
        made.note_missing(root, policies.parent().unwrap_or(root));
        let (addon, note) = firefox_addon(&release, &settings);
        // What an earlier run wrote and these settings no longer want (an exception for an
        // unsigned XPI now signed) goes first; the rest is written again.
        remove_firefox_policy(&policies, &ours)?;
        done.push(add_firefox_policy(&policies, module, Some(&addon), &ours)?);
        done.extend(note);
        made.save(root)?;
    } else {
        done.extend(remove_firefox_policy(&policies, &ours)?);
        made.take_back(root);
    }
    Ok(done)
}

/// Write `text` to `file` through a new temporary file renamed over it: never through a link
/// someone left in its place.
fn write_new(file: &Path, text: &str) -> Result<(), InstallError> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let temporary = dir.join(format!(".cacbridge-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o644);
    }
    let mut out = options.open(&temporary).map_err(at(&temporary))?;
    std::io::Write::write_all(&mut out, text.as_bytes()).map_err(at(&temporary))?;
    std::fs::rename(&temporary, file).map_err(at(file))
}

/// The directories this made, kept across runs (an upgrade adds to them).
struct Made(Vec<PathBuf>);

impl Made {
    fn load(root: &Path) -> Self {
        let list = std::fs::read_to_string(under(root, MADE_DIRS)).unwrap_or_default();
        Made(list.lines().map(PathBuf::from).collect())
    }

    /// Note the directories missing on the way to `dir`, deepest first.
    fn note_missing(&mut self, root: &Path, dir: &Path) {
        let mut missing = Vec::new();
        let mut next = Some(dir);
        while let Some(d) = next {
            if d.exists() || d == root {
                break;
            }
            missing.push(d.to_owned());
            next = d.parent();
        }
        for d in missing {
            if !self.0.contains(&d) {
                self.0.push(d);
            }
        }
        // Deepest first, so that removal empties a directory before its parent.
        self.0
            .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    }

    fn save(&mut self, root: &Path) -> Result<(), InstallError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let ledger = under(root, MADE_DIRS);
        self.note_missing(root, ledger.parent().unwrap_or(root));
        let list: String = self
            .0
            .iter()
            .map(|d| format!("{}\n", d.display()))
            .collect();
        write_new(&under(root, MADE_DIRS), &list)
    }

    /// Remove the list and the directories made, once empty (one someone else filled stays).
    fn take_back(self, root: &Path) {
        let _ = std::fs::remove_file(under(root, MADE_DIRS));
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::caller::FIREFOX_EXTENSION_ID;
    use crate::module_install::MODULE_NAME;

    const MODULE: &str = "/usr/lib/cacbridge/libcacbridge_pkcs11_browser.so";

    fn machine(version: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        set_release(root.path(), version, false);
        root
    }

    fn set_release(root: &Path, version: &str, signed: bool) {
        let release = serde_json::json!({
            "chromiumId": CHROMIUM_EXTENSION_ID,
            "version": version,
            "crx": "/usr/share/cacbridge/extension/cacbridge.crx",
            "xpi": "/usr/share/cacbridge/extension/cacbridge.xpi",
            "xpiSigned": signed,
        });
        write_new(&under(root, RELEASE), &release.to_string()).unwrap();
    }

    fn set_settings(root: &Path, settings: serde_json::Value) {
        write_new(&under(root, SETTINGS), &settings.to_string()).unwrap();
    }

    fn json(path: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn external(root: &Path, dir: &str) -> PathBuf {
        under(root, dir).join(format!("{CHROMIUM_EXTENSION_ID}.json"))
    }

    fn policies(root: &Path) -> PathBuf {
        under(root, FIREFOX_POLICIES)
    }

    /// Every file under `root` but the package's own (release.json, settings).
    fn files_made(root: &Path) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    out.push(path.clone());
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(root, &mut out);
        out.retain(|p| !p.starts_with(under(root, "/usr/share/cacbridge")));
        out.retain(|p| !p.starts_with(under(root, "/etc/cacbridge")));
        out.retain(|p| {
            ![
                under(root, "/usr"),
                under(root, "/usr/share"),
                under(root, "/etc"),
            ]
            .contains(p)
        });
        out.sort();
        out
    }

    #[test]
    fn the_bundled_extension_is_installed_for_every_browser_and_taken_back_exactly() {
        let root = machine("1.2.0");
        // Edge is installed, Brave and Vivaldi are not.
        std::fs::create_dir_all(under(root.path(), "/opt/microsoft/msedge")).unwrap();
        let before = files_made(root.path());
        let said = system_integration(root.path(), true, Path::new(MODULE)).unwrap();
        for dir in [
            "/usr/share/chromium/extensions",
            "/usr/share/google-chrome/extensions",
            "/opt/microsoft/msedge/extensions",
        ] {
            assert_eq!(
                json(&external(root.path(), dir)),
                serde_json::json!({
                    "external_crx": "/usr/share/cacbridge/extension/cacbridge.crx",
                    "external_version": "1.2.0",
                }),
                "{dir}"
            );
        }
        assert!(!under(root.path(), "/opt/brave.com").exists());
        assert!(!under(root.path(), "/opt/vivaldi").exists());
        let firefox = json(&policies(root.path()));
        assert_eq!(
            firefox["policies"]["ExtensionSettings"][FIREFOX_EXTENSION_ID],
            serde_json::json!({
                "installation_mode": "normal_installed",
                "install_url": "file:///usr/share/cacbridge/extension/cacbridge.xpi",
            })
        );
        assert_eq!(
            firefox["policies"]["SecurityDevices"]["Add"][MODULE_NAME],
            MODULE
        );
        // An unsigned XPI: said what Firefox needs, signature checks left on.
        assert!(firefox["policies"].get("Preferences").is_none());
        assert!(
            said.iter()
                .any(|line| line.contains("not signed by Mozilla")),
            "{said:?}"
        );

        system_integration(root.path(), false, Path::new(MODULE)).unwrap();
        assert_eq!(files_made(root.path()), before);
    }

    #[test]
    fn an_upgrade_or_a_new_route_replaces_only_what_was_ours() {
        let root = machine("1.2.0");
        system_integration(root.path(), true, Path::new(MODULE)).unwrap();
        set_release(root.path(), "1.3.0", false);
        system_integration(root.path(), true, Path::new(MODULE)).unwrap();
        let chromium = external(root.path(), "/usr/share/chromium/extensions");
        assert_eq!(json(&chromium)["external_version"], "1.3.0");

        // The administrator turns to the stores once listings exist.
        set_settings(
            root.path(),
            serde_json::json!({"extension": "store", "firefoxStoreUrl": "https://addons.example/cb.xpi"}),
        );
        system_integration(root.path(), true, Path::new(MODULE)).unwrap();
        assert_eq!(
            json(&chromium),
            serde_json::json!({"external_update_url": CHROME_STORE_UPDATE_URL})
        );
        assert_eq!(
            json(&policies(root.path()))["policies"]["ExtensionSettings"][FIREFOX_EXTENSION_ID]
                ["install_url"],
            "https://addons.example/cb.xpi"
        );
        system_integration(root.path(), false, Path::new(MODULE)).unwrap();
        assert!(!chromium.exists());
        assert!(!policies(root.path()).exists());
    }

    #[test]
    fn an_unsigned_xpi_is_let_through_only_when_the_administrator_says_so() {
        let root = machine("1.2.0");
        set_settings(
            root.path(),
            serde_json::json!({"firefoxAllowUnsigned": true}),
        );
        let said = system_integration(root.path(), true, Path::new(MODULE)).unwrap();
        assert!(
            !said.iter().any(|line| line.contains("not signed")),
            "{said:?}"
        );
        assert_eq!(
            json(&policies(root.path()))["policies"]["Preferences"]
                ["xpinstall.signatures.required"],
            serde_json::json!({"Value": false, "Status": "locked"})
        );
        // A signed XPI needs no exception, whatever the setting.
        set_release(root.path(), "1.2.1", true);
        system_integration(root.path(), true, Path::new(MODULE)).unwrap();
        assert!(json(&policies(root.path()))["policies"]
            .get("Preferences")
            .is_none());
        system_integration(root.path(), false, Path::new(MODULE)).unwrap();
        assert!(!policies(root.path()).exists());
    }

    #[test]
    fn an_administrators_own_external_file_is_neither_replaced_nor_removed() {
        let root = machine("1.2.0");
        let chromium = external(root.path(), "/usr/share/chromium/extensions");
        let theirs =
            r#"{"external_crx": "/opt/site/cacbridge-approved.crx", "external_version": "1.0.0"}"#;
        write_new(&chromium, theirs).unwrap();
        let said = system_integration(root.path(), true, Path::new(MODULE)).unwrap();
        assert!(
            said.iter().any(|l| l.contains("administrator's own")),
            "{said:?}"
        );
        assert_eq!(std::fs::read_to_string(&chromium).unwrap(), theirs);
        system_integration(root.path(), false, Path::new(MODULE)).unwrap();
        assert_eq!(std::fs::read_to_string(&chromium).unwrap(), theirs);
    }

    #[test]
    fn a_release_for_another_extension_is_refused() {
        let root = machine("1.2.0");
        let mut release = json(&under(root.path(), RELEASE));
        release["chromiumId"] = serde_json::json!("a".repeat(32));
        write_new(&under(root.path(), RELEASE), &release.to_string()).unwrap();
        let err = system_integration(root.path(), true, Path::new(MODULE)).unwrap_err();
        assert!(err.to_string().contains("this host serves"), "{err}");
        assert!(!policies(root.path()).exists());
    }

    #[test]
    fn the_firefox_policy_keeps_the_administrators_entries_and_leaves_no_block() {
        let root = machine("1.2.0");
        let module = Path::new("/usr/lib/cacbridge/libcacbridge_pkcs11_browser.so");
        let file = root.path().join("etc/firefox/policies/policies.json");
        // Nothing before: the file is made, and removed again with nothing left.
        system_integration(root.path(), true, module).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            value["policies"]["ExtensionSettings"][FIREFOX_EXTENSION_ID]["installation_mode"],
            "normal_installed"
        );
        assert_eq!(
            value["policies"]["SecurityDevices"]["Add"][MODULE_NAME],
            module.to_str().unwrap()
        );
        system_integration(root.path(), false, module).unwrap();
        assert!(!file.exists(), "a file of ours alone is removed");
        assert!(
            !root.path().join("etc/firefox").exists(),
            "and the directories made for it"
        );
        assert!(!root.path().join("var/lib/cacbridge").exists());
        assert!(!root.path().join("usr/share/chromium/extensions").exists());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();

        // An administrator's file: their entries stay, exactly, and no block is left.
        let theirs = serde_json::json!({"policies": {
            "DisableTelemetry": true,
            "ExtensionSettings": {"other@example": {"installation_mode": "blocked"}},
            "SecurityDevices": {"Add": {"OpenSC": "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"}}}});
        std::fs::write(&file, theirs.to_string()).unwrap();
        system_integration(root.path(), true, module).unwrap();
        system_integration(root.path(), false, module).unwrap();
        let after: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(after, theirs);
        let again = system_integration(root.path(), false, module).unwrap();
        assert!(again.is_empty(), "{again:?}");

        // The administrator's own entries for the add-on (a block) and the module name (their
        // path): neither replaced on install nor removed on removal.
        let theirs = serde_json::json!({"policies": {
            "ExtensionSettings": {FIREFOX_EXTENSION_ID: {"installation_mode": "blocked"}},
            "SecurityDevices": {"Add": {MODULE_NAME: "/opt/site/approved-pkcs11.so"}}}});
        std::fs::write(&file, theirs.to_string()).unwrap();
        let said = system_integration(root.path(), true, module).unwrap();
        assert!(
            said.iter().any(|line| line.contains("administrator's own")),
            "{said:?}"
        );
        let during: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(during, theirs);
        system_integration(root.path(), false, module).unwrap();
        let after: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(after, theirs);
    }
}
