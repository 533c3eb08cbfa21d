//! Lorebook files: SillyTavern World Info, `lorebook_v3`, a bare `character_book` or a card
//! that has one, each read into a V3 `character_book`. Also fills the fields the V3 spec
//! requires of a book and its entries, for books inside cards.

use serde_json::{json, Map, Value};

use super::normalize::fill;
use super::{normalize, parse_json, CardError};

/// Reads a lorebook file into a V3 `character_book` object.
pub fn import_lorebook(bytes: &[u8]) -> Result<Value, CardError> {
    if bytes.len() > super::MAX_IMPORT_BYTES {
        return Err(CardError::TooLarge);
    }
    let value = parse_json(bytes, "The file")?;
    let Value::Object(mut root) = value else {
        return Err(CardError::LorebookUnrecognised);
    };
    let spec = root.get("spec").and_then(Value::as_str).map(str::to_owned);
    let mut book = match spec.as_deref() {
        Some("lorebook_v3") => match root.remove("data") {
            Some(Value::Object(data)) => data,
            _ => return Err(CardError::LorebookUnrecognised),
        },
        Some(_) => card_book(Value::Object(root))?,
        None => match root.get("entries") {
            Some(Value::Object(_)) => from_world_info(root),
            Some(Value::Array(_)) => root,
            _ if root.contains_key("data") || root.contains_key("character_book") => {
                card_book(Value::Object(root))?
            }
            _ => return Err(CardError::LorebookUnrecognised),
        },
    };
    normalize(&mut book);
    Ok(Value::Object(book))
}

/// The `character_book` of a card of any version.
fn card_book(card: Value) -> Result<Map<String, Value>, CardError> {
    let (mut card, _) =
        normalize::card(card, "The file").map_err(|_| CardError::LorebookUnrecognised)?;
    let book = card
        .get_mut("data")
        .and_then(|data| data.get_mut("character_book"))
        .map(Value::take);
    match book {
        Some(Value::Object(book)) => Ok(book),
        _ => Err(CardError::LorebookUnrecognised),
    }
}

/// Adds the fields the V3 spec requires of a book and of each entry, keeping all others.
pub(crate) fn normalize(book: &mut Map<String, Value>) {
    fill(book, "extensions", || Value::Object(Map::new()));
    fill(book, "entries", || Value::Array(Vec::new()));
    let Some(Value::Array(entries)) = book.get_mut("entries") else {
        return;
    };
    for entry in entries {
        let Value::Object(entry) = entry else {
            continue;
        };
        fill(entry, "keys", || Value::Array(Vec::new()));
        fill(entry, "content", || Value::String(String::new()));
        fill(entry, "extensions", || Value::Object(Map::new()));
        fill(entry, "enabled", || Value::Bool(true));
        fill(entry, "insertion_order", || json!(0));
        fill(entry, "use_regex", || Value::Bool(false));
    }
}

/// SillyTavern's World Info (`{"entries": {"0": {uid, key, keysecondary, ...}}}`) as a V3 book.
/// Fields with a V3 equivalent are mapped; every original field except the texts moved
/// verbatim (`key`, `keysecondary`, `content`, `comment`) stays in the entry's `extensions`, so
/// SillyTavern's own settings (position numbers, depth, probability, ...) survive.
fn from_world_info(mut root: Map<String, Value>) -> Map<String, Value> {
    let Some(Value::Object(entries)) = root.remove("entries") else {
        return Map::new();
    };
    let mut entries: Vec<(String, Value)> = entries.into_iter().collect();
    // Map keys are "0", "1", ... "10": order them as numbers, as SillyTavern shows them.
    entries.sort_by(
        |(a, _), (b, _)| match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => a.cmp(b),
        },
    );
    let entries: Vec<Value> = entries
        .into_iter()
        .filter_map(|(_, entry)| match entry {
            Value::Object(entry) => Some(Value::Object(world_info_entry(entry))),
            _ => None,
        })
        .collect();
    let mut book = Map::new();
    // Book-level fields SillyTavern may add (name, originalData, ...) stay as extensions.
    book.insert("extensions".into(), Value::Object(root));
    book.insert("entries".into(), Value::Array(entries));
    book
}

fn world_info_entry(mut st: Map<String, Value>) -> Map<String, Value> {
    let keys = string_list(st.remove("key"));
    let secondary_keys = string_list(st.remove("keysecondary"));
    let content = st.remove("content").unwrap_or_else(|| "".into());
    let comment = st.remove("comment").unwrap_or_else(|| "".into());
    let flag = |name: &str| st.get(name).and_then(Value::as_bool).unwrap_or(false);
    let position = match st.get("position").and_then(Value::as_i64) {
        Some(1) => "after_char",
        _ => "before_char",
    };
    let use_regex = !keys.is_empty() && keys.iter().all(|k| is_regex_key(k));
    let mut entry = Map::new();
    entry.insert("keys".into(), json!(keys));
    entry.insert("secondary_keys".into(), json!(secondary_keys));
    entry.insert("content".into(), content);
    entry.insert("enabled".into(), Value::Bool(!flag("disable")));
    entry.insert(
        "insertion_order".into(),
        st.get("order")
            .filter(|v| v.is_number())
            .cloned()
            .unwrap_or(json!(100)),
    );
    if let Some(case) = st.get("caseSensitive").and_then(Value::as_bool) {
        entry.insert("case_sensitive".into(), Value::Bool(case));
    }
    entry.insert("use_regex".into(), Value::Bool(use_regex));
    entry.insert("constant".into(), Value::Bool(flag("constant")));
    entry.insert("selective".into(), Value::Bool(flag("selective")));
    entry.insert("name".into(), comment.clone());
    entry.insert("comment".into(), comment);
    if let Some(uid) = st.get("uid").filter(|v| v.is_number() || v.is_string()) {
        entry.insert("id".into(), uid.clone());
    }
    entry.insert("position".into(), position.into());
    // An entry may already carry extensions of its own; the original fields go beside them.
    let mut extensions = match st.remove("extensions") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (field, value) in st {
        extensions.entry(field).or_insert(value);
    }
    entry.insert("extensions".into(), Value::Object(extensions));
    entry
}

