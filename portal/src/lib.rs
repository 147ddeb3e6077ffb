//! The CAC Bridge reference portal: accounts with passwords, and CAC registration and login
//! through CAC Bridge tokens, as the portal guide describes (log in, My Account ->
//! CAC/Certificate Registration, Register, confirm with the password, print the confirmation;
//! or log in with the CAC, which registers an unregistered card after one password login).

pub mod db;
pub mod pages;
pub mod tls;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::Connection;
use serde::Deserialize;

use cacbridge_verify::{Identity, NonceStore, Verifier};

pub const SESSION_COOKIE: &str = "cb_session";
const SESSION_LIFETIME: i64 = 8 * 3600;

pub struct AppState {
    pub db: Mutex<Connection>,
    pub verifier: Verifier,
    pub nonces: NonceStore,
    /// This portal's origin as browsers see it: tokens must be bound to it.
    pub origin: String,
    rng: SystemRandom,
}

impl AppState {
    pub fn new(db: Connection, verifier: Verifier, origin: String) -> Self {
        Self {
            db: Mutex::new(db),
            verifier,
            nonces: NonceStore::new(),
            origin,
            rng: SystemRandom::new(),
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

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
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

fn session_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

fn session_cookie(token: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
}

/// The visitor's session, created (anonymous) when there is none.
struct Session {
    id_hash: String,
    row: db::SessionRow,
}

impl Session {
    fn load(state: &AppState, jar: CookieJar) -> Result<(Session, CookieJar), PortalError> {
        let now = now();
        if let Some(cookie) = jar.get(SESSION_COOKIE) {
            let id_hash = session_hash(cookie.value());
            let row = db::session(&state.db(), &id_hash, now)?;
            if let Some(row) = row {
                return Ok((Session { id_hash, row }, jar));
            }
        }
        Self::create(state, jar, None)
    }

    fn create(
        state: &AppState,
        jar: CookieJar,
        user_id: Option<i64>,
    ) -> Result<(Session, CookieJar), PortalError> {
        let token = state.random_token();
        let csrf = state.random_token();
        let id_hash = session_hash(&token);
        db::create_session(
            &state.db(),
            &id_hash,
            &csrf,
            user_id,
            now(),
            SESSION_LIFETIME,
        )?;
        let row = db::SessionRow {
            user_id,
            csrf,
            challenge: None,
            pending_identity: None,
        };
        Ok((Session { id_hash, row }, jar.add(session_cookie(token))))
    }

    /// A new session id for a new login state (no fixation across login).
    fn rotate(
        self,
        state: &AppState,
        jar: CookieJar,
        user_id: Option<i64>,
    ) -> Result<(Session, CookieJar), PortalError> {
        db::delete_session(&state.db(), &self.id_hash)?;
        Self::create(state, jar, user_id)
    }

    fn check_csrf(&self, submitted: &str) -> Result<(), PortalError> {
        let expected = self.row.csrf.as_bytes();
        let given = submitted.as_bytes();
        let same = expected.len() == given.len()
            && expected
                .iter()
                .zip(given)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(PortalError::Forbidden(
                "the form is stale or was not sent by this portal".into(),
            ))
        }
    }

    /// A fresh challenge for the extension, remembered for this session only.
    fn new_challenge(&mut self, state: &AppState) -> Result<String, PortalError> {
        let nonce = state.nonces.issue(SystemTime::now());
        db::set_challenge(&state.db(), &self.id_hash, Some(&nonce))?;
        self.row.challenge = Some(nonce.clone());
        Ok(nonce)
    }

    fn take_challenge(&mut self, state: &AppState) -> Result<String, PortalError> {
        let challenge = self.row.challenge.take().ok_or_else(|| {
            PortalError::Forbidden(
                "no challenge was issued to this session; reload the page".into(),
            )
        })?;
        db::set_challenge(&state.db(), &self.id_hash, None)?;
        Ok(challenge)
    }

    fn user(&self, state: &AppState) -> Result<Option<db::User>, PortalError> {
        match self.row.user_id {
            Some(id) => Ok(db::user_by_id(&state.db(), id)?),
            None => Ok(None),
        }
    }
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
    session: &Session,
    user: Option<&db::User>,
    title: &str,
    meta: String,
    body: &str,
) -> Html<String> {
    Html(pages::page(
        &pages::Layout {
            title,
            username: user.map(|u| u.username.as_str()),
            csrf: &session.row.csrf,
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
    let (session, jar) = Session::load(&state, jar)?;
    let to = if session.row.user_id.is_some() {
        "/account"
    } else {
        "/login"
    };
    Ok((jar, Redirect::to(to)).into_response())
}

async fn login_page(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response> {
    let (mut session, jar) = Session::load(&state, jar)?;
    if session.row.user_id.is_some() {
        return Ok((jar, Redirect::to("/account")).into_response());
    }
    let challenge = session.new_challenge(&state)?;
    let body = pages::login(&session.row.csrf, None);
    Ok((
        jar,
        render(
            &session,
            None,
            "Log in",
            pages::challenge_meta("cac-login", &challenge),
            &body,
        ),
    )
        .into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    let (mut session, jar) = Session::load(&state, jar)?;
    session.check_csrf(&form.csrf)?;
    let user = db::user_by_name(&state.db(), &form.username)?;
    match user {
        Some(user) if password_matches(&user.password_hash, &form.password) => {
            tracing::info!(user = user.id, "password login");
            let (_, jar) = session.rotate(&state, jar, Some(user.id))?;
            Ok((jar, Redirect::to("/account")).into_response())
        }
        _ => {
            let challenge = session.new_challenge(&state)?;
            let body = pages::login(
                &session.row.csrf,
                Some("The username or password is incorrect."),
            );
            let page = render(
                &session,
                None,
                "Log in",
                pages::challenge_meta("cac-login", &challenge),
                &body,
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
    let (session, jar) = Session::load(&state, jar)?;
    session.check_csrf(&form.csrf)?;
    let (_, jar) = session.rotate(&state, jar, None)?;
    Ok((jar, Redirect::to("/login")).into_response())
}

async fn account(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response> {
    let (session, jar) = Session::load(&state, jar)?;
    let Some(user) = session.user(&state)? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    let count = db::registrations_of(&state.db(), user.id)?.len();
    let body = pages::account(&user.username, count);
    Ok((
        jar,
        render(&session, Some(&user), "My Account", String::new(), &body),
    )
        .into_response())
}

async fn cac_page(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response> {
    let (mut session, jar) = Session::load(&state, jar)?;
    let Some(user) = session.user(&state)? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    Ok((jar, registration_page(&state, &mut session, &user, None)?).into_response())
}

fn registration_page(
    state: &AppState,
    session: &mut Session,
    user: &db::User,
    message: Option<(&str, bool)>,
) -> Result<Html<String>> {
    let challenge = session.new_challenge(state)?;
    let rows = db::registrations_of(&state.db(), user.id)?;
    let body = pages::cac_registration(&session.row.csrf, &rows, message);
    Ok(render(
        session,
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
    cacbridge_token: String,
    password: String,
}

/// Verify a token against the challenge this session was given; a rejection is a 403 that
/// names the reason.
fn verify_token(state: &AppState, session: &mut Session, token: &str) -> Result<Identity> {
    let challenge = session.take_challenge(state)?;
    if token.is_empty() {
        return Err(PortalError::Forbidden(
            "no CAC Bridge token arrived: is the CAC Bridge extension installed and the card inserted?".into(),
        ));
    }
    state
        .verifier
        .verify_with_store(
            &state.nonces,
            token,
            &state.origin,
            &challenge,
            SystemTime::now(),
        )
        .map_err(|err| {
            tracing::info!(code = err.code(), "token rejected");
            PortalError::Forbidden(format!("the CAC token was rejected: {err}"))
        })
}

async fn cac_register(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<RegisterForm>,
) -> Result<Response> {
    let (mut session, jar) = Session::load(&state, jar)?;
    let Some(user) = session.user(&state)? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    session.check_csrf(&form.csrf)?;
    if !password_matches(&user.password_hash, &form.password) {
        // The challenge is spent either way: a new one comes with the page.
        session.take_challenge(&state)?;
        let page = registration_page(
            &state,
            &mut session,
            &user,
            Some((
                "The password is incorrect. The card was not registered.",
                true,
            )),
        )?;
        return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
    }
    let identity = verify_token(&state, &mut session, &form.cacbridge_token)?;
    let existing = db::registration_by_fingerprint(&state.db(), &identity.fingerprint_sha256)?;
    match existing {
        Some(r) if r.user_id == user.id => {
            let page = registration_page(
                &state,
                &mut session,
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
    let (session, jar) = Session::load(&state, jar)?;
    let Some(user) = session.user(&state)? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    let registration = db::registration(&state.db(), id)?;
    match registration {
        Some(r) if r.user_id == user.id => {
            let body = pages::confirmation(&r, &user.username);
            Ok((
                jar,
                render(
                    &session,
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
    cacbridge_token: String,
}

async fn cac_login(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<CacLoginForm>,
) -> Result<Response> {
    let (mut session, jar) = Session::load(&state, jar)?;
    session.check_csrf(&form.csrf)?;
    let identity = verify_token(&state, &mut session, &form.cacbridge_token)?;
    // Bind first: a guard held across the branch would deadlock the next db() call.
    let registered = db::registration_by_fingerprint(&state.db(), &identity.fingerprint_sha256)?;
    if let Some(registration) = registered {
        tracing::info!(user = registration.user_id, "CAC login");
        let (_, jar) = session.rotate(&state, jar, Some(registration.user_id))?;
        return Ok((jar, Redirect::to("/account")).into_response());
    }
    // Not registered: one password login links the card (the guide's automatic registration).
    let pending = serde_json::to_string(&identity).unwrap_or_default();
    db::set_pending_identity(&state.db(), &session.id_hash, Some(&pending))?;
    Ok((jar, link_page(&session, &identity, None)).into_response())
}

/// The page that asks for the password once to register a verified, unregistered card.
fn link_page(session: &Session, identity: &Identity, message: Option<&str>) -> Html<String> {
    let body = pages::link_card(
        &session.row.csrf,
        identity.common_name.as_deref().unwrap_or(&identity.subject),
        identity.edipi.as_deref().unwrap_or("-"),
        message,
    );
    render(session, None, "Register this CAC", String::new(), &body)
}

async fn cac_link(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    let (session, jar) = Session::load(&state, jar)?;
    session.check_csrf(&form.csrf)?;
    let identity: Identity = session
        .row
        .pending_identity
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| {
            PortalError::Forbidden(
                "no verified CAC is waiting to be registered; log in with your CAC again".into(),
            )
        })?;
    let user = db::user_by_name(&state.db(), &form.username)?;
    let Some(user) = user.filter(|u| password_matches(&u.password_hash, &form.password)) else {
        let page = link_page(
            &session,
            &identity,
            Some("The username or password is incorrect."),
        );
        return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
    };
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
    let (_, jar) = session.rotate(&state, jar, Some(user.id))?;
    Ok((
        jar,
        Redirect::to(&format!("/account/cac/registrations/{id}")),
    )
        .into_response())
}
