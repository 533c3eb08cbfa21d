//! The earlier server kept one set of TTS settings at the top of `tts` (`tts.endpoint`,
//! `tts.api_key`, `tts.voice_id`, ...), meant for whichever `tts.provider` was selected. Here each
//! provider has its own settings under `tts.providers.<name>`, so those fields move there, both
//! when an old `app.json` is loaded and when an old client PUTs them. Its `asr` section had the
//! same flat shape (`asr.endpoint`, `asr.api_key`, `asr.model`); those move to
//! `asr.providers.openai_compatible`, the only provider that has them.

use crate::shared::config::TtsProvider;
use serde_json::{Map, Value};

/// The per-provider fields that the flat form kept directly under `tts`.
const FLAT_FIELDS: [&str; 9] = [
    "endpoint",
    "api_key",
    "voice_id",
    "model",
    "flavor",
    "binary",
    "voice_path",
    "language",
    "timeout_ms",
];

/// Moves flat `tts` fields of `doc` into `tts.providers.<provider>`, where `provider` is the
/// document's own `tts.provider` if it names one, else `current`. A field the document also sets
/// explicitly under `tts.providers.<provider>` keeps the explicit value. Returns whether anything moved.
pub fn migrate_flat_tts(doc: &mut Value, current: TtsProvider) -> bool {
    let Some(tts) = doc.get_mut("tts").and_then(Value::as_object_mut) else {
        return false;
    };
    let moved: Map<String, Value> = FLAT_FIELDS
        .iter()
        .filter_map(|f| tts.remove(*f).map(|v| ((*f).to_string(), v)))
        .collect();
    if moved.is_empty() {
        return false;
    }
    let provider = tts
        .get("provider")
        .and_then(Value::as_str)
        .and_then(TtsProvider::from_name)
        .unwrap_or(current);
    let providers = tts
        .entry("providers")
        .or_insert_with(|| Value::Object(Map::new()));
    if !providers.is_object() {
        *providers = Value::Object(Map::new());
    }
    let Some(providers) = providers.as_object_mut() else {
        return false;
    };
    let target = providers
        .entry(provider.name())
        .or_insert_with(|| Value::Object(Map::new()));
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(target) = target.as_object_mut() {
        for (k, v) in moved {
            target.entry(k).or_insert(v);
        }
    }
    true
}

/// The fields the earlier `asr` section kept flat, all now `openai_compatible`'s.
const FLAT_ASR_FIELDS: [&str; 3] = ["endpoint", "api_key", "model"];

