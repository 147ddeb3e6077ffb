//! `cacbridge-host doctor`: the readiness checklist from the host's side, the support report,
//! and `--fix`'s repairs. What it says is returned as lines; main.rs prints them.

use std::path::{Path, PathBuf};

use cacbridge_card::CardError;

use crate::messaging::protocol::PROTOCOL_VERSION;
use crate::policy::Policy;
use crate::{module_install, views, HOST_VERSION};

/// `--fix`'s repairs of files: the manifests (naming `host`) and the NSS database; one line
/// per thing done or left, saying what.
pub fn fix_files(home: &Path, host: std::io::Result<PathBuf>) -> Vec<String> {
    let mut did = Vec::new();
    // Manifests: missing everywhere, or a user's pointing at a host that is gone.
    // As root on another user's home, none of it: that user's links would be followed.
    let as_the_user = module_install::root_on_anothers_home(home).is_none();
    let verdicts = crate::install::check(home);
    let none = verdicts.iter().all(|(_, verdict)| verdict.is_err());
    let stale = verdicts
        .iter()
        .any(|(_, verdict)| matches!(verdict, Err(reason) if reason != "no manifest"));
    if as_the_user && (none || stale) {
        match host {
            Ok(host) => match crate::install::install(home, false, &host) {
                Ok(files) => did.push(format!(
                    "fixed: {} manifest(s) written for this user, pointing at {}",
                    files.len(),
                    host.display()
                )),
                Err(err) => did.push(format!("not fixed: manifests: {err}")),
            },
            Err(err) => did.push(format!("not fixed: manifests: {err}")),
        }
    }
    did.extend(module_install::fix_nssdb(home));
    if as_the_user {
        did.extend(trust_dod_roots(home));
    }
    did
}

/// The DoD roots, trusted for web sites in the browsers' databases that have none of them
/// (Chrome's, Firefox's default profile): what CAC Bridge's popup offers, here at the person's
/// own `doctor --fix`. Each root is named with its fingerprint; the popup removes them again.
fn trust_dod_roots(home: &Path) -> Vec<String> {
    let Some(state) = crate::logging::state_dir() else {
        return Vec::new();
    };
    let databases = [
        Some(home.join(".pki/nssdb")),
        module_install::firefox_profile(home, None),
    ];
    let mut did = Vec::new();
    for database in databases.into_iter().flatten() {
        if !database.join("cert9.db").exists() {
            continue;
        }
        match module_install::roots_in(&database, &state) {
            Ok(roots) if roots.iter().any(|root| root.trusted) => {}
            Ok(_) => match module_install::trust_dod_roots(&database, &state) {
                Ok(lines) => did.extend(lines.into_iter().map(|line| format!("fixed: {line}"))),
                Err(err) => did.push(format!("not fixed: DoD roots: {err}")),
            },
            Err(err) => did.push(format!("not fixed: DoD roots: {err}")),
        }
    }
    did
}

/// `--fix`, all of it: the files ([`fix_files`]) and the smart card service.
pub fn fix(home: &Path, host: std::io::Result<PathBuf>) -> Vec<String> {
    let mut did = fix_files(home, host);
    did.extend(fix_smart_card_service());
    if did.is_empty() {
        did.push("nothing to fix".into());
    }
    did
}

/// A stopped smart card service: started only by root, and only through systemd.
fn fix_smart_card_service() -> Option<String> {
    let mut pcsc = cacbridge_card::PcscBackend::new();
    if !matches!(
        cacbridge_card::Backend::presence(&mut pcsc),
        Err(CardError::PcscUnavailable)
    ) {
        return None;
    }
    if module_install::own_uid() == Some(0) && Path::new("/run/systemd/system").exists() {
        let started = std::process::Command::new("systemctl")
            .args(["start", "pcscd.socket", "pcscd.service"])
            .status()
            .is_ok_and(|s| s.success());
        Some(if started {
            "fixed: the smart card service (pcscd) started".into()
        } else {
            "not fixed: systemctl could not start pcscd".into()
        })
    } else {
        Some(
            "not fixed: the smart card service is not running: run `sudo systemctl start pcscd`"
                .into(),
        )
    }
}

/// Write the support bundle for `lines` (the checklist) to `file`, mode 0600: versions,
/// operating system, the checklist and the log's tail, redacted (support.rs).
pub fn write_report(file: &Path, lines: &[String]) -> std::io::Result<()> {
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    let log = crate::logging::log_dir()
        .map(|dir| {
            crate::support::log_tail(
                &dir.join(crate::logging::LOG_FILE),
                crate::support::LOG_LINES,
            )
        })
        .unwrap_or_default();
    let bundle = crate::support::bundle(&os, lines, &log);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Only its owner reads a support bundle.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, bundle.as_bytes()))
}

