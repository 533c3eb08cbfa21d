//! Sessions: one row per conversation.

use super::{now_ts, StoreError};
use crate::shared::history::SessionSummary;
use sqlx::{FromRow, SqlitePool};

pub const DEFAULT_TITLE: &str = "New conversation";

#[derive(FromRow)]
pub(crate) struct SessionRow {
    id: i64,
    title: String,
    created_ts: f64,
    updated_ts: f64,
    character_id: Option<i64>,
    message_count: i64,
}

impl From<SessionRow> for SessionSummary {
    fn from(r: SessionRow) -> Self {
        SessionSummary {
            id: r.id,
            title: r.title,
            created_ts: r.created_ts,
            message_count: r.message_count,
            last_ts: r.updated_ts,
            character_id: r.character_id,
        }
    }
}

pub(crate) const SELECT: &str =
    "SELECT s.id, s.title, s.created_ts, s.updated_ts, s.character_id, \
     (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count \
     FROM sessions s";

/// Sessions by last activity, newest first.
pub async fn list(
    pool: &SqlitePool,
    limit: i64,
    offset: i64,
) -> Result<Vec<SessionSummary>, StoreError> {
    let rows: Vec<SessionRow> = sqlx::query_as(&format!(
        "{SELECT} ORDER BY s.updated_ts DESC, s.id DESC LIMIT ? OFFSET ?"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(pool: &SqlitePool, id: i64) -> Result<Option<SessionSummary>, StoreError> {
    let row: Option<SessionRow> = sqlx::query_as(&format!("{SELECT} WHERE s.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Into::into))
}

pub async fn create(pool: &SqlitePool, title: Option<&str>) -> Result<SessionSummary, StoreError> {
    let now = now_ts();
    let title = title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_TITLE);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sessions (title, created_ts, updated_ts) VALUES (?, ?, ?) RETURNING id",
    )
    .bind(title)
    .bind(now)
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok(SessionSummary {
        id,
        title: title.to_string(),
        created_ts: now,
        message_count: 0,
        last_ts: now,
        character_id: None,
    })
}

/// A session bound to a character, opened by its greeting (stored as the character's message)
/// when there is one: both in one transaction.
pub async fn create_for_character(
    pool: &SqlitePool,
    title: Option<&str>,
    character_id: i64,
    greeting: Option<&str>,
) -> Result<SessionSummary, StoreError> {
    let now = now_ts();
    let title = title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_TITLE);
    let _write = super::WRITE.lock().await;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sessions (title, character_id, created_ts, updated_ts) VALUES (?, ?, ?, ?) \
         RETURNING id",
    )
    .bind(title)
    .bind(character_id)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let mut count = 0;
    if let Some(text) = greeting.filter(|g| !g.trim().is_empty()) {
        sqlx::query(
            "INSERT INTO messages (session_id, role, text, input, ts) \
             VALUES (?, 'assistant', ?, 'text', ?)",
        )
        .bind(id)
        .bind(text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        count = 1;
    }
    tx.commit().await?;
    Ok(SessionSummary {
        id,
        title: title.to_string(),
        created_ts: now,
        message_count: count,
        last_ts: now,
        character_id: Some(character_id),
    })
}

/// The session with this id, created (empty, default title) if it does not exist yet.
pub async fn ensure(pool: &SqlitePool, id: i64) -> Result<SessionSummary, StoreError> {
    create_with_id(pool, id).await?;
    get(pool, id)
        .await?
        .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
}

/// Creates the session `id`, empty with the default title, unless it exists.
pub async fn create_with_id(pool: &SqlitePool, id: i64) -> Result<(), StoreError> {
    let _write = super::WRITE.lock().await;
    let now = now_ts();
    sqlx::query(
        "INSERT OR IGNORE INTO sessions (id, title, created_ts, updated_ts) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(DEFAULT_TITLE)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Returns false when there is no such session.
pub async fn rename(pool: &SqlitePool, id: i64, title: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE sessions SET title = ? WHERE id = ?")
        .bind(title.trim())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the session; its messages go with it (cascade) and leave the search index (trigger).
/// Returns false when there is no such session.
pub async fn delete(pool: &SqlitePool, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
