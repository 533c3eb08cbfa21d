//! Bounded work through the router: chat turns, syntheses and uploads beyond `limits.*` are
//! refused at once with 503 and `Retry-After`, requests over the per-client rate with 429, and a
//! refused turn stores nothing.

use crate::common;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, Request},
};
use common::openai_mock::{Flavor, MockLlm};
use common::tts_mock::VoiceMock;
use common::{get, harness, multipart_file, post_json, put_json, send, sse_events, Harness};
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};
use tower::ServiceExt;

/// A harness whose model is the mock (`case` picks the reply), with `limits` and `tts` merged
/// into the settings.
async fn limited(case: &str, limits: Value, tts: Value) -> (Harness, MockLlm) {
    let h = harness().await;
    let mock = MockLlm::start(Flavor::LmStudio).await;
    let body = json!({
        "llm": {"provider": "lmstudio", "endpoint": mock.base_url, "model": case,
                "first_token_timeout_ms": 5000},
        "limits": limits,
        "tts": tts,
    });
    let r = send(&h.app, put_json("/api/config", &body.to_string())).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    (h, mock)
}

/// Asserts a capacity refusal: 503, `Retry-After`, and the JSON error body with `code`.
fn assert_busy(r: &common::Reply, code: &str) {
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let retry: u64 = r.header(header::RETRY_AFTER).parse().expect("Retry-After");
    assert!(retry >= 1);
    let j = r.json();
    assert_eq!(j["ok"], false, "{j}");
    assert_eq!(j["code"], code, "{j}");
}

fn chat(session: i64, text: &str) -> Request<Body> {
    post_json(
        &format!("/api/chat/stream?session_id={session}"),
        &json!({ "text": text }).to_string(),
    )
}

async fn message_count(h: &Harness, session: i64) -> usize {
    let r = send(&h.app, get(&format!("/api/sessions/{session}/messages"))).await;
    match r.status.as_u16() {
        404 => 0,
        200 => r.json()["messages"].as_array().map_or(0, Vec::len),
        other => panic!("{other}: {}", String::from_utf8_lossy(&r.body)),
    }
}

