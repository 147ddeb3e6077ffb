//! Command handlers: what each protocol command does, one file a command. The messaging layer
//! hands requests to [`Host`] through its [`Handler`] trait. Card work runs on the card lane:
//! one operation at a time, in arrival order, on a blocking thread; cheap commands are answered
//! at once and never wait behind it.

pub mod authenticate;
pub mod browser_setup;
pub mod dod_roots;
pub mod list_certificates;
pub mod rules;
pub mod sign;
pub mod status;
pub mod subscribe;
pub mod tls;
pub mod version;

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use cacbridge_card::monitor::Monitor;
use cacbridge_card::{Backend, Purpose};

use crate::caller::{self, Caller};
use crate::messaging::protocol::{ErrorCode, Outbound, Request, RequestId, WireError};
use crate::messaging::{Handler, Route};
use crate::policy::Policy;
use authenticate::AuthenticateRequest;
use sign::SignRequest;

/// The protocol commands; their wire names are the variants' in kebab case (generated into the
/// extension's wire.js).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Command {
    Version,
    Quit,
    Status,
    ListCertificates,
    Subscribe,
    Authenticate,
    Sign,
    TlsPin,
    TlsCancel,
    BrowserSetup,
    DodRoots,
    TrustDodRoots,
}

impl Command {
    pub fn from_name(name: &str) -> Option<Self> {
        Self::all().find(|command| command.name() == name)
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn all() -> impl Iterator<Item = Command> {
        <Command as strum::IntoEnumIterator>::iter()
    }
}

/// The events the host sends; their wire names are the variants' in kebab case (generated
/// into the extension's wire.js).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Event {
    ReaderAdded,
    ReaderRemoved,
    CardInserted,
    CardRemoved,
    /// CAC Bridge's window is wanted for a TLS signature (commands/tls.rs).
    PinRequest,
}

impl Event {
    /// The wire name.
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn all() -> impl Iterator<Item = Event> {
        <Event as strum::IntoEnumIterator>::iter()
    }

    /// The events `subscribe` delivers.
    pub const READER_EVENTS: [Event; 4] = [
        Event::ReaderAdded,
        Event::ReaderRemoved,
        Event::CardInserted,
        Event::CardRemoved,
    ];
}

type SharedBackend = Arc<tokio::sync::Mutex<Box<dyn Backend>>>;

/// State shared by every request of one host process.
pub struct Host {
    caller: Caller,
    /// The card lane: tokio's mutex is fair, so card operations run in arrival order.
    token: SharedBackend,
    /// Where events go; weak, so that it does not keep the writer alive.
    events: Mutex<Option<mpsc::WeakSender<Outbound>>>,
    monitor: Mutex<Option<Monitor>>,
    policy: Policy,
    /// TLS signatures from the browser's PKCS#11 module waiting for the window's PIN.
    windows: Arc<tls::PendingWindows>,
    /// One TLS PIN window at a time: handshakes that start together wait for the first PIN
    /// and then sign with the PIN it held.
    tls_window_turn: tokio::sync::Mutex<()>,
    /// PINs held for TLS logins, until the policy's timeout.
    pin_sessions: Arc<tls::PinSessions>,
}

impl Host {
    pub fn new(caller: Caller, token: Box<dyn Backend>, policy: Policy) -> Self {
        Self {
            caller,
            token: Arc::new(tokio::sync::Mutex::new(token)),
            events: Mutex::new(None),
            monitor: Mutex::new(None),
            policy,
            windows: Arc::default(),
            tls_window_turn: tokio::sync::Mutex::new(()),
            pin_sessions: Arc::default(),
        }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Browsers enforce the manifest's allow-list; this is the host's own check. Only a launch
    /// with no arguments (a terminal, a Snap/Flatpak portal) is a person's own process; a
    /// browser-shaped launch with an unreadable id is trusted with nothing.
    fn trusted(&self) -> bool {
        self.caller.is_own_process()
            || self
                .caller
                .extension_id()
                .is_some_and(caller::is_allowed_extension)
    }

    /// Something that queues a read of the authentication certificates (of one reader's card,
    /// or of all) on the card lane, answering nobody: a request arriving meanwhile waits its
    /// turn on the lane and then finds them in the card layer's cache.
    fn prefetcher(&self) -> impl Fn(Option<String>) + Send + 'static {
        let token = self.token.clone();
        let runtime = tokio::runtime::Handle::try_current().ok();
        move |reader: Option<String>| {
            let Some(runtime) = &runtime else { return };
            let token = token.clone();
            runtime.spawn(async move {
                let mut lane = token.lock_owned().await;
                let _ = tokio::task::spawn_blocking(move || {
                    let read = lane.certificates_for(reader.as_deref(), Purpose::Authentication);
                    match read {
                        Ok(found) => tracing::debug!(?reader, found = found.len(), "prefetched"),
                        Err(err) => tracing::debug!(?reader, %err, "nothing prefetched"),
                    }
                })
                .await;
            });
        }
    }

