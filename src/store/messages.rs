//! Messages of a session. Adding one also moves its session's last activity.

use super::{now_ts, StoreError};
use crate::shared::{
    chat::InputKind,
    history::{Message, MessagePage, Role},
};
use sqlx::{FromRow, SqlitePool};

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub session_id: i64,
    pub role: Role,
    pub text: &'a str,
    pub reasoning: Option<&'a str>,
    pub emotion: Option<&'a str>,
    pub partial: bool,
    pub timings: Option<&'a str>,
    pub input: InputKind,
    /// A JSON array of the lorebook entries in this reply's prompt.
    pub lore: Option<&'a str>,
}

impl<'a> NewMessage<'a> {
    pub fn new(session_id: i64, role: Role, text: &'a str) -> Self {
        Self {
            session_id,
            role,
            text,
            reasoning: None,
            emotion: None,
            partial: false,
            timings: None,
            input: InputKind::Text,
            lore: None,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct MessageRow {
    id: i64,
    session_id: i64,
    role: String,
    text: String,
    reasoning: Option<String>,
    emotion: Option<String>,
    partial: bool,
    input: String,
    ts: f64,
    edited_ts: Option<f64>,
    lore: Option<String>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Message {
            id: r.id,
            session_id: r.session_id,
            // The table's CHECK constraint admits only these three.
            role: Role::from_name(&r.role).unwrap_or(Role::System),
            text: r.text,
            reasoning: r.reasoning,
            emotion: r.emotion,
            partial: r.partial,
            // The table's CHECK constraint admits only these two.
            input: InputKind::from_name(&r.input).unwrap_or_default(),
            ts: r.ts,
            edited_ts: r.edited_ts,
            lore: r
                .lore
                .and_then(|l| serde_json::from_str(&l).ok())
                .unwrap_or_default(),
        }
    }
}

pub(crate) const COLUMNS: &str =
    "id, session_id, role, text, reasoning, emotion, partial, input, ts, edited_ts, lore";

/// Stores a message; a trigger moves the session's last activity in the same statement.
pub async fn add(pool: &SqlitePool, m: &NewMessage<'_>) -> Result<Message, StoreError> {
    // Writers queue here rather than in SQLite's busy handler, which sleeps in steps of
    // milliseconds (see `WRITE`).
    let _write = super::WRITE.lock().await;
    // Stepped to the end (`fetch_all`), so the statement's implicit transaction has committed
    // before the lock above is released.
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "INSERT INTO messages (session_id, role, text, reasoning, emotion, partial, timings, input, lore, ts) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
    ))
    .bind(m.session_id)
    .bind(m.role.name())
    .bind(m.text)
    .bind(m.reasoning)
    .bind(m.emotion)
    .bind(m.partial)
    .bind(m.timings)
    .bind(m.input.name())
    .bind(m.lore)
    .bind(now_ts())
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .next()
        .map(Into::into)
        .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
}

/// Rewrites a reply stored while it was still arriving: its text so far, reasoning, emotion,
/// whether it is still partial, and its timings (kept when `m.timings` is `None`). The search
/// index follows the text through the update trigger. Returns false when there is no such
/// message (deleted meanwhile).
pub async fn update_reply(
    pool: &SqlitePool,
    id: i64,
    m: &NewMessage<'_>,
) -> Result<bool, StoreError> {
    // Queued with the inserts (see `add`): replies in progress are rewritten every second.
    let _write = super::WRITE.lock().await;
    let done = sqlx::query(
        "UPDATE messages SET text = ?, reasoning = ?, emotion = ?, partial = ?, \
         timings = coalesce(?, timings), lore = coalesce(?, lore) WHERE id = ? AND session_id = ?",
    )
    .bind(m.text)
    .bind(m.reasoning)
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
/// Rows go in as multi-row INSERTs: one statement per row would spend most of the time passing
/// statements to the database thread.
pub async fn add_many(pool: &SqlitePool, batch: &[NewMessage<'_>]) -> Result<u64, StoreError> {
    // 9 bound values per row; SQLite allows 32,766 per statement.
    const ROWS_PER_STATEMENT: usize = 500;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let now = now_ts();
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO messages (session_id, role, text, reasoning, emotion, partial, timings, input, ts) ",
        );
        insert.push_values(chunk, |mut row, m| {
            row.push_bind(m.session_id)
                .push_bind(m.role.name())
                .push_bind(m.text)
                .push_bind(m.reasoning)
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
    let ids = serde_json::to_string(&sessions).unwrap_or_else(|_| "[]".into());
    sqlx::query("UPDATE sessions SET updated_ts = ? WHERE id IN (SELECT value FROM json_each(?))")
        .bind(now)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(batch.len() as u64)
}

pub async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Message>, StoreError> {
    let row: Option<MessageRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(Into::into))
}

/// Where a page of messages starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The newest messages.
    Latest,
    /// The messages just older than this id.
    Before(i64),
    /// The messages just newer than this id.
    After(i64),
    /// A window with this message in the middle (jumping to a search hit).
    Around(i64),
}

/// A page of at most `limit` messages, oldest first.
pub async fn page(
    pool: &SqlitePool,
    session_id: i64,
    cursor: Cursor,
    limit: i64,
) -> Result<MessagePage, StoreError> {
    let limit = limit.max(1);
    let older_sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE session_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
    );
    let newer_sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE session_id = ? AND id > ? ORDER BY id ASC LIMIT ?"
    );
    // (older than, how many) and (newer than, how many).
    let ((below, older_n), (above, newer_n)) = match cursor {
        Cursor::Latest => ((i64::MAX, limit), (0, 0)),
        Cursor::Before(id) => ((id, limit), (0, 0)),
        Cursor::After(id) => ((0, 0), (id, limit)),
        // `id + 1` so the target itself is in the older half.
        Cursor::Around(id) => ((id + 1, limit - limit / 2), (id, (limit / 2).max(1))),
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
    // Pages that did not look in one direction still say whether more lies there.
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

/// Up to `n + 1` rows past `edge` (the extra one tells whether more lie beyond the page); `n = 0`
/// leaves that direction unread.
async fn read_rows(
    pool: &SqlitePool,
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
        .bind(n + 1)
        .fetch_all(pool)
        .await
}

async fn exists(
    pool: &SqlitePool,
    session_id: i64,
    edge: Option<i64>,
    older: bool,
) -> Result<bool, StoreError> {
    let Some(edge) = edge else { return Ok(false) };
    let sql = if older {
        "SELECT EXISTS (SELECT 1 FROM messages WHERE session_id = ? AND id < ?)"
    } else {
        "SELECT EXISTS (SELECT 1 FROM messages WHERE session_id = ? AND id > ?)"
    };
    Ok(sqlx::query_scalar(sql)
        .bind(session_id)
        .bind(edge)
        .fetch_one(pool)
        .await?)
}

/// The history a prompt starts from: at most `max` of the session's last messages, oldest first,
/// taken from a start that moves `max / 2` messages at a time (see [`window_offset`]).
pub async fn window(
    pool: &SqlitePool,
    session_id: i64,
    max: i64,
) -> Result<Vec<Message>, StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE session_id = ?")
        .bind(session_id)
        .fetch_one(pool)
        .await?;
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM messages WHERE session_id = ? ORDER BY id LIMIT ? OFFSET ?"
    ))
    .bind(session_id)
    .bind(max.max(0))
    .bind(window_offset(count, max))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// How many of a session's `count` messages, oldest first, a window of at most `max` skips.
