//! [ssr] The configuration: defaults, RFC 7396 merge, validation, migration of the earlier
//! server's flat `app.json`, and atomic persistence with the API keys encrypted (`sealed`), each
//! bound to the origin of its endpoint (`keys`). The model itself is in `shared::config`.

mod file;
mod form;
mod keys;
mod merge;
mod migrate;
mod sealed;
mod shared;
mod validate;

#[cfg(test)]
mod patch_props;

pub use file::ConfigStore;
pub use form::patch_from_form;
pub use keys::{origin_of, KeySlot};
pub use merge::merge_patch;
pub use migrate::{migrate_flat_asr, migrate_flat_tts};
pub use validate::{is_plain_file_name, validate};

use crate::shared::{
    config::{AppConfig, Secret, TtsProvider},
    AppError, FieldError,
};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the settings must be a JSON object")]
    NotAnObject,
    #[error("invalid settings: {0:?}")]
    Invalid(Vec<FieldError>),
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The settings could not be written because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, ConfigError::Write { source, .. } if crate::disk::is_full(source))
    }
}

impl From<ConfigError> for AppError {
    fn from(err: ConfigError) -> Self {
        match err {
            ConfigError::Write { path, .. } if err.is_disk_full() => AppError::new(
                crate::disk::FULL,
                format!(
                    "The disk is full: the settings could not be saved to {}. {}",
                    path.display(),
                    crate::disk::advice("the previous settings are still in effect and on disk.")
                ),
            ),
            ConfigError::NotAnObject => AppError::new(
                "invalid_config",
                "The settings must be a JSON object, for example {\"llm\": {\"model\": \"...\"}}.",
            ),
            ConfigError::Invalid(fields) => AppError::invalid(fields),
            ConfigError::Write { path, source } => AppError::new(
                "config_write_failed",
                format!(
                    "The settings could not be saved to {}: {source}. Check free disk space and that the data folder is writable; the previous settings are still in effect.",
                    path.display()
                ),
            ),
        }
    }
}

/// Removes read-only keys (`api_key_set`) at every depth: they describe the stored config and are
/// never stored themselves.
pub(crate) fn strip_read_only(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("api_key_set");
            map.values_mut().for_each(strip_read_only);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_read_only),
        _ => {}
    }
}

