//! `dod-roots` and `trust-dod-roots`: the DoD root CAs in the browser that started this host
//! (the Chrome family's `~/.pki/nssdb`, Firefox's profile), each with its SHA-256 fingerprint
//! and where it stands; trusted for web sites only once the person says so in CAC Bridge's
//! popup, and taken out again the same way (docs/protocol.md, module_install/dod_roots.rs). No
//! card is touched; the NSS tools run on a blocking thread.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::caller::Caller;
use crate::messaging::protocol::{Arguments, ErrorCode, Outbound, RequestId, WireError};
use crate::messaging::Route;
use crate::module_install;

/// The NSS database of the browser that started this host, if this host can tell which.
fn database(caller: &Caller) -> Option<PathBuf> {
    let home = dirs::home_dir()?;
    match caller {
        Caller::Chromium { .. } => Some(home.join(".pki/nssdb")),
        Caller::Firefox { .. } => {
            module_install::firefox_profile(&home, cacbridge_channel::parent_of(std::process::id()))
        }
        _ => None,
    }
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
    let (Some(database), Some(state)) = (database(caller), crate::logging::state_dir()) else {
        return Route::Reply(Outbound::error(
            Some(id),
            WireError::new(
                ErrorCode::BrowserSetupFailed,
                "this browser's certificate database is not known to CAC Bridge",
            ),
        ));
    };
    Route::Deferred(Box::pin(async move {
        let answer = tokio::task::spawn_blocking(move || {
            let done = match trust {
                Some(true) => module_install::trust_dod_roots(&database, &state)?,
                Some(false) => module_install::untrust_dod_roots(&database, &state)?,
                None => Vec::new(),
            };
            for line in &done {
                tracing::info!(%line, "DoD roots");
            }
            module_install::roots_in(&database, &state).map(|roots| (roots, done.len()))
        })
        .await;
        match answer {
            Ok(Ok((roots, changed))) => Outbound::Result {
                id,
                result: json!({ "roots": roots, "changed": changed }),
            },
            Ok(Err(err)) => Outbound::error(
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
