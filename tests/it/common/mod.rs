//! The test harness: the whole router on a fresh data folder, driven in-process.
#![allow(dead_code)]

pub mod asr_mock;
pub mod moto;
pub mod openai_mock;
pub mod tts_mock;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use waifu_rt3d::server::{app, preflight, AppState};

pub struct Harness {
    pub app: Router,
    pub state: AppState,
    pub _dir: Option<tempfile::TempDir>,
}

pub async fn harness() -> Harness {
    harness_with(|state| state).await
}

/// The harness with changed state, such as other request rules (`AppState::with_security`).
pub async fn harness_with(change: impl FnOnce(AppState) -> AppState) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness_in(&dir.path().join("data"), change).await;
    h._dir = Some(dir);
    h
}

/// The harness on a data folder the caller owns (on a small disk, say).
pub async fn harness_in(
    data: &std::path::Path,
    change: impl FnOnce(AppState) -> AppState,
) -> Harness {
    harness_on(data, &preflight::Backends::default(), change).await
}

/// The harness on a data folder the caller owns, with its database (and key file) elsewhere:
/// several harnesses on one PostgreSQL database are several instances of one companion.
pub async fn harness_on(
    data: &std::path::Path,
    backends: &preflight::Backends,
    change: impl FnOnce(AppState) -> AppState,
) -> Harness {
    let ready = preflight::run_with(data, backends).await.unwrap();
    harness_from(ready, change)
}

/// The harness with avatars and audio in the object store `storage_url` (an `s3://` URL of
/// [`moto`], say); `None` is the data folder.
pub async fn harness_on_storage(
    data: &std::path::Path,
    storage_url: Option<&str>,
    change: impl FnOnce(AppState) -> AppState,
) -> Harness {
    let backends = preflight::Backends {
        storage: storage_url.map(str::to_string),
        ..Default::default()
    };
    harness_on(data, &backends, change).await
}

fn harness_from(ready: preflight::Ready, change: impl FnOnce(AppState) -> AppState) -> Harness {
    let options = leptos::config::LeptosOptions::builder()
        .output_name("waifu-rt3d")
        .build();
    let state = change(AppState::new(options, ready).unwrap());
    Harness {
        app: app(state.clone()),
        state,
        _dir: None,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    /// Checks an error answer's status and code; returns its message.
    pub fn error_message(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let j = self.json();
        assert_eq!(j["ok"], false, "{j}");
        assert_eq!(j["code"], code, "{j}");
        j["error"].as_str().unwrap_or_default().to_string()
    }
    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// The harness of a server on the network: every request needs `token`.
pub async fn harness_with_token(token: &str) -> Harness {
    use waifu_rt3d::server::security::{AuthToken, Security};
    let rules = Security::new(
        "0.0.0.0".parse().unwrap(),
        3000,
        &[],
        &[],
        Some(AuthToken::parse(token).unwrap()),
    )
    .unwrap();
    harness_with(|s| s.with_security(rules)).await
}

/// A request with `headers` and a text body.
pub fn request(
    method: axum::http::Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// A spoken turn through `POST /api/chat/stream` (`speak: true`), as its events.
pub async fn spoken_stream(h: &Harness, session: i64) -> Vec<(String, Value)> {
    let r = send(
        &h.app,
        post_json(
            &format!("/api/chat/stream?session_id={session}"),
            r#"{"text":"tell me something","speak":true}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    sse_events(&r.body)
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn put_json(uri: &str, body: &str) -> Request<Body> {
    Request::put(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A multipart body with one file in the field `file`, as the Viewer tab's upload sends it:
/// `(content type, body)`.
pub fn multipart_file(file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    multipart_typed(file_name, "application/octet-stream", bytes)
}

/// [`multipart_file`] with the part's own `Content-Type`.
pub fn multipart_typed(file_name: &str, part_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "XyZboundary42";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {part_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn delete(uri: &str) -> Request<Body> {
    Request::delete(uri).body(Body::empty()).unwrap()
}

/// Parses a `text/event-stream` body into (event name, JSON data) pairs.
pub fn sse_events(body: &[u8]) -> Vec<(String, serde_json::Value)> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            Some((name?, data?))
        })
        .collect()
}

/// Set in the child process [`isolated`] starts: the name of the one test it runs.
const ISOLATED: &str = "WAIFU_TEST_ISOLATED";

/// For a test that must be alone in its process: it counts what is global to the process (the
/// metrics recorder), which the other tests of this binary move while they run beside it.
///
/// In the test run it starts this test binary again, running only the test `name` (its path in
/// this binary, `telemetry::some_test`), checks that it passed, and returns `false`: the caller
/// returns. In that child process it returns `true`: the caller does its work there.
pub fn isolated(name: &str) -> bool {
    if std::env::var(ISOLATED).is_ok_and(|v| v == name) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(ISOLATED, name)
        .output()
        .expect("the test binary starts again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name}, alone in its process, failed:\n{stdout}\n{stderr}"
    );
    // A name that matches no test would pass without running anything.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{name} did not run alone in its process:\n{stdout}"
    );
    false
}

/// Waits until `check` says yes, asking every 10 ms; fails the test, naming `what`, after 10 s.
/// For something that happens in a task of its own (a synthesis landing in the cache, a
/// stopped turn storing its reply): a fixed sleep is either too short on a busy machine or
/// longer than needed everywhere else.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting after 10 s for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Site settings for a server binary started by a test, naming a front end in `dir` that passes
/// the start-up check (its script and WebAssembly under plain names; nothing a page could run):
/// the path to give as `--leptos-config`. The tests that start the binary do not load pages, and
/// `cargo test` runs before the front end is built.
pub fn fake_site(dir: &std::path::Path) -> std::path::PathBuf {
    let site = dir.join("site");
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("waifu-rt3d.js"), b"").unwrap();
    std::fs::write(pkg.join("waifu-rt3d_bg.wasm"), b"").unwrap();
    let settings = dir.join("Leptos.toml");
    std::fs::write(
        &settings,
        format!(
            "[package.metadata.leptos]\noutput-name = \"waifu-rt3d\"\nsite-root = {:?}\nsite-pkg-dir = \"pkg\"\nsite-addr = \"127.0.0.1:3000\"\nreload-port = 3001\nhash-files = false\nenv = \"PROD\"\n",
            site.display().to_string()
        ),
    )
    .unwrap();
    settings
}
