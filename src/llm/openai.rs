//! The OpenAI chat-completions protocol, for every server that speaks it: LM Studio, Ollama,
//! OpenAI, vLLM, a llama.cpp server. One adapter, parameterised by base URL and key.
//!
//! Reference: <https://platform.openai.com/docs/api-reference/chat/create> (streaming:
//! <https://platform.openai.com/docs/api-reference/chat-streaming>); LM Studio:
//! <https://lmstudio.ai/docs/app/api/endpoints/openai>; Ollama:
//! <https://github.com/ollama/ollama/blob/main/docs/openai.md>.
//!
//! Stream rules handled here: a role-only first chunk, empty or `null` deltas, the usage chunk
//! with `choices: []` before `[DONE]`, SSE comments and `keepalive` events, CRLF line endings (the
//! `eventsource-stream` parser), an `{"error": …}` object mid-stream, a stream cut before `[DONE]`,
//! and reasoning in `reasoning_content` (LM Studio) or `reasoning` (Ollama).

use super::{ChatEvent, ChatModel, ChatRequest, ChatStream, FinishReason, LlmError, Probe, Usage};
use crate::{
    outbound::BodyError,
    shared::config::{LlmProvider, Secret},
};
use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use std::time::Duration;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;

/// How long `/models` may take when the UI asks for the list or the health report probes.
const MODELS_TIMEOUT: Duration = Duration::from_millis(2_500);

/// The most read of an answer that is not streamed (a model list, a completion sent whole): far
/// more than any real one, and bounded so that a wrong endpoint cannot fill the memory.
pub const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The context window assumed for remote models: the servers do not say, and 8k is what the
/// small local models people run in LM Studio and Ollama offer at least.
const REMOTE_CONTEXT_TOKENS: u32 = 8_192;

// The SSE decoding (`sse`), and the stream reader replayed from memory (`replay`) for the
// property tests (`props`) and the fuzz targets.
#[cfg(test)]
mod props;
pub(crate) mod replay;
mod sse;

/// Settings of one OpenAI-compatible endpoint.
#[derive(Clone, Debug)]
pub struct OpenAiSettings {
    pub provider: LlmProvider,
    /// Base URL up to and including `/v1`.
    pub base_url: String,
    pub api_key: Secret,
    pub model: String,
    pub connect_timeout: Duration,
    pub first_token_timeout: Duration,
}

pub struct OpenAiCompatible {
    settings: OpenAiSettings,
    name: &'static str,
    client: reqwest::Client,
}

impl OpenAiCompatible {
    pub fn new(settings: OpenAiSettings) -> Result<Self, LlmError> {
        let name = settings.provider.label();
        let client = crate::outbound::client_builder()
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| LlmError::Engine(format!("the HTTP client could not start: {e}")))?;
        Ok(Self {
            name,
            client,
            settings: OpenAiSettings {
                base_url: settings.base_url.trim_end_matches('/').to_string(),
                ..settings
            },
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.settings.base_url)
    }

    fn authorised(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        // LM Studio and Ollama need no key; without one, no `Authorization` header is sent.
        let key = self.settings.api_key.expose();
        if key.is_empty() {
            request
        } else {
            request.bearer_auth(key)
        }
    }

    /// A non-2xx answer's body, bounded and without the key, classified.
    async fn failed(&self, response: reqwest::Response, model: &str) -> LlmError {
        let status = response.status().as_u16();
        let body = crate::outbound::error_text(response, &self.settings.api_key).await;
        self.status_error(status, &body, model)
    }

