//! The Setup tab's form, as `(name, value)` pairs named by dotted config paths, turned into a merge
//! patch. Empty key fields mean "keep the stored key"; a ticked `<path>.clear` box removes it.

use crate::shared::{
    config_form::{form_field, FieldKind},
    FieldError,
};
use serde_json::{Map, Value};

/// How one form entry is read.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Whole,
    Decimal,
    Bool,
    Secret,
    Clear,
    List,
}

/// How the entry named `path` is read, from the one table of settings
/// ([`crate::shared::config_form`]); `None` for anything the form may not change.
fn classify(path: &str) -> Option<Kind> {
    if let Some(key) = path.strip_suffix(".clear") {
        return (form_field(key)?.kind == FieldKind::Secret).then_some(Kind::Clear);
    }
    match form_field(path)?.kind {
        // A read-only setting is read like any text, so that a page sending back the stored
        // value still saves; a change is refused by `ConfigStore::update_from_client`, with the
        // same message the REST API gives.
        FieldKind::Text | FieldKind::ReadOnly => Some(Kind::Text),
        FieldKind::Whole => Some(Kind::Whole),
        FieldKind::Decimal => Some(Kind::Decimal),
        FieldKind::Switch => Some(Kind::Bool),
        FieldKind::Secret => Some(Kind::Secret),
        FieldKind::List => Some(Kind::List),
        FieldKind::NotOnForm => None,
    }
}

/// Builds a merge patch from form entries, or reports every field it could not read.
pub fn patch_from_form(entries: &[(String, String)]) -> Result<Value, Vec<FieldError>> {
    let mut patch = Value::Object(Map::new());
    let mut errors = Vec::new();
    let mut lists: Vec<(String, Vec<Value>)> = Vec::new();
    let mut clears = Vec::new();
    let mut error = |path: &str, message: &str| {
        errors.push(FieldError {
            path: path.to_string(),
            message: message.to_string(),
        })
    };
    for (path, raw) in entries {
        let value = raw.trim();
        match classify(path) {
            Some(Kind::Text) => set(&mut patch, path, Value::String(value.to_string())),
            Some(Kind::Whole) => match value.parse::<u64>() {
                Ok(n) => set(&mut patch, path, Value::from(n)),
                Err(_) => error(path, "must be a whole number"),
            },
            Some(Kind::Decimal) => match value.parse::<f64>() {
                Ok(n) if n.is_finite() => set(&mut patch, path, Value::from(n)),
                _ => error(path, "must be a number"),
            },
            Some(Kind::Bool) => match value {
                "true" | "on" => set(&mut patch, path, Value::Bool(true)),
                "false" | "off" => set(&mut patch, path, Value::Bool(false)),
                _ => error(path, "must be on or off"),
            },
            Some(Kind::Secret) => {
                if !value.is_empty() {
                    set(&mut patch, path, Value::String(value.to_string()));
                }
            }
            Some(Kind::Clear) => {
                if matches!(value, "on" | "true" | "1") {
                    clears.push(path.trim_end_matches(".clear").to_string());
                }
            }
            Some(Kind::List) => {
                let pos = match lists.iter().position(|(p, _)| p == path) {
                    Some(pos) => pos,
                    None => {
                        lists.push((path.clone(), Vec::new()));
                        lists.len() - 1
                    }
                };
                if !value.is_empty() {
                    lists[pos].1.push(Value::String(value.to_string()));
                }
            }
            None => error(path, "is not a setting this form can change"),
        }
    }
    for (path, items) in lists {
        set(&mut patch, &path, Value::Array(items));
    }
    // A ticked "remove key" wins over anything typed into the key field.
    for path in clears {
        set(&mut patch, &path, Value::Null);
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

fn set(patch: &mut Value, path: &str, value: Value) {
    let mut node = patch;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        node = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn builds_a_nested_patch() {
        let patch = patch_from_form(&e(&[
            ("llm.provider", "ollama"),
            ("llm.endpoint", " http://127.0.0.1:11434/v1 "),
            ("llm.max_tokens", "256"),
            ("llm.temperature", "0.5"),
            ("llm.idle_timeout_s", "45"),
            ("llm.total_timeout_s", "600"),
            ("llm.api_key", ""),
            ("tts.fallback_chain", ""),
            ("tts.fallback_chain", "espeak"),
            ("tts.fallback_chain", "piper_local"),
            ("tts.providers.fish_audio.api_key", "fish-key"),
            ("tts.providers.xtts_server.flavor", "coqui_server"),
        ]))
        .unwrap();
        assert_eq!(
            patch,
            json!({
                "llm": {"provider": "ollama", "endpoint": "http://127.0.0.1:11434/v1", "max_tokens": 256, "temperature": 0.5, "idle_timeout_s": 45, "total_timeout_s": 600},
                "tts": {"fallback_chain": ["espeak", "piper_local"], "providers": {
                    "fish_audio": {"api_key": "fish-key"},
                    "xtts_server": {"flavor": "coqui_server"}
                }}
            })
        );
    }

    #[test]
    fn the_form_reads_what_the_table_puts_on_it_and_nothing_else() {
        use crate::shared::{config::TtsProvider, config_form::FORM_FIELDS};
        for field in FORM_FIELDS {
            for provider in TtsProvider::ALL {
                let path = field.path_for(Some(provider));
                assert_eq!(
                    classify(&path).is_some(),
                    field.kind != FieldKind::NotOnForm,
                    "{path}"
                );
                assert_eq!(
                    classify(&format!("{path}.clear")).is_some(),
                    field.kind == FieldKind::Secret,
                    "{path}.clear"
                );
            }
        }
    }

    #[test]
    fn a_switch_is_the_last_of_its_hidden_false_and_its_ticked_true() {
        let on = patch_from_form(&e(&[("asr.barge_in", "false"), ("asr.barge_in", "true")]));
        assert_eq!(on.unwrap(), json!({"asr": {"barge_in": true}}));
        let off = patch_from_form(&e(&[("asr.barge_in", "false")]));
        assert_eq!(off.unwrap(), json!({"asr": {"barge_in": false}}));
        let bad = patch_from_form(&e(&[("asr.barge_in", "maybe")])).unwrap_err();
        assert_eq!(bad[0].path, "asr.barge_in");
    }

    #[test]
    fn empty_chain_marker_clears_the_chain() {
        let patch = patch_from_form(&e(&[("tts.fallback_chain", "")])).unwrap();
        assert_eq!(patch, json!({"tts": {"fallback_chain": []}}));
    }

    #[test]
    fn clear_box_removes_the_key() {
        let patch =
            patch_from_form(&e(&[("llm.api_key", "typed"), ("llm.api_key.clear", "on")])).unwrap();
        assert_eq!(patch, json!({"llm": {"api_key": null}}));
    }

    #[test]
    fn bad_numbers_and_unknown_fields_are_reported() {
        let errs = patch_from_form(&e(&[
            ("memory.max_history", "lots"),
            ("llm.temperature", "NaN"),
            ("llm.secret_backdoor", "x"),
            ("tts.providers.nope.endpoint", "x"),
            ("limits.chat_turns", "1"),
            ("llm.api_key_set", "true"),
            ("asr.api_key.clear", "on"),
        ]))
        .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "memory.max_history",
                "llm.temperature",
                "llm.secret_backdoor",
                "tts.providers.nope.endpoint",
                "limits.chat_turns",
                "llm.api_key_set",
                "asr.api_key.clear"
            ]
        );
    }
}
