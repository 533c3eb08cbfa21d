//! A card's JSON and the form's typed fields ([`CardFields`]). Reading picks the fields out;
//! writing puts them back into the same JSON, so every field the form does not know (extensions,
//! assets, a lorebook entry's own settings) stays as it was.

use crate::shared::cards::{
    CardFields, LoreEntryFields, LorePosition, LorebookFields, DEFAULT_SCAN_DEPTH,
    DEFAULT_TOKEN_BUDGET,
};
use crate::shared::FieldError;
use serde_json::{json, Map, Value};

/// The main prompt of a card that has none (SillyTavern's default). A card's own
/// `system_prompt` may include it as `{{original}}`.
pub const DEFAULT_MAIN_PROMPT: &str =
    "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}.";

/// Follows a card's main prompt, unless it already asks for these tags: the avatar's face
/// follows them, and cards are written for apps without a face.
pub const EMOTION_LINE: &str = "Begin every reply with exactly one emotion tag that fits it, \
     chosen from [happy], [sad], [angry], [relaxed], [surprised] and [neutral].";

/// Caps on what a form may save: long enough for any published card, short enough that one
/// save cannot fill the disk.
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_TEXT_CHARS: usize = 100_000;
pub const MAX_LIST_ITEMS: usize = 1_000;

/// An empty V3 card with a name and main prompt: what a character made here starts as.
pub fn blank_card(name: &str, system_prompt: &str) -> Value {
    json!({
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": name,
            "description": "",
            "personality": "",
            "scenario": "",
            "first_mes": "",
            "mes_example": "",
            "creator_notes": "",
            "system_prompt": system_prompt,
            "post_history_instructions": "",
            "alternate_greetings": [],
            "tags": [],
            "creator": "",
            "character_version": "",
            "extensions": {},
            "group_only_greetings": [],
        }
    })
}

fn text(data: &Value, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn strings(data: &Value, key: &str) -> Vec<String> {
    match data.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        // Some tools write a comma-separated string where the spec has a list.
        Some(Value::String(s)) if !s.trim().is_empty() => {
            s.split(',').map(|k| k.trim().to_string()).collect()
        }
        _ => Vec::new(),
    }
}

fn number(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag(v: Option<&Value>, default: bool) -> bool {
    v.and_then(Value::as_bool).unwrap_or(default)
}

/// The `data` object of a card (a V1 card is its own data).
pub fn data(card: &Value) -> &Value {
    match card.get("data") {
        Some(d @ Value::Object(_)) => d,
        _ => card,
    }
}

pub fn fields_of(card: &Value) -> CardFields {
    let d = data(card);
    CardFields {
        name: text(d, "name"),
        nickname: text(d, "nickname"),
        description: text(d, "description"),
        personality: text(d, "personality"),
        scenario: text(d, "scenario"),
        first_mes: text(d, "first_mes"),
        alternate_greetings: strings(d, "alternate_greetings"),
        mes_example: text(d, "mes_example"),
        system_prompt: text(d, "system_prompt"),
        post_history_instructions: text(d, "post_history_instructions"),
        creator_notes: text(d, "creator_notes"),
        creator: text(d, "creator"),
        character_version: text(d, "character_version"),
        tags: strings(d, "tags"),
        book: d.get("character_book").and_then(book_of),
    }
}

/// A lorebook's fields; `None` for anything that is not an object.
pub fn book_of(book: &Value) -> Option<LorebookFields> {
    let obj = book.as_object()?;
    let list = entry_list(obj.get("entries"));
    let ids = entry_ids(&list);
    let entries = list
        .iter()
        .zip(ids)
        .filter_map(|(e, id)| {
            let mut fields = entry_of(e)?;
            fields.id = Some(id);
            Some(fields)
        })
        .collect();
    Some(LorebookFields {
        name: text(book, "name"),
        scan_depth: number(obj.get("scan_depth"))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_SCAN_DEPTH),
        token_budget: number(obj.get("token_budget"))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_TOKEN_BUDGET),
        recursive_scanning: flag(obj.get("recursive_scanning"), false),
        entries,
    })
}

