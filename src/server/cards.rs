//! Characters as cards: the Characters tab's form, new conversations opened by a greeting, and
//! the card files people bring and take away (`/api/characters/import`, `…/export`,
//! `…/portrait`, `…/lorebook`).

use crate::store::Db;
use crate::{
    cards::{fields, macros::Macros},
    server::{error::ApiError, history, state::AppState},
    shared::{
        cards::{CardFields, CharacterCard, CharacterChoices},
        history::{Character, SessionSummary},
    },
    store::characters::{self, CardRow, CharacterFields},
};
use axum::http::StatusCode;
use serde_json::Value;

/// The card of `c`: the stored one, or one built from the name and prompt of a character made
/// before cards.
pub async fn card_of(db: &Db, c: &Character) -> Result<Value, ApiError> {
    let stored = db.card_json(c.id).await?.ok_or_else(|| not_found(c.id))?;
    Ok(parse_stored(stored.as_deref(), c))
}

/// A stored card (only ever written by this module, from a JSON value); a character without one
/// gets a card built from its row.
pub fn parse_stored(stored: Option<&str>, c: &Character) -> Value {
    stored
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .filter(|v| v.get("data").is_some_and(Value::is_object))
        .unwrap_or_else(|| fields::blank_card(&c.name, &c.system_prompt))
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("There is no character {id}."))
}

pub async fn load(db: &Db, id: i64) -> Result<CharacterCard, ApiError> {
    let character = history::get_character(db, id).await?;
    let card = card_of(db, &character).await?;
    Ok(CharacterCard {
        fields: fields::fields_of(&card),
        character,
    })
}

/// The main prompt a character row keeps (never blank): the card's own, else the default.
pub fn main_prompt(f: &CardFields) -> &str {
    if f.system_prompt.trim().is_empty() {
        fields::DEFAULT_MAIN_PROMPT
    } else {
        &f.system_prompt
    }
}

/// Checks the form's choices (voice, avatar, greeting) against the card they go with.
async fn check_choices(
    state: &AppState,
    f: &CardFields,
    choices: &CharacterChoices,
) -> Result<(), ApiError> {
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let row = CharacterFields {
        name: Some(f.name.clone()),
        avatar_url: opt(&choices.avatar_url),
        voice_id: opt(&choices.voice_id),
        tts_provider: opt(&choices.tts_provider),
        ..CharacterFields::default()
    };
    history::check_character_fields(&row)?;
    history::check_character_voice(
        row.voice_id.as_deref(),
        row.tts_provider.as_deref(),
        state.config.get().tts.provider,
    )?;
    if let Some(url) = &row.avatar_url {
        check_avatar(state, url).await?;
    }
    if choices.greeting as usize > f.alternate_greetings.len() {
        return Err(ApiError::bad_field(
            "bad_greeting",
            "greeting",
            format!(
                "must be 0 (the first message) or the number of an alternate greeting (1 to {})",
                f.alternate_greetings.len()
            ),
        ));
    }
    Ok(())
}

/// A character's avatar is one of the avatars folder's files.
async fn check_avatar(state: &AppState, url: &str) -> Result<(), ApiError> {
    let known = crate::server::avatars::list(state)
        .await
        .is_ok_and(|list| list.avatars.iter().any(|a| a.url == url));
    if !known {
        return Err(ApiError::bad_field(
            "unknown_avatar",
            "avatar_url",
            "must be an avatar of the avatars folder (/files/avatars/<name>)",
        ));
    }
    Ok(())
}

fn invalid(problems: Vec<crate::shared::FieldError>) -> ApiError {
    let first = problems
        .first()
        .map(|p| format!("{} {}.", p.path, p.message))
        .unwrap_or_default();
    let mut e = ApiError::bad_request("invalid_card", first);
    e.error.fields = problems;
    e
}

/// Saves the form: the fields go into the stored card (its other fields stay), the choices into
/// the row. `id` `None` creates a character.
pub async fn save(
    state: &AppState,
    id: Option<i64>,
    f: CardFields,
    choices: CharacterChoices,
) -> Result<CharacterCard, ApiError> {
    let problems = fields::problems(&f);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    check_choices(state, &f, &choices).await?;
    let db = &state.db;
    let mut card = match id {
        Some(id) => {
            let c = history::get_character(db, id).await?;
            card_of(db, &c).await?
        }
        None => fields::blank_card(&f.name, &f.system_prompt),
    };
    fields::apply(&mut card, &f);
    let json = card.to_string();
    fn opt(s: &str) -> Option<&str> {
        Some(s.trim()).filter(|s| !s.is_empty())
    }
    let row = CardRow {
        name: f.name.trim(),
        system_prompt: main_prompt(&f),
        card_json: &json,
        greeting: choices.greeting,
        avatar_url: opt(&choices.avatar_url),
        voice_id: opt(&choices.voice_id),
        tts_provider: opt(&choices.tts_provider),
    };
    let character = match id {
        Some(id) => db
            .update_card(id, &row)
            .await?
            .ok_or_else(|| not_found(id))?,
        None => db.insert_card(&row, None).await?,
    };
    Ok(CharacterCard {
        fields: fields::fields_of(&card),
        character,
    })
}

