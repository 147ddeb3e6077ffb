//! The first time a Chrome-family browser starts this host for a person, CAC Bridge's module
//! goes into their NSS database, where Chrome and Chromium load it at their next start: no
//! person needs `cacbridge-host install` after the packages (docs/install.md). Once only: a
//! marker in the person's state directory remembers it, so that someone who takes the module
//! out again (`cacbridge-host uninstall`) keeps it out.

use super::*;

/// The marker's name, under the host's state directory (`~/.local/state/cacbridge`).
const MARKER: &str = "module-registered";

/// What the first start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstStart {
    /// Not the first start, or the module was there already: nothing done.
    Nothing,
    /// The module was registered now: the browser loads it once restarted.
    Registered(String),
}

/// Register the module in `home`'s NSS database unless this was done once before (`state`
/// holds the marker) or it is there already. `host` is this program, beside which (or in the
/// package's library directory) the module is found.
pub fn register_at_first_start(
    home: &Path,
    state: &Path,
    host: &Path,
) -> Result<FirstStart, InstallError> {
    // Root on another's home parses, loads and follows nothing there.
    if root_on_anothers_home(home).is_some() {
        return Ok(FirstStart::Nothing);
    }
    let marker = state.join(MARKER);
    if marker.exists() {
        return Ok(FirstStart::Nothing);
    }
    let done = if matches!(registered_library(&nssdb(home)), Ok(Some(_))) {
        FirstStart::Nothing
    } else {
        let module = find_module(host).ok_or_else(|| InstallError::NoModule(host.to_owned()))?;
        let library = browser_library(home, &module)?;
        FirstStart::Registered(register_nssdb(home, &library)?)
    };
    // The time of a registration made here, which a browser started earlier has not loaded
    // (the NSS database's own files are no clock: browsers rewrite them as they open them).
    let when = match &done {
        FirstStart::Registered(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_secs_f64().to_string())
            .unwrap_or_default(),
        FirstStart::Nothing => "found".to_owned(),
    };
    write(
        &marker,
        format!("{when}\nCAC Bridge's module was registered for this person once; `cacbridge-host uninstall` takes it out for good.\n"),
    )?;
    Ok(done)
}

/// Whether the first start registered the module after `started` (the browser's start): that
/// browser has not loaded it yet and must be restarted once. `state` holds the marker.
pub fn registered_since(home: &Path, state: &Path, started: std::time::SystemTime) -> bool {
    matches!(registered_library(&nssdb(home)), Ok(Some(_)))
        && registered_at(state).is_some_and(|at| at > started)
}

/// When the first start registered the module, as its marker says (`None`: no marker, or the
/// module was found there already).
fn registered_at(state: &Path) -> Option<std::time::SystemTime> {
    let text = std::fs::read_to_string(state.join(MARKER)).ok()?;
    let secs: f64 = text.lines().next()?.parse().ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::try_from_secs_f64(secs).ok()?)
}

/// Take out what the first start registered: CAC Bridge's module in `home`'s NSS database when
/// the first start put it there (the marker says when) and it still names the library it
/// registered, and the marker. Another registration (the person's own install) stays. What
/// the package's removal runs for every user, as that user. One line per thing done.
pub fn forget_first_start(home: &Path, state: &Path) -> Result<Vec<String>, InstallError> {
    let marker = state.join(MARKER);
    if !marker.exists() {
        return Ok(Vec::new());
    }
    let mut done = Vec::new();
    let registered_here = registered_at(state).is_some();
    let dir = nssdb(home);
    let ours = registered_library(&dir)
        .ok()
        .flatten()
        .is_some_and(|library| {
            Path::new(&library)
                .file_name()
                .is_some_and(|name| name == BROWSER_LIBRARY)
        });
    if registered_here && ours {
        nss_tool(
            "modutil",
            &["-dbdir", &sql(&dir), "-delete", MODULE_NAME, "-force"],
        )?;
        done.push(format!("{}: CAC Bridge's module removed", dir.display()));
    }
    std::fs::remove_file(&marker).map_err(at(&marker))?;
    let _ = std::fs::remove_dir(state);
    Ok(done)
}
