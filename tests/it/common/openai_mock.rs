//! A mock OpenAI-compatible server on a loopback port, speaking the wire format of LM Studio,
//! Ollama or OpenAI and failing the ways they fail.
//!
//! The request's `model` picks the case, so one server covers a whole suite:
//! `ok`, `crlf`, `pings`, `think`, `reasoning`, `midstream_error`, `cut`, `slow`, `no_model`,
//! `missing`, `rate`, `plain_json`, `endless_json` (a completion sent whole, without
//! `Content-Length`, that never ends), `tokens:<n>:<ms>` (n tokens, one every ms),
//! `story:<n>:<ms>` (an emotion tag, then n sentences of five word tokens, one token every ms),
//! `stall:<n>` (n tokens at once, then silence with the connection open).

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use futures::StreamExt;
use serde_json::{json, Value};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    LmStudio,
    Ollama,
    OpenAi,
}

/// The key the OpenAI flavor accepts.
pub const KEY: &str = "sk-test-123";

#[derive(Clone)]
struct Mock {
    flavor: Flavor,
    requests: Arc<Mutex<Vec<Value>>>,
    models: Arc<Mutex<Vec<String>>>,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
}

pub struct MockLlm {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
    pub models: Arc<Mutex<Vec<String>>>,
    /// The headers of every request (models and chat), in arrival order.
    pub headers: Arc<Mutex<Vec<HeaderMap>>>,
}

impl MockLlm {
    pub async fn start(flavor: Flavor) -> MockLlm {
        let mock = Mock {
            flavor,
            requests: Arc::default(),
            models: Arc::new(Mutex::new(vec!["mock-model".into(), "other-model".into()])),
            headers: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockLlm {
            base_url: format!("http://{addr}/v1"),
            requests: mock.requests,
            models: mock.models,
            headers: mock.headers,
        }
    }

    /// How many requests arrived.
    pub fn calls(&self) -> usize {
        self.headers.lock().unwrap().len()
    }

    /// The `Authorization` header of every request that had one.
    pub fn authorizations(&self) -> Vec<String> {
        self.headers
            .lock()
            .unwrap()
            .iter()
            .filter_map(|h| h.get("authorization"))
            .map(|v| v.to_str().unwrap_or("<not text>").to_string())
            .collect()
    }

    pub fn last_request(&self) -> Value {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or(Value::Null)
    }
}

fn authorised(mock: &Mock, headers: &HeaderMap) -> bool {
    if mock.flavor != Flavor::OpenAi {
        return true; // LM Studio and Ollama ignore the key
    }
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": {"message": "Incorrect API key provided: sk-wr***ng.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})),
    )
        .into_response()
}

async fn models(State(mock): State<Mock>, headers: HeaderMap) -> Response {
    mock.headers.lock().unwrap().push(headers.clone());
    if !authorised(&mock, &headers) {
        return unauthorised();
    }
    let data: Vec<Value> = mock
        .models
        .lock()
        .unwrap()
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "library"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

fn chunk(mock: &Mock, delta: Value, finish: Option<&str>) -> String {
    let mut delta = delta;
    if mock.flavor == Flavor::Ollama {
        delta["role"] = json!("assistant");
    }
    let mut c = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "mock-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    if mock.flavor == Flavor::Ollama {
        c["system_fingerprint"] = json!("fp_ollama");
    }
    format!("data: {c}\n\n")
}

fn usage_chunk() -> String {
    let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "mock-model", "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}});
    format!("data: {c}\n\n")
}

fn content(mock: &Mock, text: &str) -> String {
    chunk(mock, json!({"content": text}), None)
}

