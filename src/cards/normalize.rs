//! Brings a V1, V2 or V3 card to the V3 shape without losing anything: unknown fields stay
//! where they were (root or `data`), and only fields the V3 spec requires are added, empty.
//! Values are not coerced: a field of an unexpected type is kept as it is; `null` counts as
//! missing. Normalising a normalised card changes nothing.

use serde_json::{Map, Value};

use super::book;
use super::CardError;

/// The spec a card was written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
    V3,
}

const V3_SPEC: &str = "chara_card_v3";

/// `data` fields every V3 card has; missing ones become empty strings.
const STRING_FIELDS: [&str; 11] = [
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
];

/// `data` fields every V3 card has; missing ones become empty arrays.
const ARRAY_FIELDS: [&str; 3] = ["alternate_greetings", "tags", "group_only_greetings"];

/// The card in V3 shape and the spec it came in. `place` names the source in error messages.
pub(crate) fn card(value: Value, place: &str) -> Result<(Value, Version), CardError> {
    let Value::Object(mut root) = value else {
        return Err(CardError::NotObject {
            place: place.to_owned(),
            found: kind_of(&value),
        });
    };
    let is_v3 = root.get("spec").and_then(Value::as_str) == Some(V3_SPEC);
    // A card with a `spec` or a `data` is V2 or later; a flat object is V1.
    let version = if is_v3 {
        Version::V3
    } else if root.contains_key("spec") || root.contains_key("data") {
        Version::V2
    } else {
        Version::V1
    };
    let mut data = match version {
        Version::V1 => std::mem::take(&mut root),
        Version::V2 | Version::V3 => match root.remove("data") {
            Some(Value::Object(data)) => data,
            _ => {
                let mut missing = vec!["data"];
                if !has_name(&root) {
                    missing.insert(0, "name");
                }
                return Err(CardError::MissingFields { fields: missing });
            }
        },
    };
    if !has_name(&data) {
        // Some V2 writers leave `data.name` empty and keep the V1 copy at the root.
        match root.get("name") {
            Some(name) if version != Version::V1 && is_non_blank(name) => {
                data.insert("name".into(), name.clone());
            }
            _ => {
                return Err(CardError::MissingFields {
                    fields: vec!["name"],
                })
            }
        }
    }
    fill_data(&mut data);
    if version != Version::V3 {
        root.insert("spec".into(), V3_SPEC.into());
        root.insert("spec_version".into(), "3.0".into());
    } else if root.get("spec_version").is_none_or(Value::is_null) {
        root.insert("spec_version".into(), "3.0".into());
    }
    root.insert("data".into(), Value::Object(data));
    Ok((Value::Object(root), version))
}

fn fill_data(data: &mut Map<String, Value>) {
    for field in STRING_FIELDS {
        fill(data, field, || Value::String(String::new()));
    }
    for field in ARRAY_FIELDS {
        fill(data, field, || Value::Array(Vec::new()));
    }
    fill(data, "extensions", || Value::Object(Map::new()));
    match data.get_mut("character_book") {
        Some(Value::Object(book)) => book::normalize(book),
        // The spec: a Lorebook object or undefined.
        Some(Value::Null) => {
            data.remove("character_book");
        }
        _ => {}
    }
}

/// Sets `field` to `default()` when it is missing or null.
pub(crate) fn fill(map: &mut Map<String, Value>, field: &str, default: impl FnOnce() -> Value) {
    match map.get_mut(field) {
        Some(value) if !value.is_null() => {}
        Some(value) => *value = default(),
        None => {
            map.insert(field.to_owned(), default());
        }
    }
}

fn has_name(map: &Map<String, Value>) -> bool {
    map.get("name").is_some_and(is_non_blank)
}

