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

/// The name NSS and Firefox show for the module.
pub const MODULE_NAME: &str = "CAC Bridge";
/// The Firefox PKCS#11 manifest's name (its file is `<name>.json`).
pub const FIREFOX_MANIFEST_NAME: &str = "cacbridge";
pub const LIBRARY: &str = "libcacbridge_pkcs11.so";
/// The name browsers load the same library under: the module then takes the PIN from CAC
/// Bridge's window instead of the browser's prompt (pkcs11/src/ffi.rs, docs/pkcs11.md).
pub use cacbridge_channel::BROWSER_LIBRARY;
const FIREFOX_EXTENSION_ID: &str = "cacbridge@cacbridge.app";
/// Where Debian's firefox-esr reads enterprise policies.
const FIREFOX_POLICIES: &str = "/etc/firefox/policies/policies.json";

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

fn nssdb(home: &Path) -> PathBuf {
    home.join(".pki/nssdb")
}

fn firefox_manifest_dir(home: &Path, system: bool) -> PathBuf {
    if system {
        PathBuf::from("/usr/lib/mozilla/pkcs11-modules")
    } else {
        home.join(".mozilla/pkcs11-modules")
    }
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

/// The database directory an NSS tool's arguments name (`-d` or `-dbdir`, `sql:` stripped).
fn database_argument<'a>(args: &[&'a str]) -> Option<&'a str> {
    let at = args.iter().position(|a| *a == "-d" || *a == "-dbdir")?;
    let value = args.get(at + 1)?;
    Some(value.strip_prefix("sql:").unwrap_or(value))
}

/// Run an NSS tool; its output, or why it failed. Never as root on a database another user
/// owns: NSS loads every library the database's pkcs11.txt lists, so that user's code would
/// run as root (the second security review's H1).
fn nss_tool(program: &str, args: &[&str]) -> Result<String, String> {
    if own_uid() == Some(0) {
        let owner = database_argument(args).and_then(|dir| {
            std::fs::symlink_metadata(dir)
                .ok()
                .or_else(|| std::fs::symlink_metadata(Path::new(dir).parent()?).ok())
                .and_then(|m| owner_of(&m))
        });
        if owner.is_some_and(|(uid, _)| uid != 0) {
            return Err(format!(
                "{program} refused: as root it would load the modules another user's database lists; run it as that user"
            ));
        }
    }
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e} (apt-get install libnss3-tools)"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{program} {}: {}", args.join(" "), text.trim()))
    }
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

