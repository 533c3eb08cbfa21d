//! [ssr] Character-card files: reading SillyTavern/RisuAI cards (PNG with `chara`/`ccv3` text
//! chunks, JSON, CHARX zip archives) and lorebook files, and writing cards back out as JSON,
//! PNG and CHARX.
//!
//! Specs: character-card-spec-v2 (malfoyslastname/character-card-spec-v2) and
//! character-card-spec-v3 (kwaroran/character-card-spec-v3).
//!
//! Every card comes out of [`import`] in the V3 shape, `{"spec":"chara_card_v3",
//! "spec_version":"3.0","data":{...}}`, with every field it had kept (unknown ones and
//! `extensions` included), so that exporting it again loses nothing. Importing an exported card
//! gives the same JSON back, whichever of the three formats it went through.
//!
//! Beside the files: [`fields`] maps a card's JSON to the Characters form and back, [`lore`]
//! picks the lorebook entries a turn's prompt gets, and [`macros`] expands `{{char}}` and the
//! rest.

mod book;
mod charx;
mod export;
pub mod fields;
pub mod lore;
pub mod macros;
mod normalize;
mod png;

pub use book::import_lorebook;
pub use export::{to_charx, to_json, to_png};

/// The largest file an import accepts; routes answer 413 over it.
pub const MAX_IMPORT_BYTES: usize = 20 * 1024 * 1024;

/// An image file: a card's portrait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub bytes: Vec<u8>,
    /// `image/png`, `image/jpeg`, `image/webp` or `image/gif`, sniffed from the magic bytes.
    pub media_type: &'static str,
}

impl Image {
    /// The image, if its first bytes say it is one of the four formats a portrait may be.
    pub fn sniff(bytes: Vec<u8>) -> Option<Image> {
        let media_type = image_media_type(&bytes)?;
        Some(Image { bytes, media_type })
    }

    /// The file extension CHARX assets use for this image (lower case, no dot).
    pub fn extension(&self) -> &'static str {
        match self.media_type {
            "image/jpeg" => "jpeg",
            "image/webp" => "webp",
            "image/gif" => "gif",
            _ => "png",
        }
    }
}

/// A file carried inside a CHARX archive, such as a VRM avatar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedFile {
    /// The file's name without folders, e.g. `avatar.vrm`.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The file format a card was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    PngV1,
    PngV2,
    PngV3,
    JsonV1,
    JsonV2,
    JsonV3,
    Charx,
}

impl Format {
    /// A short name for people: "PNG (V2 card)".
    /// The format's name on the wire (`png_v2`, `charx`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Format::PngV1 => "png_v1",
            Format::PngV2 => "png_v2",
            Format::PngV3 => "png_v3",
            Format::JsonV1 => "json_v1",
            Format::JsonV2 => "json_v2",
            Format::JsonV3 => "json_v3",
            Format::Charx => "charx",
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Format::PngV1 => "PNG (V1 card)",
            Format::PngV2 => "PNG (V2 card)",
            Format::PngV3 => "PNG (V3 card)",
            Format::JsonV1 => "JSON (V1 card)",
            Format::JsonV2 => "JSON (V2 card)",
            Format::JsonV3 => "JSON (V3 card)",
            Format::Charx => "CHARX (V3 card)",
        }
    }
}

/// A card read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// Always the V3 shape, with every field of the file kept.
    pub card: serde_json::Value,
    pub format: Format,
    /// PNG card: the image itself, without its card chunks. CHARX: the icon asset. JSON: none.
    pub portrait: Option<Image>,
    /// CHARX: the first `.vrm` asset, unchecked (the caller validates it like an upload).
    pub avatar: Option<EmbeddedFile>,
}

/// Why a card or lorebook file could not be read or written. The messages are shown to people.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("This image has no character card.")]
    NoCard,
    #[error("The {chunk} chunk is not valid base64.")]
    BadBase64 { chunk: String },
    /// `place` names where the text was: "The ccv3 chunk", "The card.json file", "The file".
    #[error("{place} is not valid JSON: {message} (line {line}, column {column}).")]
    BadJson {
        place: String,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("{place} is not UTF-8 text (invalid byte at offset {offset}).")]
    NotUtf8 { place: String, offset: usize },
    #[error("{place} is not a character card: it holds a JSON {found}, not an object.")]
    NotObject { place: String, found: &'static str },
    #[error("The card is missing required fields: {}.", .fields.join(", "))]
    MissingFields { fields: Vec<&'static str> },
    #[error("This file is not a character card: expected a PNG image, a CHARX file or JSON.")]
    UnsupportedType,
    #[error("The PNG file is damaged: {0}.")]
    BadPng(String),
    #[error("The file is larger than {} MB.", MAX_IMPORT_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("The CHARX file is too large: {0}.")]
    CharxTooLarge(String),
    #[error("The CHARX file is not a readable zip archive: {0}.")]
    CharxBadZip(String),
    #[error("The CHARX file has no card.json at its top level.")]
    CharxNoCard,
    #[error(
        "This file is not a lorebook: expected SillyTavern World Info, a lorebook_v3 file, \
         a character_book or a card that has one."
    )]
    LorebookUnrecognised,
    #[error("The CHARX file could not be written.")]
    CharxWrite(#[source] zip::result::ZipError),
}

