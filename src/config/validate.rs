//! Checks that a config makes sense before it is saved: known names are already enforced by the
//! types, so this is about URLs, ranges and file names.

use crate::shared::{
    config::{AppConfig, TtsProvider, XttsFlavor},
    FieldError,
};

/// Languages the XTTS v2 model speaks.
pub const XTTS_LANGUAGES: [&str; 17] = [
    "ar", "pt", "zh-cn", "cs", "nl", "en", "fr", "de", "it", "pl", "ru", "es", "tr", "ja", "ko",
    "hu", "hi",
];

/// Sample rates the providers we support can produce.
pub const SAMPLE_RATES: [u32; 7] = [8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

/// The longest server address accepted; real ones are a few dozen characters.
pub const MAX_ENDPOINT_CHARS: usize = 2_048;

/// Every problem with `cfg`, each with the dotted path of its field. Empty means valid.
pub fn validate(cfg: &AppConfig) -> Vec<FieldError> {
    let mut v = Problems::default();

    let profile = cfg.profile.trim();
    v.check(
        "profile",
        !profile.is_empty() && profile.len() <= 64,
        "must be 1 to 64 characters",
    );

    let llm = &cfg.llm;
    if llm.provider.uses_endpoint() || !llm.endpoint.is_empty() {
        v.url("llm.endpoint", &llm.endpoint);
    }
    v.check(
        "llm.model",
        llm.model.len() <= 256,
        "must be at most 256 characters",
    );
    v.check(
        "llm.local_model",
        crate::shared::models::is_model_file_name(&llm.local_model),
        "must be the name of a .gguf file in the models folder, without a folder",
    );
    v.check(
        "llm.temperature",
        llm.temperature.is_finite() && (0.0..=2.0).contains(&llm.temperature),
        "must be between 0 and 2",
    );
    v.range("llm.max_tokens", llm.max_tokens.into(), 1, 32_768);
    v.range(
        "llm.spoken_max_tokens",
        llm.spoken_max_tokens.into(),
        1,
        32_768,
    );
    v.range(
        "llm.connect_timeout_ms",
        llm.connect_timeout_ms,
        100,
        120_000,
    );
    v.range(
        "llm.first_token_timeout_ms",
        llm.first_token_timeout_ms,
        1_000,
        600_000,
    );
    v.range("llm.idle_timeout_s", llm.idle_timeout_s, 1, 3_600);
    v.range("llm.total_timeout_s", llm.total_timeout_s, 1, 3_600);

    let tts = &cfg.tts;
    v.check(
        "tts.sample_rate",
        SAMPLE_RATES.contains(&tts.sample_rate),
        "must be one of 8000, 16000, 22050, 24000, 32000, 44100 or 48000",
    );
    v.range("tts.cache_max_mb", tts.cache_max_mb, 10, 1_000_000);
    for (i, p) in tts.fallback_chain.iter().enumerate() {
        if tts.fallback_chain[..i].contains(p) {
            v.push(
                format!("tts.fallback_chain[{i}]"),
                format!("{} is listed twice", p.name()),
            );
        }
    }
    for provider in TtsProvider::ALL {
        let s = tts.providers.get(provider);
        let at = |field: &str| format!("tts.providers.{}.{field}", provider.name());
        if provider.uses_endpoint() {
            v.url(&at("endpoint"), &s.endpoint);
        }
        v.range(&at("timeout_ms"), s.timeout_ms, 100, 600_000);
        if let Err(e) = crate::tts::voice_id::check(provider, &s.voice_id) {
            v.push(at("voice_id"), e.to_string());
        }
        v.check(
            &at("model"),
            s.model.len() <= 256,
            "must be at most 256 characters",
        );
        if !s.voice_path.is_empty() {
            v.check(
                &at("voice_path"),
                s.voice_path.ends_with(".onnx"),
                "must be the path of a Piper .onnx voice",
            );
        }
        if provider == TtsProvider::XttsServer {
            v.check(
                &at("flavor"),
                matches!(
                    s.flavor,
                    Some(XttsFlavor::XttsApiServer | XttsFlavor::CoquiServer)
                ),
                "must be xtts_api_server or coqui_server",
            );
            if s.flavor == Some(XttsFlavor::XttsApiServer) {
                v.check(
                    &at("language"),
                    XTTS_LANGUAGES.contains(&s.language.as_str()),
                    "must be an XTTS language code such as en, de, ja or zh-cn",
                );
            }
        }
    }

    let asr = &cfg.asr;
    v.check(
        "asr.language",
        asr.language.len() <= 8
            && asr
                .language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "must be a language code such as en or de, or empty to let the engine tell",
    );
    // OpenAI caps an upload at 25 MB, about 25 minutes of compressed speech; a spoken turn
    // is seconds long, so ten minutes is room for anything a person says in one go.
    v.range("asr.max_seconds", asr.max_seconds.into(), 1, 600);
    v.range(
        "asr.providers.whisper_local.threads",
        asr.providers.whisper_local.threads.into(),
        1,
        64,
    );
    let server = &asr.providers.openai_compatible;
    if asr.provider.uses_endpoint() || !server.endpoint.is_empty() {
        v.url("asr.providers.openai_compatible.endpoint", &server.endpoint);
    }
    v.check(
        "asr.providers.openai_compatible.model",
        server.model.len() <= 256,
        "must be at most 256 characters",
    );
    v.range(
        "asr.providers.openai_compatible.timeout_ms",
        server.timeout_ms,
        100,
        600_000,
    );

    v.range("memory.max_history", cfg.memory.max_history.into(), 0, 200);
    let user = cfg.user.name.trim();
    v.check(
        "user.name",
        !user.is_empty() && user.chars().count() <= 64 && !user.chars().any(char::is_control),
        "must be 1 to 64 characters",
    );
    v.range("memory.recall", cfg.memory.recall.into(), 0, 10);

    v.check(
        "avatar.active",
        is_plain_file_name(&cfg.avatar.active),
        "must be a file name in the avatars folder, without folders",
    );
    v.range("avatar.max_upload_mb", cfg.avatar.max_upload_mb, 1, 4_096);
    v.range("avatar.max_total_mb", cfg.avatar.max_total_mb, 1, 1_048_576);

    let l = &cfg.limits;
    v.range("limits.chat_turns", l.chat_turns.into(), 1, 10_000);
    v.range("limits.syntheses", l.syntheses.into(), 1, 1_000);
    v.range("limits.uploads", l.uploads.into(), 1, 1_000);
    v.range("limits.transcriptions", l.transcriptions.into(), 1, 1_000);
    v.range("limits.model_queue", l.model_queue.into(), 1, 10_000);
    v.range(
        "limits.requests_per_second",
        l.requests_per_second.into(),
        1,
        1_000_000,
    );
    v.range("limits.request_burst", l.request_burst.into(), 1, 1_000_000);

    v.0
}

/// A name that stays inside its folder: no separators, no parent or hidden entries.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, path: &str, ok: bool, message: &str) {
        if !ok {
            self.push(path, message);
        }
    }

    fn range(&mut self, path: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.push(path, format!("must be between {min} and {max}"));
        }
    }

    fn url(&mut self, path: &str, raw: &str) {
        if raw.chars().count() > MAX_ENDPOINT_CHARS {
            return self.push(path, "must be at most 2048 characters");
        }
        match url::Url::parse(raw.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => self.push(path, "must be an http:// or https:// address"),
            Err(_) if raw.trim().is_empty() => {
                self.push(path, "is required, for example http://127.0.0.1:1234/v1")
            }
            Err(_) => self.push(
                path,
                "is not a web address: write it like http://127.0.0.1:1234/v1",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&AppConfig::default()), vec![]);
    }

    #[test]
    fn bad_values_are_reported_by_path() {
        let mut cfg = AppConfig::default();
        cfg.tts.sample_rate = 12_345;
        cfg.tts.providers.fish_audio.endpoint = "ftp://x".into();
        cfg.tts.providers.xtts_server.language = "klingon".into();
        cfg.avatar.active = "../etc/passwd".into();
        cfg.avatar.max_total_mb = 0;
        cfg.llm.temperature = f32::NAN;
        cfg.llm.local_model = "../../etc/passwd.gguf".into();
        cfg.llm.idle_timeout_s = 0;
        cfg.llm.total_timeout_s = 86_400;
        let paths: Vec<_> = validate(&cfg).into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "llm.local_model",
                "llm.temperature",
                "llm.idle_timeout_s",
                "llm.total_timeout_s",
                "tts.sample_rate",
                "tts.providers.fish_audio.endpoint",
                "tts.providers.xtts_server.language",
                "avatar.active",
                "avatar.max_total_mb",
            ]
        );
    }

    #[test]
    fn voice_ids_are_checked_for_their_provider() {
        let mut cfg = AppConfig::default();
        cfg.tts.providers.espeak.voice_id = "/dev/stdin".into();
        cfg.tts.providers.elevenlabs.voice_id = "../user".into();
        cfg.tts.providers.fish_audio.voice_id = "a/b".into();
        cfg.tts.providers.xtts_server.voice_id = "../../x.wav".into();
        cfg.tts.providers.piper_local.voice_id = "1\n2".into();
        let found = validate(&cfg);
        let paths: Vec<_> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tts.providers.piper_local.voice_id",
                "tts.providers.fish_audio.voice_id",
                "tts.providers.elevenlabs.voice_id",
                "tts.providers.xtts_server.voice_id",
                "tts.providers.espeak.voice_id",
            ]
        );
        assert!(
            found[4].message.contains("eSpeak NG voice name"),
            "{found:?}"
        );
        // Each provider's own ids still pass.
        cfg = AppConfig::default();
        cfg.tts.providers.espeak.voice_id = "en-us+f3".into();
        cfg.tts.providers.fish_audio.voice_id = "8ef4a238714b45718ce04243307c57a7".into();
        cfg.tts.providers.xtts_server.voice_id = "Ana Florence".into();
        cfg.tts.providers.piper_local.voice_id = "3".into();
        assert_eq!(validate(&cfg), vec![]);
    }

    #[test]
    fn addresses_and_voice_ids_have_length_caps() {
        let mut cfg = AppConfig::default();
        let long_url = format!("http://127.0.0.1:1234/{}", "a".repeat(MAX_ENDPOINT_CHARS));
        cfg.llm.endpoint = long_url.clone();
        cfg.tts.providers.fish_audio.endpoint = long_url.clone();
        cfg.asr.providers.openai_compatible.endpoint = long_url;
        cfg.tts.providers.espeak.voice_id = "a".repeat(129);
        let found = validate(&cfg);
        let paths: Vec<_> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "llm.endpoint",
                "tts.providers.fish_audio.endpoint",
                "tts.providers.espeak.voice_id",
                "asr.providers.openai_compatible.endpoint",
            ]
        );
        assert!(found[0].message.contains("2048"), "{found:?}");
        assert!(found[2].message.contains("128"), "{found:?}");
        let fits = format!("http://127.0.0.1:1234/{}", "a".repeat(2_000));
        cfg = AppConfig::default();
        cfg.llm.endpoint = fits;
        cfg.tts.providers.espeak.voice_id = "a".repeat(128);
        assert_eq!(validate(&cfg), vec![]);
    }

    #[test]
    fn embedded_llm_needs_no_endpoint() {
        let mut cfg = AppConfig::default();
        cfg.llm.endpoint.clear();
        assert!(validate(&cfg).is_empty());
        cfg.llm.provider = crate::shared::config::LlmProvider::Lmstudio;
        assert_eq!(validate(&cfg)[0].path, "llm.endpoint");
    }

    #[test]
    fn plain_file_names() {
        for ok in ["default.vrm", "my avatar.glb", "ä.vrm"] {
            assert!(is_plain_file_name(ok), "{ok}");
        }
        for bad in ["", ".hidden.vrm", "a/b.vrm", "..", "a\\b", "x\0.vrm"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
