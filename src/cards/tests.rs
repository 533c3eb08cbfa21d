//! Imports of published cards (see tests/fixtures/cards/PROVENANCE.md), round trips through
//! every export format, and the errors people see.

use serde_json::{json, Value};

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/cards/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The published cards: file, format, name, the start of the greeting.
const CARDS: [(&str, Format, &str, &str); 3] = [
    (
        "seraphina.png",
        Format::PngV2,
        "Seraphina",
        "*You wake with a start",
    ),
    ("default_chan_v3.png", Format::PngV3, "Default-chan", ""),
    (
        "skynet_v1.png",
        Format::PngV1,
        "Skynet",
        "How can I help you today",
    ),
];

fn png_with_texts(texts: &[(&str, &str)]) -> Vec<u8> {
    let base = png::generated_portrait();
    let chunks = png::chunks(&base).unwrap();
    png::with_text(&chunks, texts)
}

fn b64(value: &Value) -> String {
    encode_base64(value.to_string().as_bytes())
}

#[test]
fn published_cards_import() {
    for (file, format, name, greeting) in CARDS {
        let imported = import(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(imported.format, format, "{file}");
        let data = &imported.card["data"];
        assert_eq!(imported.card["spec"], "chara_card_v3", "{file}");
        assert_eq!(imported.card["spec_version"], "3.0", "{file}");
        assert_eq!(data["name"], name, "{file}");
        let first_mes = data["first_mes"].as_str().unwrap();
        assert!(!first_mes.is_empty(), "{file}");
        assert!(first_mes.starts_with(greeting), "{file}: {first_mes}");
        assert_eq!(data["group_only_greetings"], json!([]), "{file}");
        assert!(data["extensions"].is_object(), "{file}");
        let portrait = imported
            .portrait
            .as_ref()
            .expect("a PNG card is its own portrait");
        assert_eq!(portrait.media_type, "image/png");
        assert_eq!(
            import(&portrait.bytes).unwrap_err().code(),
            "card_no_card",
            "{file}: the portrait keeps no card chunk"
        );
        assert!(imported.avatar.is_none());
    }
}

#[test]
fn sillytavern_extras_are_kept_where_they_were() {
    let imported = import(&fixture("seraphina.png")).unwrap();
    let card = &imported.card;
    // SillyTavern writes V1 copies and its own fields at the root of a V2 card.
    assert_eq!(card["name"], "Seraphina");
    assert!(card.get("create_date").is_some());
    assert!(card.get("talkativeness").is_some());
    let book = &card["data"]["character_book"];
    let entries = book["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for entry in entries {
        assert_eq!(
            entry["use_regex"], false,
            "V3 fields added to the book's entries"
        );
    }
    // The V1 card's extra `metadata` moved into `data` with the rest.
    let skynet = import(&fixture("skynet_v1.png")).unwrap().card;
    assert_eq!(
        skynet["data"]["metadata"]["tool"]["name"],
        "AI Character Editor"
    );
}

#[test]
fn every_export_imports_back_to_the_same_card() {
    let avatar = EmbeddedFile {
        name: "seraphina.vrm".into(),
        bytes: b"glTF\x02\0\0\0 not a real model".to_vec(),
    };
    for (file, ..) in CARDS {
        let imported = import(&fixture(file)).unwrap();
        let card = &imported.card;
        let portrait = imported.portrait.as_ref();

        let json = import(&to_json(card)).unwrap();
        assert_eq!(&json.card, card, "{file} via JSON");
        assert_eq!(json.format, Format::JsonV3);

        for with in [portrait, None] {
            let png = import(&to_png(card, with).unwrap()).unwrap();
            assert_eq!(&png.card, card, "{file} via PNG");
            assert_eq!(png.format, Format::PngV3);
            if let Some(portrait) = with {
                assert_eq!(png.portrait.as_ref(), Some(portrait), "{file}: same image");
            }
        }

        let charx = import(&to_charx(card, portrait, Some(&avatar)).unwrap()).unwrap();
        assert_eq!(&charx.card, card, "{file} via CHARX");
        assert_eq!(charx.format, Format::Charx);
        assert_eq!(charx.portrait.as_ref(), portrait, "{file}: the icon asset");
        assert_eq!(
            charx.avatar.as_ref(),
            Some(&avatar),
            "{file}: the VRM asset"
        );
        let bare = import(&to_charx(card, None, None).unwrap()).unwrap();
        assert_eq!(&bare.card, card, "{file} via CHARX without files");
        assert!(bare.portrait.is_none() && bare.avatar.is_none());
    }
}

#[test]
fn the_chara_chunk_of_an_export_is_a_v2_card_with_the_same_data() {
    for (file, ..) in CARDS {
        let card = import(&fixture(file)).unwrap().card;
        let exported = to_png(&card, None).unwrap();
        let chunks = png::chunks(&exported).unwrap();
        let chara = png::find_text(&chunks, "chara").unwrap().unwrap();
        let v2: Value = serde_json::from_slice(&decode_base64(&chara.text).unwrap()).unwrap();
        assert_eq!(v2["spec"], "chara_card_v2", "{file}");
        assert_eq!(v2["spec_version"], "2.0", "{file}");
        assert_eq!(v2["data"], card["data"], "{file}");
        // A reader of V2 alone gets the same card.
        let only_v2 = import(&png_with_texts(&[("chara", &b64(&v2))])).unwrap();
        assert_eq!(only_v2.format, Format::PngV2);
        assert_eq!(only_v2.card, card, "{file}");
    }
}

#[test]
fn exported_charx_points_at_its_files_with_embeded_uris() {
    let card = import(&fixture("default_chan_v3.png")).unwrap();
    let avatar = EmbeddedFile {
        name: "../../evil.vrm".into(),
        bytes: b"glTF".to_vec(),
    };
    let bytes = to_charx(&card.card, card.portrait.as_ref(), Some(&avatar)).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
    let mut names: Vec<_> = zip.file_names().map(str::to_owned).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "assets/icon/images/main.png",
            "assets/other/vrm/evil.vrm",
            "card.json"
        ]
    );
    let card_json: Value = serde_json::from_reader(zip.by_name("card.json").unwrap()).unwrap();
    assert_eq!(
        card_json["data"]["assets"],
        json!([
            {"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"},
            {"type": "other", "uri": "embeded://assets/other/vrm/evil.vrm", "name": "evil", "ext": "vrm"},
        ])
    );
}

