//! Watching the server: `GET /metrics` through the whole router (requests, chat turns, voices,
//! the audio cache, the token), request ids, and the real binary's JSON log lines.
#![cfg(feature = "ssr")]

use crate::common;

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use common::openai_mock::{Flavor, MockLlm};
use common::tts_mock::VoiceMock;
use common::{
    get, harness, harness_with_token, post_json, put_json, request, send, spoken_stream, Harness,
};
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// The value of one series (`name{labels}`) in a scrape, 0 when it is not there yet.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
        .unwrap_or(0.0)
}

async fn scrape(h: &Harness) -> String {
    let r = send(&h.app, get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    String::from_utf8(r.body).unwrap()
}

/// Scrapes until `series` reaches `at_least` (a turn records its end in its own task, after the
/// last event went out); the last scrape either way.
async fn scrape_until(h: &Harness, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(h).await;
        if sample(&text, series) >= at_least || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn requests_are_counted_by_route_template_refused_ones_too() {
    let h = harness().await;
    let missing = r#"waifu_http_requests_total{method="GET",route="/api/sessions/{id}/messages",status="404"}"#;
    let took = r#"waifu_http_request_duration_seconds_count{method="GET",route="/api/sessions/{id}/messages"}"#;
    let refused = r#"waifu_http_requests_total{method="GET",route="/api/sessions",status="403"}"#;
    let unknown = r#"waifu_http_requests_total{method="GET",route="other",status="404"}"#;
    let file =
        r#"waifu_http_requests_total{method="GET",route="/files/audio/{file}",status="404"}"#;
    let before = scrape(&h).await;

    for id in [4242, 4243] {
        let r = send(&h.app, get(&format!("/api/sessions/{id}/messages"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "no such session");
    }
    let evil = Request::get("/api/sessions")
        .header(header::HOST, "evil.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, evil).await.status, StatusCode::FORBIDDEN);
    for path in [
        "/wp-admin/no-such-file.php",
        "/files/audio/no-such-file.wav",
    ] {
        assert_eq!(send(&h.app, get(path)).await.status, StatusCode::NOT_FOUND);
    }

    let r = send(&h.app, get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .starts_with("text/plain; version=0.0.4"));
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let after = String::from_utf8(r.body).unwrap();
    assert!(
        sample(&after, missing) >= sample(&before, missing) + 2.0,
        "{after}"
    );
    assert!(
        sample(&after, took) >= sample(&before, took) + 2.0,
        "{after}"
    );
    assert!(
        sample(&after, refused) > sample(&before, refused),
        "{after}"
    );
    assert!(
        sample(&after, unknown) > sample(&before, unknown),
        "{after}"
    );
    assert!(sample(&after, file) > sample(&before, file), "{after}");
    // Route templates only: no path a client sent becomes a label.
    for raw in ["4242", "4243", "no-such-file", "evil.example"] {
        assert!(!after.contains(raw), "{raw} in {after}");
    }
    assert!(after.contains("# TYPE waifu_http_request_duration_seconds histogram"));
}

async fn voice_harness(tts: Value) -> (Harness, MockLlm) {
    let h = harness().await;
    let mock = MockLlm::start(Flavor::LmStudio).await;
    let body = json!({
        "llm": {"provider": "lmstudio", "endpoint": mock.base_url, "model": "story:2:5"},
        "tts": tts,
    });
    let r = send(&h.app, put_json("/api/config", &body.to_string())).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    (h, mock)
}

async fn spoken_turn(h: &Harness, session: i64) {
    let events = spoken_stream(h, session).await;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
}

/// Counts exactly: it runs in its own process, where the turn and voice counts move by its own
/// turns alone (the other tests of this binary chat and speak too).
#[tokio::test]
async fn turns_voices_and_the_cache_are_counted() {
    if !common::isolated("telemetry::turns_voices_and_the_cache_are_counted") {
        return;
    }
    let voice = VoiceMock::xtts(5).await;
    let chain = json!({"provider": "xtts_server", "fallback_chain": [],
        "providers": {"xtts_server": voice.xtts_settings()}});
    let (h, _llm) = voice_harness(chain).await;
    let complete = r#"waifu_chat_turns_total{outcome="complete",code=""}"#;
    let failed = r#"waifu_chat_turns_total{outcome="failed",code="llm_rate_limited"}"#;
    let stopped = r#"waifu_chat_turns_total{outcome="stopped",code=""}"#;
    let first_token = "waifu_chat_first_token_seconds_count";
    let first_audio = "waifu_chat_first_audio_seconds_count";
    let spoke = r#"waifu_tts_syntheses_total{provider="xtts_server",outcome="ok",code=""}"#;
    let spoke_for = r#"waifu_tts_synthesis_duration_seconds_count{provider="xtts_server"}"#;
    let voice_failed =
        r#"waifu_tts_syntheses_total{provider="xtts_server",outcome="failed",code="server"}"#;
    let hit = r#"waifu_tts_cache_lookups_total{result="hit"}"#;
    let miss = r#"waifu_tts_cache_lookups_total{result="miss"}"#;
    let before = scrape(&h).await;
    let delta = |after: &str, series: &str| sample(after, series) - sample(&before, series);

    // Two sentences, each synthesised once and missed in the cache.
    spoken_turn(&h, 1).await;
    let after = scrape_until(&h, complete, sample(&before, complete) + 1.0).await;
    assert_eq!(delta(&after, complete), 1.0, "{after}");
    assert_eq!(delta(&after, first_token), 1.0);
    assert_eq!(delta(&after, first_audio), 1.0);
    assert_eq!(delta(&after, spoke), 2.0, "{after}");
    assert_eq!(delta(&after, spoke_for), 2.0);
    assert_eq!((delta(&after, miss), delta(&after, hit)), (2.0, 0.0));
    assert_eq!(voice.texts.lock().unwrap().len(), 2);

    // The same reply again: both sentences come from the cache, no voice is asked.
    spoken_turn(&h, 2).await;
    let after = scrape_until(&h, complete, sample(&before, complete) + 2.0).await;
    assert_eq!(delta(&after, complete), 2.0);
    assert_eq!(delta(&after, first_audio), 2.0);
    assert_eq!(delta(&after, spoke), 2.0);
    assert_eq!((delta(&after, miss), delta(&after, hit)), (2.0, 2.0));

    // A failing voice is counted with its code.
    voice.fail_with(500);
    let r = send(
        &h.app,
        post_json(
            "/api/tts",
            r#"{"text":"Something new to say.","provider":"xtts_server"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.json());
    let after = scrape(&h).await;
    assert_eq!(delta(&after, voice_failed), 1.0, "{after}");

    // A model that refuses is a failed turn with the error's code.
    let r = send(
        &h.app,
        put_json("/api/config", r#"{"llm": {"model": "rate"}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(
        &h.app,
        post_json("/api/chat?session_id=3", r#"{"text":"hi"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json());
    let after = scrape_until(&h, failed, sample(&before, failed) + 1.0).await;
    assert_eq!(delta(&after, failed), 1.0, "{after}");

    // A turn whose reader goes away is stopped.
    let r = send(
        &h.app,
        put_json("/api/config", r#"{"llm": {"model": "tokens:100:50"}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let input = waifu_rt3d::shared::chat::ChatInput {
        text: "hello".into(),
        ..Default::default()
    };
    let mut turn = waifu_rt3d::server::chat::start(&h.state, 4, input)
        .await
        .unwrap();
    // The model is writing before the reader leaves.
    let first = turn.events.recv().await;
    assert!(first.is_some());
    drop(turn);
    let after = scrape_until(&h, stopped, sample(&before, stopped) + 1.0).await;
    assert_eq!(delta(&after, stopped), 1.0, "{after}");
}

const TOKEN: &str = "a-test-token-of-some-length";

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set_and_refuse_other_sites() {
    let h = harness_with_token(TOKEN).await;
    let req = |headers: &[(&str, &str)]| {
        let mut all = vec![("host", "127.0.0.1:3000")];
        all.extend_from_slice(headers);
        request(Method::GET, "/metrics", &all, "")
    };
    let r = send(&h.app, req(&[])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["code"], "unauthorized");
    assert!(!String::from_utf8_lossy(&r.body).contains("waifu_"));

    let bearer = format!("Bearer {TOKEN}");
    let r = send(&h.app, req(&[("authorization", &bearer)])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&r.body).contains("waifu_http_requests_total"));

    // Like the API, not readable from another site's page, token or not.
    let r = send(
        &h.app,
        req(&[("authorization", &bearer), ("sec-fetch-site", "cross-site")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_proxys_usable_one_is_kept() {
    let h = harness().await;
    let a = send(&h.app, get("/api/sessions")).await;
    let b = send(&h.app, get("/api/sessions")).await;
    let id = a.header(header::HeaderName::from_static("x-request-id"));
    assert_eq!(id.len(), 32, "{:?}", a.headers);
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(
        id,
        b.header(header::HeaderName::from_static("x-request-id"))
    );

    let with = |given: &str| {
        Request::get("/api/sessions")
            .header("x-request-id", given)
            .body(Body::empty())
            .unwrap()
    };
    let kept = send(&h.app, with("proxy-7f3a:12")).await;
    assert_eq!(kept.headers["x-request-id"], "proxy-7f3a:12");
    let replaced = send(&h.app, with("<script>alert(1)</script>")).await;
    let new = replaced.headers["x-request-id"].to_str().unwrap();
    assert_eq!(new.len(), 32);
    // Refused requests carry one too.
    let evil = Request::get("/api/sessions")
        .header(header::HOST, "evil.example")
        .body(Body::empty())
        .unwrap();
    let r = send(&h.app, evil).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.headers["x-request-id"].len(), 32);
}

// ------------------------------------------------------------------ the real binary's logs

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed when the test ends, whichever way.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server binary on a fresh data folder, with `envs`, its output lines sent to a channel
/// (`true` for standard error).
fn start_binary(
    dir: &std::path::Path,
    port: u16,
    envs: &[(&str, &str)],
) -> (Server, mpsc::Receiver<(bool, String)>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waifu-rt3d"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir.join("data"))
        .arg("--leptos-config")
        .arg(common::fake_site(dir))
        .env_remove("WAIFU_LOG")
        .env_remove("WAIFU_AUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((false, line));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send((true, line));
        }
    });
    (Server(child), rx)
}

/// Waits (at most a minute) for a line that `wanted` accepts; every line read goes to `seen`.
fn wait_for_line(
    rx: &mpsc::Receiver<(bool, String)>,
    seen: &mut Vec<(bool, String)>,
    wanted: impl Fn(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = wanted(&line.1);
                seen.push(line);
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn json_logs_are_one_object_a_line_with_the_request_id_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, rx) = start_binary(dir.path(), port, &[("WAIFU_LOG_FORMAT", "json")]);
    let mut seen = Vec::new();
    let listening = wait_for_line(&rx, &mut seen, |l| l.contains("listening on"));
    assert!(listening, "the server did not start: {seen:?}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/sessions");
    let (status, id) = runtime.block_on(async {
        let r = reqwest::get(&url).await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        (r.status(), id)
    });
    assert_eq!(status, 200);
    let done = wait_for_line(&rx, &mut seen, |l| l.contains(&id) && l.contains("done"));
    drop(server);
    // What was still on its way.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push(line);
    }
    assert!(done, "no log line for request {id}: {seen:?}");

    let mut completion = None;
    for (stderr, line) in &seen {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}) on stderr={stderr}: {line}"));
        assert!(value.is_object(), "{line}");
        if value["span"]["request_id"] == json!(id) && value["fields"]["message"] == "done" {
            completion = Some(value);
        }
    }
    let completion = completion.unwrap_or_else(|| panic!("{seen:?}"));
    assert_eq!(completion["fields"]["status"], json!(200));
    assert!(
        completion["fields"]["latency_ms"].is_number(),
        "{completion}"
    );
    assert_eq!(completion["span"]["path"], json!("/api/sessions"));
    assert_eq!(completion["level"], json!("INFO"));
}

#[test]
fn an_unknown_log_format_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, rx) = start_binary(dir.path(), free_port(), &[("WAIFU_LOG_FORMAT", "yaml")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match server.0.try_wait().unwrap() {
            Some(status) => break status,
            None if Instant::now() > deadline => panic!("the server started anyway"),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert!(!status.success());
    drop(server);
    // Both readers end at the closed pipes.
    let err: Vec<String> = rx.iter().filter(|l| l.0).map(|l| l.1).collect();
    let err = err.join("\n");
    assert!(err.contains("'yaml'"), "{err}");
    assert!(err.contains("WAIFU_LOG_FORMAT"), "{err}");
    assert!(err.contains("`json`"), "{err}");
    // Nothing was started: no data folder was made.
    assert!(!dir.path().join("data").exists());
}
