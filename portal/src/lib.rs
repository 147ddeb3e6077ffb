//! The CAC Bridge reference portal: accounts with passwords, and CAC registration and login
//! through CAC Bridge tokens, as the portal guide describes (log in, My Account ->
//! CAC/Certificate Registration, Register, confirm with the password, print the confirmation;
//! or log in with the CAC, which registers an unregistered card after one password login).

pub mod db;
pub mod pages;
pub mod passwords;
pub mod throttle;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::Connection;
use serde::Deserialize;

use cacbridge_verify::{Identity, NonceStore, Verifier};

/// The signed-in (or card-pending) session. `__Host-`: Secure, Path=/, no Domain, so no
/// sibling host can plant or read it.
pub const SESSION_COOKIE: &str = "__Host-cb_session";
/// An anonymous visitor: only a random id in the browser, nothing in the database, until a
/// form is submitted. Its CSRF token and challenges are derived from it, not stored.
pub const VISITOR_COOKIE: &str = "__Host-cb_visitor";
const SESSION_LIFETIME: i64 = 8 * 3600;
/// A session that holds only a verified but unregistered card.
const PENDING_LIFETIME: i64 = 10 * 60;
/// How often expired sessions and quiet addresses are purged.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

pub struct AppState {
    pub db: Mutex<Connection>,
    pub verifier: Verifier,
    pub nonces: NonceStore,
    /// This portal's origin as browsers see it: tokens must be bound to it.
    pub origin: String,
    pub addresses: throttle::AddressThrottle,
    rng: SystemRandom,
    /// Derives anonymous visitors' CSRF tokens.
    csrf_key: hmac::Key,
    /// Argon2 on the blocking pool, one a core, in reused memory: a flood of wrong passwords
    /// waits there instead of starving the server or its memory.
    password_checks: passwords::PasswordChecks,
}

impl AppState {
    pub fn new(db: Connection, verifier: Verifier, origin: String) -> Self {
        let rng = SystemRandom::new();
        let csrf_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system RNG works");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            db: Mutex::new(db),
            verifier,
            nonces: NonceStore::new(),
            origin,
            addresses: throttle::AddressThrottle::default(),
            rng,
            csrf_key,
            password_checks: passwords::PasswordChecks::new(cores),
        }
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn random_token(&self) -> String {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).expect("the system RNG works");
        B64URL.encode(bytes)
    }

    /// Purge expired sessions and addresses quiet for an hour. Run every
    /// [`HOUSEKEEPING_INTERVAL`] by the server.
    pub fn housekeeping(&self) {
        let now = now();
        match db::purge_sessions(&self.db(), now) {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired sessions purged"),
            Err(err) => tracing::warn!(%err, "purging sessions failed"),
        }
        self.addresses.purge(now);
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .expect("argon2 hashes any password")
        .to_string()
}

/// Create an account (the `create-account` command and the demo flag).
pub fn create_account(db: &Connection, username: &str, password: &str) -> Result<i64, String> {
    if username.trim().is_empty() || username.len() > 64 {
        return Err("a username is 1 to 64 characters".into());
    }
    if password.len() < 8 {
        return Err("a password is at least 8 characters".into());
    }
    db::create_user(db, username, &hash_password(password), now()).map_err(|e| e.to_string())
}

fn id_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

fn cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
}

fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Who is asking: a session (signed in, or holding a verified card waiting to be linked), or
/// an anonymous visitor known only by a cookie.
struct Visitor {
    id_hash: String,
    session: Option<db::SessionRow>,
}

