//! The mutual-TLS CAC host's pages (see `crate::mtls`): CAC/Certificate Registration and CAC
//! login with the certificate the browser presented in the TLS handshake, as most existing
//! CAC portals work. The guide's steps are the same as on the page-API host: signed in, the
//! account password again, the printable confirmation; an unregistered card logs in once with
//! the password and is registered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use cacbridge_verify::Identity;

use super::{register_card, render, Registered};
use crate::error::{PortalError, Result};
use crate::mtls::PeerCertificate;
use crate::passwords::{password_attempt, too_many_attempts, Attempt};
use crate::session::Visitor;
use crate::state::AppState;
use crate::{db, pages};

/// The card's identity from this connection's handshake, checked like a token's certificate.
async fn presented(state: &Arc<AppState>, peer: &PeerCertificate) -> Result<Identity> {
    let der = peer.der.as_deref().ok_or_else(|| {
        PortalError::Forbidden(
            "the browser presented no certificate: check that your CAC is inserted, then close \
             every browser window and try again, choosing your PIV Authentication certificate"
                .into(),
        )
    })?;
    let der = der.to_vec();
    state
        .verifying(move |verifier, _| verifier.verify_certificate(&der, SystemTime::now()))
        .await?
        .map_err(|err| {
            tracing::info!(code = err.code(), "client certificate rejected");
            PortalError::Forbidden(format!(
                "the certificate your browser presented was rejected: {err}"
            ))
        })
}

fn holder(identity: &Identity) -> &str {
    identity
        .common_name
        .as_deref()
        .unwrap_or(identity.subject.as_str())
}

/// The portal's own login page lives on its main host.
pub(crate) async fn to_main_login(State(state): State<Arc<AppState>>) -> Redirect {
    Redirect::to(&format!("{}/login", state.origin))
}

pub(crate) async fn home() -> Redirect {
    Redirect::to("/account/cac")
}

pub(crate) async fn cac_page(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    jar: CookieJar,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    let Some(user) = visitor.user(&state).await? else {
        return Ok((jar, Redirect::to(&format!("{}/login", state.origin))).into_response());
    };
    let identity = presented(&state, &peer).await?;
    Ok((
        jar,
        registration_page(&state, &visitor, &user, &identity, &peer, None).await?,
    )
        .into_response())
}

async fn registration_page(
    state: &AppState,
    visitor: &Visitor,
    user: &db::User,
    identity: &Identity,
    peer: &PeerCertificate,
    message: Option<(&str, bool)>,
) -> Result<axum::response::Html<String>> {
    let rows = state.db.registrations_of(user.id).await?;
    let body = pages::cac_registration_mtls(
        &visitor.csrf(state),
        &rows,
        holder(identity),
        peer.protocol_name(),
        message,
    );
    Ok(render(
        state,
        visitor,
        Some(user),
        "CAC/Certificate Registration",
        String::new(),
        &body,
    ))
}

#[derive(Deserialize)]
pub(crate) struct RegisterForm {
    csrf: String,
    password: String,
}

pub(crate) async fn cac_register(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer_address): ConnectInfo<SocketAddr>,
    Extension(peer): Extension<PeerCertificate>,
    jar: CookieJar,
    Form(form): Form<RegisterForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    let Some(user) = visitor.user(&state).await? else {
        return Ok((jar, Redirect::to(&format!("{}/login", state.origin))).into_response());
    };
    visitor.check_csrf(&state, &form.csrf)?;
    let identity = presented(&state, &peer).await?;
    let user = match password_attempt(
        &state.db,
        &state.password_checks,
        peer_address.ip(),
        Some(user.clone()),
        form.password,
    )
    .await?
    {
        Attempt::Right(user) => user,
        Attempt::Wait { seconds, locked } => {
            return Ok((jar, too_many_attempts(seconds, locked)).into_response())
        }
        Attempt::Wrong => {
            let message = "The password is incorrect. The card was not registered.";
            let page = registration_page(
                &state,
                &visitor,
                &user,
                &identity,
                &peer,
                Some((message, true)),
            )
            .await?;
            return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
        }
    };
    match register_card(&state, user.id, &identity, "registration").await? {
        Registered::Already(_) => {
            let message = "This certificate is already registered to your account.";
            let page = registration_page(
                &state,
                &visitor,
                &user,
                &identity,
                &peer,
                Some((message, false)),
            )
            .await?;
            Ok((jar, page).into_response())
        }
        Registered::New(id) => {
            tracing::info!(
                user = user.id,
                registration = id,
                "CAC registered over mutual TLS"
            );
            Ok((
                jar,
                Redirect::to(&format!("/account/cac/registrations/{id}")),
            )
                .into_response())
        }
    }
}

