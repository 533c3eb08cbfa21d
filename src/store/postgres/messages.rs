//! Messages in PostgreSQL (see `store::messages`). Adding one also moves its session's last
//! activity (a trigger, as in SQLite).

use super::no_nul;
use crate::shared::history::{Message, MessagePage};
use crate::store::{
    messages::{window_offset, Cursor, MessageRow, NewMessage, COLUMNS},
    now_ts, StoreError,
};
use sqlx::PgPool;

/// Stores a message; a trigger moves the session's last activity in the same statement.
pub async fn add(pool: &PgPool, m: &NewMessage<'_>) -> Result<Message, StoreError> {
    let row: MessageRow = sqlx::query_as(&format!(
        "INSERT INTO messages (session_id, role, text, reasoning, emotion, partial, timings, input, lore, ts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    ))
    .bind(m.session_id)
    .bind(m.role.name())
    .bind(no_nul(m.text))
    .bind(m.reasoning.map(no_nul))
    .bind(m.emotion)
    .bind(m.partial)
    .bind(m.timings)
    .bind(m.input.name())
    .bind(m.lore)
    .bind(now_ts())
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

/// Rewrites a reply stored while it was still arriving (see `store::messages::update_reply`).
/// Returns false when there is no such message.
pub async fn update_reply(pool: &PgPool, id: i64, m: &NewMessage<'_>) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE messages SET text = $1, reasoning = $2, emotion = $3, partial = $4, \
         timings = coalesce($5, timings), lore = coalesce($6, lore) \
         WHERE id = $7 AND session_id = $8",
    )
    .bind(no_nul(m.text))
    .bind(m.reasoning.map(no_nul))
    .bind(m.emotion)
    .bind(m.partial)
    .bind(m.timings)
    .bind(m.lore)
    .bind(id)
    .bind(m.session_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores many messages in one transaction (imports, benchmarks). Returns how many were stored.
pub async fn add_many(pool: &PgPool, batch: &[NewMessage<'_>]) -> Result<u64, StoreError> {
    // 9 bound values per row; PostgreSQL allows 65,535 per statement.
    const ROWS_PER_STATEMENT: usize = 1000;
    let mut tx = pool.begin().await?;
    let now = now_ts();
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO messages (session_id, role, text, reasoning, emotion, partial, timings, input, ts) ",
        );
        insert.push_values(chunk, |mut row, m| {
            row.push_bind(m.session_id)
                .push_bind(m.role.name())
                .push_bind(no_nul(m.text))
                .push_bind(m.reasoning.map(no_nul))
                .push_bind(m.emotion)
                .push_bind(m.partial)
                .push_bind(m.timings)
                .push_bind(m.input.name())
                .push_bind(now);
        });
        insert.build().execute(&mut *tx).await?;
    }
    let mut sessions: Vec<i64> = batch.iter().map(|m| m.session_id).collect();
    sessions.sort_unstable();
    sessions.dedup();
    sqlx::query("UPDATE sessions SET updated_ts = $1 WHERE id = ANY($2)")
        .bind(now)
        .bind(sessions)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(batch.len() as u64)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Message>, StoreError> {
    let row: Option<MessageRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM messages WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(Into::into))
}

/// A page of at most `limit` messages, oldest first (the same windows as SQLite's `page`).
pub async fn page(
    pool: &PgPool,
    session_id: i64,
    cursor: Cursor,
    limit: i64,
) -> Result<MessagePage, StoreError> {
    let limit = limit.max(1);
    let older_sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE session_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    );
    let newer_sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE session_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3"
    );
    let ((below, older_n), (above, newer_n)) = match cursor {
        Cursor::Latest => ((i64::MAX, limit), (0, 0)),
        Cursor::Before(id) => ((id, limit), (0, 0)),
        Cursor::After(id) => ((0, 0), (id, limit)),
        // `id + 1` so the target itself is in the older half.
        Cursor::Around(id) => (
            (id.saturating_add(1), limit - limit / 2),
            (id, (limit / 2).max(1)),
        ),
    };
    let mut before = read_rows(pool, &older_sql, session_id, below, older_n).await?;
    let mut after = read_rows(pool, &newer_sql, session_id, above, newer_n).await?;
    let has_more_before = before.len() as i64 > older_n;
    before.truncate(older_n as usize);
    let has_more_after = after.len() as i64 > newer_n;
    after.truncate(newer_n as usize);
    before.reverse();
    let mut messages: Vec<Message> = before.into_iter().map(Into::into).collect();
    messages.extend(after.into_iter().map(Into::into));
    let has_more_before = has_more_before
        || (matches!(cursor, Cursor::After(_))
            && exists(pool, session_id, messages.first().map(|m| m.id), true).await?);
    let has_more_after = has_more_after
        || (matches!(cursor, Cursor::Before(_))
            && exists(pool, session_id, messages.last().map(|m| m.id), false).await?);
    Ok(MessagePage {
        messages,
        has_more_before,
        has_more_after,
    })
}

/// Up to `n + 1` rows past `edge`; `n = 0` leaves that direction unread.
async fn read_rows(
    pool: &PgPool,
    sql: &str,
    session_id: i64,
    edge: i64,
    n: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    if n == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_as(sql)
        .bind(session_id)
        .bind(edge)
        .bind(n.saturating_add(1))
        .fetch_all(pool)
        .await
}

async fn exists(
    pool: &PgPool,
    session_id: i64,
    edge: Option<i64>,
    older: bool,
) -> Result<bool, StoreError> {
    let Some(edge) = edge else { return Ok(false) };
    let sql = if older {
        "SELECT EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND id < $2)"
    } else {
        "SELECT EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND id > $2)"
    };
    Ok(sqlx::query_scalar(sql)
        .bind(session_id)
        .bind(edge)
        .fetch_one(pool)
        .await?)
}

/// The history a prompt starts from (see `store::messages::window`).
pub async fn window(pool: &PgPool, session_id: i64, max: i64) -> Result<Vec<Message>, StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE session_id = $1")
        .bind(session_id)
        .fetch_one(pool)
        .await?;
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM messages WHERE session_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
    ))
    .bind(session_id)
    .bind(max.max(0))
    .bind(window_offset(count, max))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Every message of a session, oldest first (export).
