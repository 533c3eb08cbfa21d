//! The configuration model (`app.json`), shared so that the Setup tab renders the same types the
//! server validates. Merging, validation and persistence live in the server-only `config` module.
//!
//! Every `api_key` is a [`Secret`]: it is written to the config file but never leaves the server.
//! What the browser sees is a *redacted* config, where each key is empty and `api_key_set` says
//! whether one is stored.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An API key. Its `Debug` output never shows the value, and redacted configs carry it empty.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The key itself, for the one place that needs it: the request to the provider.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(unset)"
        } else {
            "Secret(***)"
        })
    }
}

/// What the Setup tab's save answers: the settings now in effect (redacted), and anything the
/// person should know about what the save did (a key dropped because its endpoint moved).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedSettings {
    pub config: AppConfig,
    pub notices: Vec<String>,
}

/// Which language model answers. `embedded` runs in-process and needs no server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmProvider {
    Embedded,
    Lmstudio,
    Ollama,
    Openai,
    OpenaiCompatible,
}

impl LlmProvider {
    pub const ALL: [LlmProvider; 5] = [
        Self::Embedded,
        Self::Lmstudio,
        Self::Ollama,
        Self::Openai,
        Self::OpenaiCompatible,
    ];

    /// The name in the settings and on the wire, as serde writes it.
    pub fn name(self) -> &'static str {
        super::wire_name::of(&self)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Embedded => "Built-in model (offline)",
            Self::Lmstudio => "LM Studio",
            Self::Ollama => "Ollama",
            Self::Openai => "OpenAI",
            Self::OpenaiCompatible => "Other OpenAI-compatible server",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        super::wire_name::parse(name)
    }

    /// The base URL a fresh install of this server listens on.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Self::Embedded => "",
            Self::Lmstudio => "http://127.0.0.1:1234/v1",
            Self::Ollama => "http://127.0.0.1:11434/v1",
            Self::Openai => "https://api.openai.com/v1",
            Self::OpenaiCompatible => "http://127.0.0.1:8080/v1",
        }
    }

    /// Whether requests go to an HTTP endpoint (everything but the built-in model).
    pub fn uses_endpoint(self) -> bool {
        self != Self::Embedded
    }
}

/// Which voice speaks. `piper_local` is neural and offline; `espeak` is the last resort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtsProvider {
    PiperLocal,
    FishAudio,
    Elevenlabs,
    XttsServer,
    Espeak,
}

impl TtsProvider {
    pub const ALL: [TtsProvider; 5] = [
        Self::PiperLocal,
        Self::FishAudio,
        Self::Elevenlabs,
        Self::XttsServer,
        Self::Espeak,
    ];

    /// The name in the settings and on the wire, as serde writes it.
    pub fn name(self) -> &'static str {
        super::wire_name::of(&self)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::PiperLocal => "Piper (offline, neural)",
            Self::FishAudio => "Fish Audio",
            Self::Elevenlabs => "ElevenLabs",
            Self::XttsServer => "XTTS server",
            Self::Espeak => "eSpeak NG (offline, robotic)",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        super::wire_name::parse(name)
    }

    /// Cloud providers need a key; local ones never do.
    pub fn needs_key(self) -> bool {
        matches!(self, Self::FishAudio | Self::Elevenlabs)
    }

    /// Whether the provider talks to an HTTP endpoint.
    pub fn uses_endpoint(self) -> bool {
        matches!(self, Self::FishAudio | Self::Elevenlabs | Self::XttsServer)
    }
}

/// How the person talks to the companion: typing, holding the microphone button, or speaking
/// freely with voice activity detection ending each utterance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    Text,
    /// The earlier server's `voice` meant the only voice input there was to be: hold to talk.
    #[serde(alias = "voice")]
    PushToTalk,
    HandsFree,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputMode {
    #[serde(rename = "text")]
    Text,
    #[serde(rename = "text+voice")]
    TextVoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioFormat {
    Mp3,
    Wav,
    Opus,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 3] = [Self::Mp3, Self::Wav, Self::Opus];
    /// The name in the settings and on the wire, as serde writes it.
    pub fn name(self) -> &'static str {
        super::wire_name::of(&self)
    }
}