impl Visitor {
    /// Never writes to the database: an anonymous visitor gets a cookie, nothing more.
    fn load(state: &AppState, jar: CookieJar) -> Result<(Visitor, CookieJar), PortalError> {
        if let Some(cookie) = jar.get(SESSION_COOKIE) {
            let hash = id_hash(cookie.value());
            if let Some(row) = db::session(&state.db(), &hash, now())? {
                return Ok((
                    Visitor {
                        id_hash: hash,
                        session: Some(row),
                    },
                    jar,
                ));
            }
        }
        if let Some(cookie) = jar.get(VISITOR_COOKIE).filter(|c| c.value().len() == 43) {
            let visitor = Visitor {
                id_hash: id_hash(cookie.value()),
                session: None,
            };
            return Ok((visitor, jar));
        }
        let token = state.random_token();
        let visitor = Visitor {
            id_hash: id_hash(&token),
            session: None,
        };
        Ok((visitor, jar.add(cookie(VISITOR_COOKIE, token))))
    }

    fn csrf(&self, state: &AppState) -> String {
        match &self.session {
            Some(row) => row.csrf.clone(),
            None => hex::encode(hmac::sign(&state.csrf_key, self.id_hash.as_bytes())),
        }
    }

    fn check_csrf(&self, state: &AppState, submitted: &str) -> Result<(), PortalError> {
        if same_secret(self.csrf(state).as_bytes(), submitted.as_bytes()) {
            Ok(())
        } else {
            Err(PortalError::Forbidden(
                "the form is stale or was not sent by this portal".into(),
            ))
        }
    }

    /// What a challenge is bound to: only this visitor may present it.
    fn binding(&self) -> Vec<u8> {
        let kind = if self.session.is_some() {
            "session"
        } else {
            "visitor"
        };
        format!("{kind}:{}", self.id_hash).into_bytes()
    }

    /// A fresh challenge for the extension: stateless, bound to this visitor.
    fn challenge(&self, state: &AppState) -> String {
        state.nonces.issue_bound(&self.binding(), SystemTime::now())
    }

    fn user_id(&self) -> Option<i64> {
        self.session.as_ref().and_then(|s| s.user_id)
    }

    fn user(&self, state: &AppState) -> Result<Option<db::User>, PortalError> {
        match self.user_id() {
            Some(id) => Ok(db::user_by_id(&state.db(), id)?),
            None => Ok(None),
        }
    }

