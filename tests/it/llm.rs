//! The OpenAI-compatible adapter against a mock server in LM Studio, Ollama and OpenAI modes
//! (one conformance suite), and the chat endpoints end to end through the router.

use crate::common;

use common::openai_mock::{Flavor, MockLlm, KEY};
use common::{get, harness, post_json, put_json, send, sse_events, Harness};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use waifu_rt3d::{
    llm::{
        openai::{OpenAiCompatible, OpenAiSettings},
        ChatEvent, ChatModel, ChatRequest, FinishReason, LlmError, PromptMessage, PromptRole,
    },
    server::chat::DRAFT_TOKENS,
    shared::config::{LlmProvider, Secret},
};

const FLAVORS: [(Flavor, LlmProvider); 3] = [
    (Flavor::LmStudio, LlmProvider::Lmstudio),
    (Flavor::Ollama, LlmProvider::Ollama),
    (Flavor::OpenAi, LlmProvider::Openai),
];

fn adapter(mock: &MockLlm, provider: LlmProvider, key: &str) -> OpenAiCompatible {
    OpenAiCompatible::new(OpenAiSettings {
        provider,
        base_url: mock.base_url.clone(),
        api_key: Secret::new(key),
        model: String::new(),
        connect_timeout: Duration::from_millis(500),
        first_token_timeout: Duration::from_millis(800),
    })
    .unwrap()
}

fn request(case: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            PromptMessage::new(PromptRole::System, "You are Aiko."),
            PromptMessage::new(PromptRole::User, "hi"),
        ],
        model: case.into(),
        temperature: 0.5,
        max_tokens: 64,
    }
}