/// Moves flat `asr` fields of `doc` into `asr.providers.openai_compatible`. An empty string moves
/// nowhere (it said "unset", and the new defaults say it better, such as the model `whisper-1`),
/// and a field also set explicitly there keeps the explicit value.
///
/// The earlier server had no recogniser, so its `"provider": "disabled"` recorded no choice: in
/// the flat shape it is dropped and the default (offline Whisper) applies. Voice input itself
/// stays off until the person picks an `input_mode` other than `text`.
/// Returns whether anything changed.
pub fn migrate_flat_asr(doc: &mut Value) -> bool {
    let Some(asr) = doc.get_mut("asr").and_then(Value::as_object_mut) else {
        return false;
    };
    let flat: Vec<(String, Value)> = FLAT_ASR_FIELDS
        .iter()
        .filter_map(|f| asr.remove(*f).map(|v| ((*f).to_string(), v)))
        .collect();
    if flat.is_empty() {
        return false;
    }
    if asr.get("provider").and_then(Value::as_str) == Some("disabled") {
        asr.remove("provider");
    }
    let providers = asr
        .entry("providers")
        .or_insert_with(|| Value::Object(Map::new()));
    if !providers.is_object() {
        *providers = Value::Object(Map::new());
    }
    let Some(providers) = providers.as_object_mut() else {
        return true;
    };
    let target = providers
        .entry("openai_compatible")
        .or_insert_with(|| Value::Object(Map::new()));
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(target) = target.as_object_mut() {
        for (k, v) in flat {
            if v.as_str() != Some("") {
                target.entry(k).or_insert(v);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_document;
    use serde_json::json;

    /// The earlier server's default `app.json`, verbatim.
    fn seed_app_json() -> Value {
        json!({
          "profile": "auto",
          "input_mode": "text",
          "output_mode": "text+voice",
          "llm": {"provider": "lmstudio", "endpoint": "http://127.0.0.1:1234/v1", "api_key": "lm-studio", "model": "model-name"},
          "tts": {
            "provider": "fish_audio",
            "endpoint": "https://api.fish.audio/v1",
            "api_key": "",
            "voice_id": "8ef4a238714b45718ce04243307c57a7",
            "format": "mp3",
            "sample_rate": 24000,
            "fallback_chain": ["piper_local", "xtts_server", "elevenlabs"]
          },
          "asr": {"provider": "disabled", "endpoint": "", "api_key": "", "model": ""},
          "memory": {"max_history": 12}
        })
    }

    #[test]
    fn seed_file_migrates_to_per_provider_settings() {
        let mut doc = seed_app_json();
        assert!(migrate_flat_tts(&mut doc, TtsProvider::PiperLocal));
        assert!(migrate_flat_asr(&mut doc));
        let cfg = from_document(&doc).unwrap();
        assert_eq!(cfg.tts.provider, TtsProvider::FishAudio);
        assert_eq!(
            cfg.tts.providers.fish_audio.voice_id,
            "8ef4a238714b45718ce04243307c57a7"
        );
        assert_eq!(
            cfg.tts.providers.fish_audio.endpoint,
            "https://api.fish.audio/v1"
        );
        assert_eq!(
            cfg.tts.fallback_chain,
            vec![
                TtsProvider::PiperLocal,
                TtsProvider::XttsServer,
                TtsProvider::Elevenlabs
            ]
        );
        assert_eq!(cfg.llm.api_key.expose(), "lm-studio");
        assert_eq!(cfg.llm.model, "model-name");
        // Other providers keep their own defaults.
        assert_eq!(
            cfg.tts.providers.xtts_server.endpoint,
            "http://127.0.0.1:8020"
        );
    }

    #[test]
    fn explicit_provider_settings_win_over_flat_ones() {
        let mut doc =
            json!({"tts": {"voice_id": "old", "providers": {"piper_local": {"voice_id": "new"}}}});
        migrate_flat_tts(&mut doc, TtsProvider::PiperLocal);
        assert_eq!(
            doc,
            json!({"tts": {"providers": {"piper_local": {"voice_id": "new"}}}})
        );
    }

    #[test]
    fn flat_fields_follow_the_provider_named_in_the_same_document() {
        let mut doc = json!({"tts": {"provider": "elevenlabs", "voice_id": "v1"}});
        migrate_flat_tts(&mut doc, TtsProvider::PiperLocal);
        assert_eq!(doc["tts"]["providers"]["elevenlabs"]["voice_id"], "v1");
    }

    #[test]
    fn seed_asr_section_migrates_to_the_new_shape() {
        let mut doc = seed_app_json();
        migrate_flat_tts(&mut doc, TtsProvider::PiperLocal);
        assert!(migrate_flat_asr(&mut doc));
        let cfg = from_document(&doc).unwrap();
        assert_eq!(cfg.asr, crate::shared::config::AsrConfig::default());
    }

    #[test]
    fn flat_asr_server_settings_move_to_openai_compatible() {
        let mut doc = json!({"asr": {
            "endpoint": "http://127.0.0.1:9000/v1", "api_key": "k", "model": "",
            "providers": {"openai_compatible": {"api_key": "explicit"}}
        }});
        assert!(migrate_flat_asr(&mut doc));
        assert_eq!(
            doc,
            json!({"asr": {"providers": {"openai_compatible": {
                "endpoint": "http://127.0.0.1:9000/v1", "api_key": "explicit"
            }}}})
        );
        let mut new = json!({"asr": {"provider": "disabled", "providers": {}}});
        let before = new.clone();
        assert!(!migrate_flat_asr(&mut new));
        assert_eq!(new, before, "a new-shape disabled stays disabled");
    }

    #[test]
    fn new_form_is_untouched() {
        let mut doc = json!({"tts": {"provider": "espeak", "providers": {}}});
        let before = doc.clone();
        assert!(!migrate_flat_tts(&mut doc, TtsProvider::PiperLocal));
        assert_eq!(doc, before);
    }
}
