//! [both] Server functions: the browser UI's API. Thin: each calls a service. On the `hydrate`
//! build the macro turns each into an HTTP call to `/sfn/...`.

pub mod avatars;
pub mod characters;
pub mod history;
pub mod system;

use crate::shared::json_text::Reply;
use crate::shared::{
    config::{AppConfig, InputMode, OutputMode, SavedSettings},
    health::Health,
    AppError,
};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// Setup's "Test connection": probes a language model with the form's provider and endpoint (and
/// the typed key, or else the saved one if the endpoint is at the origin it was saved for) and
/// lists its models. Nothing is saved.
#[server(prefix = "/sfn", endpoint = "llm/check", output = Reply)]
pub async fn check_llm(
    provider: String,
    endpoint: String,
    api_key: String,
) -> Result<crate::shared::health::LlmCheck, AppError> {
    use crate::shared::config::{LlmProvider, Secret};
    let state = crate::server::AppState::from_context()?;
    let provider = LlmProvider::from_name(&provider).ok_or_else(|| {
        with_status(
            axum::http::StatusCode::BAD_REQUEST,
            AppError::new(
                "unknown_provider",
                format!("There is no provider {provider}."),
            ),
        )
    })?;
    let mut cfg = state.config.get().llm.clone();
    let endpoint = endpoint.trim();
    // The saved key goes only where it was saved for: the same provider at the same origin.
    let same_place = provider == cfg.provider
        && crate::config::origin_of(endpoint) == crate::config::origin_of(&cfg.endpoint);
    if !same_place || !api_key.trim().is_empty() {
        cfg.api_key = Secret::new(api_key.trim());
    }
    cfg.provider = provider;
    cfg.endpoint = endpoint.to_string();
    Ok(crate::server::health::check_llm(&state, &cfg).await)
}

/// Starts loading the built-in model in the background, so the first reply comes sooner. Does
/// nothing when another provider is configured or the model is loaded.
#[server(prefix = "/sfn", endpoint = "llm/warm", output = Reply)]
pub async fn warm_up_llm() -> Result<(), AppError> {
    let state = crate::server::AppState::from_context()?;
    if state.config.get().llm.provider == crate::shared::config::LlmProvider::Embedded {
        // A missing file is reported where it matters: on sending, and in the health report.
        let _ = state.llm.embedded_for(&state.config.get().llm).warm_up();
    }
    Ok(())
}

/// The built-in model files Setup offers (`GET /api/models` gives the same list).
#[server(prefix = "/sfn", endpoint = "llm/local_models", output = Reply)]
pub async fn local_models() -> Result<Vec<crate::shared::models::LocalModel>, AppError> {
    let state = crate::server::AppState::from_context()?;
    let selected = state.config.get().llm.local_model.clone();
    crate::server::models::local_models(&state, &selected)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "listing the model files failed");
            AppError::new("models_unreadable", "The models folder could not be read.")
        })
}

/// The settings in effect, with every key redacted.
#[server(prefix = "/sfn", endpoint = "settings", output = Reply)]
pub async fn get_settings() -> Result<AppConfig, AppError> {
    let state = crate::server::AppState::from_context()?;
    Ok(state.config.get().redacted())
}

/// Saves the Setup form: `(dotted path, value)` pairs, merged into the settings. The answer
/// carries notices, such as a key dropped because its endpoint moved to another server.
#[server(prefix = "/sfn", endpoint = "settings/save", input = Json, output = Reply)]
pub async fn save_settings(entries: Vec<(String, String)>) -> Result<SavedSettings, AppError> {
    let state = crate::server::AppState::from_context()?;
    use axum::http::StatusCode;
    let patch = crate::config::patch_from_form(&entries)
        .map_err(|fields| with_status(StatusCode::BAD_REQUEST, AppError::invalid(fields)))?;
    let done = saved(state.config.update_from_client(patch).await)?;
    tracing::info!("settings saved from the Setup tab");
    Ok(SavedSettings {
        notices: done.notices(),
        config: done.config.redacted(),
    })
}