/// What `{{char}}` and `{{user}}` are for `card`'s character.
pub fn macros<'a>(card: &'a Value, user: &'a str, seed: u64) -> Macros<'a> {
    let d = fields::data(card);
    let name = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    Macros {
        char: name("nickname")
            .or_else(|| name("name"))
            .unwrap_or("Companion"),
        user,
        seed,
    }
}

/// A new conversation. With a character, it is bound to it and opens with its greeting
/// (`greeting`, else the character's chosen one), macros expanded.
pub async fn create_session(
    state: &AppState,
    title: Option<&str>,
    character_id: Option<i64>,
    greeting: Option<u32>,
) -> Result<SessionSummary, ApiError> {
    let Some(id) = character_id else {
        return Ok(history::create_session(&state.db, title).await?);
    };
    if let Some(t) = title {
        if t.chars().count() > 200 {
            return Err(history::HistoryError::TitleTooLong.into());
        }
    }
    let character = history::get_character(&state.db, id).await?;
    let card = card_of(&state.db, &character).await?;
    let f = fields::fields_of(&card);
    let pick = greeting.unwrap_or(character.greeting) as usize;
    let text = match pick {
        0 => f.first_mes.clone(),
        n => f.alternate_greetings.get(n - 1).cloned().ok_or_else(|| {
            ApiError::bad_field(
                "bad_greeting",
                "greeting",
                format!(
                    "must be 0 (the first message) or 1 to {}",
                    f.alternate_greetings.len()
                ),
            )
        })?,
    };
    let user = state.config.get().user.name.clone();
    let text = macros(&card, &user, crate::cards::macros::fresh_seed()).expand(text.trim());
    let title = title
        .filter(|t| !t.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("Chat with {}", character.name));
    Ok(state
        .db
        .create_session_for_character(Some(&title), id, Some(&text))
        .await?)
}

/// A refusal for a request body over `limit` bytes.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "A character card can be at most {} MB.",
            limit / (1024 * 1024)
        ),
    )
}

