//! [ssr] The PostgreSQL twin of the SQLite store (`DATABASE_URL=postgres://…`): one free function
//! for every function of `store::{sessions, messages, characters, search}`, with the same name,
//! parameters (a `PgPool` in place of the `SqlitePool`), results and errors. The pure parts (query
//! terms, snippets, the prompt window, row types) are the SQLite store's own, so the two backends
//! cannot drift apart there. The schema is in `migrations/postgres/`; docs/architecture.md says
//! how search is translated.

pub mod characters;
pub mod cluster;
mod db;
pub mod messages;
pub mod search;
pub mod sessions;
pub(crate) mod settings;

pub use db::{db_health, open};

use std::borrow::Cow;

/// Text as PostgreSQL can store it. Its `text` cannot hold U+0000, which SQLite stores; a NUL in
/// a message or a title (never typed, only pasted from binary) becomes U+FFFD, the character a
/// decoder shows for what it cannot read, instead of failing the write.
pub(crate) fn no_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests;
