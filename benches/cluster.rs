//! Cluster benchmark: the chat overhead through nginx with one instance and with three, as
//! `make cluster` runs them (tools/cluster/run.sh: release binaries, PostgreSQL, S3, nginx).
//! Prints, for 32 connections each sending `POST /api/chat` in a loop against an instant mock
//! LLM (in this process) for 20 s (`WAIFU_CLUSTER_SECONDS` to change it), after 3 s to warm up:
//! the completed requests per second, the latency p50/p99, the refusals and errors, and the chat
//! turns each instance counted (its `/metrics`), to show how nginx spread them.
//!
//! The instances get the mock and the limits effectively off through the settings file each one
//! starts with (the request rate is read only at start), and the same settings again over
//! `PUT /api/config`. The server binary is `WAIFU_BIN` (default: the release build, `make build`).
//! Run with `cargo bench --features ssr --bench cluster` (`make bench` runs it).

#[path = "../tests/it/common/openai_mock.rs"]
#[allow(dead_code)]
mod openai_mock;

use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

const CONNECTIONS: usize = 32;
const WARM_UP: Duration = Duration::from_secs(3);

fn settings(mock_url: &str) -> Value {
    json!({
        "llm": {"provider": "lmstudio", "endpoint": mock_url, "model": "ok"},
        "memory": {"recall": 0},
        "limits": {"chat_turns": 10_000, "syntheses": 1_000, "uploads": 1_000, "model_queue": 10_000,
                   "requests_per_second": 1_000_000, "request_burst": 1_000_000},
    })
}

/// The first port from which `instances + 12` ports are free (nginx, the instances, PostgreSQL
/// at +10, S3 at +11), above the ports people usually run things on.
fn free_base_port(instances: u16) -> u16 {
    (20_000..60_000)
        .step_by(100)
        .find(|base| {
            (0..=instances)
                .chain([10, 11])
                .all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        })
        .expect("no free ports for the cluster")
}

/// A running `tools/cluster/run.sh`; dropping it stops the cluster (TERM, which the script turns
/// into a clean stop of every child) and waits for it.
struct Cluster {
    child: Child,
    port: u16,
    instances: u16,
    _settings: tempfile::NamedTempFile,
}

impl Cluster {
    fn start(instances: u16, settings: &Value) -> Cluster {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let file = tempfile::NamedTempFile::new().expect("settings file");
        std::fs::write(file.path(), settings.to_string()).expect("settings file");
        let port = free_base_port(instances);
        let mut child = Command::new(root.join("tools/cluster/run.sh"))
            .env("CLUSTER_PORT", port.to_string())
            .env("CLUSTER_INSTANCES", instances.to_string())
            .env("CLUSTER_SETTINGS", file.path())
            // One line per request would cost more than the requests.
            .env("CLUSTER_APP_ENV", "WAIFU_LOG=warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("tools/cluster/run.sh");
        let stdout = child.stdout.take().expect("stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        // Reads the script's output to its end (a full pipe would stall it) and passes it on.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("cluster ready: ") {
                    let _ = ready_tx.send(());
                } else {
                    eprintln!("{line}");
                }
            }
        });
        let cluster = Cluster {
            child,
            port,
            instances,
            _settings: file,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(()) => return cluster,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("tools/cluster/run.sh ended before the cluster was ready")
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    assert!(
                        Instant::now() < deadline,
                        "the cluster was not ready in 300 s"
                    );
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Counts {
    done: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    first_error: Mutex<Option<String>>,
}

impl Counts {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().expect("lock").get_or_insert(what);
    }
}

