//! Command handlers: what each protocol command does. The messaging layer hands requests to
//! [`Host::route`]. Card work runs on the card lane: one operation at a time, in arrival order,
//! on a blocking thread; cheap commands are answered at once and never wait behind it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use cacbridge_card::monitor::{self, Monitor};
use cacbridge_card::Token;

use crate::arguments::optional_string;
use crate::caller::Caller;
use crate::messaging::protocol::{
    ErrorCode, Outbound, Request, RequestId, WireError, PROTOCOL_VERSION,
};
use crate::policy::Policy;
use crate::signing;
use crate::views;

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
    Status,
    ListCertificates,
    Subscribe,
    Authenticate,
    Sign,
}

impl Command {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "version" => Command::Version,
            "quit" => Command::Quit,
            "status" => Command::Status,
            "list-certificates" => Command::ListCertificates,
            "subscribe" => Command::Subscribe,
            "authenticate" => Command::Authenticate,
            "sign" => Command::Sign,
            _ => return None,
        })
    }
}

type SharedToken = Arc<tokio::sync::Mutex<Box<dyn Token>>>;

/// State shared by every request of one host process.
pub struct Host {
    caller: Caller,
    /// The card lane: tokio's mutex is fair, so card operations run in arrival order.
    token: SharedToken,
    /// Where events go; weak, so that it does not keep the writer alive.
    events: Mutex<Option<mpsc::WeakSender<Outbound>>>,
    monitor: Mutex<Option<Monitor>>,
    policy: Policy,
    allowed_extensions: Vec<String>,
}

impl Host {
    pub fn new(caller: Caller, token: Box<dyn Token>, policy: Policy) -> Self {
        Self {
            caller,
            token: Arc::new(tokio::sync::Mutex::new(token)),
            events: Mutex::new(None),
            monitor: Mutex::new(None),
            policy,
            allowed_extensions: crate::install::allowed_extension_ids(),
        }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Called by the serve loop: where unsolicited events are to be written.
    pub fn attach_events(&self, sink: mpsc::WeakSender<Outbound>) {
        *self.events.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }

    pub fn route(&self, request: Request) -> Route {
        let Request {
            id,
            command,
            arguments,
        } = request;
        let Some(command) = Command::from_name(&command) else {
            let mut shown = command;
            shown.truncate(64);
            return Route::Reply(Outbound::error(
                Some(id),
                WireError::new(
                    ErrorCode::UnknownCommand,
                    format!("unknown command {shown:?}"),
                )
                .with_detail("command", shown),
            ));
        };
        // Browsers enforce the manifest's allow-list; this is the host's own check. Only a
        // launch with no arguments (a terminal, a Snap/Flatpak portal) is a person's own
        // process; a browser-shaped launch with an unreadable id is trusted with nothing.
        let trusted = self.caller.is_own_process()
            || self
                .caller
                .extension_id()
                .is_some_and(|id| self.allowed_extensions.iter().any(|allowed| allowed == id));
        if !trusted && !matches!(command, Command::Version | Command::Quit) {
            return Route::Reply(Outbound::error(
                Some(id),
                WireError::new(
                    ErrorCode::CallerNotAllowed,
                    "only the CAC Bridge extension may use this host",
                ),
            ));
        }
        match command {
            Command::Version => Route::Reply(Outbound::Result {
                id,
                result: version_result(),
            }),
            Command::Quit => Route::Quit(Outbound::Result {
                id,
                result: json!({}),
            }),
            Command::Subscribe => Route::Reply(self.subscribe(id)),
            Command::Status => self.card_work(id, |token| {
                let readers = token.readers().map_err(|e| views::card_error(&e))?;
                Ok(json!({
                    "backend": token.name(),
                    "readers": readers.iter().map(views::reader).collect::<Vec<_>>(),
                }))
            }),
            Command::Authenticate => {
                match signing::authenticate_request(&arguments, &self.policy) {
                    Ok(request) => {
                        self.card_work(id, move |token| signing::authenticate(token, request))
                    }
                    Err(err) => Route::Reply(Outbound::error(Some(id), err)),
                }
            }
            Command::Sign => match signing::sign_request(&arguments, &self.policy) {
                Ok(request) => self.card_work(id, move |token| signing::sign(token, request)),
                Err(err) => Route::Reply(Outbound::error(Some(id), err)),
            },
            Command::ListCertificates => {
                let reader = match optional_string(&arguments, "reader") {
                    Ok(reader) => reader,
                    Err(err) => return Route::Reply(Outbound::error(Some(id), err)),
                };
                self.card_work(id, move |token| {
                    let certificates = token
                        .certificates(reader.as_deref())
                        .map_err(|e| views::card_error(&e))?;
                    Ok(json!({
                        "certificates": certificates.iter().map(views::certificate).collect::<Vec<_>>(),
                    }))
                })
            }
        }
    }

    /// Queue `work` on the card lane; its reply is written when it is done.
    fn card_work<F>(&self, id: RequestId, work: F) -> Route
    where
        F: FnOnce(&mut dyn Token) -> Result<Value, WireError> + Send + 'static,
    {
        let token = self.token.clone();
        Route::Deferred(Box::pin(async move {
            let mut lane = token.lock_owned().await;
            let outcome = tokio::task::spawn_blocking(move || work(lane.as_mut())).await;
            match outcome {
                Ok(Ok(result)) => Outbound::Result { id, result },
                Ok(Err(error)) => Outbound::error(Some(id), error),
                Err(panic) => {
                    tracing::error!(%panic, "card operation panicked");
                    Outbound::error(
                        Some(id),
                        WireError::new(
                            ErrorCode::Internal,
                            "the card operation failed unexpectedly",
                        ),
                    )
                }
            }
        }))
    }

    fn subscribe(&self, id: RequestId) -> Outbound {
        let mut monitor = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        if monitor.is_none() {
            let sink = self
                .events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            *monitor = Some(monitor::watch(move |event| {
                let Some(sender) = sink.as_ref().and_then(mpsc::WeakSender::upgrade) else {
                    return false; // nobody is listening any more
                };
                let (name, data) = views::event(&event);
                tracing::info!(event = name, "reader event");
                sender
                    .blocking_send(Outbound::Event { event: name, data })
                    .is_ok()
            }));
        }
        Outbound::Result {
            id,
            result: json!({ "events": ["reader-added", "reader-removed", "card-inserted", "card-removed"] }),
        }
    }
}

pub fn version_result() -> Value {
    json!({ "version": HOST_VERSION, "protocol": PROTOCOL_VERSION })
}
