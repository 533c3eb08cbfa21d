//! A mock speech recognition server on a loopback port, in OpenAI's wire format
//! (`POST /v1/audio/transcriptions`, multipart, Bearer key, `{"text": …}` back; errors as
//! `{"error": {"message", "type", "param", "code"}}`). It answers as its `mode` says and keeps
//! what it was sent.

use axum::{
    extract::{Multipart, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde_json::{json, Value};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

/// The key the mock accepts.
pub const ASR_KEY: &str = "sk-asr-secret-123";

/// How the mock answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// 429 with OpenAI's rate-limit body.
    RateLimited,
    /// 500.
    Broken,
    /// Answers after 3 s.
    Slow,
}

/// One request, as the mock read it.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub authorization: String,
    /// Text fields by name.
    pub fields: Vec<(String, String)>,
    pub file_name: String,
    pub file_type: String,
    pub file_len: usize,
}

impl Received {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct AsrMock {
    pub base_url: String,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl AsrMock {
    pub async fn start() -> AsrMock {
        let mut mock = AsrMock {
            base_url: String::new(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            received: Arc::default(),
        };
        let router = Router::new()
            .route("/v1/audio/transcriptions", post(transcribe))
            .with_state(mock.clone());
        mock.base_url = format!("{}/v1", super::tts_mock::serve(router).await);
        mock
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The settings of the `openai_compatible` recogniser pointing here.
    pub fn settings(&self, key: &str, timeout_ms: u64) -> Value {
        json!({"asr": {"provider": "openai_compatible", "language": "en", "providers": {
            "openai_compatible": {"endpoint": self.base_url, "api_key": key,
                                  "model": "whisper-1", "timeout_ms": timeout_ms}}}})
    }
}

fn error(status: StatusCode, message: &str, kind: &str, code: Value) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}})),
    )
        .into_response()
}

async fn transcribe(
    State(mock): State<AsrMock>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let mut got = Received {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        ..Received::default()
    };
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            got.file_name = field.file_name().unwrap_or_default().to_string();
            got.file_type = field.content_type().unwrap_or_default().to_string();
            got.file_len = field.bytes().await.map(|b| b.len()).unwrap_or(0);
        } else {
            let value = field.text().await.unwrap_or_default();
            got.fields.push((name, value));
        }
    }
    let authorised = got.authorization == format!("Bearer {ASR_KEY}");
    let complete = got.file_len > 0 && got.field("model").is_some();
    mock.received.lock().unwrap().push(got);
    let mode = *mock.mode.lock().unwrap();
    if !authorised {
        // OpenAI names part of the key it was given; this mock names all of it, the worst case.
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
            .to_string();
        return error(
            StatusCode::UNAUTHORIZED,
            &format!("Incorrect API key provided: {given}. You can find your API key at https://platform.openai.com/account/api-keys."),
            "invalid_request_error",
            json!("invalid_api_key"),
        );
    }
    if !complete {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a file and a model",
            "invalid_request_error",
            Value::Null,
        );
    }
    match mode {
        Mode::Ok => Json(json!({
            "text": " Hello from the mock server. ",
            "usage": {"type": "duration", "seconds": 2.5}
        }))
        .into_response(),
        Mode::RateLimited => error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for whisper-1 in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1.",
            "requests",
            json!("rate_limit_exceeded"),
        ),
        Mode::Broken => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            Value::Null,
        ),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(json!({"text": "too late"})).into_response()
        }
    }
}
