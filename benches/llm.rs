//! Language-model benchmark. Prints:
//! - the built-in model (SmolLM2-135M Q4_1 on llama.cpp): load time, time to first token for a
//!   300-token prompt (cold, then with the system prompt and history already cached), decode speed;
//! - the chat endpoint's overhead: `/api/chat` against an instant mock LLM vs calling the mock
//!   directly, p50/p99 and requests/s with 1 and 32 connections.
//!
//! Run with `make bench` (after `make setup`, which installs the model).

#[path = "../tests/it/common/openai_mock.rs"]
#[allow(dead_code)]
mod openai_mock;

use futures::StreamExt;
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};
use waifu_rt3d::{
    llm::{
        embedded::{Embedded, LoadState, MODEL_FILE},
        ChatEvent, ChatModel, ChatRequest, PromptMessage, PromptRole,
    },
    server::{app, preflight, AppState},
};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// A conversation whose prompt is about 300 tokens.
fn prompt(question: &str) -> Vec<PromptMessage> {
    let mut m = vec![PromptMessage::new(
        PromptRole::System,
        "You are Aiko, a cheerful anime companion who lives in the user's computer. You are kind, \
         curious and a little playful. Keep replies short: two or three sentences. End every reply \
         with one emotion tag from [happy], [sad], [angry], [relaxed], [surprised], [neutral].",
    )];
    for (u, a) in [
        ("Good morning! I slept badly, the neighbours were loud all night.", "Oh no, that sounds exhausting! Maybe a warm tea and a slow start will help today. [sad]"),
        ("I have a big presentation at work this afternoon about our new product.", "You will do great! Practise the opening once more and take a deep breath before you start. [happy]"),
        ("The product is a small robot that waters plants when the soil gets dry.", "That is so clever! Plants everywhere will thank you, and so will forgetful owners like me. [happy]"),
        ("My boss wants me to explain the battery life and the price clearly.", "Then lead with the numbers: how many weeks one charge lasts and what it costs per month. [relaxed]"),
    ] {
        m.push(PromptMessage::new(PromptRole::User, u));
        m.push(PromptMessage::new(PromptRole::Assistant, a));
    }
    m.push(PromptMessage::new(PromptRole::User, question));
    m
}

async fn embedded() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/models")
        .join(MODEL_FILE);
    if !path.is_file() {
        println!(
            "built-in model: {} missing, run `make setup`",
            path.display()
        );
        return;
    }
    let model = Embedded::new(path);
    let run = |question: &str, max_tokens: u32| {
        let request = ChatRequest {
            messages: prompt(question),
            model: String::new(),
            temperature: 0.0,
            max_tokens,
        };
        let model = &model;
        async move {
            let started = Instant::now();
            let mut stream = model.chat(request).await.expect("model starts");
            let (mut first, mut loaded, mut tokens, mut prompt_tokens) = (None, None, 0u32, 0u32);
            let mut saw_loading = false;
            while let Some(e) = stream.next().await {
                match e.expect("no engine error") {
                    ChatEvent::Loading(p) => {
                        saw_loading = true;
                        if p >= 1.0 {
                            loaded = Some(started.elapsed());
                        }
                    }
                    ChatEvent::Content(_) => {
                        first.get_or_insert(started.elapsed());
                    }
                    ChatEvent::Finished { usage, .. } => {
                        if let Some(u) = usage {
                            tokens = u.completion_tokens;
                            prompt_tokens = u.prompt_tokens;
                        }
                    }
                    ChatEvent::Reasoning(_) => {}
                }
            }
            let total = started.elapsed();
            (
                saw_loading.then_some(loaded).flatten(),
                first.unwrap_or(total),
                total,
                tokens,
                prompt_tokens,
            )
        }
    };
    // First request: loads the model, then reads the whole prompt.
    let (loaded, first, total, tokens, prompt_tokens) = run("Any last tip before I go?", 64).await;
    // The worker reports its own load time; the last progress event can come a little earlier.
    let load = match model.state() {
        LoadState::Ready { load_ms } => Duration::from_millis(load_ms),
        _ => loaded.unwrap_or_default(),
    };
    println!("built-in model: {MODEL_FILE}");
    println!(
        "  load                          {:>8.0} ms",
        load.as_secs_f64() * 1000.0
    );
    println!(
        "  first token, cold ({prompt_tokens} prompt tokens) {:>6.0} ms (after the load)",
        (first - load).as_secs_f64() * 1000.0
    );
    let decode = tokens.saturating_sub(1) as f64 / (total - first).as_secs_f64().max(1e-9);
    println!("  decode                        {decode:>8.1} tok/s ({tokens} tokens)");

    // A different last question: only what differs from the cached prompt is evaluated.
    let mut firsts = Vec::new();
    let mut cold = Vec::new();
    let mut rates = Vec::new();
    for i in 0..5 {
        let (_, first, total, tokens, _) =
            run(&format!("Question {i}: what should I eat for lunch?"), 96).await;
        firsts.push(first);
        rates.push(tokens.saturating_sub(1) as f64 / (total - first).as_secs_f64().max(1e-9));
        // Reset the cache with an unrelated system prompt to time a full prompt read again.
        let other = ChatRequest {
            messages: vec![
                PromptMessage::new(PromptRole::System, format!("Reset {i}.")),
                PromptMessage::new(PromptRole::User, "ok"),
            ],
            model: String::new(),
            temperature: 0.0,
            max_tokens: 1,
        };
        let mut s = model.chat(other).await.expect("starts");
        while s.next().await.is_some() {}
        let (_, first, _, _, _) =
            run(&format!("Question {i}: what should I eat for lunch?"), 1).await;
        cold.push(first);
    }
    firsts.sort();
    cold.sort();
    rates.sort_by(f64::total_cmp);
    println!(
        "  first token, 300-token prompt read in full: p50 {:>6.0} ms",
        percentile(&cold, 0.5)
    );
    println!(
        "  first token, conversation prefix cached:    p50 {:>6.0} ms",
        percentile(&firsts, 0.5)
    );
    println!(
        "  decode, median of 5 replies:  {:>8.1} tok/s",
        rates[rates.len() / 2]
    );
}

