//! Writing a stored V3 card out as JSON, PNG or CHARX. Each output imports back to the same
//! card JSON.

use std::io::{Cursor, Write as _};

use serde_json::{json, Value};
use zip::write::SimpleFileOptions;

use super::{charx, encode_base64, png, CardError, EmbeddedFile, Image};

/// The card as pretty-printed JSON.
pub fn to_json(card: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(card).unwrap_or_else(|_| card.to_string().into());
    out.push(b'\n');
    out
}

/// A PNG card: the portrait if it is a PNG (its old card chunks removed), else a plain
/// generated image, carrying the card twice: `ccv3` (the V3 card) and `chara` (the same card
/// labelled V2, for tools that only read V2; V3 fields are extra fields to them).
pub fn to_png(card: &Value, portrait: Option<&Image>) -> Result<Vec<u8>, CardError> {
    let generated;
    let base: &[u8] = match portrait {
        Some(image) if image.media_type == "image/png" => &image.bytes,
        _ => {
            generated = png::generated_portrait();
            &generated
        }
    };
    let chunks = png::chunks(base)?;
    let v3 = encode_base64(card.to_string().as_bytes());
    let v2 = encode_base64(as_v2(card).to_string().as_bytes());
    Ok(png::with_text(&chunks, &[("chara", &v2), ("ccv3", &v3)]))
}

/// The card labelled as a V2 card; `data` and the root's other fields unchanged.
fn as_v2(card: &Value) -> Value {
    let mut v2 = card.clone();
    if let Value::Object(root) = &mut v2 {
        root.insert("spec".into(), "chara_card_v2".into());
        root.insert("spec_version".into(), "2.0".into());
    }
    v2
}

/// A CHARX file: `card.json`, the portrait as `assets/icon/images/main.<ext>` and the avatar
/// as `assets/other/vrm/<name>`, with `data.assets` entries pointing at them. The icon entry
/// named `main` is replaced; other asset entries are kept as they are.
pub fn to_charx(
    card: &Value,
    portrait: Option<&Image>,
    avatar: Option<&EmbeddedFile>,
) -> Result<Vec<u8>, CardError> {
    let mut card = card.clone();
    let mut files: Vec<(String, &[u8])> = Vec::new();
    if let Some(image) = portrait {
        let ext = image.extension();
        let path = format!("assets/icon/images/main.{ext}");
        let entry = json!({"type": "icon", "uri": format!("embeded://{path}"),
            "name": "main", "ext": ext});
        set_asset(&mut card, entry, |a| {
            a["type"] == "icon" && a["name"] == "main"
        });
        files.push((path, &image.bytes));
    }
    if let Some(file) = avatar {
        let name = safe_file_name(&file.name);
        let path = format!("assets/other/vrm/{name}");
        let uri = format!("embeded://{path}");
        let stem = name
            .rsplit_once('.')
            .map_or(name.as_str(), |(stem, _)| stem);
        let entry = json!({"type": "other", "uri": uri, "name": stem, "ext": "vrm"});
        set_asset(&mut card, entry, |a| {
            charx::embedded_path(a).is_some_and(|p| p == path)
        });
        files.push((path, &file.bytes));
    }

    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("card.json", options)
        .map_err(CardError::CharxWrite)?;
    zip.write_all(&to_json(&card))
        .map_err(|e| CardError::CharxWrite(e.into()))?;
    for (path, bytes) in files {
        zip.start_file(path, options)
            .map_err(CardError::CharxWrite)?;
        zip.write_all(bytes)
            .map_err(|e| CardError::CharxWrite(e.into()))?;
    }
    Ok(zip.finish().map_err(CardError::CharxWrite)?.into_inner())
}

/// Replaces the first asset entry `matches` accepts with `entry`, or adds it (an icon first).
fn set_asset(card: &mut Value, entry: Value, matches: impl Fn(&Value) -> bool) {
    let Some(Value::Object(data)) = card.get_mut("data") else {
        return;
    };
    let assets = data
        .entry("assets")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !assets.is_array() {
        *assets = Value::Array(Vec::new());
    }
    let Value::Array(list) = assets else {
        return;
    };
    match list.iter_mut().find(|a| matches(a)) {
        Some(slot) => *slot = entry,
        None if entry["type"] == "icon" => list.insert(0, entry),
        None => list.push(entry),
    }
}

/// A plain file name for a zip entry: no folders, only letters, digits, `.`, `_` and `-`.
fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "avatar.vrm".to_owned()
    } else {
        cleaned.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avatar_names_cannot_leave_their_folder() {
        assert_eq!(safe_file_name("../../x.vrm"), "x.vrm");
        assert_eq!(safe_file_name("C:\\a\\b c.vrm"), "b_c.vrm");
        assert_eq!(safe_file_name(".."), "avatar.vrm");
        assert_eq!(safe_file_name("アバター.vrm"), "____.vrm");
    }
}
