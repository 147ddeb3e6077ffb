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

/// What CAC Bridge puts in Firefox's enterprise policy file: each entry's place (a JSON
/// pointer to the object holding it), its key, and its value.
pub(super) fn firefox_policy_entries(
    module: &Path,
    addon: bool,
) -> Vec<(&'static str, String, serde_json::Value)> {
    let mut entries = vec![(
        "/policies/SecurityDevices/Add",
        MODULE_NAME.to_owned(),
        serde_json::json!(module.to_string_lossy()),
    )];
    if addon {
        entries.push((
            "/policies/ExtensionSettings",
            FIREFOX_EXTENSION_ID.to_owned(),
            serde_json::json!({
                "installation_mode": "normal_installed",
                "install_url": FIREFOX_ADDON_URL,
            }),
        ));
    }
    entries
}

/// Merge CAC Bridge's entries into the policy file (loading `module`; with `addon`, installing
/// the add-on too); every other policy is kept, an administrator's own entry for the add-on or
/// the module (a block included) is never replaced, and a file that is not a JSON object is
/// left alone with an error.
pub(super) fn add_firefox_policy(
    file: &Path,
    module: &Path,
    addon: bool,
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
            Some(existing) if !is_ours(place, existing) => {
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
        if addon {
            " and installs the add-on"
        } else {
            ""
        }
    ))
}

/// Whether a policy entry at `place` is one CAC Bridge wrote: the module under one of its own
/// library names, or the add-on installed as CAC Bridge installs it. Anything else is an
/// administrator's, neither replaced nor removed.
pub(super) fn is_ours(place: &str, value: &serde_json::Value) -> bool {
    if place.ends_with("SecurityDevices/Add") {
        return value.as_str().is_some_and(|path| {
            Path::new(path)
                .file_name()
                .is_some_and(|name| name == BROWSER_LIBRARY || name == LIBRARY)
        });
    }
    value.get("installation_mode") == Some(&serde_json::json!("normal_installed"))
        && value.get("install_url") == Some(&serde_json::json!(FIREFOX_ADDON_URL))
        && value.as_object().is_some_and(|o| o.len() == 2)
}

/// Take CAC Bridge's entries out of the policy file again, and the objects they leave empty;
/// a file left with nothing is removed. No "blocked" entry is left behind: the add-on's entry
/// goes, it is not turned into a block.
pub(super) fn remove_firefox_policy(file: &Path) -> Result<Option<String>, InstallError> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Ok(None);
    };
    let mut policies: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| policy(file, format!("not valid JSON ({e})")))?;
    let mut removed = false;
    for (place, key, _) in firefox_policy_entries(Path::new(""), true) {
        let Some(holder) = policies
            .pointer_mut(place)
            .and_then(|holder| holder.as_object_mut())
        else {
            continue;
        };
        // Only what CAC Bridge wrote: an administrator's entry under the same key stays.
        if holder.get(&key).is_some_and(|value| is_ours(place, value)) {
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

/// `cacbridge-browser-integration`'s Firefox part (its maintainer scripts call
/// `cacbridge-host system-integration`): the add-on installed and the module loaded for every
/// user, through the policy file at `root` + /etc/firefox/policies/policies.json.
pub fn system_integration(
    root: &Path,
    add: bool,
    module: &Path,
) -> Result<Option<String>, InstallError> {
    let file = root.join(FIREFOX_POLICIES.trim_start_matches('/'));
    // The directories made for the file are noted, so that removal takes back those (and only
    // those) once empty: a package leaves nothing behind, nor takes an administrator's.
    let made = root.join("var/lib/cacbridge/firefox-policy-dirs");
    if add {
        let mut created = Vec::new();
        let mut dir = file.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d.exists() || d == root {
                break;
            }
            created.push(d.clone());
            dir = d.parent().map(Path::to_path_buf);
        }
        let done = add_firefox_policy(&file, module, true)?;
        if !created.is_empty() {
            let list: String = created
                .iter()
                .map(|d| format!("{}\n", d.display()))
                .collect();
            write(&made, &list)?;
        }
        Ok(Some(done))
    } else {
        let done = remove_firefox_policy(&file)?;
        if let Ok(list) = std::fs::read_to_string(&made) {
            // Deepest first, as they were noted; a directory someone else filled stays.
            for dir in list.lines() {
                let _ = std::fs::remove_dir(dir);
            }
            let _ = std::fs::remove_file(&made);
            if let Some(state) = made.parent() {
                let _ = std::fs::remove_dir(state);
            }
        }
        Ok(done)
    }
}