/// Turns a (possibly partial) JSON document into a config: every field missing from `doc` takes
/// its default, at every depth. Unknown fields and wrong types are reported with their path.
pub fn from_document(doc: &Value) -> Result<AppConfig, ConfigError> {
    let mut full = serde_json::to_value(AppConfig::default()).unwrap_or(Value::Null);
    merge_patch(&mut full, doc);
    strip_read_only(&mut full);
    let cfg: AppConfig = serde_path_to_error::deserialize(&full).map_err(|err| {
        let path = err.path().to_string();
        let message = friendly_serde_message(&err.inner().to_string());
        ConfigError::Invalid(vec![FieldError { path, message }])
    })?;
    let problems = validate(&cfg);
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Who changes the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changer {
    /// The server itself (start-up, tests): anything valid goes.
    Server,
    /// A client over HTTP (`PUT /api/config`, the Setup tab): programs and model files are not
    /// settings it may change, since whoever can reach the server would choose what it runs.
    Client,
}

/// The settings fields that name a program to run or a model file to load. They come from the
/// config file only.
pub const PROGRAM_FIELDS: [&str; 2] = ["binary", "voice_path"];

/// What a client is told when it tries to change one of [`PROGRAM_FIELDS`].
pub const PROGRAM_FIELD_MESSAGE: &str = "names a program or model file, which cannot be changed over HTTP: set it in the config file (config/app.json in the data folder) and restart";

/// A patch, applied: the new config, and the keys it dropped because their endpoint moved to
/// another origin.
#[derive(Debug)]
pub struct Applied {
    pub config: AppConfig,
    pub cleared_keys: Vec<KeySlot>,
}

/// Applies a partial document to `current` as a JSON Merge Patch (RFC 7396): objects merge at
/// every depth, `null` resets a field to its default, arrays replace, an absent `api_key` keeps the
/// stored key unless its endpoint moves to another origin. The earlier server's flat `tts` fields
/// are accepted and moved to the provider they belong to. Nothing is saved here. (The server
/// always goes through [`apply`]; this is its short form for the tests.)
#[cfg(test)]
pub fn apply_patch(current: &AppConfig, patch: Value) -> Result<AppConfig, ConfigError> {
    apply(current, patch, Changer::Server).map(|a| a.config)
}

/// [`apply_patch`], saying which keys were dropped, and refusing changes to [`PROGRAM_FIELDS`]
/// from a [`Changer::Client`] (sending back the stored value is fine).
pub fn apply(current: &AppConfig, mut patch: Value, who: Changer) -> Result<Applied, ConfigError> {
    if !patch.is_object() {
        return Err(ConfigError::NotAnObject);
    }
    strip_read_only(&mut patch);
    migrate_flat_tts(&mut patch, current.tts.provider);
    migrate_flat_asr(&mut patch);
    let mut doc = serde_json::to_value(current).unwrap_or(Value::Null);
    strip_read_only(&mut doc);
    let before = doc.clone();
    merge_patch(&mut doc, &patch);
    let locked = match who {
        Changer::Server => Vec::new(),
        Changer::Client => program_field_changes(&before, &doc),
    };
    let mut next = match from_document(&doc) {
        Ok(cfg) if locked.is_empty() => cfg,
        Ok(_) => return Err(ConfigError::Invalid(locked)),
        Err(ConfigError::Invalid(fields)) => {
            let mut all = locked;
            for f in fields {
                if !all.iter().any(|l| l.path == f.path) {
                    all.push(f);
                }
            }
            return Err(ConfigError::Invalid(all));
        }
        Err(other) => return Err(other),
    };
    let cleared_keys = keep_keys_with_their_origin(current, &mut next, &patch);
    Ok(Applied {
        config: next,
        cleared_keys,
    })
}

/// The [`PROGRAM_FIELDS`] whose value differs between two config documents (a missing field has
/// its default value).
fn program_field_changes(before: &Value, after: &Value) -> Vec<FieldError> {
    let defaults = serde_json::to_value(AppConfig::default()).unwrap_or(Value::Null);
    let mut changed = Vec::new();
    for provider in TtsProvider::ALL {
        for field in PROGRAM_FIELDS {
            let pointer = format!("/tts/providers/{}/{field}", provider.name());
            let value = |doc: &Value| {
                doc.pointer(&pointer)
                    .or_else(|| defaults.pointer(&pointer))
                    .cloned()
            };
            if value(before) != value(after) {
                changed.push(FieldError {
                    path: format!("tts.providers.{}.{field}", provider.name()),
                    message: PROGRAM_FIELD_MESSAGE.into(),
                });
            }
        }
    }
    changed
}

/// A stored key goes only to the origin it was saved with: when a patch moves an endpoint to
/// another origin (scheme, host or port) and gives no key for it, the old key is dropped.
fn keep_keys_with_their_origin(
    current: &AppConfig,
    next: &mut AppConfig,
    patch: &Value,
) -> Vec<KeySlot> {
    let mut cleared = Vec::new();
    for slot in KeySlot::all() {
        let given = patch
            .pointer(&format!("{}/api_key", slot.pointer()))
            .is_some();
        if given || slot.key(next).is_empty() || slot.origin(current) == slot.origin(next) {
            continue;
        }
        *slot.key_mut(next) = Secret::default();
        cleared.push(slot);
    }
    cleared
}

/// What to tell the person whose change dropped the key in `slot`.
pub fn cleared_key_notice(slot: KeySlot, cfg: &AppConfig) -> String {
    let origin = slot.origin(cfg);
    let place = if origin.is_empty() {
        "no address".to_string()
    } else {
        origin
    };
    format!(
        "The saved API key of {} was removed: its endpoint now points to another server ({place}), and a key is only sent to the server it was saved for. Enter the key again if this server needs one.",
        slot.label()
    )
}

/// serde's messages name Rust types; say it in the words of the settings instead.
fn friendly_serde_message(raw: &str) -> String {
    let raw = raw.split(" at line ").next().unwrap_or(raw);
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}");
    }
    if let Some(rest) = raw.strip_prefix("unknown field ") {
        return format!("unknown setting {rest}");
    }
    raw.replace("invalid type: ", "wrong type: ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::config::{LlmProvider, Secret, TtsProvider};
    use serde_json::json;

    fn with_key() -> AppConfig {
        let mut cfg = AppConfig::default();
        cfg.llm.api_key = Secret::new("sk-keep-me");
        cfg.tts.providers.fish_audio.api_key = Secret::new("fish-keep-me");
        cfg
    }

    #[test]
    fn patch_merges_deeply_and_keeps_siblings() {
        let cur = AppConfig::default();
        let next = apply_patch(
            &cur,
            json!({"tts": {"providers": {"fish_audio": {"voice_id": "abc"}}}}),
        )
        .unwrap();
        assert_eq!(next.tts.providers.fish_audio.voice_id, "abc");
        assert_eq!(
            next.tts.providers.fish_audio.endpoint,
            cur.tts.providers.fish_audio.endpoint
        );
        assert_eq!(
            next.tts.providers.xtts_server,
            cur.tts.providers.xtts_server
        );
        assert_eq!(next.llm, cur.llm);
    }

    #[test]
    fn absent_key_is_kept_and_null_resets() {
        let cur = with_key();
        let next = apply_patch(&cur, json!({"llm": {"model": "m"}})).unwrap();
        assert_eq!(next.llm.api_key.expose(), "sk-keep-me");
        let next = apply_patch(&next, json!({"llm": {"api_key": null}})).unwrap();
        assert!(next.llm.api_key.is_empty());
        let next = apply_patch(&next, json!({"llm": {"model": null}, "memory": null})).unwrap();
        assert_eq!(next.llm.model, AppConfig::default().llm.model);
        assert_eq!(next.memory, AppConfig::default().memory);
    }

    #[test]
    fn null_resets_a_provider_field_to_that_providers_default() {
        let cur = apply_patch(
            &AppConfig::default(),
            json!({"tts": {"providers": {"xtts_server": {"endpoint": "http://10.0.0.5:8020"}}}}),
        )
        .unwrap();
        let next = apply_patch(
            &cur,
            json!({"tts": {"providers": {"xtts_server": {"endpoint": null}}}}),
        )
        .unwrap();
        assert_eq!(
            next.tts.providers.xtts_server.endpoint,
            "http://127.0.0.1:8020"
        );
    }

    #[test]
    fn get_edit_put_round_trip_never_wipes_a_key() {
        let cur = with_key();
        let mut view = serde_json::to_value(cur.redacted()).unwrap();
        view["llm"]["model"] = json!("edited");
        let next = apply_patch(&cur, view).unwrap();
        assert_eq!(next.llm.model, "edited");
        assert_eq!(next.llm.api_key.expose(), "sk-keep-me");
        assert_eq!(
            next.tts.providers.fish_audio.api_key.expose(),
            "fish-keep-me"
        );
    }

    #[test]
    fn arrays_replace() {
        let cur = AppConfig::default();
        let next = apply_patch(
            &cur,
            json!({"tts": {"fallback_chain": ["xtts_server", "espeak"]}}),
        )
        .unwrap();
        assert_eq!(
            next.tts.fallback_chain,
            vec![TtsProvider::XttsServer, TtsProvider::Espeak]
        );
        let next = apply_patch(&next, json!({"tts": {"fallback_chain": []}})).unwrap();
        assert!(next.tts.fallback_chain.is_empty());
    }

    #[test]
    fn unknown_provider_is_rejected_with_its_path() {
        let err = apply_patch(
            &AppConfig::default(),
            json!({"llm": {"provider": "skynet"}}),
        )
        .unwrap_err();
        let ConfigError::Invalid(fields) = err else {
            panic!("{err:?}")
        };
        assert_eq!(fields[0].path, "llm.provider");
        assert!(
            fields[0].message.contains("skynet"),
            "{}",
            fields[0].message
        );
        let err = apply_patch(
            &AppConfig::default(),
            json!({"tts": {"fallback_chain": ["piper_local", "nope"]}}),
        )
        .unwrap_err();
        let ConfigError::Invalid(fields) = err else {
            panic!()
        };
        assert_eq!(fields[0].path, "tts.fallback_chain[1]");
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_rejected() {
        let err = apply_patch(
            &AppConfig::default(),
            json!({"memory": {"max_history": "twelve"}}),
        )
        .unwrap_err();
        let ConfigError::Invalid(fields) = err else {
            panic!()
        };
        assert_eq!(fields[0].path, "memory.max_history");
        let err = apply_patch(&AppConfig::default(), json!({"llm": {"modle": "x"}})).unwrap_err();
        let ConfigError::Invalid(fields) = err else {
            panic!()
        };
        assert!(fields[0].message.contains("modle"));
    }

    #[test]
    fn non_object_patch_is_rejected() {
        assert!(matches!(
            apply_patch(&AppConfig::default(), json!([1, 2])),
            Err(ConfigError::NotAnObject)
        ));
        assert!(matches!(
            apply_patch(&AppConfig::default(), json!("x")),
            Err(ConfigError::NotAnObject)
        ));
    }

    #[test]
    fn read_only_flags_are_ignored() {
        let cur = with_key();
        let next = apply_patch(&cur, json!({"llm": {"api_key_set": false}, "tts": {"providers": {"fish_audio": {"api_key_set": false}}}})).unwrap();
        assert_eq!(next.llm.api_key.expose(), "sk-keep-me");
        assert_eq!(
            next.tts.providers.fish_audio.api_key.expose(),
            "fish-keep-me"
        );
    }

    #[test]
    fn invalid_patch_reports_every_problem() {
        let err = apply_patch(
            &AppConfig::default(),
            json!({"llm": {"provider": "lmstudio", "endpoint": "not a url"}, "memory": {"max_history": 5000}}),
        )
        .unwrap_err();
        let ConfigError::Invalid(fields) = err else {
            panic!()
        };
        let paths: Vec<_> = fields.iter().map(|f| f.path.as_str()).collect();
        assert!(paths.contains(&"llm.endpoint"), "{paths:?}");
        assert!(paths.contains(&"memory.max_history"), "{paths:?}");
    }

    #[test]
    fn provider_switch_keeps_endpoint_setting() {
        let next = apply_patch(
            &AppConfig::default(),
            json!({"llm": {"provider": "ollama", "endpoint": "http://127.0.0.1:11434/v1"}}),
        )
        .unwrap();
        assert_eq!(next.llm.provider, LlmProvider::Ollama);
    }

    fn client(cur: &AppConfig, patch: Value) -> Result<Applied, ConfigError> {
        apply(cur, patch, Changer::Client)
    }

    fn with_programs() -> AppConfig {
        apply_patch(
            &AppConfig::default(),
            json!({"tts": {"providers": {
                "piper_local": {"binary": "/opt/piper/piper", "voice_path": "/opt/voices/a.onnx"},
                "espeak": {"binary": "/usr/bin/espeak-ng"}}}}),
        )
        .unwrap()
    }

    #[test]
    fn a_client_cannot_change_programs_or_model_files() {
        let cur = with_programs();
        for (patch, path) in [
            (
                json!({"tts": {"providers": {"piper_local": {"binary": "/tmp/evil.sh"}}}}),
                "tts.providers.piper_local.binary",
            ),
            (
                json!({"tts": {"providers": {"piper_local": {"voice_path": "/tmp/other.onnx"}}}}),
                "tts.providers.piper_local.voice_path",
            ),
            (
                json!({"tts": {"providers": {"espeak": {"binary": null}}}}),
                "tts.providers.espeak.binary",
            ),
            (
                json!({"tts": {"providers": {"fish_audio": {"binary": "/bin/sh"}}}}),
                "tts.providers.fish_audio.binary",
            ),
            // The earlier flat form lands on the selected provider: refused the same way.
            (
                json!({"tts": {"binary": "/tmp/evil.sh"}}),
                "tts.providers.piper_local.binary",
            ),
            (json!({"tts": null}), "tts.providers.piper_local.binary"),
        ] {
            let err = client(&cur, patch.clone()).unwrap_err();
            let ConfigError::Invalid(fields) = err else {
                panic!("{patch}: {err:?}")
            };
            let field = fields
                .iter()
                .find(|f| f.path == path)
                .unwrap_or_else(|| panic!("{patch}: {fields:?}"));
            assert!(
                field.message.contains("set it in the config file"),
                "{}",
                field.message
            );
            // The server itself (and so the config file) still sets them.
            assert!(apply(&cur, patch, Changer::Server).is_ok());
        }
    }

    #[test]
    fn a_client_may_send_program_paths_back_unchanged() {
        let cur = with_programs();
        let mut view = serde_json::to_value(cur.redacted()).unwrap();
        view["memory"]["max_history"] = json!(30);
        let next = client(&cur, view).unwrap().config;
        assert_eq!(next.memory.max_history, 30);
        assert_eq!(next.tts.providers.piper_local.binary, "/opt/piper/piper");
        // Resetting a path that is already at its default changes nothing.
        let next = client(
            &cur,
            json!({"tts": {"providers": {"xtts_server": {"binary": null, "voice_path": ""}}}}),
        );
        assert!(next.is_ok(), "{next:?}");
    }

    #[test]
    fn program_path_errors_come_with_the_other_problems() {
        let err = client(
            &AppConfig::default(),
            json!({"tts": {"providers": {"piper_local": {"binary": "/x"}}}, "memory": {"max_history": 5000}}),
        )
        .unwrap_err();
        let ConfigError::Invalid(fields) = err else {
            panic!()
        };
        let paths: Vec<_> = fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["tts.providers.piper_local.binary", "memory.max_history"]
        );
    }

    #[test]
    fn a_key_stays_with_the_origin_it_was_saved_for() {
        let cur = apply_patch(
            &AppConfig::default(),
            json!({"llm": {"provider": "openai", "endpoint": "https://api.openai.com/v1", "api_key": "sk-1"},
                   "tts": {"providers": {"elevenlabs": {"api_key": "xi-1"}}}}),
        )
        .unwrap();
        // Same origin, other path: kept.
        let a = client(
            &cur,
            json!({"llm": {"endpoint": "https://api.openai.com/v2/"}}),
        )
        .unwrap();
        assert!(a.cleared_keys.is_empty());
        assert_eq!(a.config.llm.api_key.expose(), "sk-1");
        // Another host, scheme or port: dropped, and said so.
        for endpoint in [
            "https://collector.example/v1",
            "http://api.openai.com/v1",
            "https://api.openai.com:8443/v1",
        ] {
            let a = client(&cur, json!({"llm": {"endpoint": endpoint}})).unwrap();
            assert_eq!(a.cleared_keys, [KeySlot::Llm], "{endpoint}");
            assert!(a.config.llm.api_key.is_empty());
            assert_eq!(a.config.tts.providers.elevenlabs.api_key.expose(), "xi-1");
        }
        // A provider switch that brings its own endpoint follows the same rule.
        let a = client(
            &cur,
            json!({"llm": {"provider": "lmstudio", "endpoint": "http://127.0.0.1:1234/v1"}}),
        )
        .unwrap();
        assert_eq!(a.cleared_keys, [KeySlot::Llm]);
        // A key given with the new endpoint is the key for it.
        let a = client(
            &cur,
            json!({"llm": {"endpoint": "https://collector.example/v1", "api_key": "sk-2"}}),
        )
        .unwrap();
        assert!(a.cleared_keys.is_empty());
        assert_eq!(a.config.llm.api_key.expose(), "sk-2");
        // TTS endpoints too, also through the earlier flat form.
        let a = client(
            &cur,
            json!({"tts": {"providers": {"elevenlabs": {"endpoint": "https://elsewhere.example"}}}}),
        )
        .unwrap();
        assert_eq!(a.cleared_keys, [KeySlot::Tts(TtsProvider::Elevenlabs)]);
        let a = client(
            &cur,
            json!({"tts": {"provider": "elevenlabs", "endpoint": "https://elsewhere.example"}}),
        )
        .unwrap();
        assert!(a.config.tts.providers.elevenlabs.api_key.is_empty());
        // The server's own changes obey it as well.
        let next = apply_patch(
            &cur,
            json!({"llm": {"endpoint": "https://collector.example/v1"}}),
        )
        .unwrap();
        assert!(next.llm.api_key.is_empty());
    }

    mod props {
        use super::super::merge_patch;
        use proptest::prelude::*;
        use serde_json::{Map, Value};

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i32>().prop_map(Value::from),
                "[a-z]{0,6}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-d]", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
                ]
            })
        }

        /// RFC 7396 §2 in a few lines, as the oracle.
        fn oracle(target: &Value, patch: &Value) -> Value {
            match patch {
                Value::Object(p) => {
                    let mut t = match target {
                        Value::Object(t) => t.clone(),
                        _ => Map::new(),
                    };
                    for (k, v) in p {
                        if v.is_null() {
                            t.remove(k);
                        } else {
                            let cur = t.get(k).cloned().unwrap_or(Value::Null);
                            t.insert(k.clone(), oracle(&cur, v));
                        }
                    }
                    Value::Object(t)
                }
                other => other.clone(),
            }
        }

        fn has_null_member(v: &Value) -> bool {
            match v {
                Value::Object(m) => m.values().any(|x| x.is_null() || has_null_member(x)),
                _ => false,
            }
        }

        proptest! {
            #![proptest_config(crate::testing::config())]

            #[test]
            fn merge_matches_rfc7396(target in json_value(), patch in json_value()) {
                let mut t = target.clone();
                merge_patch(&mut t, &patch);
                prop_assert_eq!(t, oracle(&target, &patch));
            }

            #[test]
            fn merge_is_idempotent(target in json_value(), patch in json_value()) {
                let mut once = target.clone();
                merge_patch(&mut once, &patch);
                let mut twice = once.clone();
                merge_patch(&mut twice, &patch);
                prop_assert_eq!(once, twice);
            }

            #[test]
            fn empty_patch_changes_nothing_in_objects(target in json_value()) {
                prop_assume!(target.is_object());
                let mut t = target.clone();
                merge_patch(&mut t, &Value::Object(Map::new()));
                prop_assert_eq!(t, target);
            }

            #[test]
            fn merged_objects_never_gain_nulls_from_a_patch(target in json_value(), patch in json_value()) {
                prop_assume!(patch.is_object() && !has_null_member(&target));
                let mut t = target.clone();
                merge_patch(&mut t, &patch);
                // A null in a patch object means "remove", so it never lands in the result.
                prop_assert!(!has_null_member(&t));
            }
        }
    }
}
