//! The real server process under the two ways it is stopped: `kill -9` in the middle of eight
//! streaming chats (then a restart on the same data folder: nothing acknowledged is lost), and
//! SIGTERM with streams open (they are told `shutting_down`, their partials are kept, and the
//! process ends). The model is the OpenAI-compatible mock, streaming slowly.

use crate::common;

use common::openai_mock::{Flavor, MockLlm};
use futures::StreamExt;
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

/// How many chats stream at once.
const STREAMS: usize = 8;
/// The mock's reply: this many tokens (`word0 word1 …`), one every 50 ms, so that none ends
/// before the server is stopped.
const MODEL: &str = "tokens:600:50";

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts the server binary on a free loopback port and waits until it answers.
    async fn start(data: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_waifu-rt3d"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data)
            .arg("--leptos-config")
            .arg(common::fake_site(data.parent().unwrap()))
            .env("WAIFU_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the server binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{base}/api/config")).send().await {
                if r.status().is_success() {
                    return Server { child, base };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not answer within 30 s");
    }

    /// SIGKILL, and waits until the process is gone.
    async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then waits (30 s at most) for the process to end: its exit status and how long
    /// it took.
    async fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id().expect("the server is running");
        let signalled = Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .unwrap();
        (exit, signalled.elapsed())
    }
}

/// What one chat's client saw.
#[derive(Default, Debug, Clone)]
struct Seen {
    session_id: i64,
    /// The stored message's id, from the `accepted` event.
    accepted: Option<i64>,
    /// Every `token` event's text, in order.
    streamed: String,
    tokens: usize,
    /// The `error` event's code and `message_id`, when one came.
    error: Option<(String, Option<i64>)>,
}

/// Opens a streaming chat and records its events into `seen` as they arrive, until the stream
/// ends or breaks.
async fn chat(base: String, seen: Arc<Mutex<Seen>>) {
    let session = seen.lock().unwrap().session_id;
    let response = reqwest::Client::new()
        .post(format!("{base}/api/chat/stream?session_id={session}"))
        .json(&json!({"text": format!("tell me story number {session}")}))
        .send()
        .await
        .expect("the stream opens");
    assert!(response.status().is_success(), "{}", response.status());
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = "";
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).unwrap_or(Value::Null);
                }
            }
            let mut s = seen.lock().unwrap();
            match name {
                "accepted" => s.accepted = data["message_id"].as_i64(),
                "token" => {
                    s.streamed.push_str(data["text"].as_str().unwrap_or(""));
                    s.tokens += 1;
                }
                "error" => {
                    s.error = Some((
                        data["code"].as_str().unwrap_or("").to_string(),
                        data["message_id"].as_i64(),
                    ))
                }
                _ => {}
            }
        }
    }
}

/// Starts a server on `data` with the mock as its model, and `STREAMS` chats that have each
/// received at least `tokens` tokens.
async fn streaming(
    data: &Path,
    mock: &MockLlm,
    tokens: usize,
) -> (
    Server,
    Vec<Arc<Mutex<Seen>>>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let server = Server::start(data).await;
    let config =
        json!({"llm": {"provider": "lmstudio", "endpoint": mock.base_url, "model": MODEL}});
    let r = reqwest::Client::new()
        .put(format!("{}/api/config", server.base))
        .json(&config)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    let seen: Vec<Arc<Mutex<Seen>>> = (0..STREAMS)
        .map(|i| {
            Arc::new(Mutex::new(Seen {
                session_id: 100 + i as i64,
                ..Seen::default()
            }))
        })
        .collect();
    let tasks = seen
        .iter()
        .map(|s| tokio::spawn(chat(server.base.clone(), s.clone())))
        .collect();
    let started = Instant::now();
    while seen.iter().any(|s| s.lock().unwrap().tokens < tokens) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the streams did not get going: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (server, seen, tasks)
}

