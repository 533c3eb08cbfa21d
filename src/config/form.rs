//! The Setup tab's form, as `(name, value)` pairs named by dotted config paths, turned into a merge
//! patch. Empty key fields mean "keep the stored key"; a ticked `<path>.clear` box removes it.

use crate::shared::{config::TtsProvider, FieldError};
use serde_json::{Map, Value};

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Whole,
    Decimal,
    Secret,
    Clear,
    List,
}

const TOP_FIELDS: [(&str, Kind); 15] = [
    ("llm.provider", Kind::Text),
    ("llm.endpoint", Kind::Text),
    ("llm.model", Kind::Text),
    ("llm.temperature", Kind::Decimal),
    ("llm.max_tokens", Kind::Whole),
    ("llm.connect_timeout_ms", Kind::Whole),
    ("llm.first_token_timeout_ms", Kind::Whole),
    ("llm.idle_timeout_s", Kind::Whole),
    ("llm.total_timeout_s", Kind::Whole),
    ("llm.api_key", Kind::Secret),
    ("tts.provider", Kind::Text),
    ("tts.format", Kind::Text),
    ("tts.sample_rate", Kind::Whole),
    ("tts.fallback_chain", Kind::List),
    ("memory.max_history", Kind::Whole),
];

fn classify(path: &str) -> Option<Kind> {
    if path == "llm.api_key.clear" {
        return Some(Kind::Clear);
    }
    if let Some((_, kind)) = TOP_FIELDS.iter().find(|(p, _)| *p == path) {
        return Some(*kind);
    }
    let rest = path.strip_prefix("tts.providers.")?;
    let (provider, field) = rest.split_once('.')?;
    TtsProvider::from_name(provider)?;
    match field {
        // `binary` and `voice_path` are read here like any text, so that a page sending back the
        // stored value still saves; a change is refused by `ConfigStore::update_from_client`,
        // with the same message the REST API gives.
        "endpoint" | "voice_id" | "model" | "flavor" | "language" | "binary" | "voice_path" => {
            Some(Kind::Text)
        }
        "timeout_ms" => Some(Kind::Whole),
        "api_key" => Some(Kind::Secret),
        "api_key.clear" => Some(Kind::Clear),
        _ => None,
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
        ]))
        .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "memory.max_history",
                "llm.temperature",
                "llm.secret_backdoor",
                "tts.providers.nope.endpoint"
            ]
        );
    }
}