async fn overhead() {
    let mock = openai_mock::MockLlm::start(openai_mock::Flavor::LmStudio).await;
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
    let patch = serde_json::json!({"llm": {"provider": "lmstudio", "endpoint": mock.base_url, "model": "ok"}});
    state.config.update(patch).await.expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = state.config.clone();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let direct_url = format!("{}/chat/completions", mock.base_url);
    let chat_url = format!("http://{addr}/api/chat?session_id=1");
    let direct_body = serde_json::json!({"model": "ok", "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    let chat_body = serde_json::json!({"text": "Tell me about the garden robots"});

    let one = move |url: String, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let r = client.post(&url).json(&body).send().await.expect("request");
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.expect("body");
            started.elapsed()
        }
    };
    // Recall searches the whole history on every turn; the earlier server had no recall, so the
    // like-for-like figure is the one with recall off. The history grows by two messages per
    // request, all sharing the same words (recall's worst case).
    for (label, url, body, recall) in [
        (
            "mock LLM directly          ",
            direct_url.clone(),
            direct_body.clone(),
            None,
        ),
        (
            "POST /api/chat (recall off)",
            chat_url.clone(),
            chat_body.clone(),
            Some(0),
        ),
        (
            "POST /api/chat (recall 3)  ",
            chat_url.clone(),
            chat_body.clone(),
            Some(3),
        ),
    ] {
        if let Some(n) = recall {
            config
                .update(serde_json::json!({"memory": {"recall": n}}))
                .await
                .expect("config");
        }
        for _ in 0..50 {
            one(url.clone(), body.clone()).await;
        }
        let mut samples = Vec::new();
        for _ in 0..500 {
            samples.push(one(url.clone(), body.clone()).await);
        }
        samples.sort();
        // Requests/s with 32 connections: the median of five rounds (the machine's noise between
        // rounds is larger than the differences worth seeing), with the range.
        let per_task = 100;
        let mut rounds = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let tasks: Vec<_> = (0..32)
                .map(|_| {
                    let one = one.clone();
                    let (url, body) = (url.clone(), body.clone());
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            one(url.clone(), body.clone()).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            rounds.push((32 * per_task) as f64 / started.elapsed().as_secs_f64());
        }
        rounds.sort_by(f64::total_cmp);
        let rps32 = rounds[rounds.len() / 2];
        let rps1 = 1000.0 / percentile(&samples, 0.5);
        println!(
            "{label}  1 connection: p50 {:>6.3} ms  p99 {:>6.3} ms  {:>7.0} req/s | 32 connections: {:>7.0} req/s ({:.0}-{:.0})",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            rps1,
            rps32,
            rounds[0],
            rounds[rounds.len() - 1]
        );
    }
    let list: serde_json::Value = reqwest::get(format!("http://{addr}/api/sessions"))
        .await
        .expect("sessions")
        .json()
        .await
        .expect("sessions JSON");
    println!(
        "(recall searched a history that grew to {} messages, every one with the same words)",
        list["sessions"][0]["message_count"]
    );
}

/// `cargo bench --bench llm [-- embedded|overhead]`: both parts, or only the one named.
#[tokio::main]
async fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |part: &str| only.is_empty() || only.iter().any(|a| a == part);
    if wants("embedded") {
        embedded().await;
        println!();
    }
    if wants("overhead") {
        overhead().await;
    }
}