pub async fn all(pool: &PgPool, session_id: i64) -> Result<Vec<Message>, StoreError> {
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM messages WHERE session_id = $1 ORDER BY id"
    ))
    .bind(session_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Replaces a message's text (the index column follows). Returns false when there is no such
/// message.
pub async fn edit(pool: &PgPool, session_id: i64, id: i64, text: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE messages SET text = $1, edited_ts = $2 WHERE id = $3 AND session_id = $4",
    )
    .bind(no_nul(text))
    .bind(now_ts())
    .bind(id)
    .bind(session_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Returns false when there is no such message.
pub async fn delete(pool: &PgPool, session_id: i64, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM messages WHERE id = $1 AND session_id = $2")
        .bind(id)
        .bind(session_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Merges `patch` (a JSON object of stage -> ms) into a message's stored timings, with the same
/// merge-patch rules as SQLite's `json_patch` (`waifu_json_patch` in the schema). Returns false
/// when there is no such message.
pub async fn merge_timings(pool: &PgPool, id: i64, patch: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE messages SET timings = waifu_json_patch( \
             coalesce(timings, '{\"input_received\":0}')::jsonb, $1::jsonb)::text \
         WHERE id = $2",
    )
    .bind(patch)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The stored timings of the last `limit` assistant replies that have them, newest first.
pub async fn recent_timings(pool: &PgPool, limit: i64) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT timings FROM messages WHERE role = 'assistant' AND timings IS NOT NULL \
         ORDER BY id DESC LIMIT $1",
    )
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?)
}
