//! Opening the database: every connection gets WAL, foreign keys, a busy timeout and
//! `synchronous=NORMAL` (safe with WAL, and much faster than FULL), then migrations run.

use crate::shared::health::DbHealth;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    SqlitePool,
};
use std::{path::Path, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A search the index could not run (the input is at fault, not the database).
    #[error("{0}")]
    BadQuery(String),
}

impl StoreError {
    /// The database refused a write because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db(e) => crate::disk::sqlite_is_full(e) || crate::disk::postgres_is_full(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => {
                crate::disk::sqlite_is_full(e) || crate::disk::postgres_is_full(e)
            }
            _ => false,
        }
    }
}

/// Opens (creating if needed) the SQLite database at `path` and brings its schema up to date.
pub async fn open(path: &Path) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        // sqlx pings an idle connection before lending it out, by default: for a network
        // database that finds a dropped link, but a SQLite connection is a file in this process
        // and cannot hang up, so the ping only doubled the hand-offs to its worker thread.
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// Whether the database answers, its journal mode and how many messages it holds.
pub async fn db_health(pool: &SqlitePool) -> DbHealth {
    let probe = async {
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await?;
        let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(pool)
            .await?;
        Ok::<_, sqlx::Error>((journal_mode, messages))
    };
    let failed = DbHealth {
        ok: false,
        journal_mode: String::new(),
        messages: 0,
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok((journal_mode, messages))) => DbHealth {
            ok: true,
            journal_mode,
            messages,
        },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "database health probe failed");
            failed
        }
        Err(_) => {
            tracing::warn!("database health probe timed out after 2 s");
            failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_in_wal_mode_with_foreign_keys_and_the_default_character() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir.path().join("app.db")).await.unwrap();
        let health = db_health(&pool).await;
        assert!(health.ok);
        assert_eq!(health.journal_mode, "wal");
        assert_eq!(health.messages, 0);
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let name: String = sqlx::query_scalar("SELECT name FROM characters WHERE id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(name, "Aiko");
        // Opening again runs no migration twice.
        drop(pool);
        let pool = open(&dir.path().join("app.db")).await.unwrap();
        assert!(db_health(&pool).await.ok);
    }
}