/// Give the NSS database under `home` (the directory and its three files), where root made
/// them, back to `uid`:`gid`, as root and without trusting the home's owner: every component
/// is opened without following links (`O_NOFOLLOW`, `O_DIRECTORY` for directories), a file
/// must be a regular file with one link, and the descriptor so checked is what is `fchown`ed.
/// One line per thing done or refused.
#[cfg(unix)]
fn give_back_nssdb(home: &Path, uid: u32, gid: u32) -> Vec<String> {
    use rustix::fs::{fchown, fstat, open, openat, FileType, Mode, OFlags};
    use rustix::process::{Gid, Uid};
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let dir = nssdb(home);
    let opened = open(home, directory, Mode::empty())
        .and_then(|home| openat(&home, ".pki", directory, Mode::empty()))
        .and_then(|pki| openat(&pki, "nssdb", directory, Mode::empty()));
    let nssdb_fd = match opened {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Vec::new(),
        Err(err) => {
            return vec![format!(
                "not fixed: {}: {err} (a link, or not a directory: left alone)",
                dir.display()
            )]
        }
    };
    let give = |fd: &rustix::fd::OwnedFd, path: PathBuf| -> Option<String> {
        let stat = match fstat(fd) {
            Ok(stat) if stat.st_uid == uid => return None,
            Ok(stat) => stat,
            Err(err) => return Some(format!("not fixed: {}: {err}", path.display())),
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        let plain =
            kind == FileType::Directory || (kind == FileType::RegularFile && stat.st_nlink == 1);
        if !plain {
            return Some(format!(
                "not fixed: {} is not a plain file with one name: left alone",
                path.display()
            ));
        }
        Some(match fchown(fd, owner.0, owner.1) {
            Ok(()) => format!(
                "fixed: {} now belongs to the home's owner (uid {uid})",
                path.display()
            ),
            Err(err) => format!("not fixed: {}: {err}", path.display()),
        })
    };
    let mut said: Vec<String> = give(&nssdb_fd, dir.clone()).into_iter().collect();
    for name in ["cert9.db", "key4.db", "pkcs11.txt"] {
        match openat(&nssdb_fd, name, file, Mode::empty()) {
            Ok(fd) => said.extend(give(&fd, dir.join(name))),
            Err(rustix::io::Errno::NOENT) => {}
            Err(rustix::io::Errno::LOOP) => said.push(format!(
                "not fixed: {} is a symbolic link: left alone",
                dir.join(name).display()
            )),
            Err(err) => said.push(format!("not fixed: {}: {err}", dir.join(name).display())),
        }
    }
    said
}

#[cfg(not(unix))]
fn give_back_nssdb(_home: &Path, _uid: u32, _gid: u32) -> Vec<String> {
    Vec::new()
}

/// Files of `dir` that belong to someone other than the user running this.
fn foreign_files(dir: &Path) -> Vec<PathBuf> {
    // /proc/self belongs to the user this process runs as.
    own_uid().map_or_else(Vec::new, |me| files_not_owned_by(dir, me))
}

/// The NSS database `dir` itself and its files, those not owned by `uid`.
fn files_not_owned_by(dir: &Path, uid: u32) -> Vec<PathBuf> {
    ["", "cert9.db", "key4.db", "pkcs11.txt"]
        .iter()
        .map(|f| {
            if f.is_empty() {
                dir.to_owned()
            } else {
                dir.join(f)
            }
        })
        .filter(|p| {
            std::fs::symlink_metadata(p)
                .is_ok_and(|m| owner_of(&m).is_some_and(|(owner, _)| owner != uid))
        })
        .collect()
}

/// The modules a `pkcs11.txt` registers: (name, library) of each block that has both.
fn registrations(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split("\n\n").filter_map(|block| {
        let field = |key: &str| {
            block
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(str::trim)
        };
        Some((field("name=")?, field("library=").unwrap_or_default()))
    })
}

/// The library NSS database `dir` registers under [`MODULE_NAME`], if any, read from its
/// `pkcs11.txt` (asking `modutil` would load every module and fail on an empty reader).
fn registered_library(dir: &Path) -> Result<Option<String>, String> {
    let file = dir.join("pkcs11.txt");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("{}: {err}", file.display())),
    };
    let library = registrations(&text)
        .find(|(name, _)| *name == MODULE_NAME)
        .map(|(_, library)| library.to_owned());
    Ok(library)
}

fn register_nssdb(home: &Path, module: &Path) -> Result<String, String> {
    let dir = nssdb(home);
    let foreign = foreign_files(&dir);
    if !foreign.is_empty() {
        return Err(format!(
            "{} belongs to another user: not changed (run `cacbridge-host install` as its owner)",
            foreign[0].display()
        ));
    }
    let database = format!("sql:{}", dir.display());
    if !dir.join("cert9.db").exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        nss_tool("certutil", &["-N", "-d", &database, "--empty-password"])?;
    }
    let module_path = module.to_string_lossy();
    match registered_library(&dir).unwrap_or(None) {
        Some(path) if path == module_path => {
            return Ok(format!("{}: already registered", dir.display()))
        }
        Some(_) => {
            nss_tool(
                "modutil",
                &["-dbdir", &database, "-delete", MODULE_NAME, "-force"],
            )?;
        }
        None => {}
    }
    nss_tool(
        "modutil",
        &[
            "-dbdir",
            &database,
            "-add",
            MODULE_NAME,
            "-libfile",
            &module_path,
            "-force",
        ],
    )?;
    Ok(format!(
        "{}: registered for Chrome and Chromium",
        dir.display()
    ))
}

