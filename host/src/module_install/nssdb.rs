//! The NSS shared database Chrome and Chromium read (`~/.pki/nssdb`): CAC Bridge registered
//! with NSS's own `modutil`, what `browser-setup` reads of it, and `doctor --fix`'s repairs. No
//! NSS tool runs as root on another user's database (it would load that user's libraries).

use super::*;
use crate::install::Family;

pub(super) fn nssdb(home: &Path) -> PathBuf {
    home.join(".pki/nssdb")
}

/// The name NSS's tools take for the database in `dir`.
pub(super) fn sql(dir: &Path) -> String {
    format!("sql:{}", dir.display())
}

/// The NSS database of a browser of `family` (`browser`: its process, when known): the Chrome
/// family's `~/.pki/nssdb`, Firefox's profile (its command line's, else profiles.ini's default).
pub fn browser_database(home: &Path, family: Family, browser: Option<u32>) -> Option<PathBuf> {
    match family {
        Family::Chromium => Some(nssdb(home)),
        Family::Firefox => super::firefox_profile(home, browser),
    }
}

/// The database directory an NSS tool's arguments name (`-d` or `-dbdir`, `sql:` stripped).
pub(super) fn database_argument<'a>(args: &[&'a str]) -> Option<&'a str> {
    let at = args.iter().position(|a| *a == "-d" || *a == "-dbdir")?;
    let value = args.get(at + 1)?;
    Some(value.strip_prefix("sql:").unwrap_or(value))
}

/// Run an NSS tool; its output, or why it failed. Never as root on a database another user
/// owns: NSS loads every library the database's pkcs11.txt lists, so that user's code would
/// run as root (the second security review's H1).
pub(super) fn nss_tool(program: &str, args: &[&str]) -> Result<String, InstallError> {
    if own_uid() == Some(0) {
        let owner = database_argument(args).and_then(|dir| {
            std::fs::symlink_metadata(dir)
                .ok()
                .or_else(|| std::fs::symlink_metadata(Path::new(dir).parent()?).ok())
                .and_then(|m| owner_of(&m))
        });
        if owner.is_some_and(|(uid, _)| uid != 0) {
            return Err(InstallError::NssTool(format!(
                "{program} refused: as root it would load the modules another user's database lists; run it as that user"
            )));
        }
    }
    let out = Command::new(program).args(args).output().map_err(|e| {
        InstallError::NssTool(format!("{program}: {e} (apt-get install libnss3-tools)"))
    })?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(InstallError::NssTool(format!(
            "{program} {}: {}",
            args.join(" "),
            text.trim()
        )))
    }
}

