//! The REST API for outside clients (docs/api.md). Thin: each handler calls a service.

mod asr;
mod avatars;
mod characters;
mod chat;
mod config;
mod health;
mod latency;
mod models;
mod sessions;
mod tts;

use super::{error::ApiError, state::AppState};
use axum::{
    extract::DefaultBodyLimit,
    http::{Method, Uri},
    routing::{any, delete, get, post, put},
    Router,
};

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/api/config", get(config::get).put(config::put))
        .route("/api/healthcheck", get(health::get))
        .route("/api/chat", post(chat::chat))
        .route("/api/chat/stream", post(chat::stream))
        .route("/api/tts", post(tts::speak))
        // The recording is read against its own cap (25 MB, 413), so the default 2 MB body
        // limit is raised for this route alone.
        .route(
            "/api/asr",
            post(asr::transcribe).layer(DefaultBodyLimit::max(
                crate::asr::MAX_UPLOAD_BYTES + asr::FRAMING_ALLOWANCE,
            )),
        )
        .route("/api/asr/warm", post(asr::warm))
        .route("/api/messages/{id}/timings", put(latency::put_timings))
        .route("/api/latency", get(latency::get))
        .route("/api/sessions", get(sessions::list).post(sessions::create))
        .route(
            "/api/sessions/{id}",
            get(sessions::get_one)
                .put(sessions::rename)
                .delete(sessions::delete),
        )
        .route(
            "/api/sessions/{id}/messages",
            get(sessions::messages).post(sessions::append),
        )
        .route(
            "/api/sessions/{id}/messages/{message_id}",
            put(sessions::edit_message).delete(sessions::delete_message),
        )
        .route("/api/sessions/{id}/export", get(sessions::export))
        .route("/api/search", get(sessions::search))
        .route(
            "/api/characters",
            get(characters::list).post(characters::create),
        )
        .route(
            "/api/characters/{id}",
            get(characters::get_one)
                .put(characters::update)
                .delete(characters::delete),
        )
        // Card and lorebook files: up to 20 MB, counted by the routes themselves (413).
        .route(
            "/api/characters/import",
            post(characters::import).layer(DefaultBodyLimit::max(characters::BODY_LIMIT)),
        )
        .route(
            "/api/characters/{id}/lorebook",
            post(characters::attach_lorebook).layer(DefaultBodyLimit::max(characters::BODY_LIMIT)),
        )
        .route("/api/characters/{id}/export", get(characters::export))
        .route("/api/characters/{id}/portrait", get(characters::portrait))
        .route("/api/models", get(models::list))
        .route("/api/avatars", get(avatars::list))
        // The upload route counts the bytes itself against the configured cap (413), so the
        // default 2 MB body limit is lifted for it alone.
        .route(
            "/api/avatars/upload",
            post(avatars::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/avatars/{name}", delete(avatars::delete))
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

/// A `Content-Disposition` value that downloads as `name`. A header value must be ASCII, so a
/// name in any other script goes in the RFC 6266 `filename*` form (percent-encoded UTF-8), with
/// an ASCII stand-in for clients that read only `filename`.
pub(crate) fn attachment(name: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // RFC 5987's attr-char keeps these as they are.
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == name {
        return format!("attachment; filename=\"{name}\"");
    }
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, KEEP)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn attachment_names_are_always_valid_header_values() {
        assert_eq!(
            super::attachment("Seraphina.png"),
            "attachment; filename=\"Seraphina.png\""
        );
        let v = super::attachment("東京-旅行.md");
        assert_eq!(
            v,
            "attachment; filename=\"__-__.md\"; filename*=UTF-8''%E6%9D%B1%E4%BA%AC-%E6%97%85%E8%A1%8C.md"
        );
        assert!(axum::http::HeaderValue::from_str(&v).is_ok());
    }
}
