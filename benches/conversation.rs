//! Long-conversation benchmark: a scripted 20-turn spoken conversation with the built-in model
//! and Piper, through the real router. Prints, per turn and as P50/P95/max over turns 2–20:
//! first token, first segment and first audio (from sending the message), the prompt's tokens
//! read and reused from the model's cache, and the reply's length.
//!
//! Then the same script against an OpenAI-compatible server (the built-in engine behind a local
//! `/v1/chat/completions` endpoint that reports `usage.prompt_tokens_details.cached_tokens`),
//! twice: with the prompts as the app lays them out, and rewritten into the earlier layout
//! (recalled memories inside the system prompt), to show what the layout is worth to a server's
//! prefix cache. (That server is the built-in engine, which also moves cached runs into place, so
//! a history window sliding by one message would cost it little; a server without that pays it.)
//!
//! Figures only, nothing asserted. Needs `make setup` (the model and Piper); run with
//! `make bench`. `WAIFU_LLM_THREADS` and `WAIFU_PIPER_THREADS` set the thread counts;
//! `WAIFU_BENCH_SERVER=0` runs the first part only.

#[path = "../tests/it/common/mod.rs"]
mod common;
mod support;

use axum::{
    extract::State,
    response::{sse, IntoResponse, Sse},
    routing::{get, post},
    Json, Router,
};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use std::{convert::Infallible, path::Path, sync::Arc};
use support::{configure, ms, stream, Streamed};
use waifu_rt3d::llm::{
    embedded::{Embedded, MODEL_FILE},
    ChatEvent, ChatModel, ChatRequest, PromptMessage, PromptRole,
};

/// The person's side of the conversation: greetings, small talk, facts and follow-ups that need
/// the turns before them.
const SCRIPT: [&str; 20] = [
    "Hi! I'm Sam. How are you today?",
    "I just got back from a walk in the park.",
    "The leaves are turning red and yellow. Do you like autumn?",
    "What should I cook for dinner tonight?",
    "I have rice, eggs and some spinach.",
    "Good idea. How long does rice take to cook?",
    "What is the capital of France?",
    "Have you ever wanted to visit it?",
    "I'd like to see the Eiffel Tower one day.",
    "By the way, my cat is called Mochi.",
    "She likes to sleep on my keyboard.",
    "Can you suggest a good name for a second cat?",
    "I like that. What did I say my first cat is called?",
    "I'm feeling a bit tired now.",
    "Do you have a tip for sleeping better?",
    "What was the vegetable I said I had?",
    "Tell me something that will make me smile.",
    "That's sweet. What's your favourite season?",
    "Where did I say I walked today?",
    "Thank you, good night!",
];

/// Nearest-rank percentile of the values (sorted here).
fn percentile(values: &[f64], p: usize) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p * v.len()).div_ceil(100).max(1);
    v[rank - 1]
}

/// One spoken turn, as the browser would send it.
async fn spoken_turn(app: &Router, session: i64, text: &str) -> anyhow::Result<Streamed> {
    stream(app, session, &json!({"text": text, "speak": true})).await
}

