//! `browser-setup`: what a mutual-TLS portal needs of the browser that started this host, as
//! far as files tell (docs/protocol.md): CAC Bridge's module registered, the DoD roots trusted.
//! No card is touched; the NSS tools run on a blocking thread.

use serde_json::json;

use crate::caller::Caller;
use crate::messaging::protocol::{ErrorCode, Outbound, RequestId, WireError};
use crate::messaging::Route;

pub fn route(id: RequestId, caller: &Caller) -> Route {
    let chromium = matches!(caller, Caller::Chromium { .. });
    Route::Deferred(Box::pin(async move {
        let home = dirs::home_dir().unwrap_or_default();
        // The browser is this host's parent: it started it.
        let browser = cacbridge_channel::parent_of(std::process::id());
        let browser_started = browser
            .and_then(cacbridge_channel::ProcessIdentity::of)
            .and_then(|browser| browser.started_at());
        let setup = tokio::task::spawn_blocking(move || {
            let state = crate::logging::state_dir();
            let profile = (!chromium)
                .then(|| crate::module_install::firefox_profile(&home, browser))
                .flatten();
            crate::module_install::browser_setup(
                &home,
                state.as_deref(),
                chromium,
                browser_started,
                profile.as_deref(),
            )
        })
        .await;
        match setup {
            Ok(setup) => Outbound::Result {
                id,
                result: json!(setup),
            },
            Err(_) => Outbound::error(
                Some(id),
                WireError::new(ErrorCode::Internal, "could not read the browser's setup"),
            ),
        }
    }))
}
