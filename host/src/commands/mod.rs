//! Command handlers: what each protocol command does, one file a command. The messaging layer
//! hands requests to [`Host`] through its [`Handler`] trait. Card work runs on the card lane:
//! one operation at a time, in arrival order, on a blocking thread; cheap commands are answered
//! at once and never wait behind it.

pub mod authenticate;
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
use cacbridge_card::{CardCertificate, CardError, Purpose, SignatureInput, Token};

use crate::caller::{self, Caller};
use crate::messaging::protocol::{ErrorCode, Outbound, Request, RequestId, WireError};
use crate::messaging::{Handler, Route};
use crate::policy::Policy;
use authenticate::AuthenticateRequest;
use sign::SignRequest;

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
    TlsPin,
    TlsCancel,
    BrowserSetup,
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
            "tls-pin" => Command::TlsPin,
            "tls-cancel" => Command::TlsCancel,
            "browser-setup" => Command::BrowserSetup,
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
    /// TLS signatures from the browser's PKCS#11 module waiting for the window's PIN.
    windows: Arc<tls::PendingWindows>,
    /// One TLS PIN window at a time: handshakes that start together wait for the first PIN
    /// and then sign with the PIN it held.
    tls_window_turn: tokio::sync::Mutex<()>,
    /// PINs held for TLS logins, until the policy's timeout.
    pin_sessions: Arc<tls::PinSessions>,
}

