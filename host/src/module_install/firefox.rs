//! Firefox: the PKCS#11 manifest that lets the extension load the module, and the enterprise
//! policy (`SecurityDevices`, `ExtensionSettings`) merged into the system's policies.json,
//! never replacing an administrator's own entries.

use super::*;

/// A policy file left alone, and why.
fn policy(file: &Path, why: String) -> InstallError {
    InstallError::Policy {
        path: file.to_owned(),
        why,
    }
}

pub(super) fn firefox_manifest_dir(home: &Path, system: bool) -> PathBuf {
    if system {
        PathBuf::from("/usr/lib/mozilla/pkcs11-modules")
    } else {
        home.join(".mozilla/pkcs11-modules")
    }
}

pub(super) fn firefox_manifest(module: &Path) -> String {
    let value = serde_json::json!({
        "name": FIREFOX_MANIFEST_NAME,
        "description": MODULE_NAME,
        "path": module.to_string_lossy(),
        "type": "pkcs11",
        "allowed_extensions": [FIREFOX_EXTENSION_ID],
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// Where Firefox installs the add-on from, for every user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirefoxAddon {
    /// The package's XPI (a file: URL) or the listing's on addons.mozilla.org.
    pub install_url: String,
    /// The XPI is not signed by Mozilla and the administrator chose to let Firefox ESR take it
    /// anyway: signature checks are turned off for every add-on (the `Preferences` policy;
    /// release builds of Firefox ignore it).
    pub unsigned: bool,
}

impl FirefoxAddon {
    /// The add-on from its addons.mozilla.org listing.
    pub fn from_store(url: &str) -> Self {
        Self {
            install_url: url.to_owned(),
            unsigned: false,
        }
    }
}

const UNSIGNED_PREFERENCE: &str = "xpinstall.signatures.required";

/// What CAC Bridge puts in Firefox's enterprise policy file: each entry's place (a JSON
/// pointer to the object holding it), its key, and its value.
pub(super) fn firefox_policy_entries(
    module: &Path,
    addon: Option<&FirefoxAddon>,
) -> Vec<(&'static str, String, serde_json::Value)> {
    let mut entries = vec![(
        "/policies/SecurityDevices/Add",
        MODULE_NAME.to_owned(),
        serde_json::json!(module.to_string_lossy()),
    )];
    if let Some(addon) = addon {
        entries.push((
            "/policies/ExtensionSettings",
            FIREFOX_EXTENSION_ID.to_owned(),
            serde_json::json!({
                "installation_mode": "normal_installed",
                "install_url": addon.install_url,
            }),
        ));
        if addon.unsigned {
            entries.push((
                "/policies/Preferences",
                UNSIGNED_PREFERENCE.to_owned(),
                serde_json::json!({"Value": false, "Status": "locked"}),
            ));
        }
    }
    entries
}

/// Merge CAC Bridge's entries into the policy file (loading `module`; with `addon`, installing
/// the add-on too); every other policy is kept, an administrator's own entry for the add-on or
/// the module (a block included) is never replaced, and a file that is not a JSON object is
/// left alone with an error. `ours` are the add-on entries CAC Bridge may have written before
/// (another source, an older package): those are replaced.
pub(crate) fn add_firefox_policy(
    file: &Path,
    module: &Path,
    addon: Option<&FirefoxAddon>,
    ours: &[FirefoxAddon],
) -> Result<String, InstallError> {
    let mut policies: serde_json::Value = match std::fs::read_to_string(file) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| policy(file, format!("not valid JSON ({e})")))?,
        Err(_) => serde_json::json!({}),
    };
    if !policies.is_object() {
        return Err(policy(file, "not a JSON object".into()));
    }
    let mut kept = Vec::new();
    let ours = with_added(ours, addon);
    for (place, key, value) in firefox_policy_entries(module, addon) {
        let mut holder = &mut policies;
        for part in place.split('/').skip(1) {
            holder = holder
                .as_object_mut()
                .ok_or_else(|| policy(file, format!("unexpected layout at {place}")))?
                .entry(part)
                .or_insert_with(|| serde_json::json!({}));
        }
        let holder = holder
            .as_object_mut()
            .ok_or_else(|| policy(file, format!("unexpected layout at {place}")))?;
        match holder.get(&key) {
            Some(existing) if !is_ours(place, &key, existing, &ours) => {
                kept.push(format!("{place}/{key}"));
            }
            _ => {
                holder.insert(key, value);
            }
        }
    }
    write(
        file,
        &(serde_json::to_string_pretty(&policies).unwrap_or_default() + "\n"),
    )?;
    let kept = if kept.is_empty() {
        String::new()
    } else {
        format!(
            " (the administrator's own {} kept as they are)",
            kept.join(", ")
        )
    };
    Ok(format!(
        "{}: Firefox loads the module{} for every user{kept}",
        file.display(),
        if addon.is_some() {
            " and installs the add-on"
        } else {
            ""
        }
    ))
}

