//! Sessions in PostgreSQL (see `store::sessions`).

use super::no_nul;
use crate::shared::history::SessionSummary;
use crate::store::{
    now_ts,
    sessions::{SessionRow, DEFAULT_TITLE, SELECT},
    StoreError,
};
use sqlx::PgPool;

/// Sessions by last activity, newest first. A negative `limit` means no limit and a negative
/// `offset` none, as SQLite reads them (PostgreSQL would refuse them).
pub async fn list(
    pool: &PgPool,
    limit: i64,
    offset: i64,
) -> Result<Vec<SessionSummary>, StoreError> {
    let rows: Vec<SessionRow> = sqlx::query_as(&format!(
        "{SELECT} ORDER BY s.updated_ts DESC, s.id DESC LIMIT $1 OFFSET $2"
    ))
    .bind((limit >= 0).then_some(limit))
    .bind(offset.max(0))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<SessionSummary>, StoreError> {
    let row: Option<SessionRow> = sqlx::query_as(&format!("{SELECT} WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Into::into))
}

fn title_or_default(title: Option<&str>) -> &str {
    title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_TITLE)
}

pub async fn create(pool: &PgPool, title: Option<&str>) -> Result<SessionSummary, StoreError> {
    let now = now_ts();
    let title = title_or_default(title);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sessions (title, created_ts, updated_ts) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(no_nul(title))
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

/// A session bound to a character, opened by its greeting when there is one: both in one
/// transaction.
pub async fn create_for_character(
    pool: &PgPool,
    title: Option<&str>,
    character_id: i64,
    greeting: Option<&str>,
) -> Result<SessionSummary, StoreError> {
    let now = now_ts();
    let title = title_or_default(title);
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sessions (title, character_id, created_ts, updated_ts) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(no_nul(title))
    .bind(character_id)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let mut count = 0;
    if let Some(text) = greeting.filter(|g| !g.trim().is_empty()) {
        sqlx::query(
            "INSERT INTO messages (session_id, role, text, input, ts) \
             VALUES ($1, 'assistant', $2, 'text', $3)",
        )
        .bind(id)
        .bind(no_nul(text))
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
pub async fn ensure(pool: &PgPool, id: i64) -> Result<SessionSummary, StoreError> {
    create_with_id(pool, id).await?;
    get(pool, id)
        .await?
        .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
}

/// Creates the session `id`, empty with the default title, unless it exists. An identity column
/// does not move past an id given explicitly, so the sequence is moved when the id is at or past
/// the next one it would hand out: otherwise a later `create` would collide with this row.
pub async fn create_with_id(pool: &PgPool, id: i64) -> Result<(), StoreError> {
    let now = now_ts();
    sqlx::query(
        "WITH made AS ( \
             INSERT INTO sessions (id, title, created_ts, updated_ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING RETURNING id) \
         SELECT setval(pg_get_serial_sequence('sessions', 'id'), made.id) FROM made \
         WHERE made.id >= (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END \
                           FROM sessions_id_seq)",
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
pub async fn rename(pool: &PgPool, id: i64, title: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE sessions SET title = $1 WHERE id = $2")
        .bind(no_nul(title.trim()))
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the session; its messages go with it (cascade), and with them their index entries.
/// Returns false when there is no such session.
pub async fn delete(pool: &PgPool, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
