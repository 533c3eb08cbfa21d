//! Voice benchmark: time to first audio through the real router. Prints:
//! - with a mock LLM streaming 30 tokens/s and a mock voice server (XTTS API wire format)
//!   answering in 150 ms: the pipelined reply (`/api/chat/stream` with `speak`, first playable
//!   `audio` event) against waiting for the whole reply and then saying it (`/api/chat` with
//!   `speak`), p50 over several runs, and the target: time to first segment + voice latency +
//!   30 ms;
//! - the same two with the built-in model and real Piper, when `make setup` installed them.
//!
//! Figures only, nothing asserted. On a 2-core machine the built-in model and Piper share the
//! cores, and anything else running (a build) shows in the second part. Run with `make bench`.

#[path = "../tests/it/common/mod.rs"]
mod common;
mod support;

use axum::Router;
use common::{openai_mock, tts_mock::VoiceMock};
use serde_json::{json, Value};
use std::{
    path::Path,
    time::{Duration, Instant},
};
use support::{configure, ms, p50, post, stream};
use tower::ServiceExt;
use waifu_rt3d::llm::embedded::MODEL_FILE;

const RUNS: usize = 7;
/// 30 tokens a second.
const TOKEN_MS: u64 = 33;
const VOICE_MS: u64 = 150;
/// Sentences in the mock reply: 31 tokens, about a second of writing.
const SENTENCES: usize = 6;

/// Sends a message to `/api/chat` with speak on: the whole reply, then its audio.
/// Returns the time, whether there was audio, and the reply's length in characters.
async fn whole(app: &Router, session: i64, text: &str) -> anyhow::Result<(Duration, bool, usize)> {
    let started = Instant::now();
    let res = app
        .clone()
        .oneshot(post(
            &format!("/api/chat?session_id={session}"),
            &json!({"text": text, "speak": true}),
        ))
        .await?;
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
    let took = started.elapsed();
    let j: Value = serde_json::from_slice(&bytes)?;
    anyhow::ensure!(j["ok"] == json!(true), "the reply failed: {j}");
    let chars = j["reply"].as_str().map_or(0, |r| r.chars().count());
    Ok((took, j["audio"].is_string(), chars))
}

async fn mocks() -> anyhow::Result<()> {
    let llm = openai_mock::MockLlm::start(openai_mock::Flavor::LmStudio).await;
    let voice = VoiceMock::xtts(VOICE_MS).await;
    let settings = json!({
        "llm": {"provider": "lmstudio", "endpoint": llm.base_url,
                "model": format!("story:{SENTENCES}:{TOKEN_MS}")},
        "tts": {"provider": "xtts_server", "fallback_chain": [],
                "providers": {"xtts_server": voice.xtts_settings()}},
    });
    let (mut segment, mut pipelined, mut complete, mut waited, mut direct) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        // A fresh data folder each run: nothing comes from the audio cache.
        let h = common::harness().await;
        configure(&h, settings.clone()).await?;
        let s = stream(
            &h.app,
            1,
            &json!({"text": "Tell me a story.", "speak": true}),
        )
        .await?;
        segment.push(ms(s.first_segment));
        pipelined.push(ms(s
            .first_audio
            .ok_or_else(|| anyhow::anyhow!("no audio"))?));
        complete.push(ms(s.complete));

        let h = common::harness().await;
        configure(&h, settings.clone()).await?;
        let (took, spoke, _) = whole(&h.app, 1, "Tell me a story.").await?;
        anyhow::ensure!(spoke, "no audio");
        waited.push(ms(took));

        // The voice's own latency through the app, on a new text.
        let started = Instant::now();
        let res = h
            .app
            .clone()
            .oneshot(post(
                "/api/tts",
                &json!({"text": format!("Run {run} of the voice.")}),
            ))
            .await?;
        anyhow::ensure!(res.status() == 200, "tts status {}", res.status());
        direct.push(ms(started.elapsed()));
    }
    let (segment, pipelined, complete, waited, direct) = (
        p50(&mut segment),
        p50(&mut pipelined),
        p50(&mut complete),
        p50(&mut waited),
        p50(&mut direct),
    );
    println!(
        "== time to first audio, mock LLM at 30 tokens/s ({SENTENCES} sentences), mock voice answering in {VOICE_MS} ms; p50 of {RUNS} runs"
    );
    println!("  first segment                          {segment:>7.0} ms");
    println!("  voice latency (POST /api/tts)          {direct:>7.0} ms");
    println!(
        "  target: first segment + voice + 30 ms  {:>7.0} ms",
        segment + direct + 30.0
    );
    println!("  pipelined (/api/chat/stream, speak)    {pipelined:>7.0} ms   (done, after the last audio, at {complete:.0} ms)");
    println!("  whole reply, then speak (/api/chat)    {waited:>7.0} ms");
    Ok(())
}

async fn embedded_with_piper() -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = repo.join("data/models").join(MODEL_FILE);
    let piper = repo.join("data/tools/piper/venv/bin/piper");
    println!("== time to first audio, built-in model + Piper, one run each");
    if !model.is_file() || !piper.is_file() {
        println!(
            "  skipped: {} or {} is missing; run `make setup`",
            model.display(),
            piper.display()
        );
        return Ok(());
    }
    // Piper's default settings point into data/tools relative to the working folder.
    std::env::set_current_dir(repo)?;
    let h = common::harness().await;
    std::os::unix::fs::symlink(&model, h.state.paths.models.join(MODEL_FILE))?;
    configure(
        &h,
        // Greedy decoding: both ways of speaking get the same reply to the same question.
        json!({"llm": {"provider": "embedded", "temperature": 0.0},
               "tts": {"provider": "piper_local", "fallback_chain": []}}),
    )
    .await?;
    // Load the model and start the voice first: this is about a conversation, not a cold start.
    let warm = Instant::now();
    let _ = whole(&h.app, 1, "Hello!").await?;
    println!(
        "  warm-up (load model, start Piper):     {:>7.0} ms",
        ms(warm.elapsed())
    );
    // The same question in two new sessions: the same prompt for both ways of speaking.
    let question = "Tell me three nice things to do on a rainy day, and why.";
    let s = stream(&h.app, 2, &json!({"text": question, "speak": true})).await?;
    println!(
        "  reply: {} characters in {} segments; first token {:.0} ms",
        s.reply_chars,
        s.segments,
        ms(s.first_token)
    );
    println!(
        "  first segment                          {:>7.0} ms",
        ms(s.first_segment)
    );
    match s.first_audio {
        Some(a) => println!(
            "  pipelined first audio                  {:>7.0} ms   (done, after the last audio, at {:.0} ms)",
            ms(a),
            ms(s.complete)
        ),
        None => println!("  pipelined: no audio (every segment failed)"),
    }
    let (took, spoke, chars) = whole(&h.app, 3, question).await?;
    println!(
        "  whole reply, then speak                {:>7.0} ms   ({chars} characters{})",
        ms(took),
        if spoke { "" } else { ", no audio" }
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mocks().await?;
    embedded_with_piper().await
}
