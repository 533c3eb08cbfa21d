//! `POST /api/chat` and `POST /api/chat/stream` (docs/api.md, Chat): thin adapters of a turn
//! (`crate::turn`) to JSON and to server-sent events.

use crate::server::{
    chat,
    error::{ApiError, ApiJson, ApiQuery},
    state::AppState,
};
use crate::shared::chat::ChatInput;
use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Deserialize, Default)]
pub struct SessionQuery {
    session_id: Option<i64>,
}

/// The old clients' endpoint: waits for the whole reply, and with `speak` says all of it in one
/// piece (`audio` is its URL, or null when no voice could speak: the reply still comes back).
pub async fn chat(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SessionQuery>,
    ApiJson(mut input): ApiJson<ChatInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // One file for the whole reply, not one per sentence: the pipeline is for streams.
    let speak = std::mem::take(&mut input.speak);
    let turn = chat::start(&s, q.session_id.unwrap_or(1), input).await?;
    let voice = turn.voice.clone();
    let chat::Finished {
        done,
        user_message_id,
    } = turn.reply().await?;
    let audio = if speak {
        chat::speak_whole(&s.tts, &done.reply, voice).await
    } else {
        None
    };
    Ok(Json(json!({
        "ok": true,
        "reply": done.reply,
        "audio": audio,
        "session_id": done.session_id,
        "message_id": done.message_id,
        "user_message_id": user_message_id,
        "emotion": done.emotion,
        "timings": done.timings,
    })))
}

/// The streaming endpoint: named SSE events `accepted` (first), `status`, `token`, `sentence`,
/// `audio`, `audio_error`, `done`, `error`. Closing the connection stops the reply; what arrived
/// is kept as a partial message.
pub async fn stream(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SessionQuery>,
    ApiJson(input): ApiJson<ChatInput>,
) -> Result<Response, ApiError> {
    let turn = chat::start(&s, q.session_id.unwrap_or(1), input).await?;
    let events = ReceiverStream::new(turn.events)
        .map(|e| Ok::<_, Infallible>(Event::default().event(e.name()).data(e.data())));
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies must pass each event on at once.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