    fn transport_error(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            return LlmError::ConnectTimeout {
                provider: self.name,
                after: self.settings.connect_timeout,
            };
        }
        LlmError::Unreachable {
            provider: self.name,
            endpoint: self.settings.base_url.clone(),
            reason: root_cause(&e),
        }
    }

    /// Turns a non-2xx answer into the error that says what to do.
    fn status_error(&self, status: u16, body: &str, model: &str) -> LlmError {
        let message = error_message(body);
        let lower = message.to_ascii_lowercase();
        let provider = self.name;
        if lower.contains("no models loaded") || lower.contains("no model loaded") {
            return LlmError::NoModel { provider };
        }
        match status {
            // Only redirects within the endpoint's own origin are followed (see `outbound`).
            300..=399 => LlmError::Rejected {
                provider,
                status,
                message: format!(
                    "the endpoint ({}) redirects to another server, and requests carrying the key are not followed there; set the endpoint to the address it redirects to if you trust it",
                    self.settings.base_url
                ),
            },
            401 | 403 => LlmError::Auth { provider, status },
            404 if lower.contains("model") => LlmError::ModelNotFound {
                provider,
                model: model.to_string(),
                message,
            },
            404 => LlmError::Rejected {
                provider,
                status,
                message: format!(
                    "{message}; is the endpoint the server's /v1 base URL ({})?",
                    self.settings.base_url
                ),
            },
            429 => LlmError::RateLimited { provider, message },
            500..=599 => LlmError::Server {
                provider,
                status,
                message,
            },
            _ => LlmError::Rejected {
                provider,
                status,
                message,
            },
        }
    }
}

#[async_trait]
impl ChatModel for OpenAiCompatible {
    async fn chat(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let model = if request.model.is_empty() {
            self.settings.model.clone()
        } else {
            request.model
        };
        let body = serde_json::json!({
            "model": model,
            "messages": request.messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        });
        let deadline = Instant::now() + self.settings.first_token_timeout;
        let send = self
            .authorised(self.client.post(self.url("chat/completions")))
            .json(&body)
            .send();
        let response = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => {
                return Err(LlmError::FirstTokenTimeout {
                    provider: self.name,
                    after: self.settings.first_token_timeout,
                })
            }
            Ok(Err(e)) => return Err(self.transport_error(e)),
            Ok(Ok(r)) => r,
        };
        if !response.status().is_success() {
            return Err(
                match tokio::time::timeout_at(deadline, self.failed(response, &model)).await {
                    Ok(e) => e,
                    Err(_) => LlmError::FirstTokenTimeout {
                        provider: self.name,
                        after: self.settings.first_token_timeout,
                    },
                },
            );
        }
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));

        let (tx, rx) = mpsc::channel(64);
        let reader = StreamReader {
            provider: self.name,
            tx,
            deadline,
            first_token_timeout: self.settings.first_token_timeout,
        };
        if is_sse {
            tokio::spawn(reader.read_sse(response));
        } else {
            // A server that ignored `stream: true` answers with one JSON completion.
            tokio::spawn(reader.read_whole(response));
        }
        Ok(ReceiverStream::new(rx).boxed())
    }

    async fn list_models(&self) -> Result<Vec<String>, LlmError> {
        let request = self.authorised(self.client.get(self.url("models")));
        let response = match tokio::time::timeout(MODELS_TIMEOUT, request.send()).await {
            Err(_) => {
                return Err(LlmError::ConnectTimeout {
                    provider: self.name,
                    after: MODELS_TIMEOUT,
                })
            }
            Ok(Err(e)) => return Err(self.transport_error(e)),
            Ok(Ok(r)) => r,
        };
        if !response.status().is_success() {
            return match tokio::time::timeout(
                MODELS_TIMEOUT,
                self.failed(response, &self.settings.model),
            )
            .await
            {
                Ok(e) => Err(e),
                Err(_) => Err(LlmError::ConnectTimeout {
                    provider: self.name,
                    after: MODELS_TIMEOUT,
                }),
            };
        }
        let read = crate::outbound::read_limited(response, BODY_LIMIT);
        let body = match tokio::time::timeout(MODELS_TIMEOUT, read).await {
            Ok(Ok(body)) => body,
            Ok(Err(BodyError::Transport(e))) => return Err(self.transport_error(e)),
            Ok(Err(BodyError::TooLarge(limit))) => {
                return Err(LlmError::BadResponse {
                    provider: self.name,
                    detail: format!("GET /models sent more than {} MB", limit / 1024 / 1024),
                })
            }
            Err(_) => {
                return Err(LlmError::ConnectTimeout {
                    provider: self.name,
                    after: MODELS_TIMEOUT,
                })
            }
        };
        #[derive(Deserialize)]
        struct ModelList {
            data: Vec<ModelEntry>,
        }
        #[derive(Deserialize)]
        struct ModelEntry {
            id: String,
        }
        let list: ModelList = serde_json::from_slice(&body).map_err(|e| LlmError::BadResponse {
            provider: self.name,
            detail: format!("GET /models: {e}"),
        })?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }

    async fn probe(&self) -> Result<Probe, LlmError> {
        let models = self.list_models().await?;
        if models.is_empty() {
            return Err(LlmError::NoModel {
                provider: self.name,
            });
        }
        let wanted = &self.settings.model;
        if !wanted.is_empty() && !models.iter().any(|m| m == wanted) {
            return Err(LlmError::ModelNotFound {
                provider: self.name,
                model: wanted.clone(),
                message: format!("it offers {}", models.join(", ")),
            });
        }
        let detail = if wanted.is_empty() {
            format!(
                "{} answers; model: {} (the server's choice)",
                self.name, models[0]
            )
        } else {
            format!("{} answers; model: {wanted}", self.name)
        };
        Ok(Probe { models, detail })
    }

    fn context_tokens(&self) -> u32 {
        REMOTE_CONTEXT_TOKENS
    }
}