/// The two XTTS servers speak different protocols, so the config says which one it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XttsFlavor {
    /// daswer123/xtts-api-server: `POST /tts_to_audio/` with a JSON body (port 8020).
    XttsApiServer,
    /// The Coqui TTS demo server: `/api/tts` with headers or query parameters (port 5002).
    CoquiServer,
}

/// Which speech recogniser turns the microphone's audio into text. `whisper_local` is offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsrProvider {
    WhisperLocal,
    OpenaiCompatible,
    Disabled,
}

impl AsrProvider {
    pub const ALL: [AsrProvider; 3] = [Self::WhisperLocal, Self::OpenaiCompatible, Self::Disabled];

    /// The name in the settings and on the wire, as serde writes it.
    pub fn name(self) -> &'static str {
        super::wire_name::of(&self)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::WhisperLocal => "Whisper (offline)",
            Self::OpenaiCompatible => "OpenAI-compatible server",
            Self::Disabled => "Off",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        super::wire_name::parse(name)
    }

    /// Whether requests go to an HTTP endpoint.
    pub fn uses_endpoint(self) -> bool {
        self == Self::OpenaiCompatible
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    pub profile: String,
    pub input_mode: InputMode,
    pub output_mode: OutputMode,
    pub llm: LlmConfig,
    pub tts: TtsConfig,
    pub asr: AsrConfig,
    pub memory: MemoryConfig,
    pub user: UserConfig,
    pub avatar: AvatarConfig,
    pub limits: LimitsConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    pub provider: LlmProvider,
    pub endpoint: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub api_key: Secret,
    /// Read-only: whether a key is stored. Only meaningful in redacted configs.
    pub api_key_set: bool,
    pub model: String,
    /// The built-in model: a `.gguf` file name inside the models folder. Only read with the
    /// `embedded` provider.
    pub local_model: String,
    pub temperature: f32,
    pub max_tokens: u32,
    /// The longest reply when it will be spoken: a listener wants a few sentences, and a small
    /// model left to `max_tokens` rambles on while the voice waits its turn on the same cores.
    pub spoken_max_tokens: u32,
    pub connect_timeout_ms: u64,
    /// How long the model may take to send its first token (remote servers).
    pub first_token_timeout_ms: u64,
    /// Once the reply has begun: seconds without a token before the turn ends (`llm_timeout`).
    pub idle_timeout_s: u64,
    /// Seconds the whole reply may take, from the request to its last token (`llm_timeout`).
    pub total_timeout_s: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    /// The voice that speaks first.
    pub provider: TtsProvider,
    /// Who speaks, in order, when the provider fails.
    pub fallback_chain: Vec<TtsProvider>,
    /// Preferred output format, for providers that let us choose.
    pub format: AudioFormat,
    /// Preferred sample rate in Hz, for providers that let us choose.
    pub sample_rate: u32,
    /// Size cap of the audio cache; least recently used files go first.
    pub cache_max_mb: u64,
    pub providers: TtsProviders,
}

/// Settings for each TTS provider, so that switching providers or falling back never mixes one
/// provider's endpoint or key with another's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsProviders {
    pub piper_local: TtsProviderSettings,
    pub fish_audio: TtsProviderSettings,
    pub elevenlabs: TtsProviderSettings,
    pub xtts_server: TtsProviderSettings,
    pub espeak: TtsProviderSettings,
}