/// Runs the script in one new session and prints the table.
async fn conversation(h: &common::Harness, title: &str) -> anyhow::Result<()> {
    println!("== {title}");
    println!(
        "  turn  first token  first segment  first audio   complete   prompt read/reused   reply"
    );
    let mut figures = Vec::new();
    for (i, text) in SCRIPT.iter().enumerate() {
        let f = spoken_turn(&h.app, 100, text).await?;
        let read = f
            .prompt_tokens
            .map(|t| t.saturating_sub(f.prompt_cached.unwrap_or(0)));
        println!(
            "  {:>4}  {:>8.0} ms  {:>10.0} ms  {:>8} ms  {:>6.0} ms   {:>7} / {:<7}  {:>4} chars: {}",
            i + 1,
            ms(f.first_token),
            ms(f.first_segment),
            f.first_audio.map_or("-".into(), |a| format!("{:.0}", ms(a))),
            ms(f.complete),
            read.map_or("-".into(), |r| r.to_string()),
            f.prompt_cached.map_or("-".into(), |r| r.to_string()),
            f.reply.chars().count(),
            f.reply.chars().take(60).collect::<String>().replace('\n', " "),
        );
        figures.push(f);
    }
    let later = &figures[1..];
    let row = |name: &str, values: Vec<f64>| {
        if values.is_empty() {
            println!("  {name:<24} no values");
            return;
        }
        println!(
            "  {name:<24} P50 {:>6.0}   P95 {:>6.0}   max {:>6.0}",
            percentile(&values, 50),
            percentile(&values, 95),
            values.iter().copied().fold(f64::MIN, f64::max)
        );
    };
    println!("  turns 2–20:");
    row(
        "first token (ms)",
        later.iter().map(|f| ms(f.first_token)).collect(),
    );
    row(
        "first segment (ms)",
        later.iter().map(|f| ms(f.first_segment)).collect(),
    );
    row(
        "first audio (ms)",
        later.iter().filter_map(|f| f.first_audio.map(ms)).collect(),
    );
    row(
        "prompt tokens read",
        later
            .iter()
            .filter_map(|f| Some(f.prompt_tokens? as f64 - f.prompt_cached.unwrap_or(0) as f64))
            .collect(),
    );
    row(
        "prompt tokens reused",
        later
            .iter()
            .filter_map(|f| Some(f.prompt_cached? as f64))
            .collect(),
    );
    row(
        "reply (characters)",
        later
            .iter()
            .map(|f| f.reply.chars().count() as f64)
            .collect(),
    );
    let silent = later.iter().filter(|f| f.first_audio.is_none()).count();
    if silent > 0 {
        println!("  {silent} turns had no audio");
    }
    Ok(())
}

/// A local OpenAI-compatible server: the built-in engine behind `/v1/chat/completions`.
struct Server {
    model: Embedded,
    /// Rewrite each request into the earlier prompt layout first.
    old_layout: bool,
}

/// The earlier layout, from the app's: the memories that lead the newest message go into the
/// system prompt (the history the app sends is at most `WINDOW` messages already).
fn old_layout(mut messages: Vec<PromptMessage>) -> Vec<PromptMessage> {
    const WINDOW: usize = 12;
    const LEAD: &str = "(Memories from earlier conversations; use them only if they help:\n";
    let Some(last) = messages.pop() else {
        return messages;
    };
    let mut user = last.content.clone();
    let mut memories = None;
    if let Some(rest) = user.strip_prefix(LEAD) {
        if let Some((lines, text)) = rest.split_once(")\n\n") {
            memories = Some(lines.to_string());
            user = text.to_string();
        }
    }
    let mut system = messages.remove(0);
    if let Some(lines) = memories {
        system
            .content
            .push_str("\n\nMemories from earlier conversations (use them only if they help):\n");
        system.content.push_str(&lines);
    }
    let skip = messages.len().saturating_sub(WINDOW);
    let mut out = vec![system];
    out.extend(messages.into_iter().skip(skip));
    out.push(PromptMessage::new(PromptRole::User, user));
    out
}