/// Reads a response and forwards its events until the reply ends or the receiver goes away
/// (which drops the response and so closes the connection: the generation is cancelled).
struct StreamReader {
    provider: &'static str,
    tx: mpsc::Sender<Result<ChatEvent, LlmError>>,
    deadline: Instant,
    first_token_timeout: Duration,
}

impl StreamReader {
    async fn fail_first_token(&self) {
        let _ = self
            .tx
            .send(Err(LlmError::FirstTokenTimeout {
                provider: self.provider,
                after: self.first_token_timeout,
            }))
            .await;
    }

    async fn read_sse(self, response: reqwest::Response) {
        let mut events = sse::events(response.bytes_stream());
        let mut parser = ChunkParser::default();
        let mut first = true;
        loop {
            let next = if first {
                match tokio::time::timeout_at(self.deadline, events.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        return self.fail_first_token().await;
                    }
                }
            } else {
                tokio::select! {
                    next = events.next() => next,
                    () = self.tx.closed() => return,
                }
            };
            let outcome = match next {
                None => parser.end(self.provider),
                Some(Err(e)) => Step::Fail(LlmError::Unreachable {
                    provider: self.provider,
                    endpoint: "the stream".into(),
                    reason: e.to_string(),
                }),
                Some(Ok(event)) => {
                    if event.event == "keepalive" || event.data.trim().is_empty() {
                        continue;
                    }
                    parser.feed(self.provider, &event.data)
                }
            };
            match outcome {
                Step::Emit(out) => {
                    first &= out.is_empty();
                    for e in out {
                        if self.tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                }
                Step::Done(out) => {
                    for e in out {
                        if self.tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                Step::Fail(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    async fn read_whole(self, response: reqwest::Response) {
        let read = crate::outbound::read_limited(response, BODY_LIMIT);
        let body = match tokio::time::timeout_at(self.deadline, read).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                let detail = match e {
                    BodyError::Transport(e) => e.to_string(),
                    BodyError::TooLarge(limit) => {
                        format!("a completion of more than {} MB", limit / 1024 / 1024)
                    }
                };
                let _ = self
                    .tx
                    .send(Err(LlmError::BadResponse {
                        provider: self.provider,
                        detail,
                    }))
                    .await;
                return;
            }
            Err(_) => return self.fail_first_token().await,
        };
        for event in parse_completion(self.provider, &String::from_utf8_lossy(&body)) {
            if self.tx.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// What one SSE event means for the reply.
#[derive(Debug, PartialEq)]
enum Step {
    Emit(Vec<ChatEvent>),
    Done(Vec<ChatEvent>),
    Fail(LlmError),
}

/// The state of one streamed reply: the finish reason arrives before the usage chunk, and both
/// are reported together at `[DONE]`.
#[derive(Default)]
struct ChunkParser {
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// llama-server's `timings.cache_n`, which may come in another chunk than the usage.
    cache_n: Option<u32>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<UsageJson>,
    /// llama.cpp's `llama-server` says what it took from its prompt cache here.
    #[serde(default)]
    timings: Option<ServerTimings>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ServerTimings {
    #[serde(default)]
    cache_n: Option<u32>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    /// Non-streamed completions carry `message` instead of `delta`.
    #[serde(default)]
    message: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

#[derive(Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    /// OpenAI's prompt caching (and servers that copy it).
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

impl ChunkParser {
    fn feed(&mut self, provider: &'static str, data: &str) -> Step {
        if data.trim() == "[DONE]" {
            return Step::Done(vec![self.finished()]);
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                return Step::Fail(LlmError::BadResponse {
                    provider,
                    detail: format!("a stream chunk is not JSON ({e})"),
                })
            }
        };
        if let Some(error) = chunk.error {
            return Step::Fail(LlmError::MidStream {
                provider,
                message: error_value_message(&error),
            });
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cached_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
            });
        }
        if let Some(cached) = chunk.timings.and_then(|t| t.cache_n) {
            self.cache_n = Some(cached);
        }
        let mut out = Vec::new();
        for choice in chunk.choices {
            let delta = choice.delta.or(choice.message).unwrap_or_default();
            for reasoning in [delta.reasoning_content, delta.reasoning]
                .into_iter()
                .flatten()
            {
                if !reasoning.is_empty() {
                    out.push(ChatEvent::Reasoning(reasoning));
                }
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push(ChatEvent::Content(text));
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(finish_reason(&reason));
            }
        }
        Step::Emit(out)
    }

    /// The byte stream ended. Without `[DONE]` that is a cut, unless the finish reason came.
    fn end(&mut self, provider: &'static str) -> Step {
        if self.finish.is_some() {
            Step::Done(vec![self.finished()])
        } else {
            Step::Fail(LlmError::Interrupted { provider })
        }
    }

    fn finished(&self) -> ChatEvent {
        ChatEvent::Finished {
            reason: self.finish.unwrap_or(FinishReason::Stop),
            usage: self.usage.map(|u| Usage {
                cached_tokens: u.cached_tokens.or(self.cache_n),
                ..u
            }),
        }
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "eos" | "end_turn" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// A whole (non-streamed) completion as events.
fn parse_completion(provider: &'static str, body: &str) -> Vec<Result<ChatEvent, LlmError>> {
    let mut parser = ChunkParser::default();
    match parser.feed(provider, body) {
        Step::Emit(mut out) | Step::Done(mut out) => {
            if out.iter().all(|e| !matches!(e, ChatEvent::Content(_))) && parser.finish.is_none() {
                return vec![Err(LlmError::BadResponse {
                    provider,
                    detail: "the answer has no choices".into(),
                })];
            }
            parser.finish.get_or_insert(FinishReason::Stop);
            out.push(parser.finished());
            out.into_iter().map(Ok).collect()
        }
        Step::Fail(e) => vec![Err(e)],
    }
}

/// The human part of an error body: `{"error": {"message"}}`, `{"error": "…"}`, `{"message"}`,
/// `{"detail"}`, or the text itself.
fn error_message(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => error_value_message(&v),
        Err(_) => body.trim().to_string(),
    };
    let text = if text.is_empty() {
        "no details".to_string()
    } else {
        text
    };
    truncate(&text, 300)
}

fn error_value_message(v: &serde_json::Value) -> String {
    let pick = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => ["message", "detail", "error"]
                .iter()
                .find_map(|k| o.get(*k).and_then(|m| m.as_str()).map(str::to_string)),
            _ => None,
        }
    };
    v.get("error")
        .and_then(pick)
        .or_else(|| pick(v))
        .unwrap_or_else(|| truncate(&v.to_string(), 300))
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The innermost cause of a transport error ("Connection refused"), which says more than
/// reqwest's outer "error sending request".
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "LM Studio";

    fn feed_all(lines: &[&str]) -> (Vec<ChatEvent>, Option<Step>) {
        let mut parser = ChunkParser::default();
        let mut events = Vec::new();
        for data in lines {
            match parser.feed(P, data) {
                Step::Emit(out) => events.extend(out),
                other => return (events, Some(other)),
            }
        }
        (events, None)
    }

    #[test]
    fn role_only_and_empty_deltas_emit_nothing_and_usage_is_kept() {
        let (events, end) = feed_all(&[
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":null},"finish_reason":null}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#,
            "[DONE]",
        ]);
        assert_eq!(events, vec![ChatEvent::Content("Hel".into())]);
        assert_eq!(
            end,
            Some(Step::Done(vec![ChatEvent::Finished {
                reason: FinishReason::Stop,
                usage: Some(Usage {
                    prompt_tokens: 9,
                    completion_tokens: 3,
                    cached_tokens: None,
                })
            }]))
        );
    }

    #[test]
    fn cached_prompt_tokens_are_read_in_openai_and_llama_server_shapes() {
        let (_, end) = feed_all(&[
            r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":900,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":768}}}"#,
            "[DONE]",
        ]);
        let Some(Step::Done(events)) = end else {
            panic!("no end: {end:?}")
        };
        assert!(matches!(
            events[0],
            ChatEvent::Finished {
                usage: Some(Usage {
                    cached_tokens: Some(768),
                    prompt_tokens: 900,
                    ..
                }),
                ..
            }
        ));
        // llama-server: the cache count in `timings`, before the usage.
        let (_, end) = feed_all(&[
            r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":"length"}],"timings":{"cache_n":850,"prompt_n":50}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":900,"completion_tokens":3}}"#,
            "[DONE]",
        ]);
        let Some(Step::Done(events)) = end else {
            panic!("no end: {end:?}")
        };
        assert!(matches!(
            events[0],
            ChatEvent::Finished {
                reason: FinishReason::Length,
                usage: Some(Usage {
                    cached_tokens: Some(850),
                    ..
                })
            }
        ));
    }

