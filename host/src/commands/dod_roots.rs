//! `dod-roots` and `trust-dod-roots`: the DoD root CAs in the browser that started this host
//! (the Chrome family's `~/.pki/nssdb`, Firefox's profile), each with its SHA-256 fingerprint
//! and where it stands; trusted for web sites only once the person says so in CAC Bridge's
//! popup, and taken out again the same way (docs/protocol.md, module_install/dod_roots.rs). No
//! card is touched; the NSS tools run on a blocking thread.

use serde_json::{json, Value};

use crate::caller::Caller;
use crate::messaging::protocol::{Arguments, ErrorCode, Outbound, RequestId, WireError};
use crate::messaging::Route;
use crate::module_install;

/// Trust (or take out) the roots as `trust` says, then where they stand, with the number of
/// roots changed.
fn apply(
    database: &std::path::Path,
    state: &std::path::Path,
    trust: Option<bool>,
) -> Result<(Vec<module_install::RootState>, usize), module_install::InstallError> {
    let done = match trust {
        Some(true) => module_install::trust_dod_roots(database, state)?,
        Some(false) => module_install::untrust_dod_roots(database, state)?,
        None => Vec::new(),
    };
    for line in &done {
        tracing::info!(%line, "DoD roots");
    }
    module_install::roots_in(database, state).map(|roots| (roots, done.len()))
}

/// `trust`: `None` only reads (`dod-roots`), `Some(true)` trusts, `Some(false)` takes out
/// what CAC Bridge added.
pub fn route(id: RequestId, caller: &Caller, arguments: &Arguments, change: bool) -> Route {
    let trust = if change {
        match arguments.get("trust") {
            Some(Value::Bool(trust)) => Some(*trust),
            _ => {
                return Route::Reply(Outbound::error(
                    Some(id),
                    crate::arguments::invalid("trust", "type", "\"trust\" must be true or false"),
                ))
            }
        }
    } else {
        None
    };
    let (family, browser) = (caller.family(), caller.browser_process());
    Route::Deferred(Box::pin(async move {
        // `None`: the browser's database (or the host's state directory) is not known.
        let answer = tokio::task::spawn_blocking(move || {
            let home = dirs::home_dir()?;
            let database = module_install::browser_database(&home, family?, browser)?;
            let state = crate::logging::state_dir()?;
            Some(apply(&database, &state, trust))
        })
        .await;
        match answer {
            Ok(None) => Outbound::error(
                Some(id),
                WireError::new(
                    ErrorCode::BrowserSetupFailed,
                    "this browser's certificate database is not known to CAC Bridge",
                ),
            ),
            Ok(Some(Ok((roots, changed)))) => Outbound::Result {
                id,
                result: json!({ "roots": roots, "changed": changed }),
            },
            Ok(Some(Err(err))) => Outbound::error(
                Some(id),
                WireError::new(ErrorCode::BrowserSetupFailed, err.to_string()),
            ),
            Err(_) => Outbound::error(
                Some(id),
                WireError::new(
                    ErrorCode::Internal,
                    "could not read the browser's certificates",
                ),
            ),
        }
    }))
}