/// What `cacbridge-host doctor` says: the readiness checklist, from this side.
pub fn checklist(root: &Path, home: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    out.push(format!(
        "cacbridge-host {HOST_VERSION} (protocol {PROTOCOL_VERSION})"
    ));
    let mut found = false;
    for (location, verdict) in crate::install::check(home) {
        match verdict {
            Ok(path) => {
                found = true;
                out.push(format!(
                    "  ok    {}: {} -> {}",
                    location.browser,
                    location.dir.display(),
                    path.display()
                ));
            }
            Err(reason) if reason != "no manifest" => {
                out.push(format!(
                    "  FAIL  {}: {} ({reason})",
                    location.browser,
                    location.dir.display()
                ));
            }
            Err(_) => {}
        }
    }
    if !found {
        out.push("  FAIL  no browser can start the host: run `cacbridge-host install`".into());
    }
    out.push("PKCS#11 module (mutual-TLS portals):".into());
    for line in module_install::report(root, home) {
        out.push(line.clone());
    }
    out.push("Backends (policy):".into());
    let names = Policy::load().backends();
    for loaded in crate::backends::load(&names) {
        match loaded.token {
            Ok(mut token) => match token.presence() {
                Ok(readers) => out.push(format!(
                    "  ok    {}: loads, {} reader(s)",
                    loaded.name,
                    readers.len()
                )),
                Err(err) => out.push(format!("  WARN  {}: loads, but {err}", loaded.name)),
            },
            Err(err) => out.push(format!("  FAIL  {}: {err}", loaded.name)),
        }
    }
    out.push("PKCS#11 modules installed (a policy's backends may name one):".into());
    let installed = crate::backends::installed_modules();
    if installed.is_empty() {
        out.push("  --    none found".into());
    }
    for (name, path) in installed {
        let loaded = crate::backends::load(&[path.to_owned()]).remove(0);
        match loaded.token {
            Ok(mut token) => out.push(format!(
                "  ok    {name}: {path} loads, {} slot(s)",
                token.presence().map(|p| p.len()).unwrap_or(0)
            )),
            Err(err) => out.push(format!("  FAIL  {name}: {path}: {err}")),
        }
    }
    out.push("Readers and cards:".into());
    let mut backend = crate::backends::token(&names);
    match backend.readers() {
        Ok(readers) if readers.is_empty() => {
            out.push("  FAIL  no smart card reader: connect one".into())
        }
        Ok(readers) => {
            for reader in readers {
                match reader.card {
                    Some(card) => out.push(format!(
                        "  ok    {}: {} card ({})",
                        reader.name,
                        views::card_type_name(card.card_type),
                        card.backend
                    )),
                    None => out.push(format!("  --    {}: no card", reader.name)),
                }
            }
        }
        Err(err) => out.push(format!("  FAIL  smart card service: {err}")),
    }
    if let Ok(certificates) =
        backend.certificates_for(None, cacbridge_card::Purpose::Authentication)
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for certificate in certificates {
            let name = certificate
                .info
                .common_name
                .as_deref()
                .unwrap_or("the card");
            match crate::usage::expiry_warning(&certificate.info, now) {
                Some(warning) => out.push(format!("  WARN  {name}: {warning}")),
                None => out.push(format!(
                    "  ok    {name}: PIV Authentication certificate valid until {}",
                    &certificate.info.not_after[..10.min(certificate.info.not_after.len())]
                )),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fix_writes_the_missing_manifests_of_a_fresh_home() {
        let home = tempfile::tempdir().unwrap();
        let host = home.path().join("cacbridge-host");
        std::fs::write(&host, "").unwrap();
        let said = fix_files(home.path(), Ok(host.clone()));
        assert!(
            said.iter()
                .any(|l| l.starts_with("fixed: ") && l.contains("manifest(s) written")),
            "{said:?}"
        );
        let manifest = home
            .path()
            .join(".config/chromium/NativeMessagingHosts/org.cacbridge.host.json");
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        assert_eq!(written["path"], host.to_str().unwrap());
        // No program to name: said, nothing written.
        let other = tempfile::tempdir().unwrap();
        let said = fix_files(other.path(), Err(std::io::ErrorKind::NotFound.into()));
        assert!(
            said.iter().any(|l| l.starts_with("not fixed: manifests")),
            "{said:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_support_report_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.txt");
        write_report(&file, &["  ok    a line of the checklist".to_owned()]).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("a line of the checklist"), "{text}");
    }
}
