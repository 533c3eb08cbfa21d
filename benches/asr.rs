//! Speech recognition benchmark, through the real router with the real offline Whisper. Prints:
//! - `POST /api/asr` latency and real-time factor (latency / length of the recording) for a
//!   short and a long utterance spoken by eSpeak NG, warm worker, p50 over several runs; next to
//!   faster-whisper's own Python API on the same files with the same settings (int8, beam size
//!   1, the configured threads), run in the same virtualenv: the anchor;
//! - end of speech to first audio with the built-in model and Piper: a spoken question
//!   (WAV) → `POST /api/asr` → `POST /api/chat/stream` with `speak` and `input: voice`, timed
//!   from the moment the utterance is complete (the `/api/asr` request starts) to the first
//!   playable `audio` event; P50/P95 over the turns, and each stage's share.
//!
//! Figures only, nothing asserted. On a 2-core machine the recogniser, the built-in model and
//! Piper share the cores, and anything else running (a build) shows. Run with `make bench`.

#[path = "../tests/it/common/mod.rs"]
mod common;
mod support;

use axum::{body::Body, http::Request, Router};
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use support::{configure, ms, p50, stream};
use tower::ServiceExt;
use waifu_rt3d::llm::embedded::MODEL_FILE;

const RUNS: usize = 7;
const TURNS: usize = 10;
const THREADS: u32 = 2;

/// About 3 s and about 10 s of eSpeak NG's speech.
const SHORT: &str = "Please tell me a funny joke about cats and dogs.";
const LONG: &str = "I had a long day at work today, the train was late, it rained all afternoon, and I forgot my umbrella at the office, so tell me something cheerful to make the evening better.";

/// The spoken questions of the conversation benchmark.
const QUESTIONS: [&str; TURNS] = [
    "Hello, how are you today?",
    "What is your favourite colour?",
    "Tell me something nice about rain.",
    "What should I cook for dinner?",
    "Can you recommend a good book?",
    "What do you like to do on weekends?",
    "How do I stay calm before an exam?",
    "What is the best thing about spring?",
    "Tell me a short story about a cat.",
    "Good night, see you tomorrow.",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn p95(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (95 * values.len()).div_ceil(100).max(1);
    values[rank - 1]
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// `text` spoken by eSpeak NG into `dir`: the file and its length in ms.
fn speak(dir: &Path, name: &str, text: &str) -> anyhow::Result<(PathBuf, f64)> {
    let path = dir.join(format!("{name}.wav"));
    let status = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&path)
        .arg(text)
        .status()?;
    anyhow::ensure!(status.success(), "espeak-ng failed");
    let bytes = std::fs::read(&path)?;
    let info = waifu_rt3d::tts::wav::parse(&bytes)
        .ok_or_else(|| anyhow::anyhow!("espeak-ng wrote no WAV"))?;
    Ok((path, info.duration_ms() as f64))
}

/// One `POST /api/asr` with a WAV: its time and answer.
async fn transcribe(app: &Router, wav: &[u8]) -> anyhow::Result<(Duration, Value)> {
    transcribe_raw(app, wav).await.map(|(took, j, _)| (took, j))
}

/// [`transcribe`], with the answer's body as sent.
async fn transcribe_raw(app: &Router, wav: &[u8]) -> anyhow::Result<(Duration, Value, String)> {
    let started = Instant::now();
    let res = app
        .clone()
        .oneshot(
            Request::post("/api/asr")
                .header("content-type", "audio/wav")
                .body(Body::from(wav.to_vec()))?,
        )
        .await?;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
    let took = started.elapsed();
    let j: Value = serde_json::from_slice(&bytes)?;
    anyhow::ensure!(status == 200, "/api/asr answered {status}: {j}");
    Ok((took, j, String::from_utf8_lossy(&bytes).into_owned()))
}

/// faster-whisper's own API on `files`, same settings, `RUNS` times each after one warm-up:
/// the p50 in ms per file, as the script prints it.
const ANCHOR: &str = r#"
import json, statistics, sys, time
from faster_whisper import WhisperModel
model_dir, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1, local_files_only=True)
out = {}
for path in sys.argv[4:]:
    def once():
        t = time.perf_counter()
        segments, info = model.transcribe(path, language="en", beam_size=1, condition_on_previous_text=False, without_timestamps=True)
        text = " ".join(s.text.strip() for s in segments)
        return (time.perf_counter() - t) * 1000, text
    once()
    times = [once()[0] for _ in range(runs)]
    out[path] = {"p50_ms": statistics.median_low(times), "text": once()[1]}
print(json.dumps(out))
"#;

