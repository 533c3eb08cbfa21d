//! Characters: the companions sessions talk to. Row 1 is the default and cannot be deleted.

use super::{now_ts, StoreError};
use crate::shared::history::Character;
use sqlx::{FromRow, SqlitePool};

pub const DEFAULT_ID: i64 = 1;

#[derive(FromRow)]
pub(crate) struct CharacterRow {
    id: i64,
    name: String,
    system_prompt: String,
    avatar_url: Option<String>,
    voice_id: Option<String>,
    tts_provider: Option<String>,
    personality_traits: String,
    has_portrait: bool,
    greeting: i64,
    updated_ts: f64,
}

impl From<CharacterRow> for Character {
    fn from(r: CharacterRow) -> Self {
        Character {
            id: r.id,
            name: r.name,
            system_prompt: r.system_prompt,
            avatar_url: r.avatar_url,
            voice_id: r.voice_id,
            tts_provider: r.tts_provider,
            personality_traits: serde_json::from_str(&r.personality_traits).unwrap_or_default(),
            has_portrait: r.has_portrait,
            greeting: u32::try_from(r.greeting).unwrap_or(0),
            updated_ts: r.updated_ts,
        }
    }
}

/// The fields a create or update may set; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CharacterFields {
    pub name: Option<String>,
    pub system_prompt: Option<String>,
    pub avatar_url: Option<String>,
    pub voice_id: Option<String>,
    pub tts_provider: Option<String>,
    pub personality_traits: Option<Vec<String>>,
}

impl CharacterFields {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.system_prompt.is_none()
            && self.avatar_url.is_none()
            && self.voice_id.is_none()
            && self.tts_provider.is_none()
            && self.personality_traits.is_none()
    }
}

pub(crate) const COLUMNS: &str = "id, name, system_prompt, avatar_url, voice_id, tts_provider, \
     personality_traits, portrait IS NOT NULL AS has_portrait, greeting, updated_ts";

pub async fn list(pool: &SqlitePool) -> Result<Vec<Character>, StoreError> {
    let rows: Vec<CharacterRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM characters ORDER BY id"))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Character>, StoreError> {
    let row: Option<CharacterRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM characters WHERE id = ?"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(Into::into))
}

/// The same columns read through a `LEFT JOIN`: all null when there is no such character.
#[derive(FromRow)]
pub(crate) struct JoinedRow {
    id: Option<i64>,
    name: Option<String>,
    system_prompt: Option<String>,
    avatar_url: Option<String>,
    voice_id: Option<String>,
    tts_provider: Option<String>,
    personality_traits: Option<String>,
    has_portrait: Option<bool>,
    greeting: Option<i64>,
    updated_ts: Option<f64>,
}

impl JoinedRow {
    pub(crate) fn character(self) -> Option<Character> {
        Some(
            CharacterRow {
                id: self.id?,
                name: self.name.unwrap_or_default(),
                system_prompt: self.system_prompt.unwrap_or_default(),
                avatar_url: self.avatar_url,
                voice_id: self.voice_id,
                tts_provider: self.tts_provider,
                personality_traits: self.personality_traits.unwrap_or_default(),
                has_portrait: self.has_portrait.unwrap_or(false),
                greeting: self.greeting.unwrap_or(0),
                updated_ts: self.updated_ts.unwrap_or(0.0),
            }
            .into(),
        )
    }
}

/// Who speaks in a chat turn of `session_id`: `requested`, else the session's own character, else
/// the default; read with the session in one statement, since this runs on every turn.
/// `None` when there is no such session; `Some(None)` when that character does not exist.
pub async fn for_session(
    pool: &SqlitePool,
    session_id: i64,
    requested: Option<i64>,
) -> Result<Option<Option<Character>>, StoreError> {
    let row: Option<JoinedRow> = sqlx::query_as(
        "SELECT c.id, c.name, c.system_prompt, c.avatar_url, c.voice_id, c.tts_provider, \
         c.personality_traits, c.portrait IS NOT NULL AS has_portrait, c.greeting, c.updated_ts \
         FROM sessions s \
         LEFT JOIN characters c ON c.id = COALESCE(?, s.character_id, ?) WHERE s.id = ?",
    )
    .bind(requested)
    .bind(DEFAULT_ID)
    .bind(session_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(JoinedRow::character))
}

