//! Command handlers: what each protocol command does. The messaging layer hands requests to
//! [`Host::route`]; card work (later issues) goes through the card lane so that only one card
//! operation runs at a time, while cheap commands are answered at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::json;

use crate::caller::Caller;
use crate::messaging::protocol::{ErrorCode, Outbound, Request, WireError, PROTOCOL_VERSION};

pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the serve loop must handle a request.
pub enum Route {
    /// Already answered; write it.
    Reply(Outbound),
    /// Write the reply, then stop serving and exit 0.
    Quit(Outbound),
    /// Work that must not block the reading of further requests; its reply comes later.
    Deferred(Pin<Box<dyn Future<Output = Outbound> + Send>>),
}

/// The protocol commands. Names are the wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Version,
    Quit,
}

impl Command {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "version" => Some(Command::Version),
            "quit" => Some(Command::Quit),
            _ => None,
        }
    }
}

/// State shared by every request of one host process.
pub struct Host {
    caller: Caller,
    /// Serialises card operations: one at a time, in arrival order (tokio's mutex is fair).
    #[allow(dead_code)] // taken by the card commands of the card-layer issue
    card_lane: Arc<tokio::sync::Mutex<()>>,
}

impl Host {
    pub fn new(caller: Caller) -> Self {
        Self {
            caller,
            card_lane: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    pub fn route(&self, request: Request) -> Route {
        let Some(command) = Command::from_name(&request.command) else {
            let mut shown = request.command.clone();
            shown.truncate(64);
            return Route::Reply(Outbound::error(
                Some(request.id),
                WireError::new(
                    ErrorCode::UnknownCommand,
                    format!("unknown command {shown:?}"),
                )
                .with_detail("command", shown),
            ));
        };
        match command {
            Command::Version => Route::Reply(Outbound::Result {
                id: request.id,
                result: version_result(),
            }),
            Command::Quit => Route::Quit(Outbound::Result {
                id: request.id,
                result: json!({}),
            }),
        }
    }
}

pub fn version_result() -> serde_json::Value {
    json!({ "version": HOST_VERSION, "protocol": PROTOCOL_VERSION })
}