/// `ours` and `addon`, the add-on sources whose entries are CAC Bridge's.
fn with_added(ours: &[FirefoxAddon], addon: Option<&FirefoxAddon>) -> Vec<FirefoxAddon> {
    let mut all = ours.to_vec();
    all.extend(addon.cloned());
    all
}

/// Whether the policy entry `key` at `place` is one CAC Bridge wrote: the module under one of
/// its own library names, or exactly what it writes for one of the add-on sources in `ours`.
/// Anything else is an administrator's, neither replaced nor removed.
pub(super) fn is_ours(
    place: &str,
    key: &str,
    value: &serde_json::Value,
    ours: &[FirefoxAddon],
) -> bool {
    if place.ends_with("SecurityDevices/Add") {
        return value.as_str().is_some_and(|path| {
            Path::new(path)
                .file_name()
                .is_some_and(|name| name == BROWSER_LIBRARY || name == LIBRARY)
        });
    }
    ours.iter().any(|addon| {
        firefox_policy_entries(Path::new(""), Some(addon))
            .iter()
            .any(|(p, k, v)| *p == place && k == key && v == value)
    })
}

/// Take CAC Bridge's entries out of the policy file again (the add-on's as any source in
/// `ours` wrote them), and the objects they leave empty; a file left with nothing is removed.
/// No "blocked" entry is left behind: the add-on's entry goes, it is not turned into a block.
pub(crate) fn remove_firefox_policy(
    file: &Path,
    ours: &[FirefoxAddon],
) -> Result<Option<String>, InstallError> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Ok(None);
    };
    let mut policies: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| policy(file, format!("not valid JSON ({e})")))?;
    let mut removed = false;
    let all = ours
        .iter()
        .flat_map(|addon| firefox_policy_entries(Path::new(""), Some(addon)))
        .chain(firefox_policy_entries(Path::new(""), None));
    for (place, key, _) in all {
        let Some(holder) = policies
            .pointer_mut(place)
            .and_then(|holder| holder.as_object_mut())
        else {
            continue;
        };
        // Only what CAC Bridge wrote: an administrator's entry under the same key stays.
        if holder
            .get(&key)
            .is_some_and(|value| is_ours(place, &key, value, ours))
        {
            holder.remove(&key);
            removed = true;
        }
        // Prune what became empty, innermost first.
        let mut parts: Vec<&str> = place.split('/').skip(1).collect();
        while let Some(last) = parts.pop() {
            let parent = format!("/{}", parts.join("/"));
            let parent = if parts.is_empty() {
                ""
            } else {
                parent.as_str()
            };
            let empty = policies
                .pointer(&format!("{parent}/{last}"))
                .is_some_and(|v| v.as_object().is_some_and(|o| o.is_empty()));
            if !empty {
                break;
            }
            if let Some(holder) = policies.pointer_mut(parent).and_then(|h| h.as_object_mut()) {
                holder.remove(last);
            }
        }
    }
    if !removed {
        return Ok(None);
    }
    if policies.as_object().is_some_and(|o| o.is_empty()) {
        std::fs::remove_file(file).map_err(at(file))?;
        return Ok(Some(format!(
            "{}: removed (nothing else in it)",
            file.display()
        )));
    }
    write(
        file,
        &(serde_json::to_string_pretty(&policies).unwrap_or_default() + "\n"),
    )?;
    Ok(Some(format!(
        "{}: CAC Bridge's entries removed",
        file.display()
    )))
}
