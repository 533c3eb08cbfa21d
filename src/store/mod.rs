//! [ssr] All SQL lives here, one file per aggregate. Nothing else talks to the database: the rest
//! of the app holds a [`Db`] (the [`Store`] trait) and never learns which database is behind it.

mod api;
pub mod characters;
mod db;
pub mod messages;
pub mod postgres;
pub mod search;
pub mod sessions;
mod url;

pub use api::{postgres_db, sqlite, Backend, Db, PgStore, SettingsRow, SqliteStore, Store};
pub use db::{db_health, open, StoreError};
pub use url::{DatabaseUrl, UrlError};

/// Taken around the frequent write transactions. SQLite admits one writer at a time; a second
/// one waits in its busy handler, which sleeps in steps of milliseconds. Queueing writers here
/// instead hands the lock over as soon as it is free.
pub(crate) static WRITE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Now, as the unix seconds (with fractions) every table stores.
pub(crate) fn now_ts() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Opens the database `url` names (creating a SQLite file if needed) and brings its schema up
/// to date.
pub async fn connect(url: &DatabaseUrl) -> Result<Db, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(sqlite(open(path).await?)),
        DatabaseUrl::Postgres(url) => Ok(postgres_db(postgres::open(url).await?)),
    }
}