async fn completions(
    State(server): State<Arc<Server>>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    let messages: Vec<PromptMessage> = body["messages"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| {
                    let role = match m["role"].as_str() {
                        Some("system") => PromptRole::System,
                        Some("assistant") => PromptRole::Assistant,
                        _ => PromptRole::User,
                    };
                    PromptMessage::new(role, m["content"].as_str().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    let messages = if server.old_layout {
        old_layout(messages)
    } else {
        messages
    };
    let request = ChatRequest {
        messages,
        model: String::new(),
        temperature: body["temperature"].as_f64().unwrap_or(0.7) as f32,
        max_tokens: body["max_tokens"].as_u64().unwrap_or(160) as u32,
    };
    match server.model.chat(request).await {
        Ok(stream) => Sse::new(openai_chunks(stream)).into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": e.to_string()}})),
        )
            .into_response(),
    }
}

/// The engine's events as OpenAI's streamed chunks, usage (with the cached tokens) last.
fn openai_chunks(
    stream: waifu_rt3d::llm::ChatStream,
) -> impl Stream<Item = Result<sse::Event, Infallible>> {
    let chunk = |v: Value| Ok(sse::Event::default().data(v.to_string()));
    stream
        .filter_map(move |event| async move {
            match event {
                Ok(ChatEvent::Content(text)) => Some(vec![chunk(json!({
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]
                }))]),
                Ok(ChatEvent::Finished { reason, usage }) => {
                    let reason = match reason {
                        waifu_rt3d::llm::FinishReason::Length => "length",
                        _ => "stop",
                    };
                    let usage = usage.map(|u| {
                        json!({"prompt_tokens": u.prompt_tokens,
                               "completion_tokens": u.completion_tokens,
                               "prompt_tokens_details": {"cached_tokens": u.cached_tokens}})
                    });
                    Some(vec![
                        chunk(json!({"object": "chat.completion.chunk",
                               "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})),
                        chunk(json!({"object": "chat.completion.chunk", "choices": [], "usage": usage})),
                        Ok(sse::Event::default().data("[DONE]")),
                    ])
                }
                Ok(_) => None,
                Err(e) => Some(vec![chunk(json!({"error": {"message": e.to_string()}}))]),
            }
        })
        .flat_map(futures::stream::iter)
}

async fn serve(model_path: &Path, old: bool) -> anyhow::Result<String> {
    let server = Arc::new(Server {
        model: Embedded::new(model_path.to_path_buf()),
        old_layout: old,
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .route(
            "/v1/models",
            get(|| async { Json(json!({"data": [{"id": "built-in"}]})) }),
        )
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/v1"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `WAIFU_LOG=waifu_rt3d::llm=debug` shows what the model took from its cache each turn.
    if let Ok(filter) = std::env::var("WAIFU_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = repo.join("data/models").join(MODEL_FILE);
    let piper = repo.join("data/tools/piper/venv/bin/piper");
    if !model.is_file() || !piper.is_file() {
        println!(
            "== long conversation: skipped, {} or {} is missing; run `make setup`",
            model.display(),
            piper.display()
        );
        return Ok(());
    }
    // Piper's default settings point into data/tools relative to the working folder.
    std::env::set_current_dir(repo)?;
    let threads = |name: &str| std::env::var(name).unwrap_or_else(|_| "default".into());
    println!(
        "(threads: WAIFU_LLM_THREADS={}, WAIFU_LLM_BATCH_THREADS={}, WAIFU_PIPER_THREADS={})",
        threads("WAIFU_LLM_THREADS"),
        threads("WAIFU_LLM_BATCH_THREADS"),
        threads("WAIFU_PIPER_THREADS")
    );
    let voice = json!({"provider": "piper_local", "fallback_chain": []});

    let h = common::harness().await;
    std::os::unix::fs::symlink(&model, h.state.paths.models.join(MODEL_FILE))?;
    configure(&h, json!({"llm": {"provider": "embedded"}, "tts": voice})).await?;
    // Load the model and start the voice first: this is about a conversation, not a cold start.
    spoken_turn(&h.app, 1, "Hello!").await?;
    conversation(
        &h,
        "20-turn spoken conversation, built-in model + Piper (warm), default settings",
    )
    .await?;

    if std::env::var("WAIFU_BENCH_SERVER").is_ok_and(|v| v == "0") {
        return Ok(());
    }
    for (old, name) in [(false, "the app's layout"), (true, "the earlier layout")] {
        let endpoint = serve(&model, old).await?;
        let h = common::harness().await;
        let mut llm =
            json!({"provider": "openai_compatible", "endpoint": endpoint, "model": "built-in"});
        llm["temperature"] = json!(0.7);
        configure(&h, json!({"llm": llm, "tts": voice})).await?;
        spoken_turn(&h.app, 1, "Hello!").await?;
        conversation(
            &h,
            &format!(
                "the same script through an OpenAI-compatible server (built-in engine), {name}"
            ),
        )
        .await?;
    }
    Ok(())
}
