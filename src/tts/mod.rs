//! [ssr] Speech: one [`TtsEngine`] per provider (Piper, Fish Audio, ElevenLabs, XTTS, eSpeak NG),
//! the fallback chain that tries them in the configured order, and the content-addressed audio
//! cache in front of them. [`TtsService`] is what the rest of the server calls.
//!
//! - `sanitize`: per-provider text cleaning (emotion tags, markdown, `<think>`, emoji).
//! - `chain`: the fallback loop and the cool-down of providers that failed on auth or quota.
//! - `cache`: `<sha256>.<ext>` files, atomic writes, single flight, LRU eviction.
//! - `wav`: the few WAV header facts the engines need (duration, fixing sizes, wrapping PCM).
//! - `voice_id`: what each provider accepts as a voice id, checked wherever one comes in.

mod cache;
mod chain;
mod elevenlabs;
mod espeak;
mod fish;
mod http;
mod piper;
mod process;
mod sanitize;
mod service;
pub(crate) mod voice_id;
pub mod wav;
mod xtts;

pub use cache::{is_temp_name as is_cache_temp_name, AudioCache};
pub use chain::{ChainError, SpeakOptions, Spoken};
pub(crate) use piper::remove_stale_output_dirs;
pub use sanitize::sanitize;
pub use service::TtsService;

use crate::shared::{
    config::{AudioFormat, TtsProvider},
    health::ProviderState,
    tts::Timings,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

/// What to say, already cleaned for the engine that receives it.
#[derive(Clone, Debug)]
pub struct SynthRequest {
    pub text: String,
    /// Voice or speaker id; empty means the provider's default.
    pub voice: String,
    /// Preferred format and rate; engines that cannot choose ignore them (and say what they made).
    pub format: AudioFormat,
    pub sample_rate: u32,
}

/// The kind of file an engine produces for a request, known before it runs (the cache file name
/// depends on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputKind {
    pub ext: &'static str,
    pub content_type: &'static str,
}

impl OutputKind {
    pub const WAV: OutputKind = OutputKind {
        ext: "wav",
        content_type: "audio/wav",
    };
    pub const MP3: OutputKind = OutputKind {
        ext: "mp3",
        content_type: "audio/mpeg",
    };
    pub const OPUS: OutputKind = OutputKind {
        ext: "opus",
        content_type: "audio/ogg",
    };

    /// The file an engine that can write every format produces for `format`.
    pub fn of(format: AudioFormat) -> OutputKind {
        match format {
            AudioFormat::Mp3 => OutputKind::MP3,
            AudioFormat::Wav => OutputKind::WAV,
            AudioFormat::Opus => OutputKind::OPUS,
        }
    }
}

/// Audio as an engine produced it.
#[derive(Clone, Debug)]
pub struct Audio {
    pub bytes: Bytes,
    pub kind: OutputKind,
    pub sample_rate: Option<u32>,
    pub duration_ms: Option<u64>,
    pub timings: Option<Timings>,
}

impl Audio {
    /// WAV bytes, with rate and duration read from the header.
    pub fn wav(bytes: Bytes) -> Result<Audio, TtsError> {
        let info = wav::parse(&bytes)
            .ok_or_else(|| TtsError::BadResponse("the audio is not a readable WAV file".into()))?;
        Ok(Audio {
            kind: OutputKind::WAV,
            sample_rate: Some(info.sample_rate),
            duration_ms: Some(info.duration_ms()),
            timings: None,
            bytes,
        })
    }
}

/// What a health probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub state: ProviderState,
    pub detail: String,
}

impl ProbeResult {
    pub fn ok(detail: impl Into<String>) -> Self {
        Self {
            state: ProviderState::Ok,
            detail: detail.into(),
        }
    }
    pub fn from_error(e: &TtsError) -> Self {
        Self {
            state: e.health_state(),
            detail: e.to_string(),
        }
    }
}

