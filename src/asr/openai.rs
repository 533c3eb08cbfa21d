//! OpenAI's transcription protocol, for every server that speaks it: OpenAI, Groq, whisper.cpp's
//! server, LocalAI, speaches. One adapter, parameterised by base URL, key and model.
//!
//! Reference: <https://platform.openai.com/docs/api-reference/audio/createTranscription>.
//! `POST {base}/audio/transcriptions`, `multipart/form-data` with `file` (the recording, named
//! with the extension servers read its format from), `model`, `language` (ISO 639-1, left out
//! for "tell"), `response_format=json`; `Authorization: Bearer <key>` when a key is set. The
//! answer is `{"text": "…"}`, newer ones with `"usage": {"type": "duration", "seconds": N}`;
//! errors are `{"error": {"message", "type", "param", "code"}}`.

use super::{AsrEngine, AsrError, AsrProbe, AsrRequest, AudioKind, Heard};
use crate::{
    outbound::{error_detail, error_text, read_limited, BodyError},
    shared::config::{AsrProvider, AsrServerSettings, Secret},
};
use async_trait::async_trait;
use std::time::{Duration, Instant};

/// A transcription is a few KB of JSON; anything past this is not one.
const MAX_ANSWER: usize = 1024 * 1024;

pub struct OpenaiCompatible {
    endpoint: String,
    key: Secret,
    model: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl OpenaiCompatible {
    pub fn new(s: &AsrServerSettings, http: reqwest::Client) -> Self {
        Self {
            endpoint: s.endpoint.trim().trim_end_matches('/').to_string(),
            key: s.api_key.clone(),
            model: s.model.trim().to_string(),
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
            http,
        }
    }

    fn need_endpoint(&self) -> Result<(), AsrError> {
        if self.endpoint.is_empty() {
            return Err(AsrError::Misconfigured(
                "The speech recognition server has no address: set its endpoint (such as https://api.openai.com/v1) in Setup.".into(),
            ));
        }
        Ok(())
    }

    fn transport(&self, e: reqwest::Error) -> AsrError {
        if e.is_timeout() {
            AsrError::Timeout(self.timeout.as_millis() as u64)
        } else if e.is_connect() || e.is_request() {
            AsrError::Unavailable(format!(
                "The speech recognition server at {} does not answer; start it, or check the endpoint in Setup.",
                self.endpoint
            ))
        } else {
            AsrError::BadResponse("the connection broke off".into())
        }
    }

    async fn fail(&self, res: reqwest::Response) -> AsrError {
        let status = res.status().as_u16();
        let body = error_text(res, &self.key).await;
        let detail = format!("HTTP {status}: {}", error_detail(body.as_bytes()));
        match status {
            300..=399 => AsrError::Misconfigured(format!(
                "HTTP {status}: the endpoint redirects to another server, and requests carrying the key are not followed there; set the endpoint to the address it redirects to if you trust it"
            )),
            401 | 403 => AsrError::Auth(detail),
            402 | 429 => AsrError::RateLimited(detail),
            400..=499 => AsrError::Rejected(detail),
            _ => AsrError::Engine(detail),
        }
    }
}

#[async_trait]
impl AsrEngine for OpenaiCompatible {
    fn provider(&self) -> AsrProvider {
        AsrProvider::OpenaiCompatible
    }

    async fn transcribe(&self, req: &AsrRequest) -> Result<Heard, AsrError> {
        self.need_endpoint()?;
        if req.kind == AudioKind::Other {
            // The server reads the format from the file name: a recording of no known kind
            // would only come back as the server's own complaint.
            return Err(AsrError::BadAudio(
                "not a WAV, WebM, OGG, MP3, FLAC or MP4 recording".into(),
            ));
        }
        // A WAV says how long it is: one over the limit is refused without sending it.
        let wav_ms = (req.kind == AudioKind::Wav)
            .then(|| crate::tts::wav::parse(&req.audio).map(|w| w.duration_ms()))
            .flatten();
        if wav_ms.is_some_and(|ms| ms > u64::from(req.max_seconds) * 1000) {
            return Err(AsrError::TooLong {
                max_seconds: req.max_seconds,
            });
        }
        let file = reqwest::multipart::Part::stream(req.audio.clone())
            .file_name(format!("speech.{}", req.kind.ext()))
            .mime_str(req.kind.mime())
            .map_err(|e| AsrError::Engine(format!("cannot build the request: {e}")))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", "json");
        if !req.language.is_empty() {
            form = form.text("language", req.language.clone());
        }
        let mut request = self
            .http
            .post(format!("{}/audio/transcriptions", self.endpoint))
            .multipart(form)
            .timeout(self.timeout);
        if !self.key.is_empty() {
            request = request.bearer_auth(self.key.expose());
        }
        let started = Instant::now();
        let res = request.send().await.map_err(|e| self.transport(e))?;
        if !res.status().is_success() {
            return Err(self.fail(res).await);
        }
        let body = read_limited(res, MAX_ANSWER).await.map_err(|e| match e {
            BodyError::Transport(e) => self.transport(e),
            BodyError::TooLarge(_) => AsrError::BadResponse("the answer is far too large".into()),
        })?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| AsrError::BadResponse(format!("not JSON: {}", error_detail(&body))))?;
        let text = answer["text"]
            .as_str()
            .ok_or_else(|| AsrError::BadResponse("no `text` in the answer".into()))?;
        let said_ms = answer["usage"]["seconds"]
            .as_f64()
            .or_else(|| answer["duration"].as_f64())
            .map(|s| (s * 1000.0).round() as u64);
        Ok(Heard {
            text: text.trim().to_string(),
            language: answer["language"].as_str().unwrap_or_default().to_string(),
            duration_ms: wav_ms.or(said_ms),
            decode_ms: None,
            transcribe_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        })
    }

    /// Only the settings are checked: a request would be a paid transcription, and not every
    /// compatible server lists models.
    async fn probe(&self) -> AsrProbe {
        match self.need_endpoint() {
            Ok(()) => AsrProbe::ok(format!(
                "{} with model {} (checked on first use).",
                self.endpoint, self.model
            )),
            Err(e) => AsrProbe::from_error(&e),
        }
    }
}