/// The happy path's frames: role-only first chunk, content, an empty stop delta, usage, DONE.
fn happy(mock: &Mock, words: &[&str]) -> Vec<String> {
    let mut frames = vec![chunk(
        mock,
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    frames.extend(words.iter().map(|w| content(mock, w)));
    frames.push(chunk(mock, json!({}), Some("stop")));
    frames.push(usage_chunk());
    frames.push("data: [DONE]\n\n".into());
    frames
}

fn sse(frames: Vec<String>, gap: Duration) -> Response {
    let stream = async_stream(frames, gap);
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn async_stream(
    frames: Vec<String>,
    gap: Duration,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::unfold(frames.into_iter(), move |mut it| async move {
        let next = it.next()?;
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        Some((Ok(next), it))
    })
}

async fn chat(State(mock): State<Mock>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    mock.requests.lock().unwrap().push(body.clone());
    mock.headers.lock().unwrap().push(headers.clone());
    if !authorised(&mock, &headers) {
        return unauthorised();
    }
    let case = body["model"].as_str().unwrap_or("ok").to_string();
    let no_gap = Duration::ZERO;
    match case.as_str() {
        "ok" | "mock-model" | "" => sse(happy(&mock, &["Hel", "lo there! ", "[happy]"]), no_gap),
        "crlf" => sse(
            happy(&mock, &["Hi", " again."])
                .into_iter()
                .map(|f| f.replace('\n', "\r\n"))
                .collect(),
            no_gap,
        ),
        "pings" => {
            let mut frames = vec![": ping\n\n".to_string(), "event: keepalive\ndata: {}\n\n".into()];
            frames.extend(happy(&mock, &["Still", " here."]));
            frames.insert(3, ": ping\n\n".into());
            sse(frames, no_gap)
        }
        "think" => sse(
            happy(&mock, &["<thi", "nk>They greet me.</th", "ink>Hello", "!"]),
            no_gap,
        ),
        "reasoning" => {
            let field = if mock.flavor == Flavor::Ollama {
                "reasoning"
            } else {
                "reasoning_content"
            };
            let mut frames = vec![
                chunk(&mock, json!({"role": "assistant", "content": ""}), None),
                chunk(&mock, json!({field: "Let me think."}), None),
            ];
            frames.extend(happy(&mock, &["Done thinking."]).into_iter().skip(1));
            sse(frames, no_gap)
        }
        "midstream_error" => sse(
            vec![
                content(&mock, "Half a "),
                "data: {\"error\":{\"message\":\"the model crashed\",\"type\":\"api_error\"}}\n\n"
                    .into(),
            ],
            no_gap,
        ),
        "cut" => sse(vec![content(&mock, "Cut off mid")], no_gap),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            sse(happy(&mock, &["late"]), no_gap)
        }
        "no_model" if mock.flavor == Flavor::LmStudio => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "No models loaded. Please load a model in the developer page or use the `lms load` command.", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})),
        )
            .into_response(),
        "no_model" => (StatusCode::NOT_FOUND, "No models loaded").into_response(),
        "missing" => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "model \"missing\" not found, try pulling it first", "type": "not_found_error", "param": null, "code": null}})),
        )
            .into_response(),
        "rate" => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})),
        )
            .into_response(),
        "plain_json" => Json(json!({
            "id": "chatcmpl-804", "object": "chat.completion", "created": 1_776_545_326,
            "model": "mock-model", "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I assist you today?"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}}))
        .into_response(),
        "endless_json" => {
            let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
            let body = futures::stream::once(async {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"id\": \"chatcmpl-1\","))
            })
            .chain(futures::stream::repeat_with(move || Ok(chunk.clone())));
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(body))
                .unwrap()
        }
        other if other.starts_with("stall:") => match other[6..].parse::<usize>() {
            Ok(n) => {
                let words: Vec<String> = (0..n).map(|i| format!("word{i} ")).collect();
                let mut frames = vec![chunk(&mock, json!({"role": "assistant", "content": ""}), None)];
                frames.extend(words.iter().map(|w| content(&mock, w)));
                let body = async_stream(frames, Duration::ZERO).chain(futures::stream::pending());
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(body))
                    .unwrap()
            }
            Err(_) => (StatusCode::BAD_REQUEST, "bad stall case").into_response(),
        },
        other if other.starts_with("story:") => match parse_tokens(&other.replacen("story", "tokens", 1)) {
            Some((n, ms)) => {
                let words = story_tokens(n);
                let refs: Vec<&str> = words.iter().map(String::as_str).collect();
                sse(happy(&mock, &refs), Duration::from_millis(ms))
            }
            None => (StatusCode::BAD_REQUEST, "bad story case").into_response(),
        },
        other => match parse_tokens(other) {
            Some((n, ms)) => {
                let words: Vec<String> = (0..n).map(|i| format!("word{i} ")).collect();
                let refs: Vec<&str> = words.iter().map(String::as_str).collect();
                sse(happy(&mock, &refs), Duration::from_millis(ms))
            }
            None => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": format!("unknown mock case {other}")}})),
            )
                .into_response(),
        },
    }
}

fn parse_tokens(case: &str) -> Option<(usize, u64)> {
    let mut parts = case.strip_prefix("tokens:")?.split(':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `[happy] Sentence one is here. Sentence two is here. …` as tokens: the tag, then a word each.
pub fn story_tokens(sentences: usize) -> Vec<String> {
    let mut words = vec!["[happy] ".to_string()];
    for i in 0..sentences {
        for w in ["Sentence ", "number ", &format!("{i} "), "is "] {
            words.push(w.to_string());
        }
        words.push("here. ".into());
    }
    words
}

/// The visible text of `story:<n>`: what the reply is once the tag is taken out.
pub fn story_text(sentences: usize) -> String {
    (0..sentences)
        .map(|i| format!("Sentence number {i} is here."))
        .collect::<Vec<_>>()
        .join(" ")
}