fn anchor(python: &Path, model: &Path, files: &[&Path]) -> anyhow::Result<Value> {
    let out = std::process::Command::new(python)
        .env("HF_HUB_OFFLINE", "1")
        .args(["-c", ANCHOR])
        .arg(model)
        .arg(THREADS.to_string())
        .arg(RUNS.to_string())
        .args(files)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the anchor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

async fn recognition(python: &Path, model: &Path) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let h = common::harness().await;
    configure(
        &h,
        json!({"asr": {"provider": "whisper_local",
                       "providers": {"whisper_local": {"threads": THREADS}}}}),
    )
    .await?;
    let cases = [
        ("short", speak(dir.path(), "short", SHORT)?),
        ("long", speak(dir.path(), "long", LONG)?),
    ];
    // Warm: the worker is loaded and has heard each file once.
    for (_, (path, _)) in &cases {
        transcribe(&h.app, &std::fs::read(path)?).await?;
    }
    let (_, _, sample) = transcribe_raw(&h.app, &std::fs::read(&cases[0].1 .0)?).await?;
    println!("== one answer of /api/asr, as sent: {sample}");
    let files: Vec<&Path> = cases.iter().map(|(_, (p, _))| p.as_path()).collect();
    let anchors = anchor(python, model, &files)?;
    println!(
        "== /api/asr, Whisper tiny.en int8, beam 1, {THREADS} threads, warm worker; p50 of {RUNS} runs"
    );
    println!("  utterance   length    /api/asr      RTF   decode  transcribe | faster-whisper API    RTF");
    for (name, (path, length)) in &cases {
        let wav = std::fs::read(path)?;
        let (mut took, mut decode, mut recognise) = (Vec::new(), Vec::new(), Vec::new());
        let mut text = String::new();
        for _ in 0..RUNS {
            let (t, j) = transcribe(&h.app, &wav).await?;
            took.push(ms(t));
            decode.push(
                j["meta"]["timings"]["decode_ms"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            );
            recognise.push(
                j["meta"]["timings"]["transcribe_ms"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            );
            text = j["text"].as_str().unwrap_or_default().to_string();
        }
        let took = p50(&mut took);
        let own = &anchors[path.to_string_lossy().as_ref()];
        let own_ms = own["p50_ms"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  {name:<9} {:>6.1} s  {took:>7.0} ms  {:>6.3}  {:>5.0} ms  {:>7.0} ms | {own_ms:>11.0} ms     {:>6.3}",
            length / 1000.0,
            took / length,
            p50(&mut decode),
            p50(&mut recognise),
            own_ms / length,
        );
        println!("    heard: {text:?}");
        println!("    anchor heard: {}", own["text"]);
    }
    Ok(())
}

async fn conversation(python_found: bool) -> anyhow::Result<()> {
    let model = repo().join("data/models").join(MODEL_FILE);
    let piper = repo().join("data/tools/piper/venv/bin/piper");
    println!(
        "== end of speech to first audio: WAV -> /api/asr -> /api/chat/stream (speak, input voice), built-in model + Piper; {TURNS} turns"
    );
    if !model.is_file() || !piper.is_file() || !python_found {
        println!("  skipped: the built-in model, Piper or Whisper is missing; run `make setup`");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let h = common::harness().await;
    std::os::unix::fs::symlink(&model, h.state.paths.models.join(MODEL_FILE))?;
    configure(
        &h,
        json!({"llm": {"provider": "embedded", "temperature": 0.0},
               "tts": {"provider": "piper_local", "fallback_chain": []},
               "asr": {"provider": "whisper_local"}}),
    )
    .await?;
    let mut wavs = Vec::new();
    for (i, q) in QUESTIONS.iter().enumerate() {
        wavs.push(std::fs::read(speak(dir.path(), &format!("q{i}"), q)?.0)?);
    }
    // A conversation, not a cold start: the model loaded, Piper and Whisper warm.
    let warm = Instant::now();
    transcribe(&h.app, &wavs[0]).await?;
    stream(&h.app, 1, &json!({"text": "Hello!", "speak": true})).await?;
    println!(
        "  warm-up (load model, start Piper and Whisper): {:.0} ms",
        ms(warm.elapsed())
    );

    let (mut total, mut asr, mut token, mut segment, mut synth) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (turn, wav) in wavs.iter().enumerate() {
        // The utterance is complete: from here the person waits.
        let spoken = Instant::now();
        let (_, heard) = transcribe(&h.app, wav).await?;
        let asr_done = spoken.elapsed();
        let text = heard["text"].as_str().unwrap_or_default();
        let text = if text.is_empty() { "Hello?" } else { text };
        let s = stream(
            &h.app,
            100 + turn as i64,
            &json!({"text": text, "speak": true, "input": "voice",
                    "speech_end_ms_ago": asr_done.as_millis() as u32, "asr_done_ms_ago": 0}),
        )
        .await?;
        let Some(first_audio) = s.first_audio else {
            println!("  turn {turn}: no audio (every segment failed)");
            continue;
        };
        asr.push(ms(asr_done));
        token.push(ms(s.first_token));
        segment.push(ms(s.first_segment.saturating_sub(s.first_token)));
        synth.push(ms(first_audio.saturating_sub(s.first_segment)));
        total.push(ms(asr_done) + ms(first_audio));
    }
    if total.is_empty() {
        return Ok(());
    }
    let whole = mean(&total);
    println!(
        "  end of speech -> first audio: P50 {:.0} ms, P95 {:.0} ms ({} turns); target <= 1500 ms P50; published anchor: OpenAvatarChat about 2200 ms on an RTX 4090",
        p50(&mut total.clone()),
        p95(&mut total),
        asr.len()
    );
    println!("  stage                               P50      mean   share of the mean");
    for (name, values) in [
        ("speech recognition (/api/asr)", &mut asr),
        ("request -> first token", &mut token),
        ("first token -> first sentence", &mut segment),
        ("first sentence -> its audio", &mut synth),
    ] {
        let m = mean(values);
        println!(
            "  {name:<33} {:>6.0} ms {:>6.0} ms   {:>5.1} %",
            p50(values),
            m,
            100.0 * m / whole
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let python = repo().join("data/tools/whisper/venv/bin/python3");
    let model = repo().join("data/models/whisper-tiny.en");
    // The recogniser and Piper are found under data/ relative to the working folder.
    std::env::set_current_dir(repo())?;
    let found = python.is_file() && model.join("model.bin").is_file();
    if found {
        recognition(&python, &model).await?;
    } else {
        println!("== /api/asr: skipped, faster-whisper or the model is missing; run `make setup`");
    }
    conversation(found).await
}
