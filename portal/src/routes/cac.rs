//! CAC/Certificate Registration: the page, and registering a card with a token and the
//! password.

use cacbridge_verify::NonceError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use cacbridge_verify::{Identity, VerifyError};

use super::{register_card, render, Registered};
use crate::error::{PortalError, Result};
use crate::passwords::{password_attempt, too_many_attempts, Attempt};
use crate::session::Visitor;
use crate::state::AppState;
use crate::{db, pages};

pub(crate) async fn cac_page(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    let Some(user) = visitor.user(&state).await? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    Ok((jar, registration_page(&state, &visitor, &user, None).await?).into_response())
}

async fn registration_page(
    state: &AppState,
    visitor: &Visitor,
    user: &db::User,
    message: Option<(&str, bool)>,
) -> Result<Html<String>> {
    let challenge = visitor.challenge(state);
    let rows = state.db.registrations_of(user.id).await?;
    let body = pages::cac_registration(
        &visitor.csrf(state),
        &challenge,
        &rows,
        state.cac_host.as_deref(),
        message,
    );
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
pub(crate) struct RegisterForm {
    csrf: String,
    #[serde(default)]
    cacbridge_challenge: String,
    #[serde(default)]
    cacbridge_token: String,
    password: String,
}

/// Verify a token against the challenge this visitor was given (and submitted with the form);
/// a rejection is a 403 that names the reason. The challenge is spent either way.
pub(crate) async fn verify_token(
    state: &Arc<AppState>,
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
        spend_challenge(state, visitor, challenge).await;
        return Err(PortalError::Forbidden(
            "no CAC Bridge token arrived: is the CAC Bridge extension installed and the card inserted?".into(),
        ));
    }
    let rejected = |err: VerifyError| {
        tracing::info!(code = err.code(), "token rejected");
        PortalError::Forbidden(format!("the CAC token was rejected: {err}"))
    };
    // The challenge is spent first, in the database every instance shares: a rejected token
    // burns it too, and a replay at any instance finds it used.
    use_challenge(state, visitor, challenge)
        .await?
        .map_err(rejected)?;
    let (token, challenge) = (token.to_owned(), challenge.to_owned());
    state
        .verifying(move |verifier, origin| {
            verifier.verify(&token, origin, &challenge, SystemTime::now())
        })
        .await?
        .map_err(rejected)
}

/// Record the use of `challenge` by this visitor: the outer error is the database's, the
/// inner the challenge's (not issued to this visitor, expired, used before).
async fn use_challenge(
    state: &AppState,
    visitor: &Visitor,
    challenge: &str,
) -> Result<std::result::Result<(), VerifyError>> {
    let now = SystemTime::now();
    let ticket = match state.nonces.check_bound(&visitor.binding(), challenge, now) {
        Ok(ticket) => ticket,
        Err(err) => return Ok(Err(err)),
    };
    if ticket.expired(now) {
        return Ok(Err(VerifyError::Nonce(NonceError::NonceExpired)));
    }
    if !state
        .db
        .use_challenge(&ticket.id, ticket.expires as i64)
        .await?
    {
        return Ok(Err(VerifyError::Nonce(NonceError::NonceReused)));
    }
    Ok(Ok(()))
}

pub(crate) async fn spend_challenge(state: &AppState, visitor: &Visitor, challenge: &str) {
    if let Err(err) = use_challenge(state, visitor, challenge).await {
        tracing::warn!(%err, "spending a challenge failed");
    }
}

pub(crate) async fn cac_register(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<RegisterForm>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    let Some(user) = visitor.user(&state).await? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    visitor.check_csrf(&state, &form.csrf)?;
    let user = match password_attempt(
        &state.db,
        &state.password_checks,
        peer.ip(),
        Some(user.clone()),
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
            // The challenge is spent either way: a new one comes with the page.
            spend_challenge(&state, &visitor, &form.cacbridge_challenge).await;
            let page = registration_page(
                &state,
                &visitor,
                &user,
                Some((
                    "The password is incorrect. The card was not registered.",
                    true,
                )),
            )
            .await?;
            return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
        }
    };
    let identity = verify_token(
        &state,
        &visitor,
        &form.cacbridge_challenge,
        &form.cacbridge_token,
    )
    .await?;
    match register_card(&state, user.id, &identity, "registration").await? {
        Registered::Already(_) => {
            let page = registration_page(
                &state,
                &visitor,
                &user,
                Some((
                    "This certificate is already registered to your account.",
                    false,
                )),
            )
            .await?;
            Ok((jar, page).into_response())
        }
        Registered::New(id) => {
            tracing::info!(user = user.id, registration = id, "CAC registered");
            Ok((
                jar,
                Redirect::to(&format!("/account/cac/registrations/{id}")),
            )
                .into_response())
        }
    }
}