/// CAC login's first step: the handshake's certificate, verified, and a button that logs in
/// with it. A GET changes nothing (no session made or ended): a link or an image on another
/// site cannot log a person in or out (login CSRF).
pub(crate) async fn cac_login_page(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    jar: CookieJar,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    let identity = presented(&state, &peer).await?;
    let body = pages::cac_login_mtls(
        &visitor.csrf(&state),
        holder(&identity),
        identity.edipi.as_deref().unwrap_or("-"),
    );
    let page = render(
        &state,
        &visitor,
        None,
        "Log in with CAC",
        String::new(),
        &body,
    );
    Ok((jar, page).into_response())
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
}

/// CAC login: the certificate of the handshake is the proof, the form's CSRF token that the
/// person asked. A registered card signs in; an unregistered one is held in the session until
/// the password links it.
pub(crate) async fn cac_login(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    visitor.check_csrf(&state, &form.csrf)?;
    let identity = presented(&state, &peer).await?;
    if let Some(registration) = state
        .db
        .registration_by_fingerprint(&identity.fingerprint_sha256)
        .await?
    {
        tracing::info!(user = registration.user_id, "CAC login over mutual TLS");
        let (_, jar) = visitor
            .start_session(&state, jar, Some(registration.user_id), None)
            .await?;
        return Ok((jar, Redirect::to(&format!("{}/account", state.origin))).into_response());
    }
    let (visitor, jar) = visitor
        .start_session(&state, jar, None, Some(&identity))
        .await?;
    Ok((jar, link_page(&state, &visitor, &identity, None)).into_response())
}

fn link_page(
    state: &AppState,
    visitor: &Visitor,
    identity: &Identity,
    message: Option<&str>,
) -> axum::response::Html<String> {
    let body = pages::link_card_mtls(
        &visitor.csrf(state),
        holder(identity),
        identity.edipi.as_deref().unwrap_or("-"),
        message,
    );
    render(
        state,
        visitor,
        None,
        "Register this CAC",
        String::new(),
        &body,
    )
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    csrf: String,
    username: String,
    password: String,
}

pub(crate) async fn cac_link(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer_address): ConnectInfo<SocketAddr>,
    Extension(peer): Extension<PeerCertificate>,
    jar: CookieJar,
    Form(form): Form<LinkForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    visitor.check_csrf(&state, &form.csrf)?;
    let pending = visitor.pending_identity().ok_or_else(|| {
        PortalError::Forbidden(
            "no verified CAC is waiting to be registered; log in with your CAC again".into(),
        )
    })?;
    // This connection's handshake must come from the same card as the one waiting.
    let identity = presented(&state, &peer).await?;
    if identity.fingerprint_sha256 != pending.fingerprint_sha256 {
        return Err(PortalError::Forbidden(
            "the card that answered is not the card waiting to be registered".into(),
        ));
    }
    let user = state.db.user_by_name(&form.username).await?;
    let user = match password_attempt(
        &state.db,
        &state.password_checks,
        peer_address.ip(),
        user,
        form.password,
    )
    .await?
    {
        Attempt::Right(user) => user,
        Attempt::Wait { seconds, locked } => {
            return Ok((jar, too_many_attempts(seconds, locked)).into_response())
        }
        Attempt::Wrong => {
            let page = link_page(
                &state,
                &visitor,
                &pending,
                Some("The username or password is incorrect."),
            );
            return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
        }
    };
    let (Registered::New(id) | Registered::Already(id)) =
        register_card(&state, user.id, &identity, "cac-login").await?;
    tracing::info!(
        user = user.id,
        registration = id,
        "CAC registered at login over mutual TLS"
    );
    let (_, jar) = visitor
        .start_session(&state, jar, Some(user.id), None)
        .await?;
    Ok((
        jar,
        Redirect::to(&format!("/account/cac/registrations/{id}")),
    )
        .into_response())
}
