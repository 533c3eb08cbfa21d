//! The chat wire types: the request body of `/api/chat` and `/api/chat/stream`, and the named
//! events of the stream (docs/api.md). The browser decodes the same types it is sent.

use serde::{Deserialize, Serialize};

/// `POST /api/chat[/stream]?session_id=N` body.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChatInput {
    #[serde(default)]
    pub text: String,
    /// Speak the reply (the voice pipeline); ignored when no voice is available.
    #[serde(default)]
    pub speak: bool,
    #[serde(default)]
    pub character_id: Option<i64>,
    /// Typed, or spoken and transcribed (`/api/asr`); stored with the message.
    #[serde(default)]
    pub input: InputKind,
    /// Voice input only: milliseconds between the end of the utterance and this request, as
    /// the browser measured them. Capped at [`MAX_LEAD_MS`]; ignored for typed input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_end_ms_ago: Option<u32>,
    /// Voice input only: milliseconds between the transcript's arrival and this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asr_done_ms_ago: Option<u32>,
}

/// The longest lead before a request that a voice turn's trace records: a minute covers the
/// slowest transcription; more is a clock or a client gone wrong.
pub const MAX_LEAD_MS: u32 = 60_000;

/// How a message was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    #[default]
    Text,
    Voice,
}

impl InputKind {
    /// The name on the wire and in the database.
    pub fn name(self) -> &'static str {
        super::wire_name::of(&self)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        super::wire_name::parse(name)
    }
}

impl ChatInput {
    /// The voice stages before the request, as trace offsets (negative: before
    /// `input_received`): `(speech_end, asr_done)`. Both `None` for typed input. Each is capped,
    /// and the transcript never comes before the end of speech.
    pub fn lead(&self) -> (Option<i64>, Option<i64>) {
        if self.input != InputKind::Voice {
            return (None, None);
        }
        let speech = self.speech_end_ms_ago.map(|ms| ms.min(MAX_LEAD_MS));
        let asr = self
            .asr_done_ms_ago
            .map(|ms| ms.min(speech.unwrap_or(MAX_LEAD_MS)));
        (
            speech.map(|ms| -i64::from(ms)),
            asr.map(|ms| -i64::from(ms)),
        )
    }
}

/// Milliseconds since the message arrived, per stage of a turn. Stages that did not happen (no
/// voice, a failed reply) stay empty. The voice input's stages came before the request, so
/// their offsets are negative.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Voice input: when the person stopped speaking, before the request (a negative offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_end: Option<i64>,
    /// Voice input: when the transcript reached the browser (a negative offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asr_done: Option<i64>,
    pub input_received: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_request_started: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_segment: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_request_started: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_ready: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_audio_sent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_started: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_complete: Option<u64>,
    /// Not a time: the prompt's size in tokens, when the model said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    /// Not a time: how many of the prompt's tokens came from the model's cache instead of being
    /// read again, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cached: Option<u32>,
}

/// `event: accepted`, always first: the message is stored under `message_id`, so it survives
/// whatever happens to the reply (a crash, a restart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptedEvent {
    pub message_id: i64,
    pub session_id: i64,
}

/// `event: status`: the built-in model is loading before it can answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub state: String,
    /// 0.0–1.0
    pub progress: f32,
}

/// `event: token`: visible reply text (no reasoning, no emotion tags).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenEvent {
    pub text: String,
}

/// `event: sentence`: a complete segment, sent to the voice as soon as it is complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentenceEvent {
    pub index: u32,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emotion: Option<String>,
}

/// `event: audio`: the voice of sentence `index`. Events may arrive out of order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioEvent {
    pub index: u32,
    pub url: String,
    pub provider: String,
    pub duration_ms: u64,
    /// When each character is spoken, where the voice says so (ElevenLabs): the mouth then
    /// follows the text instead of the sound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<crate::shared::tts::Timings>,
}

