//! `POST /api/chat` and `POST /api/chat/stream` (docs/api.md, Chat).

use crate::server::{
    chat,
    error::{ApiError, ApiJson, ApiQuery},
    limits,
    state::AppState,
};
use crate::shared::chat::{ChatInput, ChatStreamEvent};
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
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
    let mut turn = chat::start(&s, q.session_id.unwrap_or(1), input).await?;
    let mut user_message_id = None;
    while let Some(event) = turn.events.recv().await {
        match event {
            ChatStreamEvent::Accepted(a) => user_message_id = Some(a.message_id),
            ChatStreamEvent::Done(done) => {
                let audio = if speak {
                    chat::speak_whole(&s, &done.reply, turn.voice.clone()).await
                } else {
                    None
                };
                return Ok(Json(json!({
                    "ok": true,
                    "reply": done.reply,
                    "audio": audio,
                    "session_id": done.session_id,
                    "message_id": done.message_id,
                    "user_message_id": user_message_id,
                    "emotion": done.emotion,
                    "timings": done.timings,
                })));
            }
            ChatStreamEvent::Error(e) => {
                let status = StatusCode::from_u16(chat::status_for(&e.code))
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                let error = ApiError::new(status, &e.code, e.message);
                return Err(match status {
                    StatusCode::SERVICE_UNAVAILABLE => error.retry_after(limits::RETRY_AFTER_S),
                    _ => error,
                });
            }
            _ => {}
        }
    }
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "The reply ended without a result; see the server log.",
    ))
}

/// The streaming endpoint: named SSE events `accepted` (first), `status`, `token`, `sentence`,
/// `audio`, `audio_error`, `done`, `error`. Closing the connection stops the reply; what arrived is kept as a partial message.
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
