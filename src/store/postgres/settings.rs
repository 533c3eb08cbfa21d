//! The settings row every instance shares, and the notifications that tell the others it changed.

use crate::store::{now_ts, SettingsRow, StoreError};
use sqlx::{postgres::PgListener, PgPool};
use std::time::Duration;
use tokio::sync::mpsc;

/// The channel a save notifies.
const CHANNEL: &str = "waifu_settings";

pub async fn read(pool: &PgPool) -> Result<Option<SettingsRow>, StoreError> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT revision, doc FROM settings WHERE id = 1")
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(revision, doc)| SettingsRow { revision, doc }))
}

/// Writes `doc` if the row is still at `expected` (`None`: there is no row yet), and notifies
/// the other instances in the same transaction (PostgreSQL delivers it on commit).
pub async fn write(
    pool: &PgPool,
    doc: &str,
    expected: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let mut tx = pool.begin().await?;
    let revision: Option<i64> = match expected {
        None => {
            sqlx::query_scalar(
                "INSERT INTO settings (id, doc, revision, updated_ts) VALUES (1, $1, 1, $2)
                 ON CONFLICT (id) DO NOTHING RETURNING revision",
            )
            .bind(doc)
            .bind(now_ts())
            .fetch_optional(&mut *tx)
            .await?
        }
        Some(expected) => {
            sqlx::query_scalar(
                "UPDATE settings SET doc = $1, revision = revision + 1, updated_ts = $2
                 WHERE id = 1 AND revision = $3 RETURNING revision",
            )
            .bind(doc)
            .bind(now_ts())
            .bind(expected)
            .fetch_optional(&mut *tx)
            .await?
        }
    };
    if let Some(revision) = revision {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(revision.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(revision)
}

/// A message for every notification, and one after each reconnection (notifications sent while
/// the connection was down are lost, so the row must be read again). Ends when the receiver is
/// dropped.
pub async fn watch(pool: &PgPool) -> Result<mpsc::Receiver<()>, StoreError> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    // One pending message is enough: whoever reads it reads the newest row.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                () = tx.closed() => return,
                next = listener.try_recv() => next,
            };
            match next {
                // Ok(None): the connection dropped; the next call reconnects.
                Ok(_) => {
                    let _ = tx.try_send(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listening for settings changes failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(rx)
}