    #[test]
    fn reasoning_fields_of_lm_studio_and_ollama_are_reasoning() {
        let (events, _) = feed_all(&[
            r#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#,
            r#"{"choices":[{"delta":{"role":"assistant","reasoning":"so"}}]}"#,
            r#"{"choices":[{"delta":{"role":"assistant","content":"Hi"}}]}"#,
        ]);
        assert_eq!(
            events,
            vec![
                ChatEvent::Reasoning("hmm".into()),
                ChatEvent::Reasoning("so".into()),
                ChatEvent::Content("Hi".into())
            ]
        );
    }

    #[test]
    fn an_error_object_mid_stream_fails_with_its_message() {
        let (_, end) = feed_all(&[
            r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"error":{"message":"model crashed","type":"api_error"}}"#,
        ]);
        match end {
            Some(Step::Fail(LlmError::MidStream { message, .. })) => {
                assert_eq!(message, "model crashed")
            }
            other => panic!("expected a mid-stream failure, got {other:?}"),
        }
    }

    #[test]
    fn a_cut_without_done_fails_unless_the_finish_reason_came() {
        let mut parser = ChunkParser::default();
        assert!(matches!(
            parser.end(P),
            Step::Fail(LlmError::Interrupted { .. })
        ));
        parser.feed(P, r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#);
        assert_eq!(
            parser.end(P),
            Step::Done(vec![ChatEvent::Finished {
                reason: FinishReason::Length,
                usage: None
            }])
        );
    }

    #[test]
    fn error_bodies_of_each_shape_give_their_message() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"No models loaded. Please load a model","type":"invalid_request_error"}}"#
            ),
            "No models loaded. Please load a model"
        );
        assert_eq!(error_message(r#"{"error":"unauthorized"}"#), "unauthorized");
        assert_eq!(error_message(r#"{"detail":"nope"}"#), "nope");
        assert_eq!(error_message("  Not Found \n"), "Not Found");
        assert_eq!(error_message(""), "no details");
    }

    #[test]
    fn a_whole_completion_becomes_content_and_finish() {
        let events = parse_completion(
            P,
            r#"{"id":"chatcmpl-804","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":10,"total_tokens":40}}"#,
        );
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].as_ref().ok(),
            Some(&ChatEvent::Content("Hello!".into()))
        );
        assert!(parse_completion(P, r#"{"object":"list","data":[]}"#)[0].is_err());
    }
}