    fn pending_identity(&self) -> Option<Identity> {
        self.session
            .as_ref()
            .and_then(|s| s.pending_identity.as_deref())
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// A new session (a new id: no fixation across login) for `user_id`, or for a verified
    /// card waiting to be linked; the old session, if any, ends.
    fn start_session(
        self,
        state: &AppState,
        jar: CookieJar,
        user_id: Option<i64>,
        pending: Option<&Identity>,
    ) -> Result<(Visitor, CookieJar), PortalError> {
        if self.session.is_some() {
            db::delete_session(&state.db(), &self.id_hash)?;
        }
        let token = state.random_token();
        let csrf = state.random_token();
        let hash = id_hash(&token);
        let pending = pending.map(|identity| serde_json::to_string(identity).unwrap_or_default());
        let lifetime = if user_id.is_some() {
            SESSION_LIFETIME
        } else {
            PENDING_LIFETIME
        };
        db::create_session(
            &state.db(),
            &db::NewSession {
                id_hash: &hash,
                csrf: &csrf,
                user_id,
                pending_identity: pending.as_deref(),
            },
            now(),
            lifetime,
        )?;
        let row = db::SessionRow {
            user_id,
            csrf,
            pending_identity: pending,
        };
        let visitor = Visitor {
            id_hash: hash,
            session: Some(row),
        };
        Ok((visitor, jar.add(cookie(SESSION_COOKIE, token))))
    }

    fn end_session(self, state: &AppState, jar: CookieJar) -> Result<CookieJar, PortalError> {
        if self.session.is_some() {
            db::delete_session(&state.db(), &self.id_hash)?;
        }
        let mut removal = cookie(SESSION_COOKIE, String::new());
        removal.make_removal();
        Ok(jar.add(removal))
    }
}

/// What a password attempt came to.
enum Attempt {
    Right(db::User),
    Wrong,
    /// Too many wrong passwords from this address or for this account: wait this long.
    Wait {
        seconds: i64,
        locked: bool,
    },
}

/// Check `password` for `username`, throttled per client address and per account, with
/// Argon2 on the blocking pool behind the semaphore.
async fn password_attempt(
    state: &AppState,
    address: IpAddr,
    user: Option<db::User>,
    password: String,
) -> Result<Attempt, PortalError> {
    let now = now();
    if let Some(seconds) = state.addresses.retry_after(address, now) {
        return Ok(Attempt::Wait {
            seconds,
            locked: false,
        });
    }
    if let Some(user) = user.as_ref().filter(|u| u.retry_at > now) {
        return Ok(Attempt::Wait {
            seconds: user.retry_at - now,
            locked: user.locked_until > now,
        });
    }
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = state.password_checks.matches(hash, password).await;
    match user {
        Some(user) if matches => {
            db::password_succeeded(&state.db(), &user)?;
            state.addresses.succeeded(address);
            Ok(Attempt::Right(user))
        }
        user => {
            state.addresses.failed(address, now);
            if let Some(user) = user {
                let after = db::password_failed(
                    &state.db(),
                    &user,
                    now,
                    |failures| now + throttle::backoff(failures, throttle::ACCOUNT_FREE_FAILURES),
                    throttle::LOCK_AFTER_FAILURES,
                    throttle::LOCK_SECONDS,
                )?;
                if after.locked_until > now {
                    tracing::warn!(user = user.id, "account locked after wrong passwords");
                    return Ok(Attempt::Wait {
                        seconds: after.locked_until - now,
                        locked: true,
                    });
                }
            }
            Ok(Attempt::Wrong)
        }
    }
}

/// 429 with Retry-After: the answer to too many wrong passwords.
fn too_many_attempts(seconds: i64, locked: bool) -> Response {
    let reason = if locked {
        format!(
            "This account is locked for {} minutes after {} wrong passwords in a row. You can still log in with your registered CAC.",
            (seconds + 59) / 60,
            throttle::LOCK_AFTER_FAILURES
        )
    } else {
        format!("Too many wrong passwords. Try again in {seconds} seconds.")
    };
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Html(plain_page(
            "Too many attempts",
            &pages::too_many_attempts(&reason),
        )),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("{0}")]
    Forbidden(String),
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        match self {
            PortalError::Forbidden(reason) => {
                tracing::info!(%reason, "403");
                (
                    StatusCode::FORBIDDEN,
                    Html(plain_page(
                        "403: Access Forbidden",
                        &pages::forbidden(&reason),
                    )),
                )
                    .into_response()
            }
            PortalError::Database(err) => {
                tracing::error!(%err, "database error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html(plain_page(
                        "Error",
                        "<h2>Something went wrong</h2><p>Please try again.</p>",
                    )),
                )
                    .into_response()
            }
        }
    }
}

fn plain_page(title: &str, body: &str) -> String {
    pages::page(
        &pages::Layout {
            title,
            username: None,
            csrf: "",
            meta: String::new(),
        },
        body,
    )
}

fn render(
    state: &AppState,
    visitor: &Visitor,
    user: Option<&db::User>,
    title: &str,
    meta: String,
    body: &str,
) -> Html<String> {
    Html(pages::page(
        &pages::Layout {
            title,
            username: user.map(|u| u.username.as_str()),
            csrf: &visitor.csrf(state),
            meta,
        },
        body,
    ))
}

type Result<T, E = PortalError> = std::result::Result<T, E>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/login/cac", post(cac_login))
        .route("/login/cac/link", post(cac_link))
        .route("/account", get(account))
        .route("/account/cac", get(cac_page))
        .route("/account/cac/register", post(cac_register))
        .route("/account/cac/registrations/{id}", get(confirmation))
        .route("/403", get(forbidden_page))
        .route("/static/portal.js", get(portal_js))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"),
    );
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn portal_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript")],
        "document.getElementById('print')?.addEventListener('click', () => window.print());\n",
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Html(plain_page("Not found", &pages::not_found())),
    )
}

