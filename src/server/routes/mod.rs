//! The REST API for outside clients (API.md). Thin: each handler calls a service.

mod config;
mod health;

use super::{error::ApiError, state::AppState};
use axum::{
    http::{Method, Uri},
    routing::{any, get},
    Router,
};

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/api/config", get(config::get).put(config::put))
        .route("/api/healthcheck", get(health::get))
        .route("/api", any(not_found))
        .route("/api/", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "There is no API at {}. The endpoints are listed in the README.",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}.", uri.path()),
    )
}
