//! `GET /api/models`: the built-in model files in the models folder, read from their headers.

use crate::server::{error::ApiError, state::AppState};
use crate::shared::models::LocalModel;
use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

#[derive(Serialize)]
pub struct ModelList {
    pub models: Vec<LocalModel>,
    /// `llm.local_model`: the file the built-in provider loads.
    pub selected: String,
}

pub async fn list(State(s): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let selected = s.config.get().llm.local_model.clone();
    let models = crate::server::models::local_models(&s, &selected)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "listing the model files failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "models_unreadable",
                "The models folder could not be read.",
            )
        })?;
    Ok(Json(ModelList { models, selected }))
}
