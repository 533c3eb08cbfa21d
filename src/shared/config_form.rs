//! Every setting of [`AppConfig`](super::config::AppConfig), once, with what the Setup form does
//! with it: its kind, label and hint, or that the form leaves it alone. The form's renderer
//! (`app::setup`) takes its labels and paths from here, and the server reads the submitted form
//! by the same table (`config::form`). A test walks the config's own fields, so a setting added to
//! the types without an entry here, or an entry naming no setting, fails it.
//!
//! `tts.providers.*.<field>` stands for that field of every provider.

use super::config::TtsProvider;

/// What the Setup form does with a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Text, saved as typed (trimmed); select boxes too.
    Text,
    /// A whole number.
    Whole,
    /// A finite number.
    Decimal,
    /// On or off: a checkbox, sent as `true` (ticked) after a hidden `false`; the last one wins.
    Switch,
    /// A write-only key: an empty field keeps the stored one, a ticked `<path>.clear` removes it.
    Secret,
    /// A list, one form entry per item (an empty entry says "the list is empty").
    List,
    /// Shown, never changed here: a program or file the server runs, set in the config file only.
    /// The input has no `name`; a value sent back anyway is read as text, and a change is
    /// refused by `ConfigStore::update_from_client`.
    ReadOnly,
    /// Not on this form: set in the config file, another tab or the REST API, or derived.
    NotOnForm,
}

/// One setting, by its dotted path in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormField {
    pub path: &'static str,
    pub kind: FieldKind,
    pub label: &'static str,
    /// Shown under the control; empty for none.
    pub hint: &'static str,
    /// For a `tts.providers.*` field: the label of one provider's copy, where the general one
    /// would say too little.
    pub per_provider: &'static [(TtsProvider, &'static str)],
}

const SECRET_HINT: &str = "Write-only: kept on this machine, never shown again.";
const FILE_HINT: &str = "Set in the config file (config/app.json in the data folder), then restart; it cannot be changed here.";

const fn on_form(
    path: &'static str,
    kind: FieldKind,
    label: &'static str,
    hint: &'static str,
) -> FormField {
    FormField {
        path,
        kind,
        label,
        hint,
        per_provider: &[],
    }
}

const fn not_on_form(path: &'static str) -> FormField {
    on_form(path, FieldKind::NotOnForm, "", "")
}

impl FormField {
    const fn per_provider(self, labels: &'static [(TtsProvider, &'static str)]) -> Self {
        Self {
            per_provider: labels,
            ..self
        }
    }

    /// The label of this field, or of `provider`'s copy of it.
    pub fn label_for(&self, provider: Option<TtsProvider>) -> &'static str {
        provider
            .and_then(|p| self.per_provider.iter().find(|(q, _)| *q == p))
            .map_or(self.label, |(_, label)| label)
    }

    /// The form entry's name: the path, with `provider` in place of `*`.
    pub fn path_for(&self, provider: Option<TtsProvider>) -> String {
        match provider {
            Some(p) => self.path.replacen('*', p.name(), 1),
            None => self.path.to_string(),
        }
    }
}

/// The setting a form entry names (`tts.providers.fish_audio.endpoint` is
/// `tts.providers.*.endpoint`), if any.
pub fn form_field(path: &str) -> Option<&'static FormField> {
    let general;
    let path = match path.strip_prefix("tts.providers.") {
        Some(rest) => {
            let (provider, field) = rest.split_once('.')?;
            TtsProvider::from_name(provider)?;
            general = format!("tts.providers.*.{field}");
            general.as_str()
        }
        None => path,
    };
    FORM_FIELDS.iter().find(|f| f.path == path)
}