impl CardError {
    /// A stable machine-readable code for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            CardError::NoCard => "card_no_card",
            CardError::BadBase64 { .. } => "card_bad_base64",
            CardError::BadJson { .. } => "card_bad_json",
            CardError::NotUtf8 { .. } => "card_not_utf8",
            CardError::NotObject { .. } => "card_not_object",
            CardError::MissingFields { .. } => "card_missing_fields",
            CardError::UnsupportedType => "card_unsupported_type",
            CardError::BadPng(_) => "card_bad_png",
            CardError::TooLarge => "too_large",
            CardError::CharxTooLarge(_) => "charx_too_large",
            CardError::CharxBadZip(_) => "charx_bad_zip",
            CardError::CharxNoCard => "charx_no_card",
            CardError::LorebookUnrecognised => "lorebook_unrecognised",
            CardError::CharxWrite(_) => "charx_write",
        }
    }

    /// The HTTP status a route answers with.
    pub fn status(&self) -> u16 {
        match self {
            CardError::UnsupportedType => 415,
            CardError::TooLarge | CardError::CharxTooLarge(_) => 413,
            CardError::CharxWrite(_) => 500,
            _ => 400,
        }
    }
}

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
const ZIP_SIGNATURE: &[u8; 4] = b"PK\x03\x04";

/// Reads a card file of any supported kind, told apart by its first bytes.
pub fn import(bytes: &[u8]) -> Result<Imported, CardError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(CardError::TooLarge);
    }
    if bytes.starts_with(PNG_SIGNATURE) {
        return import_png(bytes);
    }
    if bytes.starts_with(ZIP_SIGNATURE) {
        return charx::import(bytes);
    }
    if looks_like_json(bytes) {
        let value = parse_json(bytes, "The file")?;
        let (card, version) = normalize::card(value, "The file")?;
        let format = match version {
            normalize::Version::V1 => Format::JsonV1,
            normalize::Version::V2 => Format::JsonV2,
            normalize::Version::V3 => Format::JsonV3,
        };
        return Ok(Imported {
            card,
            format,
            portrait: None,
            avatar: None,
        });
    }
    Err(CardError::UnsupportedType)
}

fn import_png(bytes: &[u8]) -> Result<Imported, CardError> {
    let chunks = png::chunks(bytes)?;
    // The V3 spec: a reader that finds both chunks uses `ccv3`; `chara` is the V2 backfill.
    let found = ["ccv3", "chara"]
        .into_iter()
        .find_map(|keyword| png::find_text(&chunks, keyword).transpose());
    let Some(found) = found else {
        return Err(CardError::NoCard);
    };
    let text = found?;
    let place = format!("The {} chunk", text.keyword);
    let json = decode_base64(&text.text).ok_or_else(|| CardError::BadBase64 {
        chunk: text.keyword.clone(),
    })?;
    let value = parse_json(&json, &place)?;
    let (card, version) = normalize::card(value, &place)?;
    let format = match version {
        normalize::Version::V1 => Format::PngV1,
        normalize::Version::V2 => Format::PngV2,
        normalize::Version::V3 => Format::PngV3,
    };
    let portrait = Image {
        bytes: png::without_card_chunks(&chunks),
        media_type: "image/png",
    };
    Ok(Imported {
        card,
        format,
        portrait: Some(portrait),
        avatar: None,
    })
}

/// The media type of an image, from its magic bytes.
pub fn image_media_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(PNG_SIGNATURE) {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        None
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn looks_like_json(bytes: &[u8]) -> bool {
    strip_bom(bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{' || b == b'[')
}

/// Parses UTF-8 JSON (a leading byte-order mark is allowed); errors say where the text was.
fn parse_json(bytes: &[u8], place: &str) -> Result<serde_json::Value, CardError> {
    let text = std::str::from_utf8(strip_bom(bytes)).map_err(|e| CardError::NotUtf8 {
        place: place.to_owned(),
        offset: e.valid_up_to(),
    })?;
    serde_json::from_str(text).map_err(|e| {
        // serde_json's Display appends " at line L column C"; the message carries it separately.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        CardError::BadJson {
            place: place.to_owned(),
            message,
            line: e.line(),
            column: e.column(),
        }
    })
}

/// Standard base64, padded or not, with any ASCII whitespace (line-wrapped writers) ignored.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    LENIENT.decode(compact).ok()
}

fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests;