/// Creates a character; `name` and `system_prompt` must be set (the caller checks).
pub async fn create(pool: &SqlitePool, f: &CharacterFields) -> Result<Character, StoreError> {
    let now = now_ts();
    let traits = serde_json::to_string(&f.personality_traits.clone().unwrap_or_default())
        .unwrap_or_else(|_| "[]".into());
    let row: CharacterRow = sqlx::query_as(&format!(
        "INSERT INTO characters (name, system_prompt, avatar_url, voice_id, tts_provider, personality_traits, created_ts, updated_ts) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
    ))
    .bind(f.name.as_deref().unwrap_or_default())
    .bind(f.system_prompt.as_deref().unwrap_or_default())
    .bind(&f.avatar_url)
    .bind(&f.voice_id)
    .bind(&f.tts_provider)
    .bind(traits)
    .bind(now)
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

/// Updates the given fields; a new name or system prompt also goes into the stored card, so
/// the card and the row agree. Returns `None` when there is no such character. (Every
/// placeholder is numbered: sqlx counts bare `?`s on its own, not as SQLite numbers them.)
pub async fn update(
    pool: &SqlitePool,
    id: i64,
    f: &CharacterFields,
) -> Result<Option<Character>, StoreError> {
    let traits = f
        .personality_traits
        .as_ref()
        .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into()));
    let row: Option<CharacterRow> = sqlx::query_as(&format!(
        "UPDATE characters SET \
           card_json = CASE WHEN card_json IS NULL OR (?1 IS NULL AND ?2 IS NULL) THEN card_json \
               ELSE json_set(card_json, \
                 '$.data.name', coalesce(?1, json_extract(card_json, '$.data.name'), ''), \
                 '$.data.system_prompt', \
                   coalesce(?2, json_extract(card_json, '$.data.system_prompt'), '')) END, \
           name = coalesce(?1, name), system_prompt = coalesce(?2, system_prompt), \
           avatar_url = coalesce(?3, avatar_url), voice_id = coalesce(?4, voice_id), \
           tts_provider = coalesce(?5, tts_provider), personality_traits = coalesce(?6, personality_traits), \
           updated_ts = ?7 \
         WHERE id = ?8 RETURNING {COLUMNS}"
    ))
    .bind(&f.name)
    .bind(&f.system_prompt)
    .bind(&f.avatar_url)
    .bind(&f.voice_id)
    .bind(&f.tts_provider)
    .bind(traits)
    .bind(now_ts())
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// Returns false when there is no such character. The default character is refused by the caller.
pub async fn delete(pool: &SqlitePool, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM characters WHERE id = ? AND id != ?")
        .bind(id)
        .bind(DEFAULT_ID)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The stored card of a character: `None` when there is no such character, `Some(None)` for a
/// character made before cards (its card is built from its name and prompt).
pub async fn card_json(pool: &SqlitePool, id: i64) -> Result<Option<Option<String>>, StoreError> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT card_json FROM characters WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(card,)| card))
}

/// A character as a card describes it, with what the card does not say.
pub struct CardRow<'a> {
    pub name: &'a str,
    /// Never blank: the card's own main prompt, else the default one.
    pub system_prompt: &'a str,
    pub card_json: &'a str,
    pub greeting: u32,
    pub avatar_url: Option<&'a str>,
    pub voice_id: Option<&'a str>,
    pub tts_provider: Option<&'a str>,
}

/// A portrait and its media type.
pub struct Portrait {
    pub bytes: Vec<u8>,
    pub media_type: String,
}

/// Adds a character from a card, its portrait with it, in one statement: an import is all
/// there or not at all.
pub async fn insert_card(
    pool: &SqlitePool,
    c: &CardRow<'_>,
    portrait: Option<&Portrait>,
) -> Result<Character, StoreError> {
    let now = now_ts();
    let row: CharacterRow = sqlx::query_as(&format!(
        "INSERT INTO characters (name, system_prompt, card_json, greeting, avatar_url, voice_id, \
         tts_provider, portrait, portrait_type, created_ts, updated_ts) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
    ))
    .bind(c.name)
    .bind(c.system_prompt)
    .bind(c.card_json)
    .bind(i64::from(c.greeting))
    .bind(c.avatar_url)
    .bind(c.voice_id)
    .bind(c.tts_provider)
    .bind(portrait.map(|p| p.bytes.as_slice()))
    .bind(portrait.map(|p| p.media_type.as_str()))
    .bind(now)
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

/// Rewrites a character's card and choices. `None` when there is no such character.
pub async fn update_card(
    pool: &SqlitePool,
    id: i64,
    c: &CardRow<'_>,
) -> Result<Option<Character>, StoreError> {
    let row: Option<CharacterRow> = sqlx::query_as(&format!(
        "UPDATE characters SET name = ?, system_prompt = ?, card_json = ?, greeting = ?, \
         avatar_url = ?, voice_id = ?, tts_provider = ?, updated_ts = ? \
         WHERE id = ? RETURNING {COLUMNS}"
    ))
    .bind(c.name)
    .bind(c.system_prompt)
    .bind(c.card_json)
    .bind(i64::from(c.greeting))
    .bind(c.avatar_url)
    .bind(c.voice_id)
    .bind(c.tts_provider)
    .bind(now_ts())
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// Only the card JSON, when it is unchanged elsewhere since `seen_ts` (an attached lorebook):
/// `None` when the character is gone or was edited meanwhile.
pub async fn set_card_json(
    pool: &SqlitePool,
    id: i64,
    card_json: &str,
    seen_ts: f64,
) -> Result<Option<Character>, StoreError> {
    let row: Option<CharacterRow> = sqlx::query_as(&format!(
        "UPDATE characters SET card_json = ?, updated_ts = ? WHERE id = ? AND updated_ts = ? \
         RETURNING {COLUMNS}"
    ))
    .bind(card_json)
    .bind(now_ts())
    .bind(id)
    .bind(seen_ts)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// `None` when there is no such character; `Some(None)` when it has no portrait.
pub async fn portrait(pool: &SqlitePool, id: i64) -> Result<Option<Option<Portrait>>, StoreError> {
    let row: Option<(Option<Vec<u8>>, Option<String>)> =
        sqlx::query_as("SELECT portrait, portrait_type FROM characters WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(bytes, media_type)| match (bytes, media_type) {
        (Some(bytes), Some(media_type)) => Some(Portrait { bytes, media_type }),
        _ => None,
    }))
}