fn is_non_blank(value: &Value) -> bool {
    value.as_str().is_some_and(|s| !s.trim().is_empty())
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(value: Value) -> (Value, Version) {
        card(value, "The file").expect("normalises")
    }

    fn code(value: Value) -> String {
        card(value, "The file").unwrap_err().to_string()
    }

    #[test]
    fn a_v1_card_moves_every_field_into_data() {
        let (card, version) = ok(json!({
            "name": "Ann", "first_mes": "Hi", "avatar": "none", "metadata": {"tool": "x"}
        }));
        assert_eq!(version, Version::V1);
        assert_eq!(card["spec"], "chara_card_v3");
        assert_eq!(card["spec_version"], "3.0");
        assert_eq!(card["data"]["avatar"], "none");
        assert_eq!(card["data"]["metadata"]["tool"], "x");
        assert_eq!(card["data"]["group_only_greetings"], json!([]));
        assert_eq!(card["data"]["extensions"], json!({}));
        assert_eq!(
            card.as_object().unwrap().len(),
            3,
            "nothing left at the root"
        );
    }

    #[test]
    fn a_v2_card_keeps_root_extras_and_gains_v3_fields() {
        let (card, version) = ok(json!({
            "spec": "chara_card_v2", "spec_version": "2.0", "create_date": "2023",
            "name": "Ann", "data": {"name": "Ann", "x_custom": [1], "tags": ["a"],
            "extensions": {"talkativeness": "0.5"}}
        }));
        assert_eq!(version, Version::V2);
        assert_eq!(card["spec"], "chara_card_v3");
        assert_eq!(card["create_date"], "2023");
        assert_eq!(card["name"], "Ann");
        assert_eq!(card["data"]["x_custom"], json!([1]));
        assert_eq!(card["data"]["tags"], json!(["a"]));
        assert_eq!(card["data"]["extensions"]["talkativeness"], "0.5");
        assert_eq!(card["data"]["group_only_greetings"], json!([]));
        assert_eq!(card["data"]["personality"], "");
    }

    #[test]
    fn a_v3_card_is_kept_and_normalising_twice_changes_nothing() {
        let input = json!({
            "spec": "chara_card_v3", "spec_version": "3.1", "data": {"name": "Ann",
            "nickname": "A", "character_book": {"entries": [{"keys": ["k"], "content": "c"}]}}
        });
        let (once, version) = ok(input);
        assert_eq!(version, Version::V3);
        assert_eq!(
            once["spec_version"], "3.1",
            "a newer version is not rewritten"
        );
        let entry = &once["data"]["character_book"]["entries"][0];
        assert_eq!(entry["use_regex"], false);
        assert_eq!(entry["enabled"], true);
        let (twice, _) = ok(once.clone());
        assert_eq!(once, twice);
    }

    #[test]
    fn html_and_odd_types_are_kept_verbatim() {
        let html = "<img src=x onerror=alert(1)><b>{{char}}</b> &amp;";
        let (card, _) = ok(json!({"spec": "chara_card_v2", "data": {
            "name": "Ann", "description": html, "tags": "not, an, array"}}));
        assert_eq!(card["data"]["description"], html);
        assert_eq!(card["data"]["tags"], "not, an, array");
    }

    #[test]
    fn missing_required_fields_are_named() {
        assert!(code(json!({"first_mes": "Hi"})).contains("name"));
        assert!(code(json!({"name": "  ", "first_mes": "Hi"})).contains("name"));
        let err = card(json!({"spec": "chara_card_v2", "name": "Ann"}), "x").unwrap_err();
        assert_eq!(err.code(), "card_missing_fields");
        assert_eq!(
            err.to_string(),
            "The card is missing required fields: data."
        );
        let err = card(json!({"spec": "chara_card_v3", "data": {}}), "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "The card is missing required fields: name."
        );
        let err = card(json!([1, 2]), "The file").unwrap_err();
        assert_eq!(err.code(), "card_not_object");
    }

    #[test]
    fn a_v2_card_with_its_name_only_at_the_root_is_accepted() {
        let (card, _) = ok(json!({"spec": "chara_card_v2", "name": "Ann", "data": {"name": ""}}));
        assert_eq!(card["data"]["name"], "Ann");
    }
}
