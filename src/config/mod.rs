//! [ssr] The configuration: defaults, RFC 7396 merge, validation, migration of the earlier
//! server's flat `app.json`, and atomic persistence. The model itself is in `shared::config`.

mod file;
mod form;
mod merge;
mod migrate;
mod validate;

#[cfg(test)]
mod patch_props;

pub use file::{ConfigStore, LoadReport};
pub use form::patch_from_form;
pub use merge::merge_patch;
pub use migrate::migrate_flat_tts;
pub use validate::{is_plain_file_name, validate};

use crate::shared::{config::AppConfig, AppError, FieldError};
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

impl From<ConfigError> for AppError {
    fn from(err: ConfigError) -> Self {
        match err {
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

/// Applies a partial document to `current` as a JSON Merge Patch (RFC 7396): objects merge at
/// every depth, `null` resets a field to its default, arrays replace, an absent `api_key` keeps the
/// stored key. The earlier server's flat `tts` fields are accepted and moved to the provider they
/// belong to. Nothing is saved here.
pub fn apply_patch(current: &AppConfig, mut patch: Value) -> Result<AppConfig, ConfigError> {
    if !patch.is_object() {
        return Err(ConfigError::NotAnObject);
    }
    strip_read_only(&mut patch);
    migrate_flat_tts(&mut patch, current.tts.provider);
    let mut doc = serde_json::to_value(current).unwrap_or(Value::Null);
    strip_read_only(&mut doc);
    merge_patch(&mut doc, &patch);
    from_document(&doc)
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
