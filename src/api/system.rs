//! The System tab's server functions: the latency report and the per-voice "Test".

use crate::shared::json_text::Reply;
use crate::shared::{chat::LatencyReport, tts::Speech, AppError};
use leptos::prelude::*;

/// What "Test" says: short, so it costs little on a paid voice.
#[cfg(feature = "ssr")]
pub const TEST_SENTENCE: &str = "Hello! This is a short voice test.";

/// P50/P95 per stage over the last `limit` replies, as `GET /api/latency` gives it.
#[server(prefix = "/sfn", endpoint = "latency", output = Reply)]
pub async fn get_latency(limit: u32) -> Result<LatencyReport, AppError> {
    let state = crate::server::AppState::from_context()?;
    crate::server::latency::report(&state.db, Some(i64::from(limit)))
        .await
        .map_err(super::api_error)
}

/// Speaks [`TEST_SENTENCE`] with `provider` alone (no fallback, not from the cache), so its
/// card shows whether that voice works and how long it takes.
#[server(prefix = "/sfn", endpoint = "tts/test", output = Reply)]
pub async fn test_voice(provider: String) -> Result<Speech, AppError> {
    use crate::{server::error::ApiError, shared::config::TtsProvider, tts::SpeakOptions};
    let state = crate::server::AppState::from_context()?;
    let Some(p) = TtsProvider::from_name(&provider) else {
        return Err(super::api_error(ApiError::bad_request(
            "unknown_provider",
            format!("There is no voice {provider}."),
        )));
    };
    let opts = SpeakOptions {
        provider: Some(p),
        only: true,
        fresh: true,
        ..SpeakOptions::default()
    };
    super::timed_speech(&state, TEST_SENTENCE, opts).await
}
