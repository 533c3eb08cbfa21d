//! CHARX files (character-card-spec-v3): a zip archive with `card.json` at its top level and
//! the card's assets inside, referred to by `embeded://path` URIs (the spec's spelling;
//! `embedded://` is accepted too).
//!
//! Only the entries the app uses are unpacked: `card.json`, the icon and the first VRM. The
//! archive is untrusted: at most [`MAX_ENTRIES`] entries, at most [`MAX_UNPACKED_BYTES`]
//! unpacked in all (counted while inflating, whatever the headers claim), and entry names that
//! could point outside the archive (`..`, absolute paths, backslashes, drive letters) are never
//! looked up.

use std::io::{Cursor, Read as _};

use serde_json::Value;
use zip::ZipArchive;

use super::{
    normalize, parse_json, CardError, EmbeddedFile, Format, Image, Imported, MAX_IMPORT_BYTES,
};

/// The most a CHARX file may unpack to, in all.
pub(crate) const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;
/// The most entries a CHARX file may have.
pub(crate) const MAX_ENTRIES: usize = 512;

/// The URI prefixes of embedded assets: the spec's spelling first.
const EMBEDDED_PREFIXES: [&str; 2] = ["embeded://", "embedded://"];

pub(crate) fn import(bytes: &[u8]) -> Result<Imported, CardError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(CardError::TooLarge);
    }
    let mut archive = Archive::open(bytes)?;
    let card_json = archive.read("card.json")?.ok_or(CardError::CharxNoCard)?;
    let value = parse_json(&card_json, "The card.json file")?;
    let (mut card, _) = normalize::card(value, "The card.json file")?;

    let assets: Vec<Value> = card["data"]["assets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let icon_path = icon_asset(&assets).and_then(embedded_path);
    let portrait = match icon_path {
        Some(path) => archive.read(path)?.and_then(Image::sniff),
        None => None,
    };
    let (avatar_path, avatar) = first_vrm(&mut archive, &assets)?.unzip();

    // The icon and the VRM come out as files of their own, which the exports embed again; the
    // card keeps no reference to a zip entry that exists only in this file.
    let extracted: Vec<&str> = [portrait.as_ref().and(icon_path), avatar_path.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !extracted.is_empty() {
        if let Some(Value::Object(data)) = card.get_mut("data") {
            if let Some(Value::Array(list)) = data.get_mut("assets") {
                list.retain(|asset| embedded_path(asset).is_none_or(|p| !extracted.contains(&p)));
                if list.is_empty() {
                    data.remove("assets");
                }
            }
        }
    }
    Ok(Imported {
        card,
        format: Format::Charx,
        portrait,
        avatar,
    })
}

/// The icon asset: the one named `main`, else the first.
fn icon_asset(assets: &[Value]) -> Option<&Value> {
    let icons = || assets.iter().filter(|a| a["type"] == "icon");
    icons()
        .find(|a| a["name"] == "main")
        .or_else(|| icons().next())
}

/// The zip entry an asset's `embeded://` URI names.
pub(crate) fn embedded_path(asset: &Value) -> Option<&str> {
    let uri = asset["uri"].as_str()?;
    EMBEDDED_PREFIXES
        .iter()
        .find_map(|prefix| uri.strip_prefix(prefix))
}

fn is_vrm_name(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("vrm"))
}

/// The first VRM: an asset whose `ext` or name says so, else any `.vrm` entry of the archive.
fn first_vrm(
    archive: &mut Archive<'_>,
    assets: &[Value],
) -> Result<Option<(String, EmbeddedFile)>, CardError> {
    let listed = assets.iter().filter_map(|asset| {
        let path = embedded_path(asset)?;
        let is_vrm = asset["ext"]
            .as_str()
            .is_some_and(|e| e.eq_ignore_ascii_case("vrm"))
            || asset["name"].as_str().is_some_and(is_vrm_name)
            || is_vrm_name(path);
        is_vrm.then(|| path.to_owned())
    });
    let unlisted = archive.names().into_iter().filter(|name| is_vrm_name(name));
    let candidates: Vec<String> = listed.chain(unlisted).collect();
    for path in candidates {
        if let Some(bytes) = archive.read(&path)? {
            let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
            return Ok(Some((path, EmbeddedFile { name, bytes })));
        }
    }
    Ok(None)
}

