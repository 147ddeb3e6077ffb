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
    write(&marker, "CAC Bridge's module was registered for this person once; `cacbridge-host uninstall` takes it out for good.\n")?;
    Ok(done)
}

/// Whether CAC Bridge's registration in `home`'s NSS database is newer than `started` (the
/// browser's start): that browser has not loaded the module yet and must be restarted once.
pub fn registered_since(home: &Path, started: std::time::SystemTime) -> bool {
    let listing = nssdb(home).join("pkcs11.txt");
    matches!(registered_library(&nssdb(home)), Ok(Some(_)))
        && std::fs::metadata(listing)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified > started)
}