/// `event: audio_error`: sentence `index` has no voice (every provider in the chain failed or
/// timed out). The browser skips it so that later sentences still play.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioErrorEvent {
    pub index: u32,
    pub code: String,
    pub message: String,
}

/// `event: done`: the reply is complete and stored. When the reply is spoken, `done` comes after
/// the last `audio`/`audio_error` event, and `timings` holds the voice stages too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoneEvent {
    pub message_id: i64,
    pub session_id: i64,
    pub reply: String,
    pub emotion: Option<String>,
    pub timings: Timings,
}

/// `event: error`: the reply failed. What arrived before is stored as a partial message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub code: String,
    pub message: String,
    /// The stored partial reply, when some text had arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
}

/// One event of the stream, by its SSE name.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatStreamEvent {
    Accepted(AcceptedEvent),
    Status(StatusEvent),
    Token(TokenEvent),
    Sentence(SentenceEvent),
    Audio(AudioEvent),
    AudioError(AudioErrorEvent),
    Done(DoneEvent),
    Error(ErrorEvent),
}

impl ChatStreamEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Accepted(_) => "accepted",
            Self::Status(_) => "status",
            Self::Token(_) => "token",
            Self::Sentence(_) => "sentence",
            Self::Audio(_) => "audio",
            Self::AudioError(_) => "audio_error",
            Self::Done(_) => "done",
            Self::Error(_) => "error",
        }
    }

    /// The event's `data:` JSON.
    pub fn data(&self) -> String {
        let json = match self {
            Self::Accepted(e) => serde_json::to_string(e),
            Self::Status(e) => serde_json::to_string(e),
            Self::Token(e) => serde_json::to_string(e),
            Self::Sentence(e) => serde_json::to_string(e),
            Self::Audio(e) => serde_json::to_string(e),
            Self::AudioError(e) => serde_json::to_string(e),
            Self::Done(e) => serde_json::to_string(e),
            Self::Error(e) => serde_json::to_string(e),
        };
        // These types hold only strings and numbers; serialising them cannot fail.
        json.unwrap_or_else(|_| "{}".into())
    }

    /// Decodes a received event (the browser's side). Unknown names give `None`.
    pub fn decode(name: &str, data: &str) -> Option<Result<Self, serde_json::Error>> {
        Some(match name {
            "accepted" => serde_json::from_str(data).map(Self::Accepted),
            "status" => serde_json::from_str(data).map(Self::Status),
            "token" => serde_json::from_str(data).map(Self::Token),
            "sentence" => serde_json::from_str(data).map(Self::Sentence),
            "audio" => serde_json::from_str(data).map(Self::Audio),
            "audio_error" => serde_json::from_str(data).map(Self::AudioError),
            "done" => serde_json::from_str(data).map(Self::Done),
            "error" => serde_json::from_str(data).map(Self::Error),
            _ => return None,
        })
    }
}

/// `PUT /api/messages/{id}/timings`: what only the browser knows, in milliseconds since it sent
/// the message (which stands for `input_received`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlaybackReport {
    pub playback_started: u64,
}

/// One stage's spread over recent turns (`GET /api/latency`), in milliseconds since input.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    /// A `Timings` field name, e.g. `first_token`.
    pub stage: String,
    /// Turns that reached this stage.
    pub count: u32,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

/// `GET /api/latency?limit=50`: per-stage P50/P95 over the last `turns` assistant replies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    pub turns: u32,
    /// In pipeline order: every `Timings` stage after `input_received`.
    pub stages: Vec<StageStats>,
    /// The headline: time to first audio (`playback_started` when the browser reported it, else
    /// `first_audio_sent`).
    pub first_audio: StageStats,
    /// The newest traces themselves (at most [`RECENT_TRACES`]), newest first, with the prompt's
    /// tokens read and taken from the model's cache.
    #[serde(default)]
    pub recent: Vec<Timings>,
    /// Voice turns only: from the end of speech (`speech_end`) to the first audio, heard or sent.
    #[serde(default)]
    pub speech_to_first_audio: StageStats,
}

