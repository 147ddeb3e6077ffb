//! Logging in: with the password, with the CAC, and linking a card that is registered to no
//! account yet.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use cacbridge_verify::Identity;

use super::cac::{spend_challenge, verify_token};
use super::{register_card, render, Registered};
use crate::error::{PortalError, Result};
use crate::pages;
use crate::passwords::{password_attempt, too_many_attempts, Attempt};
use crate::session::Visitor;
use crate::state::AppState;

pub(crate) async fn home(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
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

pub(crate) async fn login_page(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    if visitor.user_id().is_some() {
        return Ok((jar, Redirect::to("/account")).into_response());
    }
    Ok((jar, login_form(&state, &visitor, None)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    visitor.check_csrf(&state, &form.csrf)?;
    let user = state.db.user_by_name(&form.username).await?;
    match password_attempt(
        &state.db,
        &state.password_checks,
        peer.ip(),
        user,
        form.password,
    )
    .await?
    {
        Attempt::Right(user) => {
            tracing::info!(user = user.id, "password login");
            let (_, jar) = visitor
                .start_session(&state, jar, Some(user.id), None)
                .await?;
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
pub(crate) struct CsrfForm {
    csrf: String,
}

pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    visitor.check_csrf(&state, &form.csrf)?;
    let jar = visitor.end_session(&state, jar).await?;
    Ok((jar, Redirect::to("/login")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct CacLoginForm {
    csrf: String,
    #[serde(default)]
    cacbridge_challenge: String,
    #[serde(default)]
    cacbridge_token: String,
}

pub(crate) async fn cac_login(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<CacLoginForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    visitor.check_csrf(&state, &form.csrf)?;
    let identity = verify_token(
        &state,
        &visitor,
        &form.cacbridge_challenge,
        &form.cacbridge_token,
    )
    .await?;
    let registered = state
        .db
        .registration_by_fingerprint(&identity.fingerprint_sha256)
        .await?;
    if let Some(registration) = registered {
        tracing::info!(user = registration.user_id, "CAC login");
        let (_, jar) = visitor
            .start_session(&state, jar, Some(registration.user_id), None)
            .await?;
        return Ok((jar, Redirect::to("/account")).into_response());
    }
    // Not registered: the password and a second, fresh proof from the same card link it (the
    // guide's automatic registration). The session holds the card until then.
    let (visitor, jar) = visitor
        .start_session(&state, jar, None, Some(&identity))
        .await?;
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
pub(crate) struct LinkForm {
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    cacbridge_challenge: String,
    #[serde(default)]
    cacbridge_token: String,
}

pub(crate) async fn cac_link(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    let user = state.db.user_by_name(&form.username).await?;
    let user = match password_attempt(
        &state.db,
        &state.password_checks,
        peer.ip(),
        user,
        form.password,
    )
    .await?
    {
        Attempt::Right(user) => user,
        Attempt::Wait { seconds, locked } => {
            spend_challenge(&state, &visitor, &form.cacbridge_challenge).await;
            return Ok((jar, too_many_attempts(seconds, locked)).into_response());
        }
        Attempt::Wrong => {
            spend_challenge(&state, &visitor, &form.cacbridge_challenge).await;
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
    )
    .await?;
    if identity.fingerprint_sha256 != pending.fingerprint_sha256 {
        return Err(PortalError::Forbidden(
            "the card that answered is not the card waiting to be registered".into(),
        ));
    }
    let (Registered::New(id) | Registered::Already(id)) =
        register_card(&state, user.id, &identity, "cac-login").await?;
    tracing::info!(user = user.id, registration = id, "CAC registered at login");
    let (_, jar) = visitor
        .start_session(&state, jar, Some(user.id), None)
        .await?;
    Ok((
        jar,
        Redirect::to(&format!("/account/cac/registrations/{id}")),
    )
        .into_response())
}
