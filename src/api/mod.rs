//! [both] Server functions: the browser UI's API. Thin: each calls a service. On the `hydrate`
//! build the macro turns each into an HTTP call to `/sfn/...`.

pub mod avatars;
pub mod history;

use crate::shared::{config::AppConfig, health::Health, AppError};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// The settings in effect, with every key redacted.
#[server(prefix = "/sfn", endpoint = "settings")]
pub async fn get_settings() -> Result<AppConfig, AppError> {
    let state = crate::server::AppState::from_context()?;
    Ok(state.config.get().redacted())
}

/// Saves the Setup form: `(dotted path, value)` pairs, merged into the settings.
#[server(prefix = "/sfn", endpoint = "settings/save", input = Json)]
pub async fn save_settings(entries: Vec<(String, String)>) -> Result<AppConfig, AppError> {
    let state = crate::server::AppState::from_context()?;
    use axum::http::StatusCode;
    let patch = crate::config::patch_from_form(&entries)
        .map_err(|fields| with_status(StatusCode::BAD_REQUEST, AppError::invalid(fields)))?;
    match state.config.update(patch).await {
        Ok(cfg) => {
            tracing::info!("settings saved from the Setup tab");
            Ok(cfg.redacted())
        }
        Err(e) => {
            tracing::warn!(error = %e, "settings not saved");
            let status = match e {
                crate::config::ConfigError::Write { .. } => {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                }
                _ => axum::http::StatusCode::BAD_REQUEST,
            };
            if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
                res.set_status(status);
            }
            Err(e.into())
        }
    }
}

/// The health report, as `GET /api/healthcheck` gives it.
#[server(prefix = "/sfn", endpoint = "health")]
pub async fn get_health() -> Result<Health, AppError> {
    let state = crate::server::AppState::from_context()?;
    Ok(crate::server::health::report(&state).await)
}

/// Server functions answer 500 for any error unless told otherwise; a bad request is a 400.
#[cfg(feature = "ssr")]
fn with_status(status: axum::http::StatusCode, err: AppError) -> AppError {
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(status);
    }
    err
}

/// A service error as a server function's answer, with its HTTP status.
#[cfg(feature = "ssr")]
fn api_error(e: crate::server::error::ApiError) -> AppError {
    with_status(e.status, e.error)
}
