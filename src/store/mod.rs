//! [ssr] All SQL lives here, one file per aggregate. Nothing else talks to the database.

pub mod characters;
mod db;
pub mod messages;
pub mod postgres;
pub mod search;
pub mod sessions;

pub use db::{db_health, open, StoreError};

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