/// Retries `req()` until it is not a 503 (a stopped turn frees its place once its task has
/// stored the partial reply), for at most a few seconds.
async fn until_admitted(h: &Harness, req: impl Fn() -> Request<Body>) -> common::Reply {
    for _ in 0..100 {
        let r = send(&h.app, req()).await;
        if r.status != 503 {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the place was never given back");
}

#[tokio::test]
async fn chat_turns_beyond_the_limit_are_refused_before_anything_is_stored() {
    // Each reply takes ten seconds: the two admitted turns hold their places.
    let (h, _mock) = limited("tokens:200:50", json!({"chat_turns": 2}), json!({})).await;
    let mut open = Vec::new();
    for session in [1, 2] {
        let res = h.app.clone().oneshot(chat(session, "hello")).await.unwrap();
        assert_eq!(res.status(), 200);
        open.push(res);
    }
    assert_eq!(h.state.gates.chat_turns.in_use(), 2);

    // The streaming endpoint refuses with a plain JSON 503 before any stream starts.
    let r = send(&h.app, chat(3, "one too many")).await;
    assert_busy(&r, "busy_chat");
    assert_ne!(r.header(header::CONTENT_TYPE), "text/event-stream");
    // So does the waiting one.
    let r = send(
        &h.app,
        post_json("/api/chat?session_id=3", r#"{"text":"one too many"}"#),
    )
    .await;
    assert_busy(&r, "busy_chat");
    // Nothing of the refused turns was kept: no message, not even the session.
    assert_eq!(message_count(&h, 3).await, 0);
    let r = send(&h.app, get("/api/sessions/3")).await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));

    // Stop one turn (close its stream): its place comes back and the next turn is admitted.
    drop(open.pop());
    let r = until_admitted(&h, || chat(3, "now there is room")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(message_count(&h, 3).await, 2, "the message and its reply");
}

#[tokio::test]
async fn a_finished_turn_gives_its_place_back_before_its_last_event() {
    let (h, _mock) = limited("ok", json!({"chat_turns": 1}), json!({})).await;
    // One place: each turn must find it free as soon as the one before has answered.
    for i in 0..3 {
        let r = send(
            &h.app,
            post_json(
                "/api/chat?session_id=1",
                &json!({ "text": format!("hi {i}") }).to_string(),
            ),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "turn {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let r = send(&h.app, chat(1, "and streamed")).await;
        assert_eq!(
            r.status,
            200,
            "turn {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let events = sse_events(&r.body);
        assert_eq!(
            events.last().map(|e| e.0.as_str()),
            Some("done"),
            "{events:?}"
        );
    }
    assert_eq!(h.state.gates.chat_turns.in_use(), 0);
}

#[tokio::test]
async fn a_failed_turn_gives_its_place_back() {
    let (h, _mock) = limited("missing", json!({"chat_turns": 1}), json!({})).await;
    for i in 0..3 {
        let r = send(&h.app, post_json("/api/chat", r#"{"text":"hello"}"#)).await;
        assert_ne!(
            r.status,
            503,
            "turn {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

#[tokio::test]
async fn syntheses_beyond_the_limit_are_refused_and_never_run_at_once() {
    let voice = VoiceMock::xtts(300).await;
    let tts = json!({"provider": "xtts_server", "fallback_chain": [],
                     "providers": {"xtts_server": voice.xtts_settings()}});
    let (h, _mock) = limited("ok", json!({"syntheses": 2}), tts).await;
    let asks = (0..6).map(|i| {
        let body = json!({ "text": format!("Sentence number {i}.") }).to_string();
        send(&h.app, post_json("/api/tts", &body))
    });
    let answers = futures::future::join_all(asks).await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = answers.iter().filter(|r| r.status != 200).collect();
    for r in &refused {
        assert_busy(r, "tts_busy");
    }
    assert_eq!(
        ok, 2,
        "two places, and the voice is slower than the requests"
    );
    assert_eq!(
        voice.calls(),
        2,
        "a refused request never reaches the voice"
    );
    assert!(voice.max_in_flight() <= 2);
    assert_eq!(h.state.tts.syntheses_running(), 0, "the places came back");
    let r = send(
        &h.app,
        post_json("/api/tts", r#"{"text":"Sentence number 5."}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn a_spoken_turn_waits_for_a_synthesis_place_and_every_segment_is_spoken() {
    // A turn asks for two segments at a time, and the voice is slower than the model writes;
    // with one place the voice never has two requests at once, and no segment is refused.
    let voice = VoiceMock::xtts(100).await;
    let tts = json!({"provider": "xtts_server", "fallback_chain": [],
                     "providers": {"xtts_server": voice.xtts_settings()}});
    let (h, _mock) = limited("story:6:1", json!({"syntheses": 1}), tts).await;
    let r = send(
        &h.app,
        post_json(
            "/api/chat/stream?session_id=1",
            r#"{"text":"a story","speak":true}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    let count = |name: &str| events.iter().filter(|e| e.0 == name).count();
    assert_eq!(count("audio_error"), 0, "{events:?}");
    assert_eq!(count("sentence"), 6, "{events:?}");
    assert_eq!(count("audio"), 6, "{events:?}");
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("done"));
    assert_eq!(voice.calls(), 6);
    assert_eq!(voice.max_in_flight(), 1);
    assert_eq!(h.state.tts.syntheses_running(), 0);
}

/// An upload whose body arrives only when the test says so; `read` tells whether the server
/// has asked for any of it.
fn held_upload() -> (
    Request<Body>,
    tokio::sync::mpsc::Sender<Vec<u8>>,
    Arc<AtomicBool>,
) {
    let (content_type, body) = multipart_file("held.glb", b"glTF");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let read = Arc::new(AtomicBool::new(false));
    let flag = read.clone();
    let mut head = Some(body[..40].to_vec());
    let stream = futures::stream::poll_fn(move |cx| {
        flag.store(true, Ordering::SeqCst);
        if let Some(h) = head.take() {
            return std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(h)));
        }
        rx.poll_recv(cx).map(|c| c.map(Ok))
    });
    let req = Request::post("/api/avatars/upload")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap();
    (req, tx, read)
}

#[tokio::test]
async fn uploads_beyond_the_limit_are_refused_before_their_body_is_read() {
    let h = harness().await;
    // The default: two uploads at once.
    let mut senders = Vec::new();
    let mut running = Vec::new();
    for _ in 0..2 {
        let (req, tx, _) = held_upload();
        senders.push(tx);
        running.push(tokio::spawn(h.app.clone().oneshot(req)));
    }
    for _ in 0..100 {
        if h.state.gates.uploads.in_use() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.state.gates.uploads.in_use(), 2);

    let (req, _tx, read) = held_upload();
    let r = send(&h.app, req).await;
    assert_busy(&r, "busy_uploads");
    assert!(
        !read.load(Ordering::SeqCst),
        "the refused upload's body was read"
    );

    // One upload ends (its client gives up): the next one is let in.
    drop(senders.pop());
    let ended = running.pop().unwrap().await.unwrap().unwrap();
    assert_ne!(ended.status(), 503);
    let (content_type, body) = multipart_file("small.glb", b"not a model");
    let req = Request::post("/api/avatars/upload")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    let r = send(&h.app, req).await;
    assert_ne!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
}

fn from(peer: &str, uri: &str) -> Request<Body> {
    let mut req = get(uri);
    let addr: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

#[tokio::test]
async fn each_client_address_has_its_own_request_rate() {
    let h = harness().await;
    let patch = json!({"limits": {"requests_per_second": 1, "request_burst": 3}});
    let r = send(&h.app, put_json("/api/config", &patch.to_string())).await;
    assert_eq!(r.status, 200);
    // The rate applies from the next start: the router is built anew.
    let app = waifu_rt3d::server::app(h.state.clone());
    for i in 0..3 {
        let r = send(&app, from("127.0.0.1:40000", "/api/sessions")).await;
        assert_eq!(r.status, 200, "request {i}");
    }
    let r = send(&app, from("127.0.0.1:40001", "/api/sessions")).await;
    assert_eq!(r.status, 429, "the same address from another port");
    let retry: u64 = r.header(header::RETRY_AFTER).parse().expect("Retry-After");
    assert!(retry >= 1);
    let j = r.json();
    assert_eq!(
        (j["ok"].clone(), j["code"].clone()),
        (json!(false), json!("rate_limited"))
    );
    // Another address has its own quota, and what is not /api is not counted.
    let r = send(&app, from("127.0.0.2:40000", "/api/sessions")).await;
    assert_eq!(r.status, 200);
    let r = send(&app, from("127.0.0.1:40000", "/files/audio/none.wav")).await;
    assert_eq!(r.status, 404);
    // Without a peer address (driven in-process) requests share one quota instead of failing.
    for i in 0..3 {
        let r = send(&app, get("/api/sessions")).await;
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(send(&app, get("/api/sessions")).await.status, 429);
}

#[tokio::test]
async fn the_default_rate_leaves_a_polling_page_alone() {
    let h = harness().await;
    // A page polling the history: a few hundred requests in a burst, all answered.
    for i in 0..300 {
        let r = send(&h.app, from("127.0.0.1:40000", "/api/sessions")).await;
        assert_eq!(r.status, 200, "request {i}");
    }
}

#[tokio::test]
async fn limits_are_validated() {
    let h = harness().await;
    for (field, bad) in [
        ("chat_turns", json!(0)),
        ("syntheses", json!(0)),
        ("uploads", json!(0)),
        ("model_queue", json!(0)),
        ("requests_per_second", json!(0)),
        ("request_burst", json!(0)),
        ("chat_turns", json!(-1)),
    ] {
        let patch = json!({ "limits": { field: bad } });
        let r = send(&h.app, put_json("/api/config", &patch.to_string())).await;
        assert_eq!(
            r.status,
            400,
            "{field}={bad}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = send(&h.app, get("/api/config")).await;
    assert_eq!(r.json()["limits"]["chat_turns"], 8, "{}", r.json());
}
