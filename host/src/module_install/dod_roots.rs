//! The DoD root CAs, trusted in a person's browser with their consent (docs/install.md): the
//! self-signed certificates of DISA's bundle (`cacbridge_cert::DOD_BUNDLE`, DoD Root CA 3-6),
//! shown with their SHA-256 fingerprints, added to the browser's NSS database (Chrome family:
//! `~/.pki/nssdb`; Firefox: its profile) under their own names and trusted to issue web server
//! certificates only (`C,,`: not e-mail, not code). Removable: a ledger in the person's state
//! directory names what CAC Bridge added, and only that is taken out again; a root the person
//! had already (DISA's InstallRoot, say) is theirs and left alone.

use super::*;

/// Trust for TLS server certificates alone (SSL column `C`), nothing for e-mail or code.
const WEB_SITES_ONLY: &str = "C,,";
/// The ledger's name, in the host's state directory: one `<database>\t<nickname>` per line.
const LEDGER: &str = "dod-roots-added";

/// One DoD root CA, as the person is shown it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DodRoot {
    /// Its common name, which is also its nickname in the database ("DoD Root CA 3").
    pub name: String,
    pub sha256: String,
    pub not_after: String,
    #[serde(skip)]
    der: Vec<u8>,
}

/// A root and where it stands in one database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootState {
    #[serde(flatten)]
    pub root: DodRoot,
    /// In the database and trusted for web sites.
    pub trusted: bool,
    /// CAC Bridge added it (and may take it out again).
    pub added_by_cac_bridge: bool,
}

/// The root CAs of the shipped DoD bundle.
pub fn dod_roots() -> Vec<DodRoot> {
    cacbridge_cert::dod_roots()
        .into_iter()
        .map(|root| DodRoot {
            name: root.name,
            sha256: root.sha256,
            not_after: root.not_after,
            der: root.der,
        })
        .collect()
}

/// The nicknames and trust flags `certutil -L` lists.
fn listed(database: &Path) -> Result<Vec<(String, String)>, InstallError> {
    if !database.join("cert9.db").exists() {
        return Ok(Vec::new());
    }
    let listing = nss_tool("certutil", &["-L", "-d", &sql(database)])?;
    Ok(listed_certificates(&listing))
}

