//! What the benchmarks share: timing helpers and a client of the chat stream that notes when
//! each stage of a spoken reply arrived.
#![allow(dead_code)]

use axum::{body::Body, http::Request, Router};
use futures::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant};
use tower::ServiceExt;
use waifu_rt3d::shared::chat::SseSplitter;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn p50(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

/// What one spoken stream took, from sending the message.
pub struct Streamed {
    pub first_token: Duration,
    pub first_segment: Duration,
    pub first_audio: Option<Duration>,
    pub complete: Duration,
    pub segments: usize,
    pub reply_chars: usize,
    pub reply: String,
    /// The prompt's size and the part of it the model took from its cache, from the trace.
    pub prompt_tokens: Option<u64>,
    pub prompt_cached: Option<u64>,
}

/// Changes the harness's settings.
pub async fn configure(h: &crate::common::Harness, patch: Value) -> anyhow::Result<()> {
    h.state
        .config
        .update(patch)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

pub fn post(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("a valid request")
}

/// Sends `body` (a message, usually with `speak` on) to `/api/chat/stream` and reads the events
/// as they come; times count from sending it.
pub async fn stream(app: &Router, session: i64, body: &Value) -> anyhow::Result<Streamed> {
    let started = Instant::now();
    let res = app
        .clone()
        .oneshot(post(
            &format!("/api/chat/stream?session_id={session}"),
            body,
        ))
        .await?;
    anyhow::ensure!(res.status() == 200, "status {}", res.status());
    let mut body = res.into_body().into_data_stream();
    let mut sse = SseSplitter::default();
    let (mut first_token, mut first_segment, mut first_audio) = (None, None, None);
    // Which segments are answered: the first playable audio is the one the browser can start.
    let mut answered: Vec<Option<bool>> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        for (name, data) in sse.push(&String::from_utf8_lossy(&chunk)) {
            let data: Value = serde_json::from_str(&data)?;
            let index = data["index"].as_u64().unwrap_or(0) as usize;
            match name.as_str() {
                "token" => {
                    first_token.get_or_insert(started.elapsed());
                }
                "sentence" => {
                    first_segment.get_or_insert(started.elapsed());
                    answered.resize(answered.len().max(index + 1), None);
                }
                "audio" | "audio_error" => {
                    answered.resize(answered.len().max(index + 1), None);
                    answered[index] = Some(name == "audio");
                    let playable = answered
                        .iter()
                        .take_while(|a| a.is_some())
                        .any(|a| *a == Some(true));
                    if playable {
                        first_audio.get_or_insert(started.elapsed());
                    }
                }
                "error" => anyhow::bail!("the reply failed: {data}"),
                "done" => {
                    return Ok(Streamed {
                        first_token: first_token.unwrap_or_default(),
                        first_segment: first_segment.unwrap_or_default(),
                        first_audio,
                        complete: started.elapsed(),
                        segments: answered.len(),
                        reply_chars: data["reply"].as_str().map_or(0, |r| r.chars().count()),
                        reply: data["reply"].as_str().unwrap_or_default().to_string(),
                        prompt_tokens: data["timings"]["prompt_tokens"].as_u64(),
                        prompt_cached: data["timings"]["prompt_cached"].as_u64(),
                    })
                }
                _ => {}
            }
        }
    }
    anyhow::bail!("the stream ended without done")
}
