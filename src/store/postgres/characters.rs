//! Characters in PostgreSQL (see `store::characters`). Row 1 is the default and cannot be
//! deleted.

use crate::shared::history::Character;
use crate::store::{
    characters::{
        CardRow, CharacterFields, CharacterRow, JoinedRow, Portrait, COLUMNS, DEFAULT_ID,
    },
    now_ts, StoreError,
};
use sqlx::PgPool;

pub async fn list(pool: &PgPool) -> Result<Vec<Character>, StoreError> {
    let rows: Vec<CharacterRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM characters ORDER BY id"))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Character>, StoreError> {
    let row: Option<CharacterRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM characters WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(Into::into))
}

/// Who speaks in a chat turn of `session_id`: `requested`, else the session's own character, else
/// the default. `None` when there is no such session; `Some(None)` when that character does not
/// exist.
pub async fn for_session(
    pool: &PgPool,
    session_id: i64,
    requested: Option<i64>,
) -> Result<Option<Option<Character>>, StoreError> {
    let row: Option<JoinedRow> = sqlx::query_as(
        "SELECT c.id, c.name, c.system_prompt, c.avatar_url, c.voice_id, c.tts_provider, \
         c.personality_traits, c.portrait IS NOT NULL AS has_portrait, c.greeting, c.updated_ts \
         FROM sessions s \
         LEFT JOIN characters c ON c.id = COALESCE($1, s.character_id, $2) WHERE s.id = $3",
    )
    .bind(requested)
    .bind(DEFAULT_ID)
    .bind(session_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(JoinedRow::character))
}

/// Creates a character; `name` and `system_prompt` must be set (the caller checks).
pub async fn create(pool: &PgPool, f: &CharacterFields) -> Result<Character, StoreError> {
    let now = now_ts();
    let traits = serde_json::to_string(&f.personality_traits.clone().unwrap_or_default())
        .unwrap_or_else(|_| "[]".into());
    let row: CharacterRow = sqlx::query_as(&format!(
        "INSERT INTO characters (name, system_prompt, avatar_url, voice_id, tts_provider, personality_traits, created_ts, updated_ts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
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

/// Updates the given fields; a new name or system prompt also goes into the stored card (its
/// `data.name` and `data.system_prompt`, made where missing, as SQLite's `json_set` does).
/// Returns `None` when there is no such character. The card goes through `jsonb`, so it comes
/// back with PostgreSQL's key order and spacing: the same JSON, not the same bytes.
pub async fn update(
    pool: &PgPool,
    id: i64,
    f: &CharacterFields,
) -> Result<Option<Character>, StoreError> {
    let traits = f
        .personality_traits
        .as_ref()
        .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into()));
    let row: Option<CharacterRow> = sqlx::query_as(&format!(
        "UPDATE characters SET \
           card_json = CASE WHEN card_json IS NULL OR ($1::text IS NULL AND $2::text IS NULL) \
                              OR jsonb_typeof(card_json::jsonb) <> 'object' \
                              OR jsonb_typeof(coalesce(card_json::jsonb -> 'data', '{{}}')) <> 'object' \
                         THEN card_json \
               ELSE jsonb_set(jsonb_set( \
                      jsonb_set(card_json::jsonb, '{{data}}', coalesce(card_json::jsonb -> 'data', '{{}}')), \
                      '{{data,name}}', to_jsonb(coalesce($1, card_json::jsonb #>> '{{data,name}}', ''))), \
                    '{{data,system_prompt}}', \
                      to_jsonb(coalesce($2, card_json::jsonb #>> '{{data,system_prompt}}', '')))::text END, \
           name = coalesce($1, name), system_prompt = coalesce($2, system_prompt), \
           avatar_url = coalesce($3, avatar_url), voice_id = coalesce($4, voice_id), \
           tts_provider = coalesce($5, tts_provider), personality_traits = coalesce($6, personality_traits), \
           updated_ts = $7 \
         WHERE id = $8 RETURNING {COLUMNS}"
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
pub async fn delete(pool: &PgPool, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM characters WHERE id = $1 AND id <> $2")
        .bind(id)
        .bind(DEFAULT_ID)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The stored card of a character: `None` when there is no such character, `Some(None)` for a
/// character made before cards.
pub async fn card_json(pool: &PgPool, id: i64) -> Result<Option<Option<String>>, StoreError> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT card_json FROM characters WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(card,)| card))
}

/// Adds a character from a card, its portrait with it, in one statement.
pub async fn insert_card(
    pool: &PgPool,
    c: &CardRow<'_>,
    portrait: Option<&Portrait>,
) -> Result<Character, StoreError> {
    let now = now_ts();
    let row: CharacterRow = sqlx::query_as(&format!(
        "INSERT INTO characters (name, system_prompt, card_json, greeting, avatar_url, voice_id, \
         tts_provider, portrait, portrait_type, created_ts, updated_ts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
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
    pool: &PgPool,
    id: i64,
    c: &CardRow<'_>,
) -> Result<Option<Character>, StoreError> {
    let row: Option<CharacterRow> = sqlx::query_as(&format!(
        "UPDATE characters SET name = $1, system_prompt = $2, card_json = $3, greeting = $4, \
         avatar_url = $5, voice_id = $6, tts_provider = $7, updated_ts = $8 \
         WHERE id = $9 RETURNING {COLUMNS}"
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

/// Only the card JSON, when it is unchanged elsewhere since `seen_ts`: `None` when the character
/// is gone or was edited meanwhile.
pub async fn set_card_json(
    pool: &PgPool,
    id: i64,
    card_json: &str,
    seen_ts: f64,
) -> Result<Option<Character>, StoreError> {
    let row: Option<CharacterRow> = sqlx::query_as(&format!(
        "UPDATE characters SET card_json = $1, updated_ts = $2 WHERE id = $3 AND updated_ts = $4 \
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
pub async fn portrait(pool: &PgPool, id: i64) -> Result<Option<Option<Portrait>>, StoreError> {
    let row: Option<(Option<Vec<u8>>, Option<String>)> =
        sqlx::query_as("SELECT portrait, portrait_type FROM characters WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(bytes, media_type)| match (bytes, media_type) {
        (Some(bytes), Some(media_type)) => Some(Portrait { bytes, media_type }),
        _ => None,
    }))
}