/// One speech provider. Engines are cheap to build from the current settings; anything expensive
/// (a warm Piper process, the HTTP connection pool) lives in the shared [`EngineContext`].
#[async_trait]
pub trait TtsEngine: Send + Sync {
    fn provider(&self) -> TtsProvider;
    /// Everything about this engine's settings that changes the audio (endpoint, model, voice file,
    /// language, the format actually asked for…), for the cache key. Never the API key.
    fn identity(&self, req: &SynthRequest) -> String;
    /// The file kind a request will produce.
    fn output(&self, req: &SynthRequest) -> OutputKind;
    async fn synthesize(&self, req: &SynthRequest) -> Result<Audio, TtsError>;
    /// Whether the engine keeps its own time limit (`timeout_ms`) for a request, so the chain
    /// must not put one around the whole call (Piper counts from when its worker takes it).
    fn times_itself(&self) -> bool {
        false
    }
    /// A cheap check that costs nothing: no paid synthesis.
    async fn probe(&self) -> ProbeResult;
}

/// Why a provider could not speak. Every message says what to do, and none contains a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtsError {
    #[error("the API key was refused ({0}); check the key in the Setup tab")]
    Auth(String),
    #[error("out of quota or rate limited ({message}); add credit or wait, the next voice in the chain speaks meanwhile")]
    Quota { message: String, rate_limited: bool },
    #[error("the request was refused ({0}); check the voice, model and language settings")]
    BadRequest(String),
    #[error("the server failed ({0}); check the server's own log, or try again later")]
    Server(String),
    #[error("no answer within {0} ms; the server may be overloaded, or raise timeout_ms in its settings")]
    Timeout(u64),
    #[error("cannot reach {0}; check that the server runs and the endpoint is right")]
    Unreachable(String),
    #[error("{0}")]
    MissingBinary(String),
    #[error("{0}")]
    MissingVoice(String),
    #[error("the answer was not usable audio ({0})")]
    BadResponse(String),
    #[error("{0}")]
    Misconfigured(String),
    /// The audio was made but could not be saved: the disk is full. No other voice would do better.
    #[error("{0}")]
    DiskFull(String),
    #[error(
        "too busy ({0}); the next voice in the chain speaks meanwhile, or try again in a moment"
    )]
    Busy(String),
}

impl TtsError {
    /// A stable snake_case class for the wire and the logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Auth(_) => "auth",
            Self::Quota { .. } => "quota",
            Self::BadRequest(_) => "bad_request",
            Self::Server(_) => "server",
            Self::Timeout(_) => "timeout",
            Self::Unreachable(_) => "unreachable",
            Self::MissingBinary(_) => "missing_binary",
            Self::MissingVoice(_) => "missing_voice",
            Self::BadResponse(_) => "bad_response",
            Self::Misconfigured(_) => "misconfigured",
            Self::DiskFull(_) => crate::disk::FULL,
            Self::Busy(_) => "busy",
        }
    }

    /// How long the chain leaves this provider out after this error: only failures that the next
    /// sentence would hit again at once (a refused key, an empty account) count.
    pub fn cooldown(&self) -> Option<Duration> {
        match self {
            Self::Auth(_) => Some(Duration::from_secs(600)),
            Self::Quota {
                rate_limited: true, ..
            } => Some(Duration::from_secs(30)),
            Self::Quota { .. } => Some(Duration::from_secs(300)),
            _ => None,
        }
    }

    pub fn health_state(&self) -> ProviderState {
        match self {
            Self::Auth(_) => ProviderState::Auth,
            Self::Quota { .. } => ProviderState::Quota,
            Self::Unreachable(_) | Self::Timeout(_) => ProviderState::Unreachable,
            Self::MissingBinary(_) | Self::MissingVoice(_) | Self::Misconfigured(_) => {
                ProviderState::Misconfigured
            }
            Self::BadRequest(_) | Self::Server(_) | Self::BadResponse(_) | Self::DiskFull(_) => {
                ProviderState::Error
            }
            // Working, only full: not a fault of the provider.
            Self::Busy(_) => ProviderState::Ok,
        }
    }
}