impl Host {
    pub fn new(caller: Caller, token: Box<dyn Token>, policy: Policy) -> Self {
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
        F: FnOnce(&mut dyn Token) -> Result<T, WireError> + Send + 'static,
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

    /// `tls-sign` from the browser's PKCS#11 module (the local channel): with a PIN held from
    /// an earlier TLS login on this card, the card verifies it, signs and logs out at once;
    /// otherwise CAC Bridge's window collects the PIN, then the card signs. A wrong PIN lets
    /// the person try again.
    pub async fn tls_sign(
        &self,
        arguments: &crate::messaging::protocol::Arguments,
    ) -> Result<serde_json::Value, WireError> {
        let request = tls::TlsSignRequest::parse(arguments)?;
        let input = request.input.clone();
        let certificate = self
            .on_lane(move |token| tls::tls_certificate(token, &request))
            .await?;
        let _turn = self.tls_window_turn.lock().await;
        if let Some(held) = self
            .pin_sessions
            .held(&certificate.reader, &certificate.info.id)
        {
            let (on_card, signed_input) = (certificate.clone(), input.clone());
            let signed = self
                .on_lane(move |token| {
                    // Another card, or this one taken out and back: the PIN is not its.
                    if token.insertion(&on_card.reader)?.as_ref() != Some(&held.insertion) {
                        return Ok(None);
                    }
                    Ok(Some(token.sign_input(
                        &on_card,
                        &signed_input,
                        Some(&held.pin),
                    )))
                })
                .await;
            match signed {
                Ok(Some(Ok(signature))) => {
                    tracing::info!("TLS signature with the PIN held for this login");
                    return Ok(tls::signature_result(&signature));
                }
                // Wrong now (changed elsewhere), blocked, removed: never sent again.
                Ok(Some(Err(err))) => {
                    self.pin_sessions.end(&certificate.reader);
                    tracing::info!(%err, "the held PIN did not sign; asking the window");
                    if !matches!(err, CardError::PinIncorrect { .. }) {
                        return Err(err.into());
                    }
                }
                Ok(None) => {
                    self.pin_sessions.end(&certificate.reader);
                    tracing::info!("another card insertion: the held PIN is forgotten");
                }
                Err(err) => {
                    self.pin_sessions.end(&certificate.reader);
                    return Err(err);
                }
            }
        }
        self.sign_after_window(certificate, input).await
    }

    /// Ask CAC Bridge's window for the PIN and sign with it; a wrong PIN lets the person try
    /// again, until they cancel or the window times out.
    async fn sign_after_window(
        &self,
        certificate: CardCertificate,
        input: SignatureInput,
    ) -> Result<serde_json::Value, WireError> {
        let sink = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(mpsc::WeakSender::upgrade)
            .ok_or_else(tls::window_unavailable)?;
        let (id, mut attempts) = self.windows.open();
        let event = Outbound::Event {
            event: "pin-request",
            data: tls::pin_request_event(&id, &certificate),
        };
        if sink.send(event).await.is_err() {
            self.windows.close(&id);
            return Err(tls::window_unavailable());
        }
        drop(sink);
        tracing::info!(request = %id, "TLS signature waiting for the window");
        let session = self.policy.tls_pin_session();
        let deadline = tokio::time::Instant::now() + tls::WINDOW_TIMEOUT;
        let outcome = loop {
            let attempt = match tokio::time::timeout_at(deadline, attempts.recv()).await {
                Err(_) => {
                    break Err(WireError::new(
                        ErrorCode::WindowTimeout,
                        "nobody typed the PIN in time",
                    ))
                }
                Ok(None) => {
                    break Err(WireError::new(
                        ErrorCode::WindowCancelled,
                        "the person cancelled",
                    ))
                }
                Ok(Some(attempt)) => attempt,
            };
            let (on_card, signed_input) = (certificate.clone(), input.clone());
            let tls::PinAttempt { pin, outcome } = attempt;
            let signed = self
                .on_lane(move |token| {
                    // The insertion before and after: a PIN is held only for the card that
                    // took it, never for one swapped in meanwhile.
                    let before = token.insertion(&on_card.reader).ok().flatten();
                    let signature = token
                        .sign_input(&on_card, &signed_input, Some(&pin))
                        .map_err(WireError::from)?;
                    let after = token.insertion(&on_card.reader).ok().flatten();
                    let insertion = before.filter(|before| after.as_ref() == Some(before));
                    Ok((signature, insertion, pin))
                })
                .await;
            match signed {
                Ok((signature, insertion, pin)) => {
                    let _ = outcome.send(Ok(()));
                    match insertion {
                        Some(insertion) if !session.is_zero() => {
                            self.hold_pin(&certificate, insertion, &pin, session);
                        }
                        _ => {}
                    }
                    break Ok(tls::signature_result(&signature));
                }
                Err(err) if err.code == ErrorCode::PinIncorrect => {
                    let _ = outcome.send(Err(err));
                }
                Err(err) => {
                    let _ = outcome.send(Err(err.clone()));
                    break Err(err);
                }
            }
        };
        self.windows.close(&id);
        outcome
    }

    /// Hold `pin` for TLS logins with `certificate` on this insertion for `length`, and forget
    /// it then.
    fn hold_pin(
        &self,
        certificate: &CardCertificate,
        insertion: cacbridge_card::CardInsertion,
        pin: &cacbridge_card::Pin,
        length: std::time::Duration,
    ) {
        let reader = certificate.reader.clone();
        let Some(until) =
            self.pin_sessions
                .start(&reader, insertion, &certificate.info.id, pin, length)
        else {
            return;
        };
        let sessions = Arc::clone(&self.pin_sessions);
        tokio::spawn(async move {
            tokio::time::sleep_until(until).await;
            if sessions.end_if(&reader, until) {
                tracing::info!(%reader, "TLS login ended: the held PIN is wiped");
            }
        });
    }

    /// Forget every held PIN (the host is ending).
    pub fn end_pin_sessions(&self) {
        self.pin_sessions.end_all();
    }

    /// Queue `work` on the card lane; its reply is written when it is done.
    fn card_work<F, T>(&self, id: RequestId, work: F) -> Route
    where
        F: FnOnce(&mut dyn Token) -> Result<T, WireError> + Send + 'static,
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
        F: FnOnce(&mut dyn Token, A) -> Result<T, WireError> + Send + 'static,
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
            Command::BrowserSetup => {
                let chromium = matches!(self.caller, Caller::Chromium { .. });
                Route::Deferred(Box::pin(async move {
                    let home = dirs::home_dir().unwrap_or_default();
                    let setup = tokio::task::spawn_blocking(move || {
                        crate::module_install::browser_setup(&home, chromium)
                    })
                    .await;
                    match setup {
                        Ok(setup) => Outbound::Result {
                            id,
                            result: json!(setup),
                        },
                        Err(_) => Outbound::error(
                            Some(id),
                            WireError::new(
                                ErrorCode::Internal,
                                "could not read the browser's setup",
                            ),
                        ),
                    }
                }))
            }
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
