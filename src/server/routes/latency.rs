//! `PUT /api/messages/{id}/timings` (the browser's playback report) and `GET /api/latency`.

use crate::server::{
    error::{parse_id, ApiError, ApiJson, ApiQuery},
    latency,
    state::AppState,
};
use crate::shared::chat::{LatencyReport, PlaybackReport};
use axum::{
    extract::{Path, State},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn put_timings(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(report): ApiJson<PlaybackReport>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "message")?;
    latency::record_playback(&s.db, id, &report).await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize, Default)]
pub struct LatencyQuery {
    limit: Option<i64>,
}

pub async fn get(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<LatencyQuery>,
) -> Result<Json<LatencyReport>, ApiError> {
    latency::report(&s.db, q.limit).await.map(Json)
}