impl TtsProviders {
    pub fn get(&self, provider: TtsProvider) -> &TtsProviderSettings {
        match provider {
            TtsProvider::PiperLocal => &self.piper_local,
            TtsProvider::FishAudio => &self.fish_audio,
            TtsProvider::Elevenlabs => &self.elevenlabs,
            TtsProvider::XttsServer => &self.xtts_server,
            TtsProvider::Espeak => &self.espeak,
        }
    }

    pub fn get_mut(&mut self, provider: TtsProvider) -> &mut TtsProviderSettings {
        match provider {
            TtsProvider::PiperLocal => &mut self.piper_local,
            TtsProvider::FishAudio => &mut self.fish_audio,
            TtsProvider::Elevenlabs => &mut self.elevenlabs,
            TtsProvider::XttsServer => &mut self.xtts_server,
            TtsProvider::Espeak => &mut self.espeak,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsProviderSettings {
    pub endpoint: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub api_key: Secret,
    /// Read-only: whether a key is stored. Only meaningful in redacted configs.
    pub api_key_set: bool,
    /// Voice or speaker: a Fish `reference_id`, an ElevenLabs voice id, an XTTS speaker, an
    /// eSpeak voice name.
    pub voice_id: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flavor: Option<XttsFlavor>,
    /// A user's own executable (Piper, eSpeak); empty means the one `make setup` installed.
    pub binary: String,
    /// A user's own Piper voice (`.onnx`, with its `.onnx.json` beside it); empty means the bundled voice.
    pub voice_path: String,
    pub language: String,
    pub timeout_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrConfig {
    pub provider: AsrProvider,
    /// The spoken language as an ISO 639-1 code; empty lets an engine that can tell guess it.
    pub language: String,
    /// The longest recording accepted, in seconds.
    pub max_seconds: u32,
    /// Hands-free keeps listening while the avatar speaks, so speaking interrupts it. Off by
    /// default: without headphones the avatar's own voice would trigger the detector.
    pub barge_in: bool,
    pub providers: AsrProviders,
}

/// Settings for each ASR provider, kept apart like the TTS providers' so that switching never
/// mixes one provider's endpoint or key with another's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrProviders {
    pub whisper_local: WhisperLocalSettings,
    pub openai_compatible: AsrServerSettings,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhisperLocalSettings {
    /// CPU threads the recogniser uses; the rest stay free for the language model and the voice.
    pub threads: u32,
}

/// A server speaking OpenAI's `POST /audio/transcriptions` (OpenAI, Groq, whisper.cpp's server,
/// LocalAI, speaches).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrServerSettings {
    /// The base address, usually ending in `/v1`.
    pub endpoint: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub api_key: Secret,
    /// Read-only: whether a key is stored. Only meaningful in redacted configs.
    pub api_key_set: bool,
    pub model: String,
    pub timeout_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// How many recent messages go into the prompt.
    pub max_history: u32,
    /// How many older messages, found by full-text search, are recalled as memories.
    pub recall: u32,
}

/// The person talking to the companions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    /// What `{{user}}` in a character card becomes.
    pub name: String,
}

impl Default for UserConfig {
    fn default() -> Self {
        Self { name: "You".into() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvatarConfig {
    /// File name of the active avatar in the avatars folder.
    pub active: String,
    pub max_upload_mb: u64,
    /// What the whole avatars folder may hold; an upload that would pass it is refused.
    pub max_total_mb: u64,
}

/// How much work the server takes on at once. Work beyond a limit is refused at once (503, or
/// 429 for the request rate) with `Retry-After`, never queued. The in-flight limits apply to
/// the next request after a change; the request rate applies from the next start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Chat turns (streamed or not) running at once, from the stored message to the last voice event.
    pub chat_turns: u32,
    /// Syntheses running at once across the server: at most this many voice programs or voice
    /// requests (each eSpeak or one-shot Piper call is one process).
    pub syntheses: u32,
    /// Avatar uploads being received at once.
    pub uploads: u32,
    /// Recordings being received or transcribed at once (`/api/asr`).
    pub transcriptions: u32,
    /// Requests waiting for the built-in model, which answers one at a time.
    pub model_queue: u32,
    /// `/api` requests per second from one client address, on average.
    pub requests_per_second: u32,
    /// How many `/api` requests one client address may send in a burst above that rate.
    pub request_burst: u32,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            profile: "auto".into(),
            input_mode: InputMode::Text,
            output_mode: OutputMode::TextVoice,
            llm: LlmConfig::default(),
            tts: TtsConfig::default(),
            asr: AsrConfig::default(),
            memory: MemoryConfig::default(),
            user: UserConfig::default(),
            avatar: AvatarConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: LlmProvider::Embedded,
            endpoint: LlmProvider::Lmstudio.default_endpoint().into(),
            api_key: Secret::default(),
            api_key_set: false,
            model: String::new(),
            local_model: super::models::DEFAULT_LOCAL_MODEL.into(),
            temperature: 0.7,
            max_tokens: 512,
            spoken_max_tokens: 160,
            connect_timeout_ms: 3_000,
            first_token_timeout_ms: 60_000,
            idle_timeout_s: 60,
            // A 512-token reply from a slow local model (a few tokens a second) fits.
            total_timeout_s: 300,
        }
    }
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            provider: TtsProvider::PiperLocal,
            fallback_chain: vec![TtsProvider::Espeak],
            format: AudioFormat::Mp3,
            sample_rate: 24_000,
            cache_max_mb: 500,
            providers: TtsProviders::default(),
        }
    }
}

