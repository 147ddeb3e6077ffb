//! The portal's pages and forms: the router, the headers every answer carries, and one module
//! for each part of the guide (logging in, My Account, CAC registration).

mod account;
mod cac;
mod login;
mod mtls;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::{plain_page, PortalError};
use crate::session::Visitor;
use crate::state::AppState;
use crate::{db, pages};

pub fn router(state: Arc<AppState>) -> Router {
    let pages = Router::new()
        .route("/", get(login::home))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/login/cac", post(login::cac_login))
        .route("/login/cac/link", post(login::cac_link))
        .route("/account", get(account::account))
        .route("/account/cac", get(cac::cac_page))
        .route("/account/cac/register", post(cac::cac_register));
    shared(pages, state)
}

/// The mutual-TLS CAC host (`crate::mtls`): registration and CAC login with the certificate
/// of the TLS handshake. Served on its own listener; the session cookie is shared with the
/// main host (cookies do not depend on the port).
pub fn mtls_router(state: Arc<AppState>) -> Router {
    let pages = Router::new()
        .route("/", get(mtls::home))
        .route("/login", get(mtls::to_main_login))
        .route(
            "/login/cac",
            get(mtls::cac_login_page).post(mtls::cac_login),
        )
        .route("/login/cac/link", post(mtls::cac_link))
        .route("/account/cac", get(mtls::cac_page))
        .route("/account/cac/register", post(mtls::cac_register));
    // Its CAC login form ends on the main host's My Account (a redirect of a form submission,
    // which the policy's form-action governs too).
    let form_action = format!("'self' {}", state.origin);
    shared_with(pages, state, &form_action)
}

/// What both hosts serve besides their own pages (the printable confirmation, the 403 page,
/// the script), and the headers every answer carries.
fn shared(pages: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    shared_with(pages, state, "'self'")
}

/// [`shared`], with forms allowed to submit (and be redirected) to `form_action`.
fn shared_with(pages: Router<Arc<AppState>>, state: Arc<AppState>, form_action: &str) -> Router {
    let policy = HeaderValue::from_str(&format!(
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action {form_action}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    pages
        .route(
            "/account/cac/registrations/{id}",
            get(account::confirmation),
        )
        .route("/403", get(forbidden_page))
        .route("/static/portal.js", get(portal_js))
        .fallback(not_found)
        .layer(axum::middleware::map_response(move |response| {
            security_headers(response, policy.clone())
        }))
        .with_state(state)
}

/// The main host's content security policy.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'";

async fn security_headers(mut response: Response, policy: HeaderValue) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
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

pub(crate) async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Html(plain_page("Not found", &pages::not_found())),
    )
}

async fn forbidden_page() -> Response {
    PortalError::Forbidden("access to this page was refused".into()).into_response()
}

/// What registering a verified card to an account came to.
pub(crate) enum Registered {
    /// Registered now, under this id.
    New(i64),
    /// The account held it already, under this id.
    Already(i64),
}

/// Register the card `identity` to account `user_id` (`how`: the guide's step that did it),
/// unless that account holds it already; a card registered to another account is refused.
/// Page API and mutual TLS, registration and login, all register through here.
pub(crate) async fn register_card(
    state: &AppState,
    user_id: i64,
    identity: &cacbridge_verify::Identity,
    how: &str,
) -> crate::error::Result<Registered> {
    match state
        .db
        .registration_by_fingerprint(&identity.fingerprint_sha256)
        .await?
    {
        Some(r) if r.user_id == user_id => Ok(Registered::Already(r.id)),
        Some(_) => Err(PortalError::Forbidden(
            "this certificate is registered to another account".into(),
        )),
        None => Ok(Registered::New(
            state
                .db
                .register(user_id, identity, crate::now(), how)
                .await?,
        )),
    }
}

pub(crate) fn render(
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
