//! Load benchmark: many streaming chats at once against a streaming mock LLM, through the real
//! server on a loopback port. Prints, for 200 clients each sending `/api/chat/stream` in a loop
//! for 60 s (`WAIFU_LOAD_SECONDS` to change it), once with text only and once spoken by eSpeak NG:
//! - errors other than the intended refusals (429/503), and the refusals themselves;
//! - the process's peak memory (VmHWM: server, clients and mock together);
//! - time to first token, p50/p99, of the admitted turns;
//! - the chat overhead at one connection (`/api/chat` against an instant mock), with `limits.*`
//!   at their defaults and effectively off, to show the limits cost nothing when idle.
//!
//! A refused client waits what `Retry-After` says, as a well-behaved one would.
//! Run with `cargo bench --features ssr --bench load` (`make bench` runs it).

#[path = "../tests/it/common/openai_mock.rs"]
#[allow(dead_code)]
mod openai_mock;

use futures::StreamExt;
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};
use waifu_rt3d::server::{app, preflight, AppState};

const CLIENTS: usize = 200;
/// The mock's reply: an emotion tag and three sentences of five words, a token every 20 ms.
const REPLY: &str = "story:3:20";

fn limits_off() -> Value {
    json!({"chat_turns": 10_000, "syntheses": 1_000, "uploads": 1_000, "model_queue": 10_000,
           "requests_per_second": 1_000_000, "request_burst": 1_000_000})
}

/// A server on a loopback port (with the peer address, as `run` serves it) whose model is the
/// mock and whose settings get `patch`. The data folder lives as long as the returned guard.
async fn server(mock: &openai_mock::MockLlm, patch: Value) -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ready = preflight::run(&dir.path().join("data"))
        .await
        .expect("preflight");
    let state = AppState::new(
        leptos::config::LeptosOptions::builder()
            .output_name("waifu-rt3d")
            .build(),
        ready,
    )
    .expect("state");
    let mut settings = json!({"llm": {"provider": "lmstudio", "endpoint": mock.base_url,
                                      "model": REPLY, "first_token_timeout_ms": 60_000}});
    if let (Some(s), Some(p)) = (settings.as_object_mut(), patch.as_object()) {
        s.extend(p.clone());
    }
    state.config.update(settings).await.expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    (addr, dir)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// A line of /proc/self/status in MB (`VmHWM`: the peak resident set so far).
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[derive(Default)]
struct Counts {
    turns: AtomicU64,
    refused_429: AtomicU64,
    refused_503: AtomicU64,
    /// Anything else: another status, a failed connection, an `error` event, a cut stream.
    errors: AtomicU64,
    audio_errors: AtomicU64,
    first_tokens: Mutex<Vec<Duration>>,
    first_error: Mutex<Option<String>>,
}

impl Counts {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().expect("lock").get_or_insert(what);
    }
}