/// One message as the REST API lists it.
async fn messages(base: &str, session: i64) -> Vec<Value> {
    let page: Value = reqwest::get(format!("{base}/api/sessions/{session}/messages?limit=50"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["messages"].as_array().cloned().unwrap_or_default()
}

/// Opens the database file the way the server does, to check it.
async fn database(data: &Path) -> sqlx::SqlitePool {
    let file: PathBuf = data.join("db").join("app.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(file);
    sqlx::SqlitePool::connect_with(options).await.unwrap()
}

async fn assert_database_intact(data: &Path) {
    let db = database(data).await;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    sqlx::query("INSERT INTO messages_fts(messages_fts) VALUES('integrity-check')")
        .execute(&db)
        .await
        .expect("the search index matches the messages");
    db.close().await;
}

/// The mock's whole reply, which every stored or streamed reply is a start of.
fn whole_reply() -> String {
    (0..600)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_eight_streams_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mock = MockLlm::start(Flavor::LmStudio).await;
    // 40 tokens at 50 ms: two seconds of streaming, past the first rewrite of every reply.
    let (mut server, seen, tasks) = streaming(&data, &mock, 40).await;
    server.kill().await;
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let seen: Vec<Seen> = seen.iter().map(|s| s.lock().unwrap().clone()).collect();

    let server = Server::start(&data).await;
    let whole = whole_reply();
    let (mut acknowledged, mut found) = (0, 0);
    let (mut with_text, mut partials) = (0, 0);
    let mut lags = Vec::new();
    for s in &seen {
        let stored = messages(&server.base, s.session_id).await;
        if let Some(id) = s.accepted {
            acknowledged += 1;
            if stored
                .iter()
                .any(|m| m["id"] == json!(id) && m["role"] == "user")
            {
                found += 1;
            }
        }
        let streamed = s.streamed.trim_end();
        if streamed.is_empty() {
            continue;
        }
        with_text += 1;
        let replies: Vec<&Value> = stored.iter().filter(|m| m["role"] == "assistant").collect();
        assert!(replies.len() <= 1, "one row per reply: {replies:?}");
        let Some(reply) = replies.first() else {
            continue;
        };
        let text = reply["text"].as_str().unwrap();
        assert!(!text.is_empty(), "an empty reply row");
        assert!(whole.starts_with(text), "{text}");
        // The server may have stored a token or two its client had not read yet; otherwise the
        // row is at most the last unwritten second behind.
        assert!(
            text.starts_with(streamed) || streamed.starts_with(text),
            "stored {text:?}, streamed {streamed:?}"
        );
        if reply["partial"] == json!(true) {
            partials += 1;
        }
        let stored_words = text.split_whitespace().count() as i64;
        lags.push(streamed.split_whitespace().count() as i64 - stored_words);
    }
    println!(
        "kill -9 during {STREAMS} streams: user messages acknowledged {acknowledged}, found {found}; \
         replies with streamed text {with_text}, found as partials {partials}; \
         tokens streamed but not stored, per reply: {lags:?}"
    );
    assert_eq!(acknowledged, STREAMS);
    assert_eq!(found, acknowledged);
    assert_eq!(with_text, STREAMS);
    assert_eq!(partials, with_text);
    // A second is 20 tokens here; the writes come at least every 32 tokens or every second.
    assert!(lags.iter().all(|&lag| lag <= 32), "{lags:?}");

    let mut server = server;
    server.kill().await;
    assert_database_intact(&data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_open_streams_tells_them_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mock = MockLlm::start(Flavor::LmStudio).await;
    let (mut server, seen, tasks) = streaming(&data, &mock, 10).await;
    let (exit, took) = server.terminate().await;
    println!(
        "SIGTERM with {STREAMS} open streams: the process exited after {} ms ({exit})",
        took.as_millis()
    );
    assert!(exit.success(), "{exit}");
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the stream ended")
            .unwrap();
    }
    let db = database(&data).await;
    for s in seen.iter().map(|s| s.lock().unwrap().clone()) {
        let Some((code, Some(id))) = s.error.clone() else {
            panic!("no shutting_down event with the partial's id: {s:?}");
        };
        assert_eq!(code, "shutting_down");
        let (text, partial): (String, bool) = sqlx::query_as(
            "SELECT text, partial FROM messages WHERE id = ? AND role = 'assistant'",
        )
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
        assert!(partial);
        assert_eq!(text, s.streamed.trim_end(), "everything streamed is stored");
    }
    db.close().await;
    assert_database_intact(&data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_exits_within_its_bound_when_a_request_hangs() {
    // A voice server that takes connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let voice = format!("http://{}", listener.local_addr().unwrap());
    let (reached, reached_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (held, _) = listener.accept().await.unwrap();
        let _ = reached.send(());
        std::future::pending::<()>().await;
        drop(held);
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut server = server;
    let config = json!({"tts": {"provider": "xtts_server", "fallback_chain": [], "providers": {
        "xtts_server": {"endpoint": voice, "flavor": "xtts_api_server", "language": "en",
                        "timeout_ms": 600000}}}});
    let r = reqwest::Client::new()
        .put(format!("{}/api/config", server.base))
        .json(&config)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    let hanging = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{}/api/tts", server.base))
            .json(&json!({"text": "Hello there"}))
            .send(),
    );
    tokio::time::timeout(Duration::from_secs(10), reached_rx)
        .await
        .expect("the synthesis reached the voice server")
        .unwrap();
    let (exit, took) = server.terminate().await;
    println!(
        "SIGTERM with a synthesis that never ends: the process exited after {} ms ({exit})",
        took.as_millis()
    );
    assert!(exit.success(), "{exit}");
    hanging.abort();
}
