//! [ssr] Speech recognition: one [`AsrEngine`] per provider (offline Whisper, any server speaking
//! OpenAI's `/audio/transcriptions`), chosen by `asr.provider`, and the [`AsrService`] the routes
//! call. Shaped like `llm` and `tts`: engines are cheap to build from the current settings, and
//! what is expensive (the warm Whisper worker, the HTTP client) lives in the service.
//!
//! - `whisper`: faster-whisper in a warm worker (`whisper_worker.py`), through `warm_worker`.
//! - `openai`: the OpenAI-compatible adapter (OpenAI, Groq, whisper.cpp's server, LocalAI,
//!   speaches).
//! - `media`: which recordings are accepted, by declared type and by their first bytes.

mod media;
mod openai;
mod service;
mod whisper;

pub use media::{AudioKind, MediaError};
pub use service::AsrService;

use crate::shared::{config::AsrProvider, health::ProviderState};
use async_trait::async_trait;
use bytes::Bytes;

/// The largest recording accepted: OpenAI's own cap on an upload, far above a spoken turn.
pub const MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;

/// A recording to transcribe.
#[derive(Clone, Debug)]
pub struct AsrRequest {
    pub audio: Bytes,
    pub kind: AudioKind,
    /// ISO 639-1, or empty to let the engine tell.
    pub language: String,
    pub max_seconds: u32,
}

/// What an engine heard.
#[derive(Clone, Debug, PartialEq)]
pub struct Heard {
    pub text: String,
    /// Empty when the engine does not say.
    pub language: String,
    pub duration_ms: Option<u64>,
    pub decode_ms: Option<f64>,
    pub transcribe_ms: Option<f64>,
}

/// What a health probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsrProbe {
    pub state: ProviderState,
    pub detail: String,
}

/// One speech recogniser.
#[async_trait]
pub trait AsrEngine: Send + Sync {
    fn provider(&self) -> AsrProvider;
    async fn transcribe(&self, req: &AsrRequest) -> Result<Heard, AsrError>;
    /// A check that costs nothing: no paid transcription.
    async fn probe(&self) -> AsrProbe;
    /// Gets ready for the first request (loads a local model); nothing for a remote server.
    fn warm(&self) {}
}

/// Why a recording was not transcribed. Every message says what to do, and none holds a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsrError {
    #[error(
        "Speech recognition is off (asr.provider is \"disabled\"); choose a recogniser in Setup."
    )]
    Disabled,
    #[error("The recording could not be read as audio: {0}.")]
    BadAudio(String),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("The recording is longer than {max_seconds} s (asr.max_seconds); speak in shorter turns or raise the limit.")]
    TooLong { max_seconds: u32 },
    #[error("{0}")]
    NotInstalled(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("The speech recognition server refused the API key ({0}); check the key in Setup.")]
    Auth(String),
    #[error("The speech recognition server is rate limiting or out of quota ({0}); wait a moment and try again.")]
    RateLimited(String),
    #[error("Speech recognition gave no answer within {0} ms; try again, or raise the timeout in Setup.")]
    Timeout(u64),
    #[error("The speech recognition server refused the request ({0}); check the model and language in Setup.")]
    Rejected(String),
    #[error("Speech recognition failed ({0}); try again, or see the server log.")]
    Engine(String),
    #[error("The speech recognition server sent something that is not a transcription ({0}); check that the endpoint is an OpenAI-compatible /v1 address.")]
    BadResponse(String),
    #[error("{0}")]
    Misconfigured(String),
    #[error("Speech recognition is busy ({0}); try again in a moment.")]
    Busy(String),
}

impl AsrError {
    /// The stable `code` of the API error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Disabled => "asr_disabled",
            Self::BadAudio(_) => "asr_bad_audio",
            Self::UnsupportedType(_) => "asr_unsupported_type",
            Self::TooLong { .. } => "asr_too_long",
            Self::NotInstalled(_) => "asr_not_installed",
            Self::Unavailable(_) => "asr_unavailable",
            Self::Auth(_) => "asr_auth",
            Self::RateLimited(_) => "asr_rate_limited",
            Self::Timeout(_) => "asr_timeout",
            Self::Rejected(_) => "asr_rejected",
            Self::Engine(_) => "asr_error",
            Self::BadResponse(_) => "asr_bad_response",
            Self::Misconfigured(_) => "asr_misconfigured",
            Self::Busy(_) => "asr_busy",
        }
    }

    /// The HTTP status of a REST answer: the recording's own faults are 4xx, a full queue is
    /// 503, and every failure of the engine is 502 (the code says which).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Disabled => 409,
            Self::BadAudio(_) => 400,
            Self::UnsupportedType(_) => 415,
            Self::TooLong { .. } => 413,
            Self::Busy(_) => 503,
            _ => 502,
        }
    }

    /// The health state this failure means.
    pub fn state(&self) -> ProviderState {
        match self {
            Self::Unavailable(_) | Self::Timeout(_) => ProviderState::Unreachable,
            Self::Auth(_) => ProviderState::Auth,
            Self::RateLimited(_) => ProviderState::Quota,
            Self::Disabled | Self::NotInstalled(_) | Self::Misconfigured(_) => {
                ProviderState::Misconfigured
            }
            _ => ProviderState::Error,
        }
    }
}

impl AsrProbe {
    pub fn ok(detail: impl Into<String>) -> Self {
        Self {
            state: ProviderState::Ok,
            detail: detail.into(),
        }
    }

    pub fn from_error(e: &AsrError) -> Self {
        Self {
            state: e.state(),
            detail: e.to_string(),
        }
    }
}