impl Default for TtsProviders {
    fn default() -> Self {
        let base = TtsProviderSettings {
            timeout_ms: 15_000,
            ..Default::default()
        };
        Self {
            piper_local: TtsProviderSettings {
                timeout_ms: 30_000,
                ..base.clone()
            },
            fish_audio: TtsProviderSettings {
                endpoint: "https://api.fish.audio/v1".into(),
                model: "s1".into(),
                ..base.clone()
            },
            elevenlabs: TtsProviderSettings {
                endpoint: "https://api.elevenlabs.io/v1".into(),
                voice_id: "21m00Tcm4TlvDq8ikWAM".into(),
                model: "eleven_multilingual_v2".into(),
                ..base.clone()
            },
            xtts_server: TtsProviderSettings {
                endpoint: "http://127.0.0.1:8020".into(),
                voice_id: "female".into(),
                flavor: Some(XttsFlavor::XttsApiServer),
                language: "en".into(),
                timeout_ms: 60_000,
                ..base.clone()
            },
            espeak: TtsProviderSettings {
                voice_id: "en-us".into(),
                ..base
            },
        }
    }
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self {
            provider: AsrProvider::WhisperLocal,
            language: "en".into(),
            max_seconds: 120,
            barge_in: false,
            providers: AsrProviders::default(),
        }
    }
}

impl Default for WhisperLocalSettings {
    fn default() -> Self {
        Self { threads: 2 }
    }
}

impl Default for AsrServerSettings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            api_key: Secret::default(),
            api_key_set: false,
            model: "whisper-1".into(),
            timeout_ms: 30_000,
        }
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            max_history: 12,
            recall: 3,
        }
    }
}

impl Default for AvatarConfig {
    fn default() -> Self {
        Self {
            active: "default.vrm".into(),
            max_upload_mb: 100,
            max_total_mb: 1024,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            chat_turns: 8,
            syntheses: 4,
            uploads: 2,
            // One recording is one utterance; a second at once is another tab or a retry.
            transcriptions: 2,
            model_queue: 8,
            // A page polling health and history sends a few requests a second; tens a second
            // with a burst of hundreds is far above any person's use and still bounds a script.
            requests_per_second: 50,
            request_burst: 500,
        }
    }
}