/// Entry names that could mean a place outside the archive are never looked up.
pub(crate) fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains(':')
        && !name.contains('\0')
        && name.split('/').all(|part| part != ".." && part != ".")
}

/// A zip archive read under the caps.
struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    /// Bytes that may still be unpacked.
    budget: u64,
}

impl<'a> Archive<'a> {
    fn open(bytes: &'a [u8]) -> Result<Self, CardError> {
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(bad_zip)?;
        if zip.len() > MAX_ENTRIES {
            return Err(CardError::CharxTooLarge(format!(
                "it has {} entries, more than {MAX_ENTRIES}",
                zip.len()
            )));
        }
        Ok(Archive {
            zip,
            budget: MAX_UNPACKED_BYTES,
        })
    }

    /// The safe file names in the archive, in its order.
    fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter(|name| is_safe_name(name) && !name.ends_with('/'))
            .map(str::to_owned)
            .collect()
    }

    /// The unpacked bytes of the entry named exactly `name`; None if there is no such file or
    /// the name is unsafe.
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, CardError> {
        if !is_safe_name(name) {
            return Ok(None);
        }
        let Some(index) = self.zip.index_for_name(name) else {
            return Ok(None);
        };
        let file = self.zip.by_index(index).map_err(bad_zip)?;
        if file.is_dir() {
            return Ok(None);
        }
        let mut out = Vec::new();
        file.take(self.budget + 1)
            .read_to_end(&mut out)
            .map_err(|e| CardError::CharxBadZip(format!("{name} does not unpack ({e})")))?;
        let used = out.len() as u64;
        if used > self.budget {
            return Err(CardError::CharxTooLarge(format!(
                "it unpacks to more than {} MiB",
                MAX_UNPACKED_BYTES / (1024 * 1024)
            )));
        }
        self.budget -= used;
        Ok(Some(out))
    }
}

