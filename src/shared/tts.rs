//! Wire types of speech: what `POST /api/tts`, the Setup tab's test button and (later) the chat
//! stream say about a piece of synthesised audio.

use serde::{Deserialize, Serialize};

/// A provider that was tried (or skipped) before the one that spoke, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FellBack {
    pub provider: String,
    /// The error class (`auth`, `quota`, `timeout`, …).
    pub code: String,
    /// What went wrong and what to do, in plain words. Never contains a key.
    pub error: String,
}

/// When each character is spoken, where the provider says so (ElevenLabs `with-timestamps`).
/// Milliseconds from the start of the audio; for lip sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub chars: Vec<String>,
    pub start_ms: Vec<u32>,
    pub end_ms: Vec<u32>,
}

/// Everything known about one spoken text, besides its URL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeechMeta {
    pub provider: String,
    /// Served from the audio cache: no provider was asked.
    pub cached: bool,
    pub content_type: String,
    pub duration_ms: Option<u64>,
    pub sample_rate: Option<u32>,
    pub fell_back_from: Vec<FellBack>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

/// The answer to "say this": where the audio is and what it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Speech {
    /// `/files/audio/<content hash>.<ext>`
    pub url: String,
    pub meta: SpeechMeta,
    /// Time the server spent answering, cache look-up included.
    pub latency_ms: u64,
}