/// A book's entries: a list, or (SillyTavern's own files) an object keyed by number.
fn entry_list(entries: Option<&Value>) -> Vec<Value> {
    match entries {
        Some(Value::Array(list)) => list.clone(),
        Some(Value::Object(map)) => map.values().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Each entry's id: its own when it has a unique one, else the next free number, in order.
/// Reading and saving number the same stored book the same way, so the form's entries find
/// their stored selves (and their unknown fields) even in books without ids.
fn entry_ids(entries: &[Value]) -> Vec<i64> {
    let mut next = entries
        .iter()
        .filter_map(|e| number(e.get("id")))
        .max()
        .unwrap_or(0)
        .max(0);
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .map(|e| match number(e.get("id")) {
            Some(id) if seen.insert(id) => id,
            _ => {
                next += 1;
                seen.insert(next);
                next
            }
        })
        .collect()
}

fn entry_of(e: &Value) -> Option<LoreEntryFields> {
    let obj = e.as_object()?;
    let name = [text(e, "name"), text(e, "comment")]
        .into_iter()
        .find(|n| !n.trim().is_empty())
        .unwrap_or_default();
    let position = match obj.get("position") {
        Some(Value::String(p)) if p == "after_char" => LorePosition::AfterChar,
        Some(Value::Number(n)) if n.as_i64() == Some(1) => LorePosition::AfterChar,
        _ => LorePosition::BeforeChar,
    };
    Some(LoreEntryFields {
        id: number(obj.get("id")),
        name,
        keys: strings(e, "keys"),
        secondary_keys: strings(e, "secondary_keys"),
        content: text(e, "content"),
        enabled: flag(obj.get("enabled"), true),
        constant: flag(obj.get("constant"), false),
        selective: flag(obj.get("selective"), false),
        case_sensitive: flag(obj.get("case_sensitive"), false),
        use_regex: flag(obj.get("use_regex"), false),
        insertion_order: number(obj.get("insertion_order")).unwrap_or(100),
        position,
    })
}

/// Writes the form's fields into `card`'s data; fields the form does not carry stay.
pub fn apply(card: &mut Value, f: &CardFields) {
    if !card.get("data").is_some_and(Value::is_object) {
        *card = blank_card(&f.name, &f.system_prompt);
    }
    let Some(d) = card.get_mut("data").and_then(Value::as_object_mut) else {
        return;
    };
    let mut put = |k: &str, v: &str| {
        d.insert(k.into(), Value::String(v.to_string()));
    };
    put("name", f.name.trim());
    put("description", &f.description);
    put("personality", &f.personality);
    put("scenario", &f.scenario);
    put("first_mes", &f.first_mes);
    put("mes_example", &f.mes_example);
    put("system_prompt", &f.system_prompt);
    put("post_history_instructions", &f.post_history_instructions);
    put("creator_notes", &f.creator_notes);
    put("creator", &f.creator);
    put("character_version", &f.character_version);
    // `nickname` is optional in the spec: absent rather than empty.
    if f.nickname.trim().is_empty() {
        d.remove("nickname");
    } else {
        d.insert("nickname".into(), Value::String(f.nickname.trim().into()));
    }
    d.insert("alternate_greetings".into(), json!(f.alternate_greetings));
    let tags: Vec<&str> = f
        .tags
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    d.insert("tags".into(), json!(tags));
    match &f.book {
        None => {
            d.remove("character_book");
        }
        Some(book) => {
            let old = d.remove("character_book");
            d.insert("character_book".into(), write_book(old, book));
        }
    }
}

fn write_book(old: Option<Value>, f: &LorebookFields) -> Value {
    let mut book = match old {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let old_entries = entry_list(book.remove("entries").as_ref());
    let old_ids = entry_ids(&old_entries);
    let mut next = old_ids.iter().copied().max().unwrap_or(0).max(0);
    let mut entries = Vec::with_capacity(f.entries.len());
    for e in &f.entries {
        // The stored entry this one edits (new entries have no id, or one not stored).
        let base =
            e.id.and_then(|id| old_ids.iter().position(|o| *o == id))
                .and_then(|i| old_entries.get(i))
                .cloned();
        let id = match (e.id, &base) {
            (Some(id), Some(_)) => id,
            _ => {
                next += 1;
                next
            }
        };
        entries.push(write_entry(base, e, id));
    }
    if !f.name.trim().is_empty() || book.contains_key("name") {
        book.insert("name".into(), Value::String(f.name.trim().into()));
    }
    book.insert("scan_depth".into(), json!(f.scan_depth));
    book.insert("token_budget".into(), json!(f.token_budget));
    book.insert("recursive_scanning".into(), json!(f.recursive_scanning));
    book.entry("extensions").or_insert_with(|| json!({}));
    book.insert("entries".into(), Value::Array(entries));
    Value::Object(book)
}

fn write_entry(old: Option<Value>, e: &LoreEntryFields, id: i64) -> Value {
    let mut m = match old {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.insert("id".into(), json!(id));
    m.insert("keys".into(), json!(clean_list(&e.keys)));
    m.insert(
        "secondary_keys".into(),
        json!(clean_list(&e.secondary_keys)),
    );
    m.insert("content".into(), json!(e.content));
    m.insert("enabled".into(), json!(e.enabled));
    m.insert("constant".into(), json!(e.constant));
    m.insert("selective".into(), json!(e.selective));
    m.insert("case_sensitive".into(), json!(e.case_sensitive));
    m.insert("use_regex".into(), json!(e.use_regex));
    m.insert("insertion_order".into(), json!(e.insertion_order));
    m.insert(
        "position".into(),
        json!(match e.position {
            LorePosition::BeforeChar => "before_char",
            LorePosition::AfterChar => "after_char",
        }),
    );
    m.insert("name".into(), json!(e.name.trim()));
    m.entry("extensions").or_insert_with(|| json!({}));
    Value::Object(m)
}

fn clean_list(items: &[String]) -> Vec<&str> {
    items
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .collect()
}

/// Adds a lorebook's entries (a V3 `character_book`) to the card's own book, creating it when
/// the card has none. Added entries get ids after the largest in use, so the form can tell them
/// apart. Returns how many were added.
pub fn attach_book(card: &mut Value, book: &Value) -> usize {
    let incoming: Vec<Value> = match book.get("entries") {
        Some(Value::Array(list)) => list.clone(),
        Some(Value::Object(map)) => map.values().cloned().collect(),
        _ => Vec::new(),
    };
    if !card.get("data").is_some_and(Value::is_object) {
        return 0;
    }
    let Some(d) = card.get_mut("data").and_then(Value::as_object_mut) else {
        return 0;
    };
    let target = d.entry("character_book").or_insert_with(|| {
        let mut fresh = book.as_object().cloned().unwrap_or_default();
        fresh.insert("entries".into(), json!([]));
        fresh.entry("extensions").or_insert_with(|| json!({}));
        Value::Object(fresh)
    });
    if !target.is_object() {
        *target = json!({"entries": [], "extensions": {}});
    }
    let Some(obj) = target.as_object_mut() else {
        return 0;
    };
    let entries = obj.entry("entries").or_insert_with(|| json!([]));
    if let Value::Object(map) = entries {
        *entries = Value::Array(map.values().cloned().collect());
    }
    let Value::Array(list) = entries else {
        return 0;
    };
    // Entries already there keep the ids the form knows them by.
    let ids = entry_ids(list);
    for (e, id) in list.iter_mut().zip(&ids) {
        if let Some(m) = e.as_object_mut() {
            m.insert("id".into(), json!(id));
        }
    }
    let mut next = ids.into_iter().max().unwrap_or(0).max(0);
    for mut e in incoming {
        if let Some(m) = e.as_object_mut() {
            next += 1;
            m.insert("id".into(), json!(next));
        }
        list.push(e);
    }
    list.len()
}

/// The problems of a form, each naming its field.
pub fn problems(f: &CardFields) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut bad = |path: String, message: String| out.push(FieldError { path, message });
    if f.name.trim().is_empty() {
        bad("name".into(), "is required".into());
    }
    if f.name.chars().count() > MAX_NAME_CHARS || f.nickname.chars().count() > MAX_NAME_CHARS {
        let field = if f.name.chars().count() > MAX_NAME_CHARS {
            "name"
        } else {
            "nickname"
        };
        bad(
            field.into(),
            format!("can have at most {MAX_NAME_CHARS} characters"),
        );
    }
    let texts = [
        ("description", &f.description),
        ("personality", &f.personality),
        ("scenario", &f.scenario),
        ("first_mes", &f.first_mes),
        ("mes_example", &f.mes_example),
        ("system_prompt", &f.system_prompt),
        ("post_history_instructions", &f.post_history_instructions),
        ("creator_notes", &f.creator_notes),
        ("creator", &f.creator),
        ("character_version", &f.character_version),
    ];
    for (path, value) in texts {
        if value.chars().count() > MAX_TEXT_CHARS {
            bad(
                path.into(),
                format!("can have at most {MAX_TEXT_CHARS} characters"),
            );
        }
    }
    for (path, list) in [
        ("alternate_greetings", &f.alternate_greetings),
        ("tags", &f.tags),
    ] {
        if list.len() > MAX_LIST_ITEMS {
            bad(
                path.into(),
                format!("can have at most {MAX_LIST_ITEMS} items"),
            );
        }
        for (i, item) in list.iter().enumerate() {
            if item.chars().count() > MAX_TEXT_CHARS {
                bad(
                    format!("{path}[{i}]"),
                    format!("can have at most {MAX_TEXT_CHARS} characters"),
                );
            }
        }
    }
    if let Some(book) = &f.book {
        if book.entries.len() > MAX_LIST_ITEMS {
            bad(
                "book.entries".into(),
                format!("can have at most {MAX_LIST_ITEMS} entries"),
            );
        }
        for (i, e) in book.entries.iter().enumerate() {
            if e.content.chars().count() > MAX_TEXT_CHARS {
                bad(
                    format!("book.entries[{i}].content"),
                    format!("can have at most {MAX_TEXT_CHARS} characters"),
                );
            }
            if e.use_regex {
                for k in e.keys.iter().chain(&e.secondary_keys) {
                    if let Err(err) = super::lore::compile(k, e.case_sensitive) {
                        bad(
                            format!("book.entries[{i}].keys"),
                            format!("{k:?} is not a valid regular expression: {err}"),
                        );
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Value {
        json!({
            "spec": "chara_card_v3",
            "spec_version": "3.0",
            "data": {
                "name": "Mira",
                "description": "A <b>lighthouse</b> keeper.",
                "first_mes": "Hello, {{user}}.",
                "alternate_greetings": ["Hi.", "Evening."],
                "tags": ["sea"],
                "extensions": {"depth_prompt": {"prompt": "x", "depth": 4}},
                "x_tool_field": 7,
                "character_book": {
                    "name": "Coast",
                    "extensions": {"kept": true},
                    "entries": [
                        {"id": 3, "keys": ["lamp"], "content": "The lamp is old.", "enabled": true,
                         "insertion_order": 10, "extensions": {"probability": 50}},
                        {"keys": ["storm"], "content": "Storms come in autumn.", "enabled": false,
                         "insertion_order": 5, "position": "after_char", "comment": "Storms"}
                    ]
                }
            }
        })
    }

    #[test]
    fn fields_round_trip_and_unknown_fields_stay() {
        let original = card();
        let f = fields_of(&original);
        assert_eq!(f.name, "Mira");
        assert_eq!(f.alternate_greetings, ["Hi.", "Evening."]);
        let book = f.book.clone().unwrap();
        assert_eq!(book.entries.len(), 2);
        assert_eq!(book.entries[1].name, "Storms");
        assert_eq!(book.entries[1].position, LorePosition::AfterChar);
        assert!(!book.entries[1].enabled);

        let mut edited = original.clone();
        let mut g = f.clone();
        g.description = "A keeper.".into();
        g.book.as_mut().unwrap().entries[0].content = "The lamp is new.".into();
        apply(&mut edited, &g);
        let d = &edited["data"];
        assert_eq!(d["description"], "A keeper.");
        assert_eq!(d["x_tool_field"], 7);
        assert_eq!(d["extensions"]["depth_prompt"]["depth"], 4);
        assert_eq!(d["character_book"]["extensions"]["kept"], true);
        let e0 = &d["character_book"]["entries"][0];
        assert_eq!(e0["content"], "The lamp is new.");
        assert_eq!(e0["extensions"]["probability"], 50);
        assert_eq!(d["character_book"]["entries"][1]["comment"], "Storms");
        // Saving unchanged fields reads back the same fields.
        assert_eq!(fields_of(&edited), g);
    }

    #[test]
    fn removing_an_entry_keeps_the_others_own_fields() {
        let mut c = card();
        let mut f = fields_of(&c);
        f.book.as_mut().unwrap().entries.remove(0);
        apply(&mut c, &f);
        let entries = c["data"]["character_book"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["comment"], "Storms");
        f.book = None;
        apply(&mut c, &f);
        assert!(c["data"].get("character_book").is_none());
    }

    #[test]
    fn attached_entries_join_the_book_with_new_ids() {
        let mut c = card();
        let added = attach_book(
            &mut c,
            &json!({"name": "World", "entries": [{"keys": ["reef"], "content": "A reef."}]}),
        );
        assert_eq!(added, 3);
        let entries = c["data"]["character_book"]["entries"].as_array().unwrap();
        // The stored entry without an id is numbered as the form numbers it (4), the new one next.
        assert_eq!(entries[1]["id"], 4);
        assert_eq!(entries[2]["id"], 5);
        let mut bare = blank_card("Ann", "");
        assert_eq!(
            attach_book(
                &mut bare,
                &json!({"name": "W", "entries": [{"keys": ["a"]}]})
            ),
            1
        );
        assert_eq!(bare["data"]["character_book"]["name"], "W");
    }

    #[test]
    fn problems_name_their_fields() {
        let mut f = fields_of(&card());
        f.name = "  ".into();
        f.scenario = "x".repeat(MAX_TEXT_CHARS + 1);
        let mut book = f.book.clone().unwrap();
        book.entries[0].use_regex = true;
        book.entries[0].keys = vec!["(unclosed".into()];
        f.book = Some(book);
        let paths: Vec<String> = problems(&f).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["name", "scenario", "book.entries[0].keys"]);
        assert!(problems(&fields_of(&card())).is_empty());
    }
}
