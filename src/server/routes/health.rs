//! `GET /api/healthcheck`.

use crate::{server::state::AppState, shared::health::Health};
use axum::{extract::State, Json};

pub async fn get(State(state): State<AppState>) -> Json<Health> {
    Json(crate::server::health::report(&state).await)
}