/// What the engines share: the HTTP connection pool, where tools live, the warm Piper workers.
pub struct EngineContext {
    pub http: reqwest::Client,
    pub tools: std::path::PathBuf,
    pub piper: piper::PiperPool,
}

/// An engine's last look at the voice id it is about to use. Every way in has checked it
/// already; this keeps a voice id that slipped past them (a character saved for another
/// provider, say) from reaching a program argument or a URL.
fn usable_voice(provider: TtsProvider, id: &str) -> Result<(), TtsError> {
    voice_id::check(provider, id).map_err(|e| {
        TtsError::Misconfigured(format!(
            "the voice was not used: voice_id {e}; correct it in the Setup tab or the request"
        ))
    })
}

/// The engine for `provider` with its current settings.
pub(crate) fn engine_for(
    provider: TtsProvider,
    settings: &crate::shared::config::TtsProviderSettings,
    ctx: &std::sync::Arc<EngineContext>,
) -> Box<dyn TtsEngine> {
    match provider {
        TtsProvider::PiperLocal => Box::new(piper::Piper::new(settings, ctx.clone())),
        TtsProvider::FishAudio => Box::new(fish::Fish::new(settings, ctx.http.clone())),
        TtsProvider::Elevenlabs => {
            Box::new(elevenlabs::ElevenLabs::new(settings, ctx.http.clone()))
        }
        TtsProvider::XttsServer => Box::new(xtts::Xtts::new(settings, ctx.http.clone())),
        TtsProvider::Espeak => Box::new(espeak::Espeak::new(settings)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::config::{AudioFormat, TtsProviderSettings, XttsFlavor};
    use std::sync::Arc;

    /// Every engine checks the voice once more right before it would use it. Nothing can answer
    /// here (a closed port, a missing program), so an engine that went ahead would fail with
    /// `unreachable` or `missing_binary`; `misconfigured` shows it stopped first.
    #[tokio::test]
    async fn each_engine_refuses_a_bad_voice_before_using_it() {
        let ctx = Arc::new(EngineContext {
            http: reqwest::Client::new(),
            tools: std::path::PathBuf::from("/nonexistent/tools"),
            piper: Default::default(),
        });
        let settings = TtsProviderSettings {
            endpoint: "http://127.0.0.1:9".into(),
            api_key: crate::shared::config::Secret::new("key"),
            binary: "/nonexistent/program".into(),
            flavor: Some(XttsFlavor::XttsApiServer),
            language: "en".into(),
            timeout_ms: 2_000,
            ..Default::default()
        };
        for (provider, bad, good) in [
            (TtsProvider::Espeak, "/dev/stdin", "en-us"),
            (TtsProvider::Elevenlabs, "../user", "abc123"),
            (TtsProvider::FishAudio, "a/b", "ref-1"),
            (TtsProvider::XttsServer, "../../x.wav", "female"),
            (TtsProvider::PiperLocal, "0\n1", "0"),
        ] {
            let engine = engine_for(provider, &settings, &ctx);
            let say = |voice: &str| SynthRequest {
                text: "hi".into(),
                voice: voice.into(),
                format: AudioFormat::Wav,
                sample_rate: 22_050,
            };
            let refused = engine.synthesize(&say(bad)).await.unwrap_err();
            assert_eq!(refused.code(), "misconfigured", "{provider:?}: {refused}");
            assert!(
                refused.to_string().contains("voice_id must be"),
                "{refused}"
            );
            let tried = engine.synthesize(&say(good)).await.unwrap_err();
            assert_ne!(tried.code(), "misconfigured", "{provider:?}: {tried}");
            // A configured voice is checked the same way.
            let configured = TtsProviderSettings {
                voice_id: bad.into(),
                ..settings.clone()
            };
            let e = engine_for(provider, &configured, &ctx)
                .synthesize(&say(""))
                .await
                .unwrap_err();
            assert_eq!(e.code(), "misconfigured", "{provider:?}: {e}");
        }
    }
}
