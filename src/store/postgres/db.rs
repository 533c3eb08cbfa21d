//! Connecting to PostgreSQL and bringing its schema up to date.

use crate::{shared::health::DbHealth, store::StoreError};
use sqlx::{postgres::PgPoolOptions, PgPool};
use std::time::Duration;

/// Connects to the database at `url` (`postgres://user@host:port/db`) and runs the migrations in
/// `migrations/postgres/`. Several instances may open the same database at once: sqlx holds an
/// advisory lock while it migrates.
pub async fn open(url: &str) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    // Under LC_CTYPE=C the text-search parser splits "café" and 日本語 into nothing useful: say
    // so once, rather than let search quietly miss messages.
    let ctype: Option<String> = sqlx::query_scalar("SHOW lc_ctype")
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten();
    if let Some(ctype) = ctype.filter(|c| !c.to_ascii_lowercase().contains("utf")) {
        tracing::warn!(
            lc_ctype = %ctype,
            "the database's LC_CTYPE is not UTF-8: search will not find accented or CJK words"
        );
    }
    Ok(pool)
}

/// Whether the database answers and how many messages it holds. `journal_mode` reads
/// "postgres": the field names SQLite's journal, which PostgreSQL does not have.
pub async fn db_health(pool: &PgPool) -> DbHealth {
    let probe = async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messages")
            .fetch_one(pool)
            .await
    };
    let failed = DbHealth {
        ok: false,
        journal_mode: String::new(),
        messages: 0,
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(messages)) => DbHealth {
            ok: true,
            journal_mode: "postgres".into(),
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