    /// Run `work` on the card lane (in arrival order, on a blocking thread) and wait for it.
    async fn on_lane<F, T>(&self, work: F) -> Result<T, WireError>
    where
        F: FnOnce(&mut dyn Backend) -> Result<T, WireError> + Send + 'static,
        T: Send + 'static,
    {
        let mut lane = self.token.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || work(lane.as_mut()))
            .await
            .unwrap_or_else(|panic| {
                tracing::error!(%panic, "card operation panicked");
                Err(WireError::new(
                    ErrorCode::Internal,
                    "the card operation failed unexpectedly",
                ))
            })
    }

    /// Queue `work` on the card lane; its reply is written when it is done.
    fn card_work<F, T>(&self, id: RequestId, work: F) -> Route
    where
        F: FnOnce(&mut dyn Backend) -> Result<T, WireError> + Send + 'static,
        T: Serialize + Send + 'static,
    {
        let token = self.token.clone();
        Route::Deferred(Box::pin(async move {
            let mut lane = token.lock_owned().await;
            let outcome = tokio::task::spawn_blocking(move || work(lane.as_mut())).await;
            let result = match outcome {
                Ok(Ok(result)) => serde_json::to_value(result).map_err(|err| {
                    WireError::new(ErrorCode::Internal, format!("unencodable result: {err}"))
                }),
                Ok(Err(error)) => Err(error),
                Err(panic) => {
                    tracing::error!(%panic, "card operation panicked");
                    Err(WireError::new(
                        ErrorCode::Internal,
                        "the card operation failed unexpectedly",
                    ))
                }
            };
            match result {
                Ok(result) => Outbound::Result { id, result },
                Err(error) => Outbound::error(Some(id), error),
            }
        }))
    }

    /// The card lane's work for a request whose arguments parsed, or the argument error now.
    fn checked<A, F, T>(&self, id: RequestId, parsed: Result<A, WireError>, work: F) -> Route
    where
        A: Send + 'static,
        F: FnOnce(&mut dyn Backend, A) -> Result<T, WireError> + Send + 'static,
        T: Serialize + Send + 'static,
    {
        match parsed {
            Ok(arguments) => self.card_work(id, move |token| work(token, arguments)),
            Err(err) => Route::Reply(Outbound::error(Some(id), err)),
        }
    }
}

impl Handler for Host {
    fn attach_events(&self, sink: mpsc::WeakSender<Outbound>) {
        *self.events.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }

    fn route(&self, request: Request) -> Route {
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
        if !self.trusted() && !matches!(command, Command::Version | Command::Quit) {
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
                result: json!(version::version()),
            }),
            Command::Quit => Route::Quit(Outbound::Result {
                id,
                result: json!({}),
            }),
            Command::Subscribe => {
                let sink = self
                    .events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let mut monitor = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
                let subscribed = subscribe::subscribe(&mut monitor, sink, self.prefetcher());
                Route::Reply(Outbound::Result {
                    id,
                    result: json!(subscribed),
                })
            }
            Command::Status => self.card_work(id, status::status),
            Command::ListCertificates => self.checked(
                id,
                list_certificates::ListRequest::parse(&arguments),
                list_certificates::list_certificates,
            ),
            Command::Authenticate => self.checked(
                id,
                AuthenticateRequest::parse(&arguments, &self.policy),
                authenticate::authenticate,
            ),
            Command::Sign => {
                self.checked(id, SignRequest::parse(&arguments, &self.policy), sign::sign)
            }
            Command::TlsPin => match tls::pin_attempt(&arguments) {
                Err(err) => Route::Reply(Outbound::error(Some(id), err)),
                Ok((request, pin)) => {
                    let windows = Arc::clone(&self.windows);
                    Route::Deferred(Box::pin(async move {
                        match tls::deliver_pin(&windows, &request, pin).await {
                            Ok(result) => Outbound::Result { id, result },
                            Err(err) => Outbound::error(Some(id), err),
                        }
                    }))
                }
            },
            Command::BrowserSetup => browser_setup::route(id, &self.caller),
            Command::DodRoots => dod_roots::route(id, &self.caller, &arguments, false),
            Command::TrustDodRoots => dod_roots::route(id, &self.caller, &arguments, true),
            Command::TlsCancel => {
                if let Ok(request) = crate::arguments::required_string(&arguments, "requestId") {
                    self.windows.close(request);
                }
                Route::Reply(Outbound::Result {
                    id,
                    result: json!({}),
                })
            }
        }
    }
}
