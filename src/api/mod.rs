//! [both] Server functions: the browser UI's API. Thin: each calls a service. On the `hydrate`
//! build the macro turns each into an HTTP call to `/sfn/...`.

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
    let patch = crate::config::patch_from_form(&entries).map_err(AppError::invalid)?;
    match state.config.update(patch).await {
        Ok(cfg) => {
            tracing::info!("settings saved from the Setup tab");
            Ok(cfg.redacted())
        }
        Err(e) => {
            tracing::warn!(error = %e, "settings not saved");
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