impl AppConfig {
    /// A copy safe to send to a browser: every key emptied, `api_key_set` telling whether one is stored.
    pub fn redacted(&self) -> AppConfig {
        fn hide(key: &mut Secret, set: &mut bool) {
            *set = !key.is_empty();
            *key = Secret::default();
        }
        let mut out = self.clone();
        hide(&mut out.llm.api_key, &mut out.llm.api_key_set);
        let asr = &mut out.asr.providers.openai_compatible;
        hide(&mut asr.api_key, &mut asr.api_key_set);
        for provider in TtsProvider::ALL {
            let settings = out.tts.providers.get_mut(provider);
            hide(&mut settings.api_key, &mut settings.api_key_set);
        }
        out
    }

    /// The full TTS order: the provider first, then the fallbacks, each once.
    pub fn tts_chain(&self) -> Vec<TtsProvider> {
        let mut chain = vec![self.tts.provider];
        for p in &self.tts.fallback_chain {
            if !chain.contains(p) {
                chain.push(*p);
            }
        }
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_key() {
        let mut cfg = AppConfig::default();
        cfg.llm.api_key = Secret::new("sk-very-secret");
        cfg.tts.providers.fish_audio.api_key = Secret::new("fish-secret");
        cfg.asr.providers.openai_compatible.api_key = Secret::new("asr-secret");
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("sk-very-secret"), "{dbg}");
        assert!(!dbg.contains("fish-secret"));
        assert!(!dbg.contains("asr-secret"));
        assert!(dbg.contains("Secret(***)"));
    }

    #[test]
    fn redacted_config_has_flags_and_no_keys() {
        let mut cfg = AppConfig::default();
        cfg.llm.api_key = Secret::new("sk-very-secret");
        cfg.asr.providers.openai_compatible.api_key = Secret::new("asr-secret");
        let red = cfg.redacted();
        let json = serde_json::to_string(&red).unwrap();
        assert!(!json.contains("sk-very-secret"));
        assert!(!json.contains("asr-secret"));
        assert!(red.asr.providers.openai_compatible.api_key_set);
        assert!(red.llm.api_key_set);
        assert!(!red.tts.providers.fish_audio.api_key_set);
        assert!(!json.contains("\"api_key\""), "{json}");
    }

    #[test]
    fn provider_names_round_trip() {
        for p in LlmProvider::ALL {
            let json = serde_json::to_value(p).unwrap();
            assert_eq!(json, p.name());
            assert_eq!(LlmProvider::from_name(p.name()), Some(p));
        }
        for p in TtsProvider::ALL {
            let json = serde_json::to_value(p).unwrap();
            assert_eq!(json, p.name());
            assert_eq!(TtsProvider::from_name(p.name()), Some(p));
        }
        for p in AsrProvider::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
            assert_eq!(AsrProvider::from_name(p.name()), Some(p));
        }
        for f in AudioFormat::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
        }
        assert_eq!(TtsProvider::from_name("PiperLocal"), None);
    }

    #[test]
    fn input_modes_read_the_earlier_voice_as_push_to_talk() {
        for (name, mode) in [
            ("text", InputMode::Text),
            ("push_to_talk", InputMode::PushToTalk),
            ("hands_free", InputMode::HandsFree),
        ] {
            assert_eq!(serde_json::to_value(mode).unwrap(), name);
        }
        let old: InputMode = serde_json::from_value(serde_json::json!("voice")).unwrap();
        assert_eq!(old, InputMode::PushToTalk);
    }

    #[test]
    fn chain_starts_with_provider_and_has_no_repeats() {
        let mut cfg = AppConfig::default();
        cfg.tts.provider = TtsProvider::Espeak;
        cfg.tts.fallback_chain = vec![
            TtsProvider::Espeak,
            TtsProvider::PiperLocal,
            TtsProvider::PiperLocal,
        ];
        assert_eq!(
            cfg.tts_chain(),
            vec![TtsProvider::Espeak, TtsProvider::PiperLocal]
        );
    }
}