/// The ledger's entries for `database`.
fn added(state: &Path, database: &Path) -> Vec<String> {
    let prefix = format!("{}\t", database.display());
    std::fs::read_to_string(state.join(LEDGER))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

fn set_added(state: &Path, database: &Path, names: &[String]) -> Result<(), InstallError> {
    let prefix = format!("{}\t", database.display());
    let file = state.join(LEDGER);
    let mut lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    lines.extend(names.iter().map(|name| format!("{prefix}{name}")));
    if lines.is_empty() {
        let _ = std::fs::remove_file(&file);
        return Ok(());
    }
    write(&file, &(lines.join("\n") + "\n"))
}

/// Where each DoD root stands in `database`.
pub fn roots_in(database: &Path, state: &Path) -> Result<Vec<RootState>, InstallError> {
    let listed = listed(database)?;
    let ours = added(state, database);
    Ok(dod_roots()
        .into_iter()
        .map(|root| {
            let trusted = listed
                .iter()
                .any(|(name, trust)| *name == root.name && trusted_for_web_sites(trust));
            let added_by_cac_bridge = ours.contains(&root.name);
            RootState {
                root,
                trusted,
                added_by_cac_bridge,
            }
        })
        .collect())
}

/// Trust every DoD root for web sites in `database` (made when missing), skipping those the
/// database holds already under their names; one line per root added.
pub fn trust_dod_roots(database: &Path, state: &Path) -> Result<Vec<String>, InstallError> {
    if !database.join("cert9.db").exists() {
        std::fs::create_dir_all(database).map_err(at(database))?;
        nss_tool(
            "certutil",
            &["-N", "-d", &sql(database), "--empty-password"],
        )?;
    }
    let present: Vec<String> = listed(database)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut ours = added(state, database);
    let mut done = Vec::new();
    for root in dod_roots() {
        if present.contains(&root.name) {
            continue;
        }
        let file = state.join(format!(".{}.der", root.name.replace(' ', "-")));
        write(&file, &root.der)?;
        let result = nss_tool(
            "certutil",
            &[
                "-A",
                "-d",
                &sql(database),
                "-n",
                &root.name,
                "-t",
                WEB_SITES_ONLY,
                "-i",
                &file.to_string_lossy(),
            ],
        );
        let _ = std::fs::remove_file(&file);
        result?;
        ours.push(root.name.clone());
        set_added(state, database, &ours)?;
        done.push(format!(
            "{}: {} trusted for web sites (SHA-256 {})",
            database.display(),
            root.name,
            root.sha256
        ));
    }
    Ok(done)
}

/// Take out of `database` the DoD roots CAC Bridge added there, and nothing else.
pub fn untrust_dod_roots(database: &Path, state: &Path) -> Result<Vec<String>, InstallError> {
    let mut ours = added(state, database);
    let mut done = Vec::new();
    while let Some(name) = ours.pop() {
        nss_tool("certutil", &["-D", "-d", &sql(database), "-n", &name])?;
        set_added(state, database, &ours)?;
        done.push(format!("{}: {name} removed", database.display()));
    }
    Ok(done)
}

/// The Firefox profile the browser that started this host runs with: the `-profile` argument
/// of its command line, else the profile profiles.ini names as the default.
pub fn firefox_profile(home: &Path, browser_pid: Option<u32>) -> Option<PathBuf> {
    let from_command_line = browser_pid.and_then(|pid| {
        let line = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let words: Vec<String> = line
            .split(|byte| *byte == 0)
            .map(|word| String::from_utf8_lossy(word).into_owned())
            .collect();
        let at = words
            .iter()
            .position(|word| word == "-profile" || word == "--profile")?;
        words.get(at + 1).map(PathBuf::from)
    });
    from_command_line.or_else(|| default_firefox_profile(home))
}

/// profiles.ini's default profile: the `[Install…]` section's `Default=`, else the profile
/// marked `Default=1`.
fn default_firefox_profile(home: &Path) -> Option<PathBuf> {
    let base = home.join(".mozilla/firefox");
    let ini = std::fs::read_to_string(base.join("profiles.ini")).ok()?;
    let mut install_default = None;
    let mut marked = None;
    let mut section = String::new();
    let mut path = None;
    let mut relative = true;
    let mut is_default = false;
    let mut finish = |path: &mut Option<String>, relative: bool, is_default: bool| {
        if let (Some(p), true) = (path.take(), is_default) {
            marked.get_or_insert(if relative {
                base.join(p)
            } else {
                PathBuf::from(p)
            });
        }
    };
    for line in ini.lines().map(str::trim) {
        if line.starts_with('[') {
            finish(&mut path, relative, is_default);
            section = line.to_owned();
            relative = true;
            is_default = false;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "Default" if section.starts_with("[Install") => {
                install_default = Some(base.join(value));
            }
            "Default" if section.starts_with("[Profile") => is_default = value == "1",
            "Path" if section.starts_with("[Profile") => path = Some(value.to_owned()),
            "IsRelative" => relative = value == "1",
            _ => {}
        }
    }
    finish(&mut path, relative, is_default);
    install_default.or(marked)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_roots_are_the_bundles_self_signed_dod_root_cas() {
        let roots = dod_roots();
        let names: Vec<&str> = roots.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "DoD Root CA 3",
                "DoD Root CA 4",
                "DoD Root CA 5",
                "DoD Root CA 6"
            ]
        );
        for root in &roots {
            assert_eq!(root.sha256.len(), 32 * 3 - 1, "{}", root.sha256);
        }
    }

    #[test]
    fn firefox_s_default_profile_comes_from_profiles_ini() {
        let home = tempfile::tempdir().unwrap();
        let base = home.path().join(".mozilla/firefox");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(
            base.join("profiles.ini"),
            "[Profile1]\nName=old\nIsRelative=1\nPath=old.default\nDefault=1\n\n[Profile0]\nName=default-esr\nIsRelative=1\nPath=abcd.default-esr\n\n[Install3B6073811A6ABF12]\nDefault=abcd.default-esr\nLocked=1\n",
        )
        .unwrap();
        assert_eq!(
            firefox_profile(home.path(), None),
            Some(base.join("abcd.default-esr"))
        );
        std::fs::write(
            base.join("profiles.ini"),
            "[Profile0]\nName=x\nIsRelative=0\nPath=/srv/x\nDefault=1\n",
        )
        .unwrap();
        assert_eq!(
            firefox_profile(home.path(), None),
            Some(PathBuf::from("/srv/x"))
        );
    }
}