macro_rules! form_fields {
    ($($(#[$doc:meta])* $name:ident = $field:expr;)*) => {
        $($(#[$doc])* pub const $name: FormField = $field;)*
        /// Every setting of `AppConfig`, in the config's order.
        pub const FORM_FIELDS: &[FormField] = &[$($name),*];
    };
}

use FieldKind::*;

form_fields! {
    PROFILE = not_on_form("profile");
    INPUT_MODE = not_on_form("input_mode");
    /// Set by the Chat tab's voice switch.
    OUTPUT_MODE = not_on_form("output_mode");

    LLM_PROVIDER = on_form("llm.provider", Text, "Provider", "");
    LLM_ENDPOINT = on_form(
        "llm.endpoint",
        Text,
        "Endpoint",
        "The server's OpenAI-compatible base address, usually ending in /v1.",
    );
    LLM_API_KEY = on_form("llm.api_key", Secret, "API key", SECRET_HINT);
    /// Derived: whether a key is stored.
    LLM_API_KEY_SET = not_on_form("llm.api_key_set");
    LLM_MODEL = on_form(
        "llm.model",
        Text,
        "Model",
        "Empty: the server's loaded model. Test the connection to list what it offers.",
    );
    LLM_LOCAL_MODEL = on_form(
        "llm.local_model",
        Text,
        "Built-in model",
        "A .gguf file in the models folder of the data folder. Put a downloaded model there to add it.",
    );
    LLM_TEMPERATURE = on_form("llm.temperature", Decimal, "Temperature", "");
    LLM_MAX_TOKENS = on_form("llm.max_tokens", Whole, "Longest reply (tokens)", "");
    LLM_SPOKEN_MAX_TOKENS = on_form(
        "llm.spoken_max_tokens",
        Whole,
        "Longest spoken reply (tokens)",
        "With the voice on. A reply cut by the limit ends at its last complete sentence.",
    );
    LLM_CONNECT_TIMEOUT_MS = on_form(
        "llm.connect_timeout_ms",
        Whole,
        "Connect timeout (ms)",
        "How long reaching the server may take.",
    );
    LLM_FIRST_TOKEN_TIMEOUT_MS = on_form(
        "llm.first_token_timeout_ms",
        Whole,
        "First-token timeout (ms)",
        "From the request to the reply's first word (a model still loading needs more).",
    );
    LLM_IDLE_TIMEOUT_S = on_form(
        "llm.idle_timeout_s",
        Whole,
        "Silence limit (s)",
        "Once the reply has begun: the longest pause between two words.",
    );
    LLM_TOTAL_TIMEOUT_S = on_form(
        "llm.total_timeout_s",
        Whole,
        "Reply time limit (s)",
        "From the request to the reply's last word.",
    );

    TTS_PROVIDER = on_form("tts.provider", Text, "Voice provider", "");
    TTS_FALLBACK_CHAIN = on_form(
        "tts.fallback_chain",
        List,
        "Fallbacks, in order",
        "When the voice provider fails, the ticked ones speak instead, top first.",
    );
    TTS_FORMAT = on_form("tts.format", Text, "Format", "");
    TTS_SAMPLE_RATE = on_form("tts.sample_rate", Whole, "Sample rate (Hz)", "");
    TTS_CACHE_MAX_MB = not_on_form("tts.cache_max_mb");
    PROVIDER_ENDPOINT = on_form("tts.providers.*.endpoint", Text, "Endpoint", "");
    PROVIDER_API_KEY = on_form("tts.providers.*.api_key", Secret, "API key", SECRET_HINT);
    PROVIDER_API_KEY_SET = not_on_form("tts.providers.*.api_key_set");
    PROVIDER_VOICE_ID = on_form("tts.providers.*.voice_id", Text, "Voice", "").per_provider(&[
        (TtsProvider::FishAudio, "Voice model id (reference_id)"),
        (TtsProvider::Elevenlabs, "Voice id"),
        (TtsProvider::XttsServer, "Speaker"),
        (TtsProvider::PiperLocal, "Speaker (multi-speaker voices only)"),
    ]);
    PROVIDER_MODEL = on_form("tts.providers.*.model", Text, "Model", "");
    PROVIDER_FLAVOR = on_form(
        "tts.providers.*.flavor",
        Text,
        "Server kind",
        "The two XTTS servers speak different protocols.",
    );
    PROVIDER_BINARY = on_form("tts.providers.*.binary", ReadOnly, "Program", FILE_HINT)
        .per_provider(&[
            (TtsProvider::PiperLocal, "Piper program"),
            (TtsProvider::Espeak, "eSpeak program"),
        ]);
    PROVIDER_VOICE_PATH = on_form(
        "tts.providers.*.voice_path",
        ReadOnly,
        "Voice file (.onnx)",
        FILE_HINT,
    );
    PROVIDER_LANGUAGE = on_form(
        "tts.providers.*.language",
        Text,
        "Language",
        "en, de, fr, ja, zh-cn, …",
    );
    /// Read from the form, though the Setup tab shows no box for it.
    PROVIDER_TIMEOUT_MS = on_form("tts.providers.*.timeout_ms", Whole, "Timeout (ms)", "");

    ASR_PROVIDER = on_form("asr.provider", Text, "Recogniser", "Turns what you say into text. Whisper runs on this machine, offline.");
    ASR_LANGUAGE = on_form(
        "asr.language",
        Text,
        "Language you speak",
        "en, de, fr, ja, …; empty lets the recogniser guess (the built-in Whisper knows English only).",
    );
    ASR_MAX_SECONDS = not_on_form("asr.max_seconds");
    ASR_BARGE_IN = on_form(
        "asr.barge_in",
        Switch,
        "Barge-in",
        "With headphones: hands-free keeps listening while the avatar speaks. Without them its own voice would interrupt it.",
    );
    ASR_WHISPER_THREADS = not_on_form("asr.providers.whisper_local.threads");
    ASR_SERVER_ENDPOINT = on_form(
        "asr.providers.openai_compatible.endpoint",
        Text,
        "Endpoint",
        "The server's OpenAI-compatible base address, usually ending in /v1 (OpenAI, Groq, whisper.cpp, LocalAI, speaches).",
    );
    ASR_SERVER_API_KEY = on_form(
        "asr.providers.openai_compatible.api_key",
        Secret,
        "API key",
        SECRET_HINT,
    );
    /// Derived: whether a key is stored.
    ASR_SERVER_API_KEY_SET = not_on_form("asr.providers.openai_compatible.api_key_set");
    ASR_SERVER_MODEL = on_form(
        "asr.providers.openai_compatible.model",
        Text,
        "Model",
        "whisper-1 for OpenAI; the server's own name elsewhere.",
    );
    ASR_SERVER_TIMEOUT_MS = on_form(
        "asr.providers.openai_compatible.timeout_ms",
        Whole,
        "Timeout (ms)",
        "",
    );

    MEMORY_MAX_HISTORY = on_form(
        "memory.max_history",
        Whole,
        "Recent messages in each prompt",
        "0 to 200. More remembers more but answers slower.",
    );
    MEMORY_RECALL = not_on_form("memory.recall");

    USER_NAME = on_form(
        "user.name",
        Text,
        "Your name",
        "What the characters call you: {{user}} in a character card.",
    );

    AVATAR_ACTIVE = not_on_form("avatar.active");
    AVATAR_MAX_UPLOAD_MB = not_on_form("avatar.max_upload_mb");
    AVATAR_MAX_TOTAL_MB = not_on_form("avatar.max_total_mb");

    LIMITS_CHAT_TURNS = not_on_form("limits.chat_turns");
    LIMITS_SYNTHESES = not_on_form("limits.syntheses");
    LIMITS_UPLOADS = not_on_form("limits.uploads");
    LIMITS_TRANSCRIPTIONS = not_on_form("limits.transcriptions");
    LIMITS_MODEL_QUEUE = not_on_form("limits.model_queue");
    LIMITS_REQUESTS_PER_SECOND = not_on_form("limits.requests_per_second");
    LIMITS_REQUEST_BURST = not_on_form("limits.request_burst");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::config::{AppConfig, Secret, XttsFlavor};
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// Every setting's path, read off the config itself: a config with every optional part
    /// present, serialised, walked down to its leaves (a list is one setting), each provider's
    /// copy of a field written `tts.providers.*.<field>`.
    fn config_paths() -> BTreeSet<String> {
        let mut cfg = AppConfig::default();
        cfg.llm.api_key = Secret::new("k");
        cfg.asr.providers.openai_compatible.api_key = Secret::new("k");
        for p in TtsProvider::ALL {
            let s = cfg.tts.providers.get_mut(p);
            s.api_key = Secret::new("k");
            s.flavor = Some(XttsFlavor::XttsApiServer);
        }
        fn walk(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
            match value {
                Value::Object(map) => {
                    for (key, v) in map {
                        let path = if prefix.is_empty() {
                            key.clone()
                        } else {
                            format!("{prefix}.{key}")
                        };
                        walk(&path, v, out);
                    }
                }
                _ => {
                    let general = match prefix.strip_prefix("tts.providers.") {
                        Some(rest) => match rest.split_once('.') {
                            Some((_, field)) => format!("tts.providers.*.{field}"),
                            None => prefix.to_string(),
                        },
                        None => prefix.to_string(),
                    };
                    out.insert(general);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(
            "",
            &serde_json::to_value(&cfg).expect("the config serialises"),
            &mut out,
        );
        out
    }

    #[test]
    fn every_setting_has_one_entry_and_every_entry_is_a_setting() {
        let settings = config_paths();
        let entries: BTreeSet<String> = FORM_FIELDS.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(entries.len(), FORM_FIELDS.len(), "a path is listed twice");
        let missing: Vec<_> = settings.difference(&entries).collect();
        assert!(
            missing.is_empty(),
            "settings with no form entry: {missing:?}"
        );
        let unknown: Vec<_> = entries.difference(&settings).collect();
        assert!(
            unknown.is_empty(),
            "form entries naming no setting: {unknown:?}"
        );
    }

    #[test]
    fn provider_copies_are_found_by_their_names() {
        assert_eq!(
            form_field("tts.providers.fish_audio.endpoint"),
            Some(&PROVIDER_ENDPOINT)
        );
        assert_eq!(form_field("tts.providers.nope.endpoint"), None);
        assert_eq!(form_field("tts.providers.*.endpoint"), None);
        assert_eq!(form_field("tts.providers.espeak"), None);
        assert_eq!(form_field("llm.temperature"), Some(&LLM_TEMPERATURE));
        assert_eq!(form_field("llm.secret_backdoor"), None);
        assert_eq!(
            PROVIDER_BINARY.path_for(Some(TtsProvider::PiperLocal)),
            "tts.providers.piper_local.binary"
        );
        assert_eq!(
            PROVIDER_BINARY.label_for(Some(TtsProvider::Espeak)),
            "eSpeak program"
        );
        assert_eq!(
            PROVIDER_VOICE_ID.label_for(Some(TtsProvider::Espeak)),
            "Voice"
        );
    }
}