fn bad_zip(error: zip::result::ZipError) -> CardError {
    CardError::CharxBadZip(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write as _;
    use zip::write::SimpleFileOptions;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in files {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn card_with_assets(assets: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"spec": "chara_card_v3", "spec_version": "3.0",
            "data": {"name": "Ann", "first_mes": "Hi", "assets": assets}}))
        .unwrap()
    }

    #[test]
    fn the_icon_and_the_vrm_come_out_and_other_assets_stay() {
        let png = super::super::png::generated_portrait();
        let card = card_with_assets(json!([
            {"type": "icon", "uri": "embedded://assets/icon/images/other.png", "name": "alt", "ext": "png"},
            {"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"},
            {"type": "background", "uri": "https://example.com/bg.png", "name": "bg", "ext": "png"},
            {"type": "other", "uri": "embeded://assets/other/vrm/ann.vrm", "name": "ann", "ext": "vrm"},
        ]));
        let bytes = zip_of(&[
            ("card.json", &card),
            ("assets/icon/images/main.png", &png),
            ("assets/icon/images/other.png", b"not an image"),
            ("assets/other/vrm/ann.vrm", b"glTF...."),
        ]);
        let imported = import(&bytes).unwrap();
        assert_eq!(imported.format, Format::Charx);
        let portrait = imported.portrait.unwrap();
        assert_eq!(portrait.media_type, "image/png");
        assert_eq!(portrait.bytes, png);
        let avatar = imported.avatar.unwrap();
        assert_eq!(avatar.name, "ann.vrm");
        assert_eq!(avatar.bytes, b"glTF....");
        let assets = imported.card["data"]["assets"].as_array().unwrap();
        let names: Vec<_> = assets.iter().map(|a| a["name"].clone()).collect();
        assert_eq!(names, [json!("alt"), json!("bg")]);
    }

    #[test]
    fn an_unlisted_vrm_is_found_and_missing_assets_are_no_error() {
        let card = card_with_assets(json!([
            {"type": "icon", "uri": "embeded://assets/icon/images/gone.png", "name": "main", "ext": "png"}
        ]));
        let bytes = zip_of(&[("card.json", &card), ("model.VRM", b"glTF")]);
        let imported = import(&bytes).unwrap();
        assert!(imported.portrait.is_none());
        assert_eq!(imported.avatar.unwrap().name, "model.VRM");
        assert_eq!(imported.card["data"]["assets"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn traversal_names_are_never_looked_up() {
        for name in [
            "../card.json",
            "/etc/passwd",
            "a/../../b",
            "a\\..\\b",
            "C:/x",
            "./card.json",
        ] {
            assert!(!is_safe_name(name), "{name}");
        }
        assert!(is_safe_name("assets/icon/images/main.png"));
        let card = card_with_assets(json!([
            {"type": "icon", "uri": "embeded://../secret.png", "name": "main", "ext": "png"},
            {"type": "other", "uri": "embeded://../avatar.vrm", "name": "a", "ext": "vrm"}
        ]));
        let png = super::super::png::generated_portrait();
        let bytes = zip_of(&[
            ("card.json", &card),
            ("../secret.png", &png),
            ("../avatar.vrm", b"glTF"),
        ]);
        let imported = import(&bytes).unwrap();
        assert!(imported.portrait.is_none());
        assert!(imported.avatar.is_none());
        // A card.json only reachable through a traversal name is no card.
        let bytes = zip_of(&[("../card.json", &card)]);
        assert_eq!(import(&bytes).unwrap_err().code(), "charx_no_card");
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/cards/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_zip_bomb_stops_at_the_unpacked_cap() {
        // Both hold a 100 MB entry of zeros (about 100 kB packed), made with Python's zipfile:
        // as card.json, and as the icon after a small card.json.
        for name in ["bomb_card_json.charx", "bomb_icon.charx"] {
            let bomb = fixture(name);
            assert!(bomb.len() < 200 * 1024);
            let err = import(&bomb).unwrap_err();
            assert_eq!(
                (err.code(), err.status()),
                ("charx_too_large", 413),
                "{name}"
            );
        }
        // The same 100 MiB card.json with both headers claiming 1000 bytes: whatever the
        // reader makes of the lie, it neither unpacks 100 MiB nor takes the entry as a card.
        let err = import(&fixture("bomb_lying_sizes.charx")).unwrap_err();
        assert!(
            matches!(err.code(), "charx_too_large" | "charx_bad_zip"),
            "{err}"
        );
    }

    #[test]
    fn too_many_entries_are_refused() {
        let card = card_with_assets(json!([]));
        let names: Vec<String> = (0..MAX_ENTRIES).map(|i| format!("f{i}")).collect();
        let mut files: Vec<(&str, &[u8])> = vec![("card.json", &card)];
        files.extend(names.iter().map(|n| (n.as_str(), b"".as_slice())));
        let err = import(&zip_of(&files)).unwrap_err();
        assert_eq!(err.code(), "charx_too_large");
        // One fewer is fine.
        files.pop();
        assert!(import(&zip_of(&files)).is_ok());
    }

    #[test]
    fn broken_archives_say_what_is_wrong() {
        let err = import(b"PK\x03\x04 not really a zip").unwrap_err();
        assert_eq!((err.code(), err.status()), ("charx_bad_zip", 400));
        let err = import(&zip_of(&[("readme.txt", b"hi")])).unwrap_err();
        assert_eq!(err.code(), "charx_no_card");
        assert_eq!(
            err.to_string(),
            "The CHARX file has no card.json at its top level."
        );
        let err = import(&zip_of(&[("card.json", b"{\"spec\": ")])).unwrap_err();
        assert_eq!(err.code(), "card_bad_json");
        assert!(err
            .to_string()
            .starts_with("The card.json file is not valid JSON"));
        let huge = vec![b'P'; MAX_IMPORT_BYTES + 1];
        assert_eq!(import(&huge).unwrap_err().code(), "too_large");
    }
}