/// One client: sends a chat, reads its stream to the end, and again until `until`.
async fn client(
    http: reqwest::Client,
    url: String,
    speak: bool,
    until: Instant,
    counts: Arc<Counts>,
) {
    let body = json!({"text": "Tell me about the garden robots", "speak": speak});
    while Instant::now() < until {
        let started = Instant::now();
        let res = match http.post(&url).json(&body).send().await {
            Ok(r) => r,
            Err(e) => {
                counts.error(format!("request: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = res.status().as_u16();
        if status == 429 || status == 503 {
            let counter = match status {
                429 => &counts.refused_429,
                _ => &counts.refused_503,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let wait = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if wait.is_none() {
                counts.error(format!("{status} without Retry-After"));
            }
            tokio::time::sleep(Duration::from_secs(wait.unwrap_or(1))).await;
            continue;
        }
        if status != 200 {
            counts.error(format!("status {status}"));
            continue;
        }
        let mut stream = res.bytes_stream();
        let mut seen = String::new();
        let mut first = None;
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(e) => {
                    failed = Some(format!("stream: {e}"));
                    break;
                }
            }
            if first.is_none() && seen.contains("event: token") {
                first = Some(started.elapsed());
            }
        }
        counts.audio_errors.fetch_add(
            seen.matches("event: audio_error").count() as u64,
            Ordering::Relaxed,
        );
        if let Some(e) = failed {
            counts.error(e);
        } else if seen.contains("event: error") {
            let line = seen
                .lines()
                .skip_while(|l| *l != "event: error")
                .nth(1)
                .unwrap_or_default()
                .to_string();
            counts.error(format!("error event: {line}"));
        } else if !seen.contains("event: done") {
            counts.error("the stream ended without done".into());
        } else {
            counts.turns.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(t) = first {
            counts.first_tokens.lock().expect("lock").push(t);
        }
    }
}

async fn load(label: &str, speak: bool, seconds: u64) {
    let mock = openai_mock::MockLlm::start(openai_mock::Flavor::LmStudio).await;
    let tts = json!({"tts": {"provider": "espeak", "fallback_chain": []}});
    let (addr, _dir) = server(&mock, tts).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("client");
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let url = format!("http://{addr}/api/chat/stream?session_id={}", i + 1);
            tokio::spawn(client(http.clone(), url, speak, until, counts.clone()))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let took = started.elapsed().as_secs_f64();
    let mut first = std::mem::take(&mut *counts.first_tokens.lock().expect("lock"));
    first.sort();
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!("{label}: {CLIENTS} clients for {took:.0} s (limits at their defaults)");
    println!(
        "  turns completed:               {:>8} ({:.1}/s)",
        c(&counts.turns),
        c(&counts.turns) as f64 / took
    );
    println!(
        "  refused (intended):            {:>8} (503: {}, 429: {})",
        c(&counts.refused_503) + c(&counts.refused_429),
        c(&counts.refused_503),
        c(&counts.refused_429)
    );
    println!("  other errors:                  {:>8}", c(&counts.errors));
    if let Some(e) = counts.first_error.lock().expect("lock").as_ref() {
        println!("    first: {e}");
    }
    if speak {
        println!(
            "  audio_error events:            {:>8}",
            c(&counts.audio_errors)
        );
    }
    println!(
        "  time to first token p50 / p99: {:>8.1} / {:.1} ms",
        percentile(&first, 0.5),
        percentile(&first, 0.99)
    );
    println!(
        "  peak RSS so far (VmHWM):       {:>8.1} MB",
        status_mb("VmHWM:")
    );
}

/// `/api/chat` at one connection against an instant mock: p50 of 300 after 50 to warm up.
async fn overhead_p50(limits: Value) -> f64 {
    let mock = openai_mock::MockLlm::start(openai_mock::Flavor::LmStudio).await;
    let patch = json!({"llm": {"provider": "lmstudio", "endpoint": mock.base_url, "model": "ok"},
                       "memory": {"recall": 0}, "limits": limits});
    let (addr, _dir) = server(&mock, patch).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/chat?session_id=1");
    let body = json!({"text": "Tell me about the garden robots"});
    let mut samples = Vec::new();
    for i in 0..350 {
        let started = Instant::now();
        let r = http.post(&url).json(&body).send().await.expect("request");
        assert!(r.status().is_success(), "{}", r.status());
        r.bytes().await.expect("body");
        if i >= 50 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    percentile(&samples, 0.5)
}

#[tokio::main]
async fn main() {
    let seconds = std::env::var("WAIFU_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // Alternating rounds, so drift in the machine's load affects both alike.
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        on.push(overhead_p50(json!({})).await);
        off.push(overhead_p50(limits_off()).await);
    }
    on.sort_by(f64::total_cmp);
    off.sort_by(f64::total_cmp);
    println!("chat overhead, POST /api/chat at 1 connection, p50 (median of 3 rounds):");
    println!("  limits at their defaults:      {:>8.3} ms", on[1]);
    println!("  limits effectively off:        {:>8.3} ms", off[1]);
    println!();
    load("streaming chats, text only", false, seconds).await;
    println!();
    load("streaming chats, spoken by eSpeak NG", true, seconds).await;
}