async fn forbidden_page() -> Response {
    PortalError::Forbidden("access to this page was refused".into()).into_response()
}

async fn home(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    let to = if visitor.user_id().is_some() {
        "/account"
    } else {
        "/login"
    };
    Ok((jar, Redirect::to(to)).into_response())
}

fn login_form(state: &AppState, visitor: &Visitor, message: Option<&str>) -> Html<String> {
    let challenge = visitor.challenge(state);
    let body = pages::login(&visitor.csrf(state), &challenge, message);
    render(
        state,
        visitor,
        None,
        "Log in",
        pages::challenge_meta("cac-login", &challenge),
        &body,
    )
}

async fn login_page(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    if visitor.user_id().is_some() {
        return Ok((jar, Redirect::to("/account")).into_response());
    }
    Ok((jar, login_form(&state, &visitor, None)).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    visitor.check_csrf(&state, &form.csrf)?;
    let user = db::user_by_name(&state.db(), &form.username)?;
    match password_attempt(&state, peer.ip(), user, form.password).await? {
        Attempt::Right(user) => {
            tracing::info!(user = user.id, "password login");
            let (_, jar) = visitor.start_session(&state, jar, Some(user.id), None)?;
            Ok((jar, Redirect::to("/account")).into_response())
        }
        Attempt::Wait { seconds, locked } => {
            Ok((jar, too_many_attempts(seconds, locked)).into_response())
        }
        Attempt::Wrong => {
            let page = login_form(
                &state,
                &visitor,
                Some("The username or password is incorrect."),
            );
            Ok((StatusCode::UNAUTHORIZED, jar, page).into_response())
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    visitor.check_csrf(&state, &form.csrf)?;
    let jar = visitor.end_session(&state, jar)?;
    Ok((jar, Redirect::to("/login")).into_response())
}

async fn account(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    let Some(user) = visitor.user(&state)? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    let count = db::registrations_of(&state.db(), user.id)?.len();
    let body = pages::account(&user, count, now());
    Ok((
        jar,
        render(
            &state,
            &visitor,
            Some(&user),
            "My Account",
            String::new(),
            &body,
        ),
    )
        .into_response())
}

async fn cac_page(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    let Some(user) = visitor.user(&state)? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    Ok((jar, registration_page(&state, &visitor, &user, None)?).into_response())
}

fn registration_page(
    state: &AppState,
    visitor: &Visitor,
    user: &db::User,
    message: Option<(&str, bool)>,
) -> Result<Html<String>> {
    let challenge = visitor.challenge(state);
    let rows = db::registrations_of(&state.db(), user.id)?;
    let body = pages::cac_registration(&visitor.csrf(state), &challenge, &rows, message);
    Ok(render(
        state,
        visitor,
        Some(user),
        "CAC/Certificate Registration",
        pages::challenge_meta("cac-registration", &challenge),
        &body,
    ))
}

#[derive(Deserialize)]
struct RegisterForm {
    csrf: String,
    #[serde(default)]
    cacbridge_challenge: String,
    #[serde(default)]
    cacbridge_token: String,
    password: String,
}

/// Verify a token against the challenge this visitor was given (and submitted with the form);
/// a rejection is a 403 that names the reason. The challenge is spent either way.
fn verify_token(
    state: &AppState,
    visitor: &Visitor,
    challenge: &str,
    token: &str,
) -> Result<Identity> {
    if challenge.is_empty() {
        return Err(PortalError::Forbidden(
            "no challenge came with the form; reload the page".into(),
        ));
    }
    if token.is_empty() {
        spend_challenge(state, visitor, challenge);
        return Err(PortalError::Forbidden(
            "no CAC Bridge token arrived: is the CAC Bridge extension installed and the card inserted?".into(),
        ));
    }
    state
        .verifier
        .verify_with_bound_store(
            &state.nonces,
            &visitor.binding(),
            token,
            &state.origin,
            challenge,
            SystemTime::now(),
        )
        .map_err(|err| {
            tracing::info!(code = err.code(), "token rejected");
            PortalError::Forbidden(format!("the CAC token was rejected: {err}"))
        })
}

fn spend_challenge(state: &AppState, visitor: &Visitor, challenge: &str) {
    let _ = state
        .nonces
        .consume_bound(&visitor.binding(), challenge, SystemTime::now());
}

async fn cac_register(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<RegisterForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    let Some(user) = visitor.user(&state)? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    visitor.check_csrf(&state, &form.csrf)?;
    let user = match password_attempt(&state, peer.ip(), Some(user.clone()), form.password).await? {
        Attempt::Right(user) => user,
        Attempt::Wait { seconds, locked } => {
            spend_challenge(&state, &visitor, &form.cacbridge_challenge);
            return Ok((jar, too_many_attempts(seconds, locked)).into_response());
        }
        Attempt::Wrong => {
            // The challenge is spent either way: a new one comes with the page.
            spend_challenge(&state, &visitor, &form.cacbridge_challenge);
            let page = registration_page(
                &state,
                &visitor,
                &user,
                Some((
                    "The password is incorrect. The card was not registered.",
                    true,
                )),
            )?;
            return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
        }
    };
    let identity = verify_token(
        &state,
        &visitor,
        &form.cacbridge_challenge,
        &form.cacbridge_token,
    )?;
    let existing = db::registration_by_fingerprint(&state.db(), &identity.fingerprint_sha256)?;
    match existing {
        Some(r) if r.user_id == user.id => {
            let page = registration_page(
                &state,
                &visitor,
                &user,
                Some((
                    "This certificate is already registered to your account.",
                    false,
                )),
            )?;
            Ok((jar, page).into_response())
        }
        Some(_) => Err(PortalError::Forbidden(
            "this certificate is registered to another account".into(),
        )),
        None => {
            let id = db::register(&state.db(), user.id, &identity, now(), "registration")?;
            tracing::info!(user = user.id, registration = id, "CAC registered");
            Ok((
                jar,
                Redirect::to(&format!("/account/cac/registrations/{id}")),
            )
                .into_response())
        }
    }
}

async fn confirmation(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<i64>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    let Some(user) = visitor.user(&state)? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    let registration = db::registration(&state.db(), id)?;
    match registration {
        Some(r) if r.user_id == user.id => {
            let body = pages::confirmation(&r, &user.username);
            Ok((
                jar,
                render(
                    &state,
                    &visitor,
                    Some(&user),
                    "CAC registration confirmation",
                    String::new(),
                    &body,
                ),
            )
                .into_response())
        }
        _ => Ok(not_found().await.into_response()),
    }
}

#[derive(Deserialize)]
struct CacLoginForm {
    csrf: String,
    #[serde(default)]
    cacbridge_challenge: String,
    #[serde(default)]
    cacbridge_token: String,
}

async fn cac_login(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<CacLoginForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    visitor.check_csrf(&state, &form.csrf)?;
    let identity = verify_token(
        &state,
        &visitor,
        &form.cacbridge_challenge,
        &form.cacbridge_token,
    )?;
    // Bind first: a guard held across the branch would deadlock the next db() call.
    let registered = db::registration_by_fingerprint(&state.db(), &identity.fingerprint_sha256)?;
    if let Some(registration) = registered {
        tracing::info!(user = registration.user_id, "CAC login");
        let (_, jar) = visitor.start_session(&state, jar, Some(registration.user_id), None)?;
        return Ok((jar, Redirect::to("/account")).into_response());
    }
    // Not registered: the password and a second, fresh proof from the same card link it (the
    // guide's automatic registration). The session holds the card until then.
    let (visitor, jar) = visitor.start_session(&state, jar, None, Some(&identity))?;
    Ok((jar, link_page(&state, &visitor, &identity, None)).into_response())
}

/// The page that asks for the password and a fresh CAC proof to register a verified,
/// unregistered card.
fn link_page(
    state: &AppState,
    visitor: &Visitor,
    identity: &Identity,
    message: Option<&str>,
) -> Html<String> {
    let challenge = visitor.challenge(state);
    let body = pages::link_card(
        &visitor.csrf(state),
        &challenge,
        identity.common_name.as_deref().unwrap_or(&identity.subject),
        identity.edipi.as_deref().unwrap_or("-"),
        message,
    );
    render(
        state,
        visitor,
        None,
        "Register this CAC",
        pages::challenge_meta("cac-link", &challenge),
        &body,
    )
}

#[derive(Deserialize)]
struct LinkForm {
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    cacbridge_challenge: String,
    #[serde(default)]
    cacbridge_token: String,
}

async fn cac_link(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<LinkForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar)?;
    visitor.check_csrf(&state, &form.csrf)?;
    let pending = visitor.pending_identity().ok_or_else(|| {
        PortalError::Forbidden(
            "no verified CAC is waiting to be registered; log in with your CAC again".into(),
        )
    })?;
    let user = db::user_by_name(&state.db(), &form.username)?;
    let user = match password_attempt(&state, peer.ip(), user, form.password).await? {
        Attempt::Right(user) => user,
        Attempt::Wait { seconds, locked } => {
            spend_challenge(&state, &visitor, &form.cacbridge_challenge);
            return Ok((jar, too_many_attempts(seconds, locked)).into_response());
        }
        Attempt::Wrong => {
            spend_challenge(&state, &visitor, &form.cacbridge_challenge);
            let page = link_page(
                &state,
                &visitor,
                &pending,
                Some("The username or password is incorrect."),
            );
            return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
        }
    };
    // A fresh proof, in this session, from the same card: a token captured earlier, or
    // another person's card, cannot be linked with a password alone.
    let identity = verify_token(
        &state,
        &visitor,
        &form.cacbridge_challenge,
        &form.cacbridge_token,
    )?;
    if identity.fingerprint_sha256 != pending.fingerprint_sha256 {
        return Err(PortalError::Forbidden(
            "the card that answered is not the card waiting to be registered".into(),
        ));
    }
    let registered = db::registration_by_fingerprint(&state.db(), &identity.fingerprint_sha256)?;
    let id = match registered {
        Some(r) if r.user_id == user.id => r.id,
        Some(_) => {
            return Err(PortalError::Forbidden(
                "this certificate is registered to another account".into(),
            ))
        }
        None => db::register(&state.db(), user.id, &identity, now(), "cac-login")?,
    };
    tracing::info!(user = user.id, registration = id, "CAC registered at login");
    let (_, jar) = visitor.start_session(&state, jar, Some(user.id), None)?;
    Ok((
        jar,
        Redirect::to(&format!("/account/cac/registrations/{id}")),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state() -> AppState {
        let mut conn = Connection::open_in_memory().unwrap();
        db::migrate_for_tests(&mut conn).unwrap();
        let verifier = Verifier::new(
            cacbridge_verify::TrustStore::dod(),
            cacbridge_verify::VerifyPolicy::default(),
        );
        AppState::new(conn, verifier, "https://portal.example.mil".into())
    }

    #[test]
    fn housekeeping_purges_expired_sessions_only() {
        let state = state();
        let now = now();
        for (id, lifetime) in [("expired", -1), ("live", 3600)] {
            db::create_session(
                &state.db(),
                &db::NewSession {
                    id_hash: id,
                    csrf: "csrf",
                    user_id: None,
                    pending_identity: None,
                },
                now,
                lifetime,
            )
            .unwrap();
        }
        assert_eq!(db::session_count(&state.db()).unwrap(), 2);
        state.housekeeping();
        assert_eq!(db::session_count(&state.db()).unwrap(), 1);
        assert!(db::session(&state.db(), "live", now).unwrap().is_some());
    }
}