/// All events of one reply, or the error that ended it (with the events before it).
async fn collect(model: &OpenAiCompatible, case: &str) -> (Vec<ChatEvent>, Option<LlmError>) {
    let mut stream = match model.chat(request(case)).await {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut events = Vec::new();
    while let Some(e) = stream.next().await {
        match e {
            Ok(e) => events.push(e),
            Err(e) => return (events, Some(e)),
        }
    }
    (events, None)
}

fn text(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Content(c) => Some(c.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn conformance_happy_paths_in_every_mode() {
    for (flavor, provider) in FLAVORS {
        let mock = MockLlm::start(flavor).await;
        let model = adapter(&mock, provider, KEY);
        for (case, want) in [
            ("ok", "Hello there! [happy]"),
            ("crlf", "Hi again."),
            ("pings", "Still here."),
            ("think", "<think>They greet me.</think>Hello!"),
            ("plain_json", "Hello! How can I assist you today?"),
        ] {
            let (events, err) = collect(&model, case).await;
            assert!(err.is_none(), "{flavor:?} {case}: {err:?}");
            assert_eq!(text(&events), want, "{flavor:?} {case}");
            assert!(
                matches!(
                    events.last(),
                    Some(ChatEvent::Finished {
                        reason: FinishReason::Stop,
                        ..
                    })
                ),
                "{flavor:?} {case}: {events:?}"
            );
        }
        // The usage chunk (choices: []) is reported with the finish.
        let (events, _) = collect(&model, "ok").await;
        match events.last() {
            Some(ChatEvent::Finished { usage: Some(u), .. }) => assert_eq!(u.completion_tokens, 3),
            other => panic!("{flavor:?}: no usage in {other:?}"),
        }
        // The request is the documented one.
        let sent = mock.last_request();
        assert_eq!(sent["stream"], json!(true));
        assert_eq!(sent["stream_options"]["include_usage"], json!(true));
        assert_eq!(
            sent["messages"][0],
            json!({"role": "system", "content": "You are Aiko."})
        );
        assert_eq!(sent["max_tokens"], json!(64));
    }
}

#[tokio::test]
async fn conformance_reasoning_deltas_are_kept_apart() {
    for (flavor, provider) in FLAVORS {
        let mock = MockLlm::start(flavor).await;
        let (events, err) = collect(&adapter(&mock, provider, KEY), "reasoning").await;
        assert!(err.is_none(), "{flavor:?}: {err:?}");
        assert!(
            events.contains(&ChatEvent::Reasoning("Let me think.".into())),
            "{flavor:?}"
        );
        assert_eq!(text(&events), "Done thinking.", "{flavor:?}");
    }
}

#[tokio::test]
async fn conformance_failures_are_classified() {
    for (flavor, provider) in FLAVORS {
        let mock = MockLlm::start(flavor).await;
        let model = adapter(&mock, provider, KEY);

        let (events, err) = collect(&model, "midstream_error").await;
        assert_eq!(text(&events), "Half a ");
        assert_eq!(
            err.as_ref().map(LlmError::code),
            Some("llm_error"),
            "{flavor:?}"
        );
        assert!(err.unwrap().to_string().contains("the model crashed"));

        let (events, err) = collect(&model, "cut").await;
        assert_eq!(text(&events), "Cut off mid");
        assert_eq!(err.map(|e| e.code()), Some("llm_interrupted"), "{flavor:?}");

        let (_, err) = collect(&model, "slow").await;
        let err = err.expect("a slow first token times out");
        assert_eq!(
            (err.code(), err.http_status()),
            ("llm_timeout", 504),
            "{flavor:?}"
        );

        let (_, err) = collect(&model, "no_model").await;
        let err = err.expect("no model loaded");
        assert_eq!(err.code(), "llm_no_model", "{flavor:?}");
        assert!(err.to_string().contains("Load a model"), "{err}");

        let (_, err) = collect(&model, "missing").await;
        assert_eq!(
            err.map(|e| e.code()),
            Some("llm_model_not_found"),
            "{flavor:?}"
        );

        let (_, err) = collect(&model, "rate").await;
        assert_eq!(err.map(|e| e.http_status()), Some(429), "{flavor:?}");
    }
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_does_not_echo_the_key() {
    let mock = MockLlm::start(Flavor::OpenAi).await;
    let model = adapter(&mock, LlmProvider::Openai, "sk-wrong-secret");
    let (_, err) = collect(&model, "ok").await;
    let err = err.expect("refused");
    assert_eq!(err.code(), "llm_auth");
    assert!(!err.to_string().contains("sk-wrong-secret"));
    assert!(!format!("{err:?}").contains("sk-wrong-secret"));
    assert_eq!(model.probe().await.unwrap_err().code(), "llm_auth");
}

#[tokio::test]
async fn unreachable_servers_say_so_quickly() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let model = OpenAiCompatible::new(OpenAiSettings {
        provider: LlmProvider::Lmstudio,
        base_url: format!("http://127.0.0.1:{port}/v1"),
        api_key: Secret::default(),
        model: String::new(),
        connect_timeout: Duration::from_millis(500),
        first_token_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let err = model.chat(request("ok")).await.err().expect("no server");
    assert_eq!(err.code(), "llm_unreachable");
    assert!(err.to_string().contains("does not answer"), "{err}");
}

#[tokio::test]
async fn models_are_listed_and_the_probe_checks_the_configured_one() {
    let mock = MockLlm::start(Flavor::Ollama).await;
    let model = adapter(&mock, LlmProvider::Ollama, "");
    assert_eq!(
        model.list_models().await.unwrap(),
        ["mock-model", "other-model"]
    );
    assert!(model.probe().await.is_ok());
    mock.models.lock().unwrap().clear();
    assert_eq!(model.probe().await.unwrap_err().code(), "llm_no_model");
}

// ---------------------------------------------------------------- the chat endpoints

async fn chat_harness(flavor: Flavor, model: &str) -> (Harness, MockLlm) {
    let h = harness().await;
    let mock = MockLlm::start(flavor).await;
    let provider = match flavor {
        Flavor::LmStudio => "lmstudio",
        Flavor::Ollama => "ollama",
        Flavor::OpenAi => "openai",
    };
    let body = json!({"llm": {"provider": provider, "endpoint": mock.base_url, "model": model,
        "api_key": KEY, "first_token_timeout_ms": 1000}});
    let r = send(&h.app, put_json("/api/config", &body.to_string())).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    (h, mock)
}

/// Starts a turn in-process: its events are read as they come, and dropping it is Stop.
async fn start_turn(
    state: &waifu_rt3d::server::AppState,
    session: i64,
    text: &str,
) -> waifu_rt3d::server::chat::Turn {
    let input = waifu_rt3d::shared::chat::ChatInput {
        text: text.into(),
        ..Default::default()
    };
    waifu_rt3d::server::chat::start(state, session, input)
        .await
        .unwrap()
}

async fn messages(h: &Harness, session: i64) -> Vec<Value> {
    let r = send(&h.app, get(&format!("/api/sessions/{session}/messages"))).await;
    r.json()["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn api_chat_stores_both_messages_and_strips_tags() {
    let (h, _mock) = chat_harness(Flavor::LmStudio, "ok").await;
    let r = send(
        &h.app,
        post_json("/api/chat?session_id=7", r#"{"text":"  hi Aiko  "}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["ok"], json!(true));
    assert_eq!(body["reply"], json!("Hello there!"));
    assert_eq!(body["emotion"], json!("happy"));
    assert_eq!(body["session_id"], json!(7));
    assert_eq!(body["audio"], Value::Null);
    let stored = messages(&h, 7).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0]["text"], json!("hi Aiko"));
    assert_eq!(stored[1]["text"], json!("Hello there!"));
    assert_eq!(stored[1]["id"], body["message_id"]);
    assert_eq!(stored[0]["id"], body["user_message_id"]);
}

#[tokio::test]
async fn the_prompt_has_the_character_history_and_recalled_memories() {
    let (h, mock) = chat_harness(Flavor::Ollama, "ok").await;
    // An older conversation mentions the cat.
    let r = send(
        &h.app,
        post_json(
            "/api/chat?session_id=2",
            r#"{"text":"My cat is called Mochi"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(
        &h.app,
        post_json("/api/chat?session_id=3", r#"{"text":"first"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(
        &h.app,
        post_json(
            "/api/chat?session_id=3",
            r#"{"text":"How is Mochi doing?"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let sent = mock.last_request();
    let msgs = sent["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.contains("Aiko"), "{system}");
    // The memory changes from turn to turn, so it is not in the system prompt (which a model's
    // cache keeps) but just before the new message.
    assert!(!system.contains("Mochi"), "{system}");
    // History of this session in order, then the new message.
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(msgs[1]["content"], json!("first"));
    let last = msgs[3]["content"].as_str().unwrap();
    assert!(
        last.contains("the user said: \"My cat is called Mochi\""),
        "memory missing: {last}"
    );
    assert!(last.ends_with("\n\nHow is Mochi doing?"), "{last}");
}

#[tokio::test]
async fn api_chat_maps_provider_failures_to_502_and_504() {
    let (h, _mock) = chat_harness(Flavor::LmStudio, "no_model").await;
    let r = send(&h.app, post_json("/api/chat", r#"{"text":"hi"}"#)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["code"], json!("llm_no_model"));
    assert_eq!(r.json()["ok"], json!(false));
    // The user message was stored before the call.
    assert_eq!(messages(&h, 1).await.len(), 1);

    let (h, _mock) = chat_harness(Flavor::LmStudio, "slow").await;
    let r = send(&h.app, post_json("/api/chat", r#"{"text":"hi"}"#)).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["code"], json!("llm_timeout"));
}

#[tokio::test]
async fn bad_chat_bodies_are_400_before_anything_is_stored() {
    let (h, _mock) = chat_harness(Flavor::LmStudio, "ok").await;
    for body in [
        "",
        "{",
        r#"{"text":""}"#,
        r#"{"text":"   "}"#,
        r#"{"text":5}"#,
        "[]",
    ] {
        let r = send(&h.app, post_json("/api/chat?session_id=9", body)).await;
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["ok"], json!(false));
    }
    let r = send(
        &h.app,
        post_json("/api/chat/stream?session_id=x", r#"{"text":"hi"}"#),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = send(
        &h.app,
        post_json(
            "/api/chat?session_id=9",
            r#"{"text":"hi","character_id":999}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(send(&h.app, get("/api/sessions/9")).await.status, 200);
    assert_eq!(messages(&h, 9).await.len(), 0);
}

#[tokio::test]
async fn the_stream_sends_named_token_and_done_events() {
    let (h, _mock) = chat_harness(Flavor::Ollama, "think").await;
    let r = send(
        &h.app,
        post_json("/api/chat/stream?session_id=4", r#"{"text":"hi"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header(axum::http::header::CONTENT_TYPE)
        .starts_with("text/event-stream"));
    let events = sse_events(&r.body);
    // First the acknowledgement: the message is stored under this id.
    let (name, accepted) = &events[0];
    assert_eq!(name, "accepted");
    assert_eq!(accepted["session_id"], json!(4));
    let tokens: String = events
        .iter()
        .filter(|(n, _)| n == "token")
        .map(|(_, d)| d["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens, "Hello!", "the think block leaked: {events:?}");
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(done["reply"], json!("Hello!"));
    assert!(done["timings"]["first_token"].as_u64().is_some());
    assert!(
        done["timings"]["response_complete"].as_u64() >= done["timings"]["first_token"].as_u64()
    );
    // The reasoning is stored apart from the text.
    let r = send(&h.app, get("/api/sessions/4/messages")).await;
    let page = r.json();
    assert_eq!(page["messages"][0]["id"], accepted["message_id"]);
    let stored = &page["messages"][1];
    assert_eq!(stored["text"], json!("Hello!"));
    assert_eq!(stored["partial"], json!(false));
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_reply_that_fails_midway_is_kept_as_partial() {
    let (h, _mock) = chat_harness(Flavor::LmStudio, "midstream_error").await;
    let r = send(
        &h.app,
        post_json("/api/chat/stream?session_id=5", r#"{"text":"hi"}"#),
    )
    .await;
    let events = sse_events(&r.body);
    let (name, err) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(err["code"], json!("llm_error"));
    let id = err["message_id"].as_i64().expect("the partial reply's id");
    let page = send(&h.app, get("/api/sessions/5/messages")).await.json();
    let stored = &page["messages"][1];
    assert_eq!(stored["id"], json!(id));
    assert_eq!(stored["text"], json!("Half a"));
    assert_eq!(stored["partial"], json!(true));
}

#[tokio::test]
async fn stopping_a_stream_keeps_what_arrived() {
    let (h, _mock) = chat_harness(Flavor::LmStudio, "tokens:200:20").await;
    let state = h.state.clone();
    let mut turn = start_turn(&state, 6, "tell me a story").await;
    let mut got = 0;
    while let Some(e) = turn.events.recv().await {
        if e.name() == "token" {
            got += 1;
            if got == 5 {
                break;
            }
        }
    }
    drop(turn); // the person pressed Stop
                // The reply's row exists from its first word on; wait for the stop to rewrite it.
    let mut stored = Vec::new();
    for _ in 0..50 {
        stored = messages(&h, 6).await;
        if stored.len() == 2 && stored[1]["text"].as_str().unwrap_or("").contains("word3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[1]["partial"], json!(true));
    let text = stored[1]["text"].as_str().unwrap();
    assert!(text.starts_with("word0 word1 word2 word3"), "{text}");
    assert!(
        !text.contains("word199"),
        "the stream was not stopped: {text}"
    );
}

#[tokio::test]
async fn health_reports_the_llm_state() {
    let (h, mock) = chat_harness(Flavor::LmStudio, "mock-model").await;
    let health = send(&h.app, get("/api/healthcheck")).await.json();
    assert_eq!(health["llm"]["state"], json!("ok"), "{health}");
    assert_eq!(health["lmstudio"], json!(true));
    mock.models.lock().unwrap().clear();
    let health = send(&h.app, get("/api/healthcheck")).await.json();
    assert_eq!(health["llm"]["state"], json!("no_model"));
    assert_eq!(health["lmstudio"], json!(false));
}

// ---------------------------------------------------------------- keys stay with their origin

/// Setup's "Test connection", as the browser calls it.
async fn check_llm(h: &Harness, provider: &str, endpoint: &str, api_key: &str) -> Value {
    let form = format!(
        "provider={provider}&endpoint={}&api_key={api_key}",
        endpoint.replace(':', "%3A").replace('/', "%2F")
    );
    let req = axum::http::Request::post("/sfn/llm/check")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(axum::body::Body::from(form))
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_sends_the_saved_key_only_to_its_own_origin() {
    let (h, saved) = chat_harness(Flavor::OpenAi, "mock-model").await;
    // Same provider, same origin, no key typed: the saved key is used.
    let j = check_llm(&h, "openai", &saved.base_url, "").await;
    assert_eq!(j["health"]["state"], "ok", "{j}");
    assert_eq!(saved.authorizations(), [format!("Bearer {KEY}")]);

    // Another server typed in the form: it never sees the saved key.
    let other = MockLlm::start(Flavor::OpenAi).await;
    let j = check_llm(&h, "openai", &other.base_url, "").await;
    assert_eq!(other.calls(), 1, "{j}");
    assert!(
        other.authorizations().is_empty(),
        "{:?}",
        other.authorizations()
    );
    assert_eq!(j["health"]["state"], "auth", "{j}");
    // A key typed with it is the one sent.
    check_llm(&h, "openai", &other.base_url, "sk-typed-1").await;
    assert_eq!(other.authorizations(), ["Bearer sk-typed-1"]);
    // Another provider at the same place does not get it either.
    let lm = MockLlm::start(Flavor::LmStudio).await;
    check_llm(&h, "lmstudio", &lm.base_url, "").await;
    assert!(lm.authorizations().is_empty());
    assert_eq!(saved.calls(), 1);
}

/// A server whose `/v1/models` redirects elsewhere, and whose `/same/v1/models` redirects to its
/// own `/ok/v1/models`.
async fn redirecting_llm(elsewhere: &str) -> String {
    use axum::{
        http::{header, HeaderMap, StatusCode},
        response::IntoResponse,
        routing::get as route_get,
        Router,
    };
    let elsewhere = elsewhere.to_string();
    let router = Router::new()
        .route(
            "/v1/models",
            route_get(move || {
                let to = format!("{elsewhere}/models");
                async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]) }
            }),
        )
        .route(
            "/same/v1/models",
            route_get(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/ok/v1/models")],
                )
            }),
        )
        .route(
            "/ok/v1/models",
            route_get(|headers: HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some(&format!("Bearer {KEY}"))
                {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                axum::Json(json!({"object": "list", "data": [{"id": "m1", "object": "model"}]}))
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn redirects_to_another_origin_are_not_followed() {
    let elsewhere = MockLlm::start(Flavor::OpenAi).await;
    let base = redirecting_llm(&elsewhere.base_url).await;
    let model = |path: &str| {
        OpenAiCompatible::new(OpenAiSettings {
            provider: LlmProvider::Openai,
            base_url: format!("{base}{path}"),
            api_key: Secret::new(KEY),
            model: String::new(),
            connect_timeout: Duration::from_millis(500),
            first_token_timeout: Duration::from_millis(800),
        })
        .unwrap()
    };
    let err = model("/v1").list_models().await.unwrap_err();
    assert_eq!(err.code(), "llm_rejected", "{err}");
    assert!(err.to_string().contains("redirects"), "{err}");
    assert_eq!(elsewhere.calls(), 0, "the redirect was followed");
    // Within the same origin a redirect is followed, key and all.
    assert_eq!(model("/same/v1").list_models().await.unwrap(), ["m1"]);
}

/// A server that answers every request with `status` and the given body, sent in 4 KB chunks
/// `times` times (0: for ever).
async fn failing_llm(status: u16, chunk: String, times: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status} Oops\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
                );
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let frame = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                let mut sent = 0;
                while times == 0 || sent < times {
                    if sock.write_all(frame.as_bytes()).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                let _ = sock.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn error_bodies_are_read_to_16_kb_and_never_show_the_key() {
    let key = "sk-echoed-secret-77";
    let settings = |base_url: String| OpenAiSettings {
        provider: LlmProvider::Openai,
        base_url,
        api_key: Secret::new(key),
        model: String::new(),
        connect_timeout: Duration::from_millis(500),
        first_token_timeout: Duration::from_secs(30),
    };
    // An error body that never ends: the answer comes anyway, from its first 16 KB.
    let endless = failing_llm(500, "overloaded ".repeat(372), 0).await;
    let model = OpenAiCompatible::new(settings(endless)).unwrap();
    let (_, err) = tokio::time::timeout(Duration::from_secs(10), collect(&model, "ok"))
        .await
        .expect("the error body was read to its end");
    let err = err.expect("a 500");
    assert_eq!(err.code(), "llm_error", "{err}");
    assert!(err.to_string().contains("(500: "), "{err}");
    assert!(err.to_string().contains("overloaded"), "{err}");
    let err = tokio::time::timeout(Duration::from_secs(10), model.list_models())
        .await
        .expect("the error body was read to its end")
        .unwrap_err();
    assert_eq!(err.code(), "llm_error", "{err}");
    assert!(err.to_string().contains("(500: "), "{err}");

    // A server that echoes the key in its complaint.
    let echo = failing_llm(400, format!("bad request from key {key}"), 1).await;
    let model = OpenAiCompatible::new(settings(echo)).unwrap();
    let (_, err) = collect(&model, "ok").await;
    let err = err.expect("a 400");
    assert!(err.to_string().contains("***"), "{err}");
    assert!(!err.to_string().contains(key), "{err}");
}

/// The chat harness with other limits for the turn.
async fn limited_harness(model: &str, limits: Value) -> (Harness, MockLlm) {
    let (h, mock) = chat_harness(Flavor::LmStudio, model).await;
    let r = send(
        &h.app,
        put_json("/api/config", &json!({"llm": limits}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    (h, mock)
}

/// Sends `POST /api/chat` in `session`, which must fail within 30 s with this status, code and
/// words in its message.
async fn failed_chat(h: &Harness, session: i64, (status, code, says): (u16, &str, &str)) {
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        send(
            &h.app,
            post_json(
                &format!("/api/chat?session_id={session}"),
                r#"{"text":"hi"}"#,
            ),
        ),
    )
    .await
    .expect("the turn ends");
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["ok"], json!(false));
    assert_eq!(body["code"], json!(code));
    assert!(body["error"].as_str().unwrap().contains(says), "{body}");
}

#[tokio::test]
async fn a_model_that_goes_quiet_ends_the_turn_and_keeps_the_partial() {
    let (h, _mock) = limited_harness("stall:3", json!({"idle_timeout_s": 1})).await;
    failed_chat(&h, 11, (504, "llm_timeout", "silence limit")).await;
    let stored = messages(&h, 11).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[1]["text"], json!("word0 word1 word2"));
    assert_eq!(stored[1]["partial"], json!(true));

    // The stream says the same, with the partial reply's id.
    let r = send(
        &h.app,
        post_json("/api/chat/stream?session_id=12", r#"{"text":"hi"}"#),
    )
    .await;
    let events = sse_events(&r.body);
    let (name, err) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(err["code"], json!("llm_timeout"));
    let stored = messages(&h, 12).await;
    assert_eq!(stored[1]["id"], err["message_id"]);
    assert_eq!(stored[1]["partial"], json!(true));
}

#[tokio::test]
async fn a_reply_that_takes_too_long_ends_with_what_arrived() {
    // 100 tokens, one every 50 ms: 5 s, against a limit of 1 s; no gap is near the silence limit.
    let (h, _mock) = limited_harness(
        "tokens:100:50",
        json!({"total_timeout_s": 1, "idle_timeout_s": 60}),
    )
    .await;
    failed_chat(&h, 13, (504, "llm_timeout", "reply time limit")).await;
    let stored = messages(&h, 13).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let text = stored[1]["text"].as_str().unwrap();
    assert!(text.starts_with("word0 word1"), "{text}");
    assert!(!text.contains("word99"), "{text}");
    assert_eq!(stored[1]["partial"], json!(true));
}

#[tokio::test]
async fn timeouts_are_validated_settings() {
    let h = harness().await;
    let r = send(
        &h.app,
        put_json(
            "/api/config",
            r#"{"llm": {"idle_timeout_s": 0, "total_timeout_s": 99999}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("llm.idle_timeout_s"), "{text}");
    assert!(text.contains("llm.total_timeout_s"), "{text}");
    let cfg = send(&h.app, get("/api/config")).await.json();
    assert_eq!(cfg["llm"]["idle_timeout_s"], json!(60));
    assert_eq!(cfg["llm"]["total_timeout_s"], json!(300));
}

#[tokio::test]
async fn a_reply_is_stored_while_it_streams_and_the_index_follows() {
    // 150 tokens, one every 20 ms: 3 s.
    let (h, _mock) = chat_harness(Flavor::LmStudio, "tokens:150:20").await;
    let mut turn = start_turn(&h.state, 14, "count for me").await;
    let whole = (0..150)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut seen = 0;
    let mut checked = 0;
    while let Some(e) = turn.events.recv().await {
        if e.name() != "token" {
            continue;
        }
        seen += 1;
        // At 60 and 120 tokens (1.2 s and 2.4 s in): the row has what streamed but its last few
        // words, flagged partial, and search finds its words.
        if seen % 60 == 0 {
            let stored = messages(&h, 14).await;
            assert_eq!(stored.len(), 2, "{stored:?}");
            let text = stored[1]["text"].as_str().unwrap();
            // The turn may be a token or two ahead of this reader, never behind by more than
            // one batch.
            assert!(whole.starts_with(text), "{text}");
            let words = text.split_whitespace().count();
            assert!(
                words + DRAFT_TOKENS as usize >= seen,
                "{words} words stored after {seen} streamed"
            );
            assert_eq!(stored[1]["partial"], json!(true));
            let last = text.split_whitespace().last().unwrap();
            let hits = send(&h.app, get(&format!("/api/search?q={last}")))
                .await
                .json();
            assert_eq!(hits["results"].as_array().map(Vec::len), Some(1), "{hits}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
    let stored = messages(&h, 14).await;
    assert_eq!(stored.len(), 2, "one row, rewritten: {stored:?}");
    assert_eq!(stored[1]["partial"], json!(false));
    assert!(stored[1]["text"].as_str().unwrap().ends_with("word149"));
    // The first words are still found once, and the index agrees with the table.
    let hits = send(&h.app, get("/api/search?q=word1")).await.json();
    assert_eq!(hits["results"].as_array().map(Vec::len), Some(1), "{hits}");
    // The check runs in SQLite itself, on a connection of its own to the same file.
    let pool = waifu_rt3d::store::open(&h.state.paths.db_file)
        .await
        .unwrap();
    sqlx::query("INSERT INTO messages_fts(messages_fts) VALUES('integrity-check')")
        .execute(&pool)
        .await
        .expect("the search index matches the messages");
}

#[tokio::test]
async fn shutting_down_ends_open_streams_and_keeps_their_partials() {
    let (h, _mock) = chat_harness(Flavor::LmStudio, "tokens:500:20").await;
    let mut turn = start_turn(&h.state, 15, "talk").await;
    let mut tokens = 0;
    let mut last = None;
    while let Some(e) = turn.events.recv().await {
        if e.name() == "token" {
            tokens += 1;
            if tokens == 5 {
                h.state.shutdown.cancel();
            }
        }
        last = Some(e);
    }
    let Some(waifu_rt3d::shared::chat::ChatStreamEvent::Error(e)) = last else {
        panic!("the stream did not end with an error: {last:?}");
    };
    assert_eq!(e.code, "shutting_down");
    let stored = messages(&h, 15).await;
    assert_eq!(
        stored[1]["id"],
        json!(e.message_id.expect("the partial's id"))
    );
    assert_eq!(stored[1]["partial"], json!(true));
    assert!(stored[1]["text"]
        .as_str()
        .unwrap()
        .starts_with("word0 word1 word2 word3 word4"));
}

#[tokio::test]
async fn a_completion_sent_whole_is_refused_past_the_limit() {
    let (h, _mock) = chat_harness(Flavor::LmStudio, "endless_json").await;
    failed_chat(&h, 16, (502, "llm_bad_response", "more than 8 MB")).await;
}