/// How many single turns the latency report lists.
pub const RECENT_TRACES: usize = 10;

/// Splits a `text/event-stream` body into `(event, data)` pairs as bytes arrive. The browser uses
/// it on its own server's stream, whose events are always `event:` + one `data:` line.
#[derive(Default)]
pub struct SseSplitter {
    buffer: String,
}

impl SseSplitter {
    pub fn push(&mut self, chunk: &str) -> Vec<(String, String)> {
        self.buffer.push_str(&chunk.replace("\r\n", "\n"));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                }
            }
            if !data.is_empty() {
                events.push((name, data.join("\n")));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voice_lead_is_capped_ordered_and_only_for_voice() {
        let voice = |speech, asr| ChatInput {
            input: InputKind::Voice,
            speech_end_ms_ago: speech,
            asr_done_ms_ago: asr,
            ..ChatInput::default()
        };
        assert_eq!(voice(Some(800), Some(30)).lead(), (Some(-800), Some(-30)));
        assert_eq!(
            voice(Some(u32::MAX), None).lead(),
            (Some(-i64::from(MAX_LEAD_MS)), None)
        );
        // The transcript cannot arrive before the person stopped speaking.
        assert_eq!(voice(Some(100), Some(500)).lead(), (Some(-100), Some(-100)));
        let typed = ChatInput {
            speech_end_ms_ago: Some(800),
            ..ChatInput::default()
        };
        assert_eq!(typed.lead(), (None, None));
        let parsed: ChatInput =
            serde_json::from_str(r#"{"text":"hi","input":"voice","speech_end_ms_ago":5}"#).unwrap();
        assert_eq!(parsed.input, InputKind::Voice);
        assert_eq!(parsed.lead(), (Some(-5), None));
    }

    #[test]
    fn events_split_across_chunks_and_comments_are_skipped() {
        let mut s = SseSplitter::default();
        assert!(s.push(": keep-alive\n\nevent: tok").is_empty());
        let got = s.push("en\ndata: {\"text\":\"Hi\"}\n\nevent: done\r\ndata: {}\r\n\r\n");
        assert_eq!(
            got,
            vec![
                ("token".to_string(), "{\"text\":\"Hi\"}".to_string()),
                ("done".to_string(), "{}".to_string())
            ]
        );
    }

    #[test]
    fn an_event_round_trips_through_name_and_data() {
        let e = ChatStreamEvent::Token(TokenEvent {
            text: "a\"b".into(),
        });
        let back = ChatStreamEvent::decode(e.name(), &e.data());
        assert_eq!(back.and_then(Result::ok), Some(e));
        let e = ChatStreamEvent::Accepted(AcceptedEvent {
            message_id: 7,
            session_id: 3,
        });
        assert_eq!(e.data(), r#"{"message_id":7,"session_id":3}"#);
        let back = ChatStreamEvent::decode(e.name(), &e.data());
        assert_eq!(back.and_then(Result::ok), Some(e));
        assert!(ChatStreamEvent::decode("ping", "{}").is_none());
    }

    #[test]
    fn audio_events_carry_voice_timings_only_when_there_are_some() {
        let plain =
            r#"{"index":2,"url":"/files/audio/a.wav","provider":"piper_local","duration_ms":900}"#;
        let Some(Ok(ChatStreamEvent::Audio(a))) = ChatStreamEvent::decode("audio", plain) else {
            panic!("not decoded");
        };
        assert_eq!(a.timings, None);
        assert!(!ChatStreamEvent::Audio(a.clone()).data().contains("timings"));
        let timed = ChatStreamEvent::Audio(AudioEvent {
            timings: Some(crate::shared::tts::Timings {
                chars: vec!["H".into(), "i".into()],
                start_ms: vec![0, 90],
                end_ms: vec![90, 200],
            }),
            ..a
        });
        let back = ChatStreamEvent::decode("audio", &timed.data()).and_then(Result::ok);
        assert_eq!(back, Some(timed));
    }
}