impl From<crate::cards::CardError> for ApiError {
    fn from(e: crate::cards::CardError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// What an import made.
pub struct ImportedCharacter {
    pub character: Character,
    pub format: &'static str,
    /// The avatar a CHARX card brought, installed in the avatars folder.
    pub avatar_url: Option<String>,
}

/// Reads a card file and adds its character, with its portrait and (from a CHARX) its avatar.
/// Either all of it is there afterwards or none of it.
pub async fn import(state: &AppState, bytes: bytes::Bytes) -> Result<ImportedCharacter, ApiError> {
    // Decoding base64 and inflating a zip are work for a blocking thread.
    let imported = tokio::task::spawn_blocking(move || crate::cards::import(&bytes))
        .await
        .map_err(|_| stopped())??;
    let f = fields::fields_of(&imported.card);
    let problems = fields::problems(&f);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let avatar = match &imported.avatar {
        Some(file) => Some(install_avatar(state, &f.name, file).await?),
        None => None,
    };
    let json = imported.card.to_string();
    let portrait = imported.portrait.as_ref().map(|p| characters::Portrait {
        bytes: p.bytes.clone(),
        media_type: p.media_type.to_string(),
    });
    let row = CardRow {
        name: f.name.trim(),
        system_prompt: main_prompt(&f),
        card_json: &json,
        greeting: 0,
        avatar_url: avatar.as_ref().map(|(_, url)| url.as_str()),
        voice_id: None,
        tts_provider: None,
    };
    match state.db.insert_card(&row, portrait.as_ref()).await {
        Ok(character) => {
            tracing::info!(
                id = character.id,
                format = imported.format.label(),
                "character imported"
            );
            Ok(ImportedCharacter {
                character,
                format: imported.format.code(),
                avatar_url: avatar.map(|(_, url)| url),
            })
        }
        Err(e) => {
            // The character is not there: neither may its avatar be.
            if let Some((name, _)) = avatar {
                if let Err(del) = crate::server::avatars::delete(state, &name).await {
                    tracing::warn!(error = %del, name, "removing the avatar of a failed import failed");
                }
            }
            Err(e.into())
        }
    }
}

/// Installs a card's VRM as an avatar under a free name made from the character's; its name and
/// URL.
async fn install_avatar(
    state: &AppState,
    character: &str,
    file: &crate::cards::EmbeddedFile,
) -> Result<(String, String), ApiError> {
    let caps = crate::server::avatars::upload_caps(state);
    let stem = history::file_stem(character).unwrap_or_else(|| "character".into());
    for n in 1..=50 {
        let name = if n == 1 {
            format!("{stem}.vrm")
        } else {
            format!("{stem}-{n}.vrm")
        };
        let body = futures::stream::once(std::future::ready(Ok(bytes::Bytes::from(
            file.bytes.clone(),
        ))));
        match crate::server::avatars::upload(state, &name, false, caps, body).await {
            Ok(saved) => {
                let url = crate::avatars::url_for(&saved.name);
                return Ok((saved.name, url));
            }
            Err(crate::avatars::AvatarError::Exists(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "avatar_exists",
        format!(
            "The avatars folder already has 50 avatars named after {character}; delete some first."
        ),
    ))
}

fn stopped() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "stopped",
        "Reading the card stopped unexpectedly; try again.",
    )
}

/// A card file to download.
pub struct CardFile {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub file_name: String,
}

/// The character as a V3 card file: `png` (on its portrait, else a plain image; with a V2
/// `chara` chunk for older tools), `json` or `charx`.
pub async fn export(state: &AppState, id: i64, format: &str) -> Result<CardFile, ApiError> {
    let (ext, content_type) = match format {
        "png" => ("png", "image/png"),
        "json" => ("json", "application/json"),
        "charx" => ("charx", "application/zip"),
        _ => {
            return Err(ApiError::bad_request(
                "bad_format",
                "The export format must be png, json or charx.",
            ))
        }
    };
    let character = history::get_character(&state.db, id).await?;
    let card = card_of(&state.db, &character).await?;
    let portrait = state.db.portrait(id).await?.flatten().and_then(|p| {
        let media_type = crate::cards::image_media_type(&p.bytes)?;
        Some(crate::cards::Image {
            bytes: p.bytes,
            media_type,
        })
    });
    let avatar = match (&character.avatar_url, format) {
        (Some(url), "charx") => avatar_file(state, url).await,
        _ => None,
    };
    let format = format.to_string();
    let bytes = tokio::task::spawn_blocking(move || match format.as_str() {
        "png" => crate::cards::to_png(&card, portrait.as_ref()),
        "json" => Ok(crate::cards::to_json(&card)),
        _ => crate::cards::to_charx(&card, portrait.as_ref(), avatar.as_ref()),
    })
    .await
    .map_err(|_| stopped())??;
    Ok(CardFile {
        bytes,
        content_type,
        file_name: format!(
            "{}.{ext}",
            history::file_stem(&character.name).unwrap_or_else(|| "character".into())
        ),
    })
}

/// The character's VRM avatar, for a CHARX export (other avatar kinds stay out: the format's
/// readers expect VRM).
async fn avatar_file(state: &AppState, url: &str) -> Option<crate::cards::EmbeddedFile> {
    let list = crate::server::avatars::list(state).await.ok()?;
    let found = list.avatars.into_iter().find(|a| a.url == url)?;
    if !found.name.to_ascii_lowercase().ends_with(".vrm") {
        return None;
    }
    let bytes = crate::avatars::read(&state.blobs, &found.name)
        .await
        .ok()??;
    Some(crate::cards::EmbeddedFile {
        name: found.name,
        bytes: bytes.to_vec(),
    })
}

/// Adds a lorebook file's entries to the character's book; the character and how many entries
/// its book now has.
pub async fn attach_lorebook(
    state: &AppState,
    id: i64,
    bytes: bytes::Bytes,
) -> Result<(Character, usize), ApiError> {
    let book = tokio::task::spawn_blocking(move || crate::cards::import_lorebook(&bytes))
        .await
        .map_err(|_| stopped())??;
    // Written only if nothing changed the character meanwhile; a second try reads it again.
    for _ in 0..3 {
        let character = history::get_character(&state.db, id).await?;
        let mut card = card_of(&state.db, &character).await?;
        let count = fields::attach_book(&mut card, &book);
        if let Some(saved) = state
            .db
            .set_card_json(id, &card.to_string(), character.updated_ts)
            .await?
        {
            return Ok((saved, count));
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "busy_character",
        "The character changed while the lorebook was being added; try again.",
    ))
}