/// SillyTavern's keys: an array of strings, or in old files one comma-separated string.
fn string_list(value: Option<Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// SillyTavern's regex keys look like `/pattern/flags`.
fn is_regex_key(key: &str) -> bool {
    let Some(body) = key.strip_prefix('/') else {
        return false;
    };
    match body.rfind('/') {
        Some(end) => {
            end > 0
                && body[end + 1..]
                    .chars()
                    .all(|c| matches!(c, 'd' | 'g' | 'i' | 'm' | 's' | 'u' | 'v' | 'y'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(value: Value) -> Result<Value, CardError> {
        import_lorebook(value.to_string().as_bytes())
    }

    #[test]
    fn sillytavern_world_info_becomes_v3_entries() {
        let book = import(json!({"entries": {
            "10": {"uid": 10, "key": ["late"], "content": "ten", "order": 5, "position": 1},
            "2": {"uid": 2, "key": ["/dra(g|k)on/i", "/wyrm/"], "keysecondary": ["cave"],
                  "comment": "Dragons", "content": "<b>fire</b>", "constant": true,
                  "selective": true, "selectiveLogic": 0, "order": 100, "position": 4,
                  "disable": true, "caseSensitive": null, "depth": 4,
                  "extensions": {"x_tool": 1}}
        }}))
        .unwrap();
        let entries = book["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        let dragons = &entries[0];
        assert_eq!(dragons["id"], 2, "numeric key order: 2 before 10");
        assert_eq!(dragons["keys"], json!(["/dra(g|k)on/i", "/wyrm/"]));
        assert_eq!(dragons["secondary_keys"], json!(["cave"]));
        assert_eq!(dragons["content"], "<b>fire</b>");
        assert_eq!(dragons["use_regex"], true);
        assert_eq!(dragons["enabled"], false);
        assert_eq!(dragons["constant"], true);
        assert_eq!(dragons["selective"], true);
        assert_eq!(dragons["insertion_order"], 100);
        assert_eq!(dragons["name"], "Dragons");
        assert_eq!(dragons["comment"], "Dragons");
        assert_eq!(
            dragons["position"], "before_char",
            "ST position 4 has no V3 twin"
        );
        assert!(
            dragons.get("case_sensitive").is_none(),
            "null stays undefined"
        );
        let ext = &dragons["extensions"];
        assert_eq!(ext["position"], 4);
        assert_eq!(ext["selectiveLogic"], 0);
        assert_eq!(ext["depth"], 4);
        assert_eq!(ext["x_tool"], 1);
        let late = &entries[1];
        assert_eq!(late["position"], "after_char");
        assert_eq!(late["use_regex"], false);
        assert_eq!(late["insertion_order"], 5);
        assert_eq!(book["extensions"], json!({}));
    }

    #[test]
    fn a_key_list_of_plain_words_is_not_regex() {
        assert!(is_regex_key("/a/"));
        assert!(is_regex_key("/a|b/gi"));
        assert!(!is_regex_key("/"));
        assert!(!is_regex_key("//"));
        assert!(!is_regex_key("/a/x"));
        assert!(!is_regex_key("and/or"));
        let book = import(json!({"entries": {"0": {"key": ["/a/", "plain"]}}})).unwrap();
        assert_eq!(book["entries"][0]["use_regex"], false);
    }

    #[test]
    fn lorebook_v3_bare_books_and_cards_are_read() {
        let inner = json!({"name": "B", "entries": [{"keys": ["k"], "content": "c",
            "x_extra": true}]});
        for file in [
            json!({"spec": "lorebook_v3", "data": inner}),
            inner.clone(),
            json!({"spec": "chara_card_v2", "data": {"name": "Ann", "character_book": inner}}),
            json!({"spec": "chara_card_v3", "data": {"name": "Ann", "character_book": inner}}),
        ] {
            let book = import(file.clone()).unwrap();
            assert_eq!(book["name"], "B", "{file}");
            assert_eq!(book["entries"][0]["x_extra"], true);
            assert_eq!(book["entries"][0]["use_regex"], false);
            assert_eq!(book["extensions"], json!({}));
        }
    }

    #[test]
    fn other_files_are_unrecognised() {
        for file in [
            json!({"hello": 1}),
            json!([1]),
            json!({"spec": "chara_card_v2", "data": {"name": "Ann"}}),
            json!({"spec": "lorebook_v3"}),
        ] {
            let err = import(file).unwrap_err();
            assert_eq!(err.code(), "lorebook_unrecognised");
            assert_eq!(err.status(), 400);
        }
        assert_eq!(
            import_lorebook(b"{oops").unwrap_err().code(),
            "card_bad_json"
        );
    }

    #[test]
    fn the_bundled_sillytavern_world_info_imports() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cards/eldoria_world_info.json"
        );
        let book = import_lorebook(&std::fs::read(path).unwrap()).unwrap();
        let entries = book["entries"].as_array().unwrap();
        assert!(!entries.is_empty());
        assert_eq!(entries[0]["keys"][0], "eldoria");
        assert!(entries[0]["content"].as_str().unwrap().contains("Eldoria"));
        assert_eq!(entries[0]["enabled"], true);
        assert_eq!(entries[0]["position"], "before_char");
        for entry in entries {
            assert!(entry["use_regex"].is_boolean());
            assert!(entry["extensions"].is_object());
        }
    }
}
