//! `POST /api/tts`: say a text with the configured voice chain (docs/api.md).

use crate::{
    server::{error::ApiError, error::ApiJson, state::AppState},
    shared::config::{AudioFormat, TtsProvider},
    tts::{voice_id, SpeakOptions},
};
use axum::{extract::State, response::IntoResponse, Json};
use serde::Deserialize;
use std::time::Instant;

#[derive(Deserialize)]
pub struct TtsBody {
    #[serde(default)]
    text: String,
    provider: Option<TtsProvider>,
    voice_id: Option<String>,
    format: Option<AudioFormat>,
}

pub async fn speak(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TtsBody>,
) -> Result<impl IntoResponse, axum::response::Response> {
    if body.text.trim().is_empty() {
        return Err(
            ApiError::bad_request("empty_text", "Give a non-empty \"text\" to speak.")
                .into_response(),
        );
    }
    let voice = body.voice_id.filter(|v| !v.trim().is_empty());
    if let Some(v) = &voice {
        // The voice goes to the first provider tried: the one asked for, else the configured one.
        let first = body.provider.unwrap_or(state.config.get().tts.provider);
        voice_id::check(first, v)
            .map_err(|e| ApiError::bad_field("invalid_voice_id", "voice_id", e).into_response())?;
    }
    let started = Instant::now();
    let opts = SpeakOptions {
        provider: body.provider,
        voice_id: voice,
        format: body.format,
        ..SpeakOptions::default()
    };
    match state.tts.speak(&body.text, opts).await {
        Ok(spoken) => {
            let speech = spoken.into_speech(started.elapsed());
            Ok(Json(serde_json::json!({
                "ok": true,
                "url": speech.url,
                "meta": speech.meta,
                "latency_ms": speech.latency_ms,
            })))
        }
        Err(e) => {
            let failures = e.failures().to_vec();
            let mut res = ApiError::from(e).into_response();
            if !failures.is_empty() {
                // The same body, plus each provider's failure as data.
                let status = res.status();
                let bytes = axum::body::to_bytes(std::mem::take(res.body_mut()), 64 * 1024)
                    .await
                    .unwrap_or_default();
                let mut body: serde_json::Value =
                    serde_json::from_slice(&bytes).unwrap_or_default();
                body["providers"] = serde_json::to_value(failures).unwrap_or_default();
                res = (status, Json(body)).into_response();
            }
            Err(res)
        }
    }
}