///
/// The offset is a multiple of `max / 2`: as a conversation grows it stays put for `max / 2`
/// messages, then jumps. A window sliding by one message per message would change the start of
/// every prompt, so no model could reuse the previous prompt's cache.
pub fn window_offset(count: i64, max: i64) -> i64 {
    if max <= 0 {
        return count.max(0);
    }
    let step = (max / 2).max(1);
    let over = count - max;
    if over <= 0 {
        0
    } else {
        (over + step - 1) / step * step
    }
}

/// Every message of a session, oldest first (export).
pub async fn all(pool: &SqlitePool, session_id: i64) -> Result<Vec<Message>, StoreError> {
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM messages WHERE session_id = ? ORDER BY id"
    ))
    .bind(session_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Replaces a message's text (the search index follows). Returns false when there is no such message.
pub async fn edit(
    pool: &SqlitePool,
    session_id: i64,
    id: i64,
    text: &str,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE messages SET text = ?, edited_ts = ? WHERE id = ? AND session_id = ?")
            .bind(text)
            .bind(now_ts())
            .bind(id)
            .bind(session_id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Returns false when there is no such message.
pub async fn delete(pool: &SqlitePool, session_id: i64, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM messages WHERE id = ? AND session_id = ?")
        .bind(id)
        .bind(session_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Merges `patch` (a JSON object of stage -> ms) into a message's stored timings: the voice
/// stages arrive after the reply is stored, and the browser's playback report after that.
/// Returns false when there is no such message.
pub async fn merge_timings(pool: &SqlitePool, id: i64, patch: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE messages SET timings = json_patch(coalesce(timings, '{\"input_received\":0}'), ?) \
         WHERE id = ?",
    )
    .bind(patch)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The stored timings of the last `limit` assistant replies that have them, newest first.
pub async fn recent_timings(pool: &SqlitePool, limit: i64) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT timings FROM messages WHERE role = 'assistant' AND timings IS NOT NULL \
         ORDER BY id DESC LIMIT ?",
    )
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::window_offset;

    #[test]
    fn the_window_holds_at_most_max_and_its_start_moves_in_half_windows() {
        let max = 12;
        let mut last = 0;
        let mut moves = 0;
        for count in 0..200 {
            let offset = window_offset(count, max);
            let kept = count - offset;
            assert!(kept <= max, "{kept} messages kept of {count}");
            assert!(
                count <= max || kept > max / 2,
                "only {kept} kept of {count}"
            );
            assert!(offset >= last);
            if offset != last {
                assert_eq!(offset - last, max / 2, "at {count}");
                moves += 1;
            }
            last = offset;
        }
        assert!(moves > 20);
        assert_eq!(window_offset(5, 12), 0);
        assert_eq!(window_offset(13, 12), 6);
        assert_eq!(window_offset(18, 12), 6);
        assert_eq!(window_offset(19, 12), 12);
        assert_eq!(window_offset(3, 1), 2);
        assert_eq!(window_offset(3, 0), 3);
    }
}