fn firefox_manifest(module: &Path) -> String {
    let value = serde_json::json!({
        "name": FIREFOX_MANIFEST_NAME,
        "description": MODULE_NAME,
        "path": module.to_string_lossy(),
        "type": "pkcs11",
        "allowed_extensions": [FIREFOX_EXTENSION_ID],
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// Add the module to Firefox's `SecurityDevices` policy, keeping every other policy. A file
/// that does not parse is reported and left alone.
/// The add-on's page on addons.mozilla.org, from which Firefox's `ExtensionSettings` policy
/// installs it (the listing's slug).
pub const FIREFOX_ADDON_URL: &str =
    "https://addons.mozilla.org/firefox/downloads/latest/cac-bridge/latest.xpi";

/// What CAC Bridge puts in Firefox's enterprise policy file: each entry's place (a JSON
/// pointer to the object holding it), its key, and its value.
fn firefox_policy_entries(
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
fn add_firefox_policy(file: &Path, module: &Path, addon: bool) -> Result<String, String> {
    let mut policies: serde_json::Value = match std::fs::read_to_string(file) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON ({e}); not changed", file.display()))?,
        Err(_) => serde_json::json!({}),
    };
    if !policies.is_object() {
        return Err(format!(
            "{}: not a JSON object; not changed",
            file.display()
        ));
    }
    let mut kept = Vec::new();
    for (place, key, value) in firefox_policy_entries(module, addon) {
        let mut holder = &mut policies;
        for part in place.split('/').skip(1) {
            holder = holder
                .as_object_mut()
                .ok_or_else(|| {
                    format!(
                        "{}: unexpected layout at {place}; not changed",
                        file.display()
                    )
                })?
                .entry(part)
                .or_insert_with(|| serde_json::json!({}));
        }
        let holder = holder.as_object_mut().ok_or_else(|| {
            format!(
                "{}: unexpected layout at {place}; not changed",
                file.display()
            )
        })?;
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
fn is_ours(place: &str, value: &serde_json::Value) -> bool {
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
fn remove_firefox_policy(file: &Path) -> Result<Option<String>, String> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Ok(None);
    };
    let mut policies: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not valid JSON ({e}); not changed", file.display()))?;
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
        std::fs::remove_file(file).map_err(|e| format!("{}: {e}", file.display()))?;
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
pub fn system_integration(root: &Path, add: bool, module: &Path) -> Result<Option<String>, String> {
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

fn write(file: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))
}

/// The browsers' name for `module`: the link beside it (a package ships it), else one made
/// there, else one in `~/.local/lib/cacbridge/` when the module's directory is not ours.
pub fn browser_library(home: &Path, module: &Path) -> Result<PathBuf, String> {
    let beside = module.with_file_name(BROWSER_LIBRARY);
    if beside.is_file() {
        return Ok(beside);
    }
    if second_name(module, &beside).is_ok() {
        return Ok(beside);
    }
    let dir = home.join(".local/lib/cacbridge");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let link = dir.join(BROWSER_LIBRARY);
    let _ = std::fs::remove_file(&link);
    second_name(module, &link).map_err(|e| format!("{}: {e}", link.display()))?;
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
) -> Result<Vec<String>, String> {
    if !module.is_absolute() || !module.is_file() {
        return Err(format!("no PKCS#11 module at {}", module.display()));
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
    write(&manifest, &firefox_manifest(module))?;
    done.push(format!(
        "{}: Firefox (the CAC Bridge extension loads it)",
        manifest.display()
    ));
    if system {
        done.push(add_firefox_policy(
            Path::new(FIREFOX_POLICIES),
            module,
            false,
        )?);
    }
    Ok(done)
}

/// Undo [`register`]; one line per place changed.
pub fn unregister(home: &Path, system: bool) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    if !system {
        let dir = nssdb(home);
        if dir.join("cert9.db").exists() && foreign_files(&dir).is_empty() {
            if let Ok(Some(_)) = registered_library(&dir) {
                let database = format!("sql:{}", dir.display());
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
        Err(err) => return Err(format!("{}: {err}", manifest.display())),
    }
    if system {
        if let Some(line) = remove_firefox_policy(Path::new(FIREFOX_POLICIES))? {
            done.push(line);
        }
    }
    Ok(done)
}

/// What a mutual-TLS login needs from the browser itself, as far as this host can tell from
/// files (`None`: it cannot tell for that browser).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserSetup {
    /// CAC Bridge's PKCS#11 module registered where the browser loads it.
    pub tls_module: Option<bool>,
    /// DoD root CAs trusted for web sites, so that a DoD portal's CAC host loads.
    pub dod_roots: Option<bool>,
}

/// [`BrowserSetup`] for the Chrome family (their NSS database); Firefox keeps both in its
/// profile, which its extension API answers for the module and nothing answers for roots.
pub fn browser_setup(home: &Path, chromium: bool) -> BrowserSetup {
    if !chromium {
        return BrowserSetup {
            tls_module: None,
            dod_roots: None,
        };
    }
    let dir = nssdb(home);
    let tls_module = Some(matches!(
        registered_library(&dir),
        Ok(Some(path)) if Path::new(&path).is_file()
    ));
    let dod_roots = if !dir.join("cert9.db").exists() {
        Some(false)
    } else {
        let database = format!("sql:{}", dir.display());
        nss_tool("certutil", &["-L", "-d", &database])
            .ok()
            .map(|listing| trusts_dod_roots(&listing))
    };
    BrowserSetup {
        tls_module,
        dod_roots,
    }
}

/// Whether `certutil -L` lists a DoD root CA trusted to issue web server certificates (a `C`
/// in the SSL trust column), as DISA's InstallRoot leaves them.
fn trusts_dod_roots(listing: &str) -> bool {
    listing.lines().any(|line| {
        let Some((name, trust)) = line.trim_end().rsplit_once(char::is_whitespace) else {
            return false;
        };
        name.to_ascii_lowercase().contains("dod root ca")
            && trust.split(',').next().is_some_and(|ssl| ssl.contains('C'))
    })
}

/// `doctor --fix`'s part for the NSS database Chrome and Chromium use: files made by root in a
/// person's database (the classic `sudo certutil` mistake) given back to the home's owner when
/// running as root; OpenSC or CACKey registered beside CAC Bridge (the card twice, two PIN
/// prompts) unregistered, only when running as the database's user (as root NSS would load
/// that user's libraries). One line per thing done or left, saying what.
pub fn fix_nssdb(home: &Path) -> Vec<String> {
    let mut said = Vec::new();
    let dir = nssdb(home);
    if let Some(owner) = root_on_anothers_home(home) {
        let gid = std::fs::symlink_metadata(home)
            .ok()
            .and_then(|m| owner_of(&m))
            .map_or(owner, |(_, gid)| gid);
        said.extend(give_back_nssdb(home, owner, gid));
        said.push(format!(
            "not fixed as root: {} is uid {owner}'s; run `cacbridge-host doctor --fix` as that user (without sudo) for the rest",
            home.display()
        ));
        return said;
    }
    if !dir.exists() {
        return said;
    }
    // Only with CAC Bridge registered: removing the other module must not leave no way to the card.
    let text = if matches!(registered_library(&dir), Ok(Some(_))) {
        std::fs::read_to_string(dir.join("pkcs11.txt")).unwrap_or_default()
    } else {
        String::new()
    };
    let database = format!("sql:{}", dir.display());
    for (name, library) in registrations(&text) {
        let lower = library.to_ascii_lowercase();
        if name == MODULE_NAME || !(lower.contains("opensc") || lower.contains("cackey")) {
            continue;
        }
        said.push(
            match nss_tool("modutil", &["-dbdir", &database, "-delete", name, "-force"]) {
                Ok(_) => format!(
                    "fixed: {name} ({library}) unregistered from {}: the card shows once",
                    dir.display()
                ),
                Err(err) => format!("not fixed: {name}: {err}"),
            },
        );
    }
    // Files of the database that are not the home owner's (root's, after `sudo certutil`).
    if let Some((uid, _)) = std::fs::metadata(home).ok().and_then(|m| owner_of(&m)) {
        let misowned = files_not_owned_by(&dir, uid);
        if !misowned.is_empty() {
            said.push(format!(
                "not fixed: {} belongs to another user; run `sudo cacbridge-host doctor --fix` to give it back",
                misowned[0].display()
            ));
        }
    }
    said
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
        add_firefox_policy(&file, module, false).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(value["policies"]["DisableTelemetry"], true);
        assert_eq!(
            value["policies"]["SecurityDevices"]["Add"][MODULE_NAME],
            module.to_str().unwrap()
        );
        assert!(remove_firefox_policy(&file).unwrap().is_some());
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(value["policies"]["DisableTelemetry"], true);
        assert!(value["policies"]["SecurityDevices"]["Add"]
            .get(MODULE_NAME)
            .is_none());

        std::fs::write(&file, "{ damaged").unwrap();
        assert!(add_firefox_policy(&file, module, false)
            .unwrap_err()
            .contains("not changed"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{ damaged");
    }

    #[test]
    fn system_integration_adds_the_addon_and_module_and_takes_exactly_them_back() {
        let root = tempfile::tempdir().unwrap();
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
        assert_eq!(
            system_integration(root.path(), false, module).unwrap(),
            None
        );

        // The administrator's own entries for the add-on (a block) and the module name (their
        // path): neither replaced on install nor removed on removal.
        let theirs = serde_json::json!({"policies": {
            "ExtensionSettings": {FIREFOX_EXTENSION_ID: {"installation_mode": "blocked"}},
            "SecurityDevices": {"Add": {MODULE_NAME: "/opt/site/approved-pkcs11.so"}}}});
        std::fs::write(&file, theirs.to_string()).unwrap();
        let said = system_integration(root.path(), true, module)
            .unwrap()
            .unwrap();
        assert!(said.contains("administrator's own"), "{said}");
        let during: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(during, theirs);
        system_integration(root.path(), false, module).unwrap();
        let after: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(after, theirs);
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
            serde_json::from_str(include_str!("../../packaging/firefox/cacbridge.json")).unwrap();
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
