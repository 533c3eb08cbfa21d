//! XTTS servers, two protocols chosen by `flavor`:
//! - `xtts_api_server`: <https://github.com/daswer123/xtts-api-server> (`xtts_api_server/server.py`):
//!   `POST /tts_to_audio/` (with the trailing slash) and a JSON body `{text, speaker_wav, language}`
//!   → `audio/wav`. In `STREAM_MODE` it plays on the server's own speakers and answers one second
//!   of silence, which is refused here. Probe: `GET /speakers_list`.
//! - `coqui_server`: <https://github.com/coqui-ai/TTS/blob/dev/TTS/server/server.py>: `/api/tts`
//!   reads **query or header** parameters (`text`, `speaker_id`, `language_id`) and ignores a JSON
//!   body → `audio/wav`. Query parameters are used: headers cannot carry non-ASCII text. Probe:
//!   `GET /`.

use super::{http, wav, Audio, OutputKind, ProbeResult, SynthRequest, TtsEngine, TtsError};
use crate::shared::config::{Secret, TtsProvider, TtsProviderSettings, XttsFlavor};
use async_trait::async_trait;
use std::time::Duration;

pub struct Xtts {
    endpoint: String,
    flavor: XttsFlavor,
    voice: String,
    language: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl Xtts {
    pub fn new(s: &TtsProviderSettings, http: reqwest::Client) -> Self {
        Self {
            endpoint: http::base(&s.endpoint),
            flavor: s.flavor.unwrap_or(XttsFlavor::XttsApiServer),
            voice: s.voice_id.trim().to_string(),
            language: s.language.trim().to_string(),
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
            http,
        }
    }
}

#[async_trait]
impl TtsEngine for Xtts {
    fn provider(&self) -> TtsProvider {
        TtsProvider::XttsServer
    }

    fn identity(&self, _req: &SynthRequest) -> String {
        format!("{}|{:?}|{}", self.endpoint, self.flavor, self.language)
    }

    fn output(&self, _req: &SynthRequest) -> OutputKind {
        OutputKind::WAV
    }

    async fn synthesize(&self, req: &SynthRequest) -> Result<Audio, TtsError> {
        let voice = if req.voice.is_empty() {
            &self.voice
        } else {
            &req.voice
        };
        // xtts-api-server looks the speaker up as a file name.
        super::usable_voice(TtsProvider::XttsServer, voice)?;
        let call = match self.flavor {
            XttsFlavor::XttsApiServer => {
                let language = if self.language.is_empty() {
                    "en"
                } else {
                    &self.language
                };
                self.http
                    .post(format!("{}/tts_to_audio/", self.endpoint))
                    .json(&serde_json::json!({
                        "text": req.text,
                        "speaker_wav": voice,
                        "language": language,
                    }))
            }
            XttsFlavor::CoquiServer => {
                let mut query = vec![("text", req.text.as_str())];
                if !voice.is_empty() {
                    query.push(("speaker_id", voice));
                }
                if !self.language.is_empty() {
                    query.push(("language_id", &self.language));
                }
                self.http
                    .post(format!("{}/api/tts", self.endpoint))
                    .query(&query)
            }
        };
        let res = http::send(call, "the XTTS server", self.timeout).await?;
        if !res.status().is_success() {
            return Err(http::fail(res, &Secret::default()).await);
        }
        let bytes = http::body(res, "the XTTS server", self.timeout).await?;
        let audio = Audio::wav(bytes)?;
        if self.flavor == XttsFlavor::XttsApiServer
            && audio
                .duration_ms
                .is_some_and(|ms| (900..=1100).contains(&ms))
            && wav::is_silent(&audio.bytes)
        {
            return Err(TtsError::Misconfigured(
                "xtts-api-server answered one second of silence: it runs in stream mode and plays on its own speakers; restart it without --streaming-mode".into(),
            ));
        }
        Ok(audio)
    }

    async fn probe(&self) -> ProbeResult {
        let path = match self.flavor {
            XttsFlavor::XttsApiServer => "/speakers_list",
            XttsFlavor::CoquiServer => "/",
        };
        let call = self.http.get(format!("{}{path}", self.endpoint));
        match http::send(call, &self.endpoint, Duration::from_secs(2)).await {
            Ok(res) => match http::probe_status(res, &Secret::default()).await {
                Ok(_) => ProbeResult::ok(format!("The server at {} answers.", self.endpoint)),
                Err(e) => ProbeResult::from_error(&e),
            },
            Err(e) => ProbeResult::from_error(&e),
        }
    }
}
