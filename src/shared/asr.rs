//! Wire types of speech recognition: what `POST /api/asr` answers (docs/api.md).

use super::config::AsrProvider;
use serde::{Deserialize, Serialize};

/// A recording, transcribed. Silence is an empty `text`, not an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    pub ok: bool,
    pub text: String,
    /// The language spoken, as the engine reports it (ISO 639-1); the configured one when the
    /// engine does not say.
    pub language: String,
    /// The recording's length; `null` when the engine cannot tell (a remote server answering
    /// plain `json` for a compressed recording).
    pub duration_ms: Option<u64>,
    pub meta: TranscriptionMeta,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionMeta {
    pub provider: AsrProvider,
    pub timings: AsrTimings,
}

/// Where the time went, in milliseconds. A stage the engine does not report is `null`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AsrTimings {
    /// Reading the upload.
    pub receive_ms: f64,
    /// Decoding the container to 16 kHz samples (the local engine).
    pub decode_ms: Option<f64>,
    /// Recognition itself (the local engine), or the whole remote request.
    pub transcribe_ms: Option<f64>,
    /// From the request's arrival to the answer.
    pub total_ms: f64,
}