#[test]
fn charx_keeps_asset_entries_without_files_and_replaces_the_main_icon() {
    let card = json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": {
    "name": "Ann", "first_mes": "Hi", "assets": [
        {"type": "background", "uri": "https://example.com/bg.png", "name": "main", "ext": "png"},
        {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}
    ]}});
    let (card, _) = normalize::card(card, "x").unwrap();
    let portrait = Image::sniff(png::generated_portrait()).unwrap();
    let imported = import(&to_charx(&card, Some(&portrait), None).unwrap()).unwrap();
    assert_eq!(imported.portrait, Some(portrait));
    // The icon that pointed at the app's default became the exported file, which import took
    // out as the portrait; the background is untouched.
    assert_eq!(
        imported.card["data"]["assets"],
        json!([{"type": "background", "uri": "https://example.com/bg.png", "name": "main", "ext": "png"}])
    );
}

#[test]
fn a_jpeg_portrait_goes_into_charx_as_is_and_png_gets_a_generated_image() {
    let card = import(&fixture("skynet_v1.png")).unwrap().card;
    let jpeg = Image::sniff(b"\xFF\xD8\xFF\xE0 jpeg body".to_vec()).unwrap();
    assert_eq!(jpeg.media_type, "image/jpeg");
    let charx = import(&to_charx(&card, Some(&jpeg), None).unwrap()).unwrap();
    assert_eq!(charx.portrait, Some(jpeg.clone()));
    assert_eq!(charx.card, card);
    let png = import(&to_png(&card, Some(&jpeg)).unwrap()).unwrap();
    assert_eq!(png.card, card);
    assert_eq!(
        png.portrait.unwrap().bytes,
        png::generated_portrait(),
        "not a PNG: the generated image stands in"
    );
}

#[test]
fn json_cards_of_each_version_import() {
    let v1 = json!({"name": "Ann", "description": "d", "personality": "p", "scenario": "s",
        "first_mes": "Hi", "mes_example": "", "chat": "Ann - 2023"});
    let v2 = json!({"spec": "chara_card_v2", "spec_version": "2.0", "data": v1.clone()});
    let v3 = json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": v1.clone()});
    for (value, format) in [
        (&v1, Format::JsonV1),
        (&v2, Format::JsonV2),
        (&v3, Format::JsonV3),
    ] {
        let mut bytes = b"\xEF\xBB\xBF \n\t".to_vec();
        bytes.extend_from_slice(serde_json::to_string_pretty(value).unwrap().as_bytes());
        let imported = import(&bytes).unwrap();
        assert_eq!(imported.format, format);
        assert_eq!(imported.card["data"]["chat"], "Ann - 2023");
        assert!(imported.portrait.is_none());
        // All three carry the same data, so they normalise to the same card.
        assert_eq!(imported.card, import(&to_json(&v3)).unwrap().card);
    }
}

#[test]
fn html_in_fields_is_kept_verbatim_through_every_format() {
    let html = "<script>alert('x')</script><img src=x onerror=\"y\"> &lt; {{char}}";
    let card = json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": {
        "name": "<b>Ann</b>", "first_mes": html, "creator_notes": html}});
    let (card, _) = normalize::card(card, "x").unwrap();
    for bytes in [
        to_json(&card),
        to_png(&card, None).unwrap(),
        to_charx(&card, None, None).unwrap(),
    ] {
        let back = import(&bytes).unwrap().card;
        assert_eq!(back["data"]["first_mes"], html);
        assert_eq!(back["data"]["name"], "<b>Ann</b>");
        assert_eq!(back, card);
    }
}

