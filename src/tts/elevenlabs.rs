//! ElevenLabs: <https://elevenlabs.io/docs/api-reference/text-to-speech/convert-with-timestamps>.
//!
//! `POST {endpoint}/text-to-speech/{voice_id}/with-timestamps?output_format=…` with `xi-api-key`;
//! the answer is JSON with `audio_base64` and a per-character `alignment`, which becomes the
//! timings for lip sync. The format is always asked for explicitly: `mp3_44100_128`, `pcm_<rate>`
//! (raw PCM, wrapped here in a WAV header) or `opus_48000_64`. Quota arrives as **401** with
//! `detail.status = "quota_exceeded"`, so the body decides between auth and quota. The probe reads
//! the subscription (`GET /user/subscription`), which costs nothing.

use super::{http, wav, Audio, OutputKind, ProbeResult, SynthRequest, TtsEngine, TtsError};
use crate::shared::{
    config::{AudioFormat, TtsProvider, TtsProviderSettings},
    tts::Timings,
};
use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use std::time::Duration;

pub struct ElevenLabs {
    c: http::Cloud,
}

#[derive(Deserialize)]
struct WithTimestamps {
    audio_base64: String,
    alignment: Option<Alignment>,
}

#[derive(Deserialize)]
struct Alignment {
    characters: Vec<String>,
    character_start_times_seconds: Vec<f64>,
    character_end_times_seconds: Vec<f64>,
}

impl ElevenLabs {
    pub fn new(s: &TtsProviderSettings, http: reqwest::Client) -> Self {
        Self {
            c: http::Cloud::new(s, http),
        }
    }

    /// The `pcm_*` rate nearest to the preference.
    fn pcm_rate(preferred: u32) -> u32 {
        [16_000, 22_050, 24_000, 44_100]
            .into_iter()
            .min_by_key(|r: &u32| r.abs_diff(preferred))
            .unwrap_or(24_000)
    }

    fn output_format(req: &SynthRequest) -> String {
        match req.format {
            AudioFormat::Mp3 => "mp3_44100_128".into(),
            AudioFormat::Wav => format!("pcm_{}", Self::pcm_rate(req.sample_rate)),
            AudioFormat::Opus => "opus_48000_64".into(),
        }
    }

    /// ElevenLabs says "quota" with a 401; only the body tells it from a bad key.
    fn classify(status: reqwest::StatusCode, body: &[u8]) -> TtsError {
        let detail_status = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["detail"]["status"].as_str().map(str::to_owned));
        match (status.as_u16(), detail_status.as_deref()) {
            (401, Some("quota_exceeded")) => TtsError::Quota {
                message: format!("HTTP 401: {}", http::error_detail(body)),
                rate_limited: false,
            },
            _ => http::status_error(status, body),
        }
    }
}

fn timings(a: Alignment) -> Option<Timings> {
    let n = a.characters.len();
    if n == 0
        || a.character_start_times_seconds.len() != n
        || a.character_end_times_seconds.len() != n
    {
        return None;
    }
    let ms = |s: &f64| (s.max(0.0) * 1000.0).round() as u32;
    Some(Timings {
        start_ms: a.character_start_times_seconds.iter().map(ms).collect(),
        end_ms: a.character_end_times_seconds.iter().map(ms).collect(),
        chars: a.characters,
    })
}

#[async_trait]
impl TtsEngine for ElevenLabs {
    fn provider(&self) -> TtsProvider {
        TtsProvider::Elevenlabs
    }

    fn identity(&self, req: &SynthRequest) -> String {
        format!(
            "{}|{}|{}",
            self.c.endpoint,
            self.c.model,
            Self::output_format(req)
        )
    }

    fn output(&self, req: &SynthRequest) -> OutputKind {
        OutputKind::of(req.format)
    }

    async fn synthesize(&self, req: &SynthRequest) -> Result<Audio, TtsError> {
        self.c.need_key("ElevenLabs")?;
        let voice = self.c.voice(&req.voice);
        if voice.is_empty() {
            return Err(TtsError::Misconfigured(
                "ElevenLabs needs a voice id (letters and digits, from the voice library)".into(),
            ));
        }
        // The voice id is a segment of the URL path.
        super::usable_voice(TtsProvider::Elevenlabs, voice)?;
        let mut body = serde_json::json!({ "text": req.text });
        if !self.c.model.is_empty() {
            body["model_id"] = self.c.model.as_str().into();
        }
        let call = self
            .c
            .http
            .post(format!(
                "{}/text-to-speech/{voice}/with-timestamps",
                self.c.endpoint
            ))
            .query(&[("output_format", Self::output_format(req))])
            .header("xi-api-key", self.c.key.expose())
            .json(&body);
        let res = http::send(call, "ElevenLabs", self.c.timeout).await?;
        let status = res.status();
        if !status.is_success() {
            return Err(Self::classify(
                status,
                &http::error_body(res, &self.c.key).await,
            ));
        }
        let bytes = http::body(res, "ElevenLabs", self.c.timeout).await?;
        let parsed: WithTimestamps = serde_json::from_slice(&bytes).map_err(|_| {
            TtsError::BadResponse("ElevenLabs did not answer with audio_base64 JSON".into())
        })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(parsed.audio_base64.trim())
            .map_err(|_| TtsError::BadResponse("ElevenLabs sent invalid base64 audio".into()))?;
        if raw.is_empty() {
            return Err(TtsError::BadResponse("ElevenLabs sent no audio".into()));
        }
        let timings = parsed.alignment.and_then(timings);
        let last_ms = timings
            .as_ref()
            .and_then(|t| t.end_ms.last().copied())
            .map(u64::from);
        let mut audio = match req.format {
            AudioFormat::Wav => {
                Audio::wav(wav::wrap_pcm16_mono(&raw, Self::pcm_rate(req.sample_rate)).into())?
            }
            AudioFormat::Mp3 => Audio {
                duration_ms: Some(raw.len() as u64 * 8 / 128),
                sample_rate: Some(44_100),
                kind: OutputKind::MP3,
                timings: None,
                bytes: raw.into(),
            },
            AudioFormat::Opus => Audio {
                duration_ms: None,
                sample_rate: Some(48_000),
                kind: OutputKind::OPUS,
                timings: None,
                bytes: raw.into(),
            },
        };
        if audio.kind != OutputKind::WAV {
            audio.duration_ms = last_ms.or(audio.duration_ms);
        }
        audio.timings = timings;
        Ok(audio)
    }

    async fn probe(&self) -> ProbeResult {
        if let Err(e) = self.c.need_key("ElevenLabs") {
            return ProbeResult::from_error(&e);
        }
        let call = self
            .c
            .http
            .get(format!("{}/user/subscription", self.c.endpoint))
            .header("xi-api-key", self.c.key.expose());
        let res = match http::send(call, "ElevenLabs", Duration::from_secs(2)).await {
            Ok(res) => res,
            Err(e) => return ProbeResult::from_error(&e),
        };
        let status = res.status();
        let body = http::error_body(res, &self.c.key).await;
        if !status.is_success() {
            return ProbeResult::from_error(&Self::classify(status, &body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        match (v["character_count"].as_u64(), v["character_limit"].as_u64()) {
            (Some(used), Some(limit)) if used >= limit => {
                ProbeResult::from_error(&TtsError::Quota {
                    message: format!("{used} of {limit} characters used this period"),
                    rate_limited: false,
                })
            }
            (Some(used), Some(limit)) => ProbeResult::ok(format!(
                "The key works; {} of {limit} characters left this period.",
                limit - used
            )),
            _ => ProbeResult::ok("The key works."),
        }
    }
}
