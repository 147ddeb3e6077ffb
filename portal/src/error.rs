//! What a request can fail with, and how it looks.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::pages;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("{0}")]
    Forbidden(String),
    #[error("database: {0}")]
    Database(#[from] crate::db::DbError),
    #[error("{0}")]
    Internal(String),
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
            PortalError::Database(_) | PortalError::Internal(_) => {
                tracing::error!(err = %self, "internal error");
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

pub(crate) fn plain_page(title: &str, body: &str) -> String {
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

pub(crate) type Result<T, E = PortalError> = std::result::Result<T, E>;
