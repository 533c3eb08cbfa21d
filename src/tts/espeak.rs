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
        // The voice is a program argument: a leading `-` would read as a flag, a `/` as a
        // voice file to load.
        super::usable_voice(TtsProvider::Espeak, voice)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(voice: &str) -> SynthRequest {
        SynthRequest {
            text: "hi".into(),
            voice: voice.into(),
            format: crate::shared::config::AudioFormat::Wav,
            sample_rate: 22_050,
        }
    }

    /// The program does not exist: reaching it would be `missing_binary`, so `misconfigured`
    /// shows the voice was refused before anything was run.
    #[tokio::test]
    async fn a_voice_that_is_a_path_or_a_flag_is_refused_before_running_anything() {
        let settings = TtsProviderSettings {
            binary: "/nonexistent/espeak-ng".into(),
            timeout_ms: 1_000,
            ..Default::default()
        };
        let engine = Espeak::new(&settings);
        for voice in ["/dev/stdin", "--stdout", "-w/tmp/out.wav", "../voices/x"] {
            let e = engine.synthesize(&request(voice)).await.unwrap_err();
            assert_eq!(e.code(), "misconfigured", "{voice}: {e}");
            assert!(e.to_string().contains("voice_id must be"), "{e}");
        }
        let configured = Espeak::new(&TtsProviderSettings {
            voice_id: "/dev/stdin".into(),
            ..settings.clone()
        });
        let e = configured.synthesize(&request("")).await.unwrap_err();
        assert_eq!(e.code(), "misconfigured", "{e}");
        // A good voice gets as far as the (missing) program.
        let e = engine.synthesize(&request("en-us")).await.unwrap_err();
        assert_eq!(e.code(), "missing_binary", "{e}");
    }
}