/// Whether replies are spoken (`output_mode`): the one setting the Chat tab reads. It has its own
/// call so the Chat tab's WASM does not carry the whole settings model (only Setup's piece does).
#[server(prefix = "/sfn", endpoint = "settings/output_mode", output = Reply)]
pub async fn get_output_mode() -> Result<OutputMode, AppError> {
    let state = crate::server::AppState::from_context()?;
    Ok(state.config.get().output_mode)
}

/// The Chat tab's "Voice on/off": saves `output_mode` and answers the mode now in effect.
#[server(prefix = "/sfn", endpoint = "settings/output_mode/save", output = Reply)]
pub async fn set_output_mode(mode: OutputMode) -> Result<OutputMode, AppError> {
    let state = crate::server::AppState::from_context()?;
    let patch = serde_json::json!({ "output_mode": mode });
    Ok(saved(state.config.update_from_client(patch).await)?
        .config
        .output_mode)
}

/// What the Chat tab's microphone needs to know: how the person talks (`input_mode`) and whether
/// hands-free keeps listening while the avatar speaks (`asr.barge_in`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VoiceInput {
    pub input_mode: InputMode,
    pub barge_in: bool,
}

/// The Chat tab's voice input settings, read once when the tab opens.
#[server(prefix = "/sfn", endpoint = "settings/voice_input", output = Reply)]
pub async fn get_voice_input() -> Result<VoiceInput, AppError> {
    let state = crate::server::AppState::from_context()?;
    let cfg = state.config.get();
    Ok(VoiceInput {
        input_mode: cfg.input_mode,
        barge_in: cfg.asr.barge_in,
    })
}

/// The Chat tab's input switch: saves `input_mode` and answers the mode now in effect.
#[server(prefix = "/sfn", endpoint = "settings/input_mode/save", output = Reply)]
pub async fn set_input_mode(mode: InputMode) -> Result<InputMode, AppError> {
    let state = crate::server::AppState::from_context()?;
    let patch = serde_json::json!({ "input_mode": mode });
    Ok(saved(state.config.update_from_client(patch).await)?
        .config
        .input_mode)
}

/// A settings update's outcome for a server function: a file that could not be written is the
/// server's fault (500), anything else the request's (400).
#[cfg(feature = "ssr")]
fn saved<T>(result: Result<T, crate::config::ConfigError>) -> Result<T, AppError> {
    result.map_err(|e| {
        tracing::warn!(error = %e, "settings not saved");
        let status = match e {
            crate::config::ConfigError::Write { .. } if e.is_disk_full() => {
                axum::http::StatusCode::INSUFFICIENT_STORAGE
            }
            crate::config::ConfigError::Write { .. } => {
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => axum::http::StatusCode::BAD_REQUEST,
        };
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(status);
        }
        e.into()
    })
}

/// The health report, as `GET /api/healthcheck` gives it.
#[server(prefix = "/sfn", endpoint = "health", output = Reply)]
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
fn api_error(e: impl Into<crate::server::error::ApiError>) -> AppError {
    let e = e.into();
    with_status(e.status, e.error)
}

/// Says `text` with the voice chain (the Setup tab's "Speak test sentence").
#[server(prefix = "/sfn", endpoint = "tts/speak", output = Reply)]
pub async fn speak_text(text: String) -> Result<crate::shared::tts::Speech, AppError> {
    use crate::server::error::ApiError;
    let state = crate::server::AppState::from_context()?;
    if text.trim().is_empty() {
        return Err(api_error(ApiError::bad_request(
            "empty_text",
            "Type something to say first.",
        )));
    }
    timed_speech(&state, &text, Default::default()).await
}

/// Speaks `text` and says how long it took (Setup's test sentence, System's per-voice "Test").
#[cfg(feature = "ssr")]
async fn timed_speech(
    state: &crate::server::AppState,
    text: &str,
    opts: crate::tts::SpeakOptions,
) -> Result<crate::shared::tts::Speech, AppError> {
    let started = std::time::Instant::now();
    match state.tts.speak(text, opts).await {
        Ok(spoken) => Ok(spoken.into_speech(started.elapsed())),
        Err(e) => Err(api_error(e)),
    }
}
