//! `browser-setup`: what a mutual-TLS portal needs of the browser that started this host, as
//! far as files tell (docs/protocol.md): CAC Bridge's module registered, the DoD roots trusted.
//! No card is touched; the NSS tools run on a blocking thread.

use serde_json::json;

use crate::caller::Caller;
use crate::messaging::protocol::{ErrorCode, Outbound, RequestId, WireError};
use crate::messaging::Route;

pub fn route(id: RequestId, caller: &Caller) -> Route {
    let (family, browser) = (caller.family(), caller.browser_process());
    Route::Deferred(Box::pin(async move {
        let home = dirs::home_dir().unwrap_or_default();
        let setup = tokio::task::spawn_blocking(move || {
            let state = crate::logging::state_dir();
            crate::module_install::browser_setup(&home, state.as_deref(), family, browser)
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
