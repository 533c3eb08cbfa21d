//! Fish Audio: <https://docs.fish.audio/api-reference/endpoint/openapi-v1/text-to-speech>.
//!
//! `POST {endpoint}/tts` with a Bearer key, a `model` header and a JSON body; the answer is the
//! raw audio (no JSON wrapper). Errors are JSON `{status, message}` (401/402/429), a 422 array,
//! or, from the edge, not JSON at all. The probe asks for the API credit
//! (`GET /wallet/self/api-credit`), which costs nothing.

use super::{http, Audio, OutputKind, ProbeResult, SynthRequest, TtsEngine, TtsError};
use crate::shared::config::{AudioFormat, TtsProvider, TtsProviderSettings};
use async_trait::async_trait;
use std::time::Duration;

pub struct Fish {
    c: http::Cloud,
}

impl Fish {
    pub fn new(s: &TtsProviderSettings, http: reqwest::Client) -> Self {
        Self {
            c: http::Cloud::new(s, http),
        }
    }

    /// WAV rates Fish accepts; the nearest one to the preference.
    fn wav_rate(preferred: u32) -> u32 {
        [8_000, 16_000, 24_000, 32_000, 44_100]
            .into_iter()
            .min_by_key(|r: &u32| r.abs_diff(preferred))
            .unwrap_or(44_100)
    }
}

#[async_trait]
impl TtsEngine for Fish {
    fn provider(&self) -> TtsProvider {
        TtsProvider::FishAudio
    }

    fn identity(&self, req: &SynthRequest) -> String {
        let rate = match req.format {
            AudioFormat::Wav => Self::wav_rate(req.sample_rate),
            _ => 0,
        };
        format!("{}|{}|{rate}", self.c.endpoint, self.c.model)
    }

    fn output(&self, req: &SynthRequest) -> OutputKind {
        OutputKind::of(req.format)
    }

    async fn synthesize(&self, req: &SynthRequest) -> Result<Audio, TtsError> {
        self.c.need_key("Fish Audio")?;
        let voice = self.c.voice(&req.voice);
        super::usable_voice(TtsProvider::FishAudio, voice)?;
        let mut body = serde_json::json!({
            "text": req.text,
            "format": req.format.name(),
            "latency": "normal",
            "normalize": true,
        });
        if !voice.is_empty() {
            body["reference_id"] = voice.into();
        }
        let rate = match req.format {
            AudioFormat::Wav => Some(Self::wav_rate(req.sample_rate)),
            AudioFormat::Mp3 => {
                body["mp3_bitrate"] = 128.into();
                None
            }
            AudioFormat::Opus => Some(48_000),
        };
        if let (AudioFormat::Wav, Some(r)) = (req.format, rate) {
            body["sample_rate"] = r.into();
        }
        let mut call = self
            .c
            .http
            .post(format!("{}/tts", self.c.endpoint))
            .bearer_auth(self.c.key.expose())
            .json(&body);
        if !self.c.model.is_empty() {
            call = call.header("model", &self.c.model);
        }
        let res = http::send(call, "Fish Audio", self.c.timeout).await?;
        if !res.status().is_success() {
            return Err(http::fail(res, &self.c.key).await);
        }
        let bytes = http::body(res, "Fish Audio", self.c.timeout).await?;
        match req.format {
            AudioFormat::Wav => Audio::wav(bytes),
            AudioFormat::Mp3 => Ok(Audio {
                // 128 kbit/s constant bit rate, as requested.
                duration_ms: Some(bytes.len() as u64 * 8 / 128),
                sample_rate: None,
                kind: OutputKind::MP3,
                timings: None,
                bytes,
            }),
            AudioFormat::Opus => Ok(Audio {
                duration_ms: None,
                sample_rate: rate,
                kind: OutputKind::OPUS,
                timings: None,
                bytes,
            }),
        }
    }

    async fn probe(&self) -> ProbeResult {
        if let Err(e) = self.c.need_key("Fish Audio") {
            return ProbeResult::from_error(&e);
        }
        // The wallet lives at the API's root, beside `/v1`.
        let root = self
            .c
            .endpoint
            .strip_suffix("/v1")
            .unwrap_or(&self.c.endpoint);
        let call = self
            .c
            .http
            .get(format!("{root}/wallet/self/api-credit"))
            .bearer_auth(self.c.key.expose());
        let res = match http::send(call, "Fish Audio", Duration::from_secs(2)).await {
            Ok(res) => res,
            Err(e) => return ProbeResult::from_error(&e),
        };
        match http::probe_status(res, &self.c.key).await {
            Ok(res) => {
                let limit = crate::outbound::ERROR_BODY_LIMIT;
                let credit = http::body_within(res, "Fish Audio", Duration::from_secs(2), limit)
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v.get("credit").map(|c| c.to_string()));
                ProbeResult::ok(match credit {
                    Some(c) => format!("The key works; API credit: {}.", c.trim_matches('"')),
                    None => "The key works.".into(),
                })
            }
            Err(e) => ProbeResult::from_error(&e),
        }
    }
}
