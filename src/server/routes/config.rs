//! `GET /api/config`, `PUT /api/config`.

use crate::server::{
    error::{ApiError, ApiJson},
    state::AppState,
};
use crate::shared::config::AppConfig;
use axum::{extract::State, Json};
use serde_json::{json, Value};

pub async fn get(State(state): State<AppState>) -> Json<Value> {
    Json(rest_view(&state.config.get()))
}

pub async fn put(
    State(state): State<AppState>,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let saved = state.config.update_from_client(patch).await?;
    tracing::info!("settings saved");
    // `cleared_keys` names the keys this change dropped because their endpoint moved to another
    // server; `notices` says the same in words.
    Ok(Json(json!({
        "ok": true,
        "config": rest_view(&saved.config),
        "cleared_keys": saved.cleared_paths(),
        "notices": saved.notices(),
    })))
}

/// The redacted config, plus the earlier server's flat `tts` fields (those of the selected
/// provider) so that its clients still find `tts.endpoint` and `tts.voice_id` where they were.
fn rest_view(cfg: &AppConfig) -> Value {
    let red = cfg.redacted();
    let active = red.tts.providers.get(red.tts.provider).clone();
    let mut view = serde_json::to_value(&red).unwrap_or_default();
    if let Some(tts) = view.get_mut("tts").and_then(Value::as_object_mut) {
        tts.insert("endpoint".into(), json!(active.endpoint));
        tts.insert("voice_id".into(), json!(active.voice_id));
        tts.insert("model".into(), json!(active.model));
        tts.insert("api_key_set".into(), json!(active.api_key_set));
    }
    view
}
