//! My Account: the overview (with what happened to the password) and a registration's
//! printable confirmation.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

use super::{not_found, render};
use crate::error::Result;
use crate::session::Visitor;
use crate::state::AppState;
use crate::{now, pages};

pub(crate) async fn account(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    let Some(user) = visitor.user(&state).await? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    let count = state.db.registrations_of(user.id).await?.len();
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

pub(crate) async fn confirmation(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<i64>,
) -> Result<Response> {
    let (visitor, jar) = Visitor::load(&state, jar).await?;
    let Some(user) = visitor.user(&state).await? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    let registration = state.db.registration(id).await?;
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
