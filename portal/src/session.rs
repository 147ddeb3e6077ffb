//! Who is asking: a session row (signed in, or holding a verified card to link) or an
//! anonymous visitor known only by a cookie; CSRF tokens and challenge bindings for both.

use std::time::SystemTime;

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use ring::hmac;

use cacbridge_verify::Identity;

use crate::error::PortalError;
use crate::state::AppState;
use crate::{db, now};

/// The signed-in (or card-pending) session. `__Host-`: Secure, Path=/, no Domain, so no
/// sibling host can plant or read it.
pub const SESSION_COOKIE: &str = "__Host-cb_session";
/// An anonymous visitor: only a random id in the browser, nothing in the database, until a
/// form is submitted. Its CSRF token and challenges are derived from it, not stored.
pub const VISITOR_COOKIE: &str = "__Host-cb_visitor";
const SESSION_LIFETIME: i64 = 8 * 3600;
/// A session that holds only a verified but unregistered card.
const PENDING_LIFETIME: i64 = 10 * 60;

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

pub(crate) fn same_secret(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Who is asking: a session (signed in, or holding a verified card waiting to be linked), or
/// an anonymous visitor known only by a cookie.
pub(crate) struct Visitor {
    id_hash: String,
    session: Option<db::SessionRow>,
}

impl Visitor {
    /// Never writes to the database: an anonymous visitor gets a cookie, nothing more.
    pub(crate) async fn load(
        state: &AppState,
        jar: CookieJar,
    ) -> Result<(Visitor, CookieJar), PortalError> {
        if let Some(cookie) = jar.get(SESSION_COOKIE) {
            let hash = id_hash(cookie.value());
            if let Some(row) = state.db.session(&hash, now()).await? {
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

    pub(crate) fn csrf(&self, state: &AppState) -> String {
        match &self.session {
            Some(row) => row.csrf.clone(),
            None => hex::encode(hmac::sign(&state.csrf_key, self.id_hash.as_bytes())),
        }
    }

    pub(crate) fn check_csrf(&self, state: &AppState, submitted: &str) -> Result<(), PortalError> {
        if same_secret(self.csrf(state).as_bytes(), submitted.as_bytes()) {
            Ok(())
        } else {
            Err(PortalError::Forbidden(
                "the form is stale or was not sent by this portal".into(),
            ))
        }
    }

    /// What a challenge is bound to: only this visitor may present it.
    pub(crate) fn binding(&self) -> Vec<u8> {
        let kind = if self.session.is_some() {
            "session"
        } else {
            "visitor"
        };
        format!("{kind}:{}", self.id_hash).into_bytes()
    }

    /// A fresh challenge for the extension: stateless, bound to this visitor.
    pub(crate) fn challenge(&self, state: &AppState) -> String {
        state.nonces.issue_bound(&self.binding(), SystemTime::now())
    }

    pub(crate) fn user_id(&self) -> Option<i64> {
        self.session.as_ref().and_then(|s| s.user_id)
    }

    pub(crate) async fn user(&self, state: &AppState) -> Result<Option<db::User>, PortalError> {
        match self.user_id() {
            Some(id) => Ok(state.db.user_by_id(id).await?),
            None => Ok(None),
        }
    }

    pub(crate) fn pending_identity(&self) -> Option<Identity> {
        self.session
            .as_ref()
            .and_then(|s| s.pending_identity.as_deref())
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// A new session (a new id: no fixation across login) for `user_id`, or for a verified
    /// card waiting to be linked; the old session, if any, ends.
    pub(crate) async fn start_session(
        self,
        state: &AppState,
        jar: CookieJar,
        user_id: Option<i64>,
        pending: Option<&Identity>,
    ) -> Result<(Visitor, CookieJar), PortalError> {
        if self.session.is_some() {
            state.db.delete_session(&self.id_hash).await?;
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
        state
            .db
            .create_session(
                &db::NewSession {
                    id_hash: &hash,
                    csrf: &csrf,
                    user_id,
                    pending_identity: pending.as_deref(),
                },
                now(),
                lifetime,
            )
            .await?;
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

    pub(crate) async fn end_session(
        self,
        state: &AppState,
        jar: CookieJar,
    ) -> Result<CookieJar, PortalError> {
        if self.session.is_some() {
            state.db.delete_session(&self.id_hash).await?;
        }
        let mut removal = cookie(SESSION_COOKIE, String::new());
        removal.make_removal();
        Ok(jar.add(removal))
    }
}