/// Give the NSS database under `home` (the directory and its three files), where root made
/// them, back to `uid`:`gid`, as root and without trusting the home's owner: every component
/// is opened without following links (`O_NOFOLLOW`, `O_DIRECTORY` for directories), a file
/// must be a regular file with one link, and the descriptor so checked is what is `fchown`ed.
/// One line per thing done or refused.
#[cfg(unix)]
pub(super) fn give_back_nssdb(home: &Path, uid: u32, gid: u32) -> Vec<String> {
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
pub(super) fn give_back_nssdb(_home: &Path, _uid: u32, _gid: u32) -> Vec<String> {
    Vec::new()
}

/// Files of `dir` that belong to someone other than the user running this.
pub(super) fn foreign_files(dir: &Path) -> Vec<PathBuf> {
    // /proc/self belongs to the user this process runs as.
    own_uid().map_or_else(Vec::new, |me| files_not_owned_by(dir, me))
}

/// The NSS database `dir` itself and its files, those not owned by `uid`.
pub(super) fn files_not_owned_by(dir: &Path, uid: u32) -> Vec<PathBuf> {
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
pub(super) fn registrations(text: &str) -> impl Iterator<Item = (&str, &str)> {
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
pub(super) fn registered_library(dir: &Path) -> Result<Option<String>, InstallError> {
    let file = dir.join("pkcs11.txt");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(at(&file)(err)),
    };
    let library = registrations(&text)
        .find(|(name, _)| *name == MODULE_NAME)
        .map(|(_, library)| library.to_owned());
    Ok(library)
}

pub(super) fn register_nssdb(home: &Path, module: &Path) -> Result<String, InstallError> {
    let dir = nssdb(home);
    let foreign = foreign_files(&dir);
    if !foreign.is_empty() {
        return Err(InstallError::ForeignDatabase {
            path: foreign[0].clone(),
        });
    }
    let database = sql(&dir);
    if !dir.join("cert9.db").exists() {
        std::fs::create_dir_all(&dir).map_err(at(&dir))?;
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

/// What a mutual-TLS login needs from the browser itself, as far as this host can tell from
/// files (`None`: it cannot tell for that browser).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserSetup {
    /// CAC Bridge's PKCS#11 module registered where the browser loads it.
    pub tls_module: Option<bool>,
    /// DoD root CAs trusted for web sites, so that a DoD portal's CAC host loads.
    pub dod_roots: Option<bool>,
    /// The module was registered after the browser started (at this person's first start, say):
    /// the browser loads it once restarted.
    pub module_needs_restart: bool,
}

/// [`BrowserSetup`] for the browser of `family` that started this host (`browser`: its
/// process), from its NSS database ([`browser_database`]). Firefox's extension API answers
/// for the module there, so the host does not.
pub fn browser_setup(
    home: &Path,
    state: Option<&Path>,
    family: Option<Family>,
    browser: Option<u32>,
) -> BrowserSetup {
    let database = family.and_then(|family| browser_database(home, family, browser));
    let dod_roots = database.as_deref().and_then(roots_trusted_in);
    if family != Some(Family::Chromium) {
        return BrowserSetup {
            tls_module: None,
            dod_roots,
            module_needs_restart: false,
        };
    }
    let tls_module = Some(matches!(
        registered_library(&nssdb(home)),
        Ok(Some(path)) if Path::new(&path).is_file()
    ));
    let browser_started = browser
        .and_then(cacbridge_channel::ProcessIdentity::of)
        .and_then(|browser| browser.started_at());
    BrowserSetup {
        tls_module,
        dod_roots,
        module_needs_restart: tls_module == Some(true)
            && browser_started
                .zip(state)
                .is_some_and(|(started, state)| super::registered_since(home, state, started)),
    }
}

/// Whether the NSS database at `dir` trusts a DoD root CA for web sites (`None`: NSS's tools
/// cannot tell).
fn roots_trusted_in(dir: &Path) -> Option<bool> {
    if !dir.join("cert9.db").exists() {
        return Some(false);
    }
    nss_tool("certutil", &["-L", "-d", &sql(dir)])
        .ok()
        .map(|listing| trusts_dod_roots(&listing))
}

/// The nicknames and trust attributes `certutil -L` lists, one pair a certificate (the
/// header's lines have no trust attributes).
pub(super) fn listed_certificates(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let (name, trust) = line.trim_end().rsplit_once(char::is_whitespace)?;
            trust
                .contains(',')
                .then(|| (name.trim().to_owned(), trust.to_owned()))
        })
        .collect()
}

/// Whether NSS trust attributes let a CA issue web server certificates (a `C` in the SSL
/// column).
pub(super) fn trusted_for_web_sites(trust: &str) -> bool {
    trust.split(',').next().is_some_and(|ssl| ssl.contains('C'))
}

/// Whether `certutil -L` lists a DoD root CA trusted to issue web server certificates, as
/// DISA's InstallRoot leaves them.
pub(super) fn trusts_dod_roots(listing: &str) -> bool {
    listed_certificates(listing).iter().any(|(name, trust)| {
        name.to_ascii_lowercase().contains("dod root ca") && trusted_for_web_sites(trust)
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
    let database = sql(&dir);
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