#[test]
fn ccv3_wins_over_chara() {
    let v2 = json!({"spec": "chara_card_v2", "data": {"name": "Old"}});
    let v3 = json!({"spec": "chara_card_v3", "data": {"name": "New"}});
    for order in [
        [("chara", &v2), ("ccv3", &v3)],
        [("ccv3", &v3), ("chara", &v2)],
    ] {
        let texts: Vec<(&str, String)> = order.iter().map(|(k, v)| (*k, b64(v))).collect();
        let texts: Vec<(&str, &str)> = texts.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let imported = import(&png_with_texts(&texts)).unwrap();
        assert_eq!(imported.card["data"]["name"], "New");
        assert_eq!(imported.format, Format::PngV3);
    }
}

fn error(bytes: &[u8]) -> CardError {
    import(bytes).expect_err("the import fails")
}

#[test]
fn a_png_without_a_card_says_so() {
    let err = error(&png::generated_portrait());
    assert_eq!((err.code(), err.status()), ("card_no_card", 400));
    assert_eq!(err.to_string(), "This image has no character card.");
    // Other text chunks are not cards.
    let err = error(&png_with_texts(&[("Software", "paint"), ("charax", "x")]));
    assert_eq!(err.code(), "card_no_card");
}

#[test]
fn broken_chunk_text_names_the_chunk() {
    let err = error(&png_with_texts(&[("ccv3", "not base64!")]));
    assert_eq!((err.code(), err.status()), ("card_bad_base64", 400));
    assert_eq!(err.to_string(), "The ccv3 chunk is not valid base64.");

    let err = error(&png_with_texts(&[(
        "chara",
        &encode_base64(b"{\"name\": \"Ann\",\n}"),
    )]));
    assert_eq!((err.code(), err.status()), ("card_bad_json", 400));
    assert_eq!(
        err.to_string(),
        "The chara chunk is not valid JSON: trailing comma (line 2, column 1)."
    );

    let err = error(&png_with_texts(&[(
        "chara",
        &encode_base64(b"{\"name\": \"\xFF\"}"),
    )]));
    assert_eq!((err.code(), err.status()), ("card_not_utf8", 400));
    assert_eq!(
        err.to_string(),
        "The chara chunk is not UTF-8 text (invalid byte at offset 10)."
    );

    let no_name = json!({"spec": "chara_card_v2", "data": {"description": "d"}});
    let err = error(&png_with_texts(&[("chara", &b64(&no_name))]));
    assert_eq!((err.code(), err.status()), ("card_missing_fields", 400));
    assert_eq!(
        err.to_string(),
        "The card is missing required fields: name."
    );
}

#[test]
fn broken_json_files_say_where() {
    let err = error(b"  {\"name\": \"Ann\"\n  \"first_mes\": 1}");
    assert_eq!(err.code(), "card_bad_json");
    assert_eq!(
        err.to_string(),
        "The file is not valid JSON: expected `,` or `}` (line 2, column 3)."
    );
    let err = error(b"{\"spec\": \"chara_card_v3\"}");
    assert_eq!(
        err.to_string(),
        "The card is missing required fields: name, data."
    );
}

#[test]
fn other_files_are_unsupported() {
    for bytes in [
        b"GIF89a....".as_slice(),
        b"",
        b"   ",
        b"name: Ann",
        b"\xFF\xD8\xFF\xE0",
    ] {
        let err = error(bytes);
        assert_eq!((err.code(), err.status()), ("card_unsupported_type", 415));
    }
}

#[test]
fn damaged_pngs_are_bad_png() {
    let card = fixture("default_chan_v3.png");
    for cut in [9, 20, 100, card.len() - 1] {
        let err = error(&card[..cut]);
        assert_eq!(
            (err.code(), err.status()),
            ("card_bad_png", 400),
            "cut at {cut}"
        );
    }
    // A wrong CRC is tolerated (see png.rs).
    let mut bad_crc = card.clone();
    let ihdr_crc = 8 + 8 + 13;
    bad_crc[ihdr_crc] ^= 0xFF;
    assert_eq!(import(&bad_crc).unwrap().card, import(&card).unwrap().card);
}

#[test]
fn an_oversized_file_is_refused_before_reading() {
    let mut bytes = png::generated_portrait();
    bytes.resize(MAX_IMPORT_BYTES + 1, 0);
    let err = error(&bytes);
    assert_eq!((err.code(), err.status()), ("too_large", 413));
}

#[test]
fn images_are_sniffed_by_magic_bytes() {
    assert_eq!(
        image_media_type(b"RIFF\0\0\0\0WEBPVP8 "),
        Some("image/webp")
    );
    assert_eq!(image_media_type(b"GIF87a"), Some("image/gif"));
    assert_eq!(image_media_type(b"RIFF\0\0\0\0WAVE"), None);
    assert_eq!(Image::sniff(b"BM".to_vec()), None);
}
