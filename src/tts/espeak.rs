//! eSpeak NG: <https://github.com/espeak-ng/espeak-ng/blob/master/src/espeak-ng.1.ronn>.
//!
//! `espeak-ng -v <voice> --stdout`, text on stdin, WAV on stdout. The header is written before
//! the length is known, so its sizes are fixed here. Robotic but instant, and always there: the
//! last resort of the chain. Probe: `espeak-ng --version`.

use super::{process, wav, Audio, OutputKind, ProbeResult, SynthRequest, TtsEngine, TtsError};
use crate::shared::config::{TtsProvider, TtsProviderSettings};
use async_trait::async_trait;
use std::{ffi::OsStr, path::PathBuf, time::Duration};

pub struct Espeak {
    binary: PathBuf,
    voice: String,
    timeout: Duration,
}

impl Espeak {
    pub fn new(s: &TtsProviderSettings) -> Self {
        let binary = match s.binary.trim() {
            "" => "espeak-ng",
            own => own,
        };
        Self {
            binary: PathBuf::from(binary),
            voice: s.voice_id.trim().to_string(),
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
        }
    }
}

#[async_trait]
impl TtsEngine for Espeak {
    fn provider(&self) -> TtsProvider {
        TtsProvider::Espeak
    }

    fn identity(&self, _req: &SynthRequest) -> String {
        self.binary.display().to_string()
    }

    fn output(&self, _req: &SynthRequest) -> OutputKind {
        OutputKind::WAV
    }

    async fn synthesize(&self, req: &SynthRequest) -> Result<Audio, TtsError> {
        let voice = match (req.voice.as_str(), self.voice.as_str()) {
            ("", "") => "en-us",
            ("", own) => own,
            (asked, _) => asked,
        };
        // A voice name is a short identifier; anything else could be read as a flag.
        if voice.starts_with('-')
            || !voice
                .chars()
                .all(|c| c.is_alphanumeric() || "-_+/".contains(c))
        {
            return Err(TtsError::Misconfigured(format!(
                "{voice:?} is not an eSpeak voice name (see `espeak-ng --voices`)"
            )));
        }
        let args = [OsStr::new("-v"), OsStr::new(voice), OsStr::new("--stdout")];
        let out = process::run(&self.binary, &args, &req.text, self.timeout, "eSpeak NG").await?;
        let mut bytes = out.stdout;
        if wav::fix_sizes(&mut bytes).is_none() {
            return Err(TtsError::BadResponse(
                "eSpeak NG did not write a WAV file".into(),
            ));
        }
        Audio::wav(bytes.into())
    }

    async fn probe(&self) -> ProbeResult {
        let args = [OsStr::new("--version")];
        match process::run(&self.binary, &args, "", Duration::from_secs(2), "eSpeak NG").await {
            Ok(out) => ProbeResult::ok(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("eSpeak NG answers.")
                    .trim()
                    .to_string(),
            ),
            Err(e) => ProbeResult::from_error(&e),
        }
    }
}