/// One connection: chats in its own session until `until`, counting from `measure_from`.
async fn connection(
    http: reqwest::Client,
    url: String,
    measure_from: Instant,
    until: Instant,
    counts: Arc<Counts>,
) {
    let body = json!({"text": "Tell me about the garden robots"});
    while Instant::now() < until {
        let started = Instant::now();
        let result = http.post(&url).json(&body).send().await;
        let counted = started >= measure_from;
        let res = match result {
            Ok(r) => r,
            Err(e) => {
                if counted {
                    counts.error(format!("request: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let status = res.status();
        let body = res.bytes().await;
        if !counted {
            continue;
        }
        match (status.as_u16(), body) {
            (200, Ok(_)) => {
                counts.done.fetch_add(1, Ordering::Relaxed);
                counts
                    .latencies
                    .lock()
                    .expect("lock")
                    .push(started.elapsed());
            }
            (429 | 503, _) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
            }
            (_, Ok(b)) => counts.error(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&b[..b.len().min(200)])
            )),
            (_, Err(e)) => counts.error(format!("body: {e}")),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Figures {
    per_second: f64,
    p50: f64,
    p99: f64,
    refused: u64,
    errors: u64,
    first_error: Option<String>,
    /// Chat turns each instance counted (`/metrics`), warm-up included: how nginx spread them.
    per_instance: Vec<u64>,
}

/// The chat turns an instance has counted, from its own port.
async fn turns_counted(http: &reqwest::Client, port: u16) -> u64 {
    let text = match http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| l.starts_with("waifu_chat_turns_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn run(instances: u16, mock: &openai_mock::MockLlm, seconds: u64) -> Figures {
    let settings = settings(&mock.base_url);
    let cluster = Cluster::start(instances, &settings);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    // Settings may also live where every instance reads them; either way each one is told.
    for i in 1..=cluster.instances {
        let url = format!("http://127.0.0.1:{}/api/config", cluster.port + i);
        let res = http.put(&url).json(&settings).send().await.expect("PUT");
        assert!(res.status().is_success(), "PUT {url}: {}", res.status());
    }
    let counts = Arc::new(Counts::default());
    let measure_from = Instant::now() + WARM_UP;
    let until = measure_from + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let url = format!(
                "http://127.0.0.1:{}/api/chat?session_id={}",
                cluster.port,
                i + 1
            );
            tokio::spawn(connection(
                http.clone(),
                url,
                measure_from,
                until,
                counts.clone(),
            ))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let took = measure_from.elapsed().as_secs_f64();
    let mut per_instance = Vec::new();
    for i in 1..=cluster.instances {
        per_instance.push(turns_counted(&http, cluster.port + i).await);
    }
    drop(cluster);
    let mut latencies = std::mem::take(&mut *counts.latencies.lock().expect("lock"));
    latencies.sort();
    let done = counts.done.load(Ordering::Relaxed);
    let first_error = counts.first_error.lock().expect("lock").take();
    Figures {
        per_second: done as f64 / took,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        refused: counts.refused.load(Ordering::Relaxed),
        errors: counts.errors.load(Ordering::Relaxed),
        first_error,
        per_instance,
    }
}

#[tokio::main]
async fn main() {
    let seconds = std::env::var("WAIFU_CLUSTER_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mock = openai_mock::MockLlm::start(openai_mock::Flavor::LmStudio).await;
    let mut rows = Vec::new();
    for instances in [1, 3] {
        rows.push((instances, run(instances, &mock, seconds).await));
    }
    println!(
        "chat overhead through nginx: POST /api/chat, {CONNECTIONS} connections, {seconds} s each, instant mock LLM"
    );
    println!("  instances     req/s    p50 ms    p99 ms   refused    errors   turns per instance");
    for (instances, f) in &rows {
        let spread: Vec<String> = f.per_instance.iter().map(u64::to_string).collect();
        println!(
            "  {instances:>9} {:>9.1} {:>9.2} {:>9.2} {:>9} {:>9}   {}",
            f.per_second,
            f.p50,
            f.p99,
            f.refused,
            f.errors,
            spread.join(" / ")
        );
        if let Some(e) = &f.first_error {
            println!("            first error: {e}");
        }
    }
}
