//! The one interface routes and services use for history, characters and traces: [`Store`],
//! held as a [`Db`]. Which database is behind it (SQLite by default, or PostgreSQL) is chosen
//! once, from the database URL, by [`super::connect`]; nothing above this module knows.
//!
//! Each backend keeps its SQL in free functions of the same name and signature (`store::sessions`
//! … for SQLite, `store::postgres::sessions` … for PostgreSQL). The trait and both
//! implementations are written out by one macro from one list, so a method cannot be added to the
//! trait without both backends providing it.

use super::postgres as pg;
use super::{
    characters::{CardRow, CharacterFields, Portrait},
    messages::{Cursor, NewMessage},
    search::Memory,
    StoreError,
};
use crate::shared::{
    health::DbHealth,
    history::{Character, Message, MessagePage, SearchHit, SessionSummary},
};
use std::sync::Arc;

/// The settings document shared by every instance, with its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsRow {
    pub revision: i64,
    pub doc: String,
}

/// The store every handler and turn holds.
pub type Db = Arc<dyn Store>;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The SQLite database in the data folder (the default).
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
}

impl SqliteStore {
    pub fn new(pool: sqlx::SqlitePool) -> Self {
        Self { pool }
    }
}

macro_rules! store_api {
    (@trait $(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $module:ident::$func:ident;
    )*) => {
        /// History, characters and latency traces, whichever database holds them.
        #[async_trait::async_trait]
        pub trait Store: Send + Sync + 'static {
            /// Which database this is.
            fn backend(&self) -> Backend;
            /// Whether the database answers, and how many messages it holds.
            async fn health(&self) -> DbHealth;
            /// Waits for the connections to finish their work and closes them.
            async fn close(&self);
            /// Whether the settings live here, shared by every instance, rather than in the data
            /// folder's file. The four methods below are used only when this is true.
            fn shares_settings(&self) -> bool {
                false
            }
            /// The shared settings document and its revision (`None`: nothing saved yet).
            async fn read_settings(&self) -> Result<Option<SettingsRow>, StoreError> {
                Ok(None)
            }
            /// Saves the settings document if the stored revision is still `expected` (`None`:
            /// nothing stored yet). The new revision, or `None` when another instance saved first.
            async fn write_settings(
                &self,
                _doc: &str,
                _expected: Option<i64>,
            ) -> Result<Option<i64>, StoreError> {
                Err(StoreError::NotShared)
            }
            /// A message each time another instance may have saved the settings (also after a
            /// lost connection to the database came back, as saves may have been missed).
            async fn watch_settings(&self) -> Result<tokio::sync::mpsc::Receiver<()>, StoreError> {
                Err(StoreError::NotShared)
            }
            $( $(#[$doc])* async fn $name(&self, $($arg: $ty),*) -> Result<$ret, StoreError>; )*
        }
    };
    (@impl $store:ident, $backend:ident, $root:tt, { $($extra:tt)* }, $(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $module:ident::$func:ident;
    )*) => {
        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                Backend::$backend
            }
            async fn health(&self) -> DbHealth {
                $root::db_health(&self.pool).await
            }
            async fn close(&self) {
                self.pool.close().await
            }
            $($extra)*
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret, StoreError> {
                    $root::$module::$func(&self.pool, $($arg),*).await
                }
            )*
        }
    };
    // Last, so that the `@` rules above match their own calls first.
    ($($list:tt)*) => {
        store_api!(@trait $($list)*);
        store_api!(@impl SqliteStore, Sqlite, super, {}, $($list)*);
        store_api!(@impl PgStore, Postgres, pg, {
            fn shares_settings(&self) -> bool {
                true
            }
            async fn read_settings(&self) -> Result<Option<SettingsRow>, StoreError> {
                pg::settings::read(&self.pool).await
            }
            async fn write_settings(
                &self,
                doc: &str,
                expected: Option<i64>,
            ) -> Result<Option<i64>, StoreError> {
                pg::settings::write(&self.pool, doc, expected).await
            }
            async fn watch_settings(&self) -> Result<tokio::sync::mpsc::Receiver<()>, StoreError> {
                pg::settings::watch(&self.pool).await
            }
        }, $($list)*);
    };
}

store_api! {
    /// Sessions, most recently active first.
    fn list_sessions(limit: i64, offset: i64) -> Vec<SessionSummary> = sessions::list;
    fn get_session(id: i64) -> Option<SessionSummary> = sessions::get;
    fn create_session(title: Option<&str>) -> SessionSummary = sessions::create;
    /// A session bound to a character, with its greeting as the first message.
    fn create_session_for_character(
        title: Option<&str>,
        character_id: i64,
        greeting: Option<&str>
    ) -> SessionSummary = sessions::create_for_character;
    /// The session, created under this id if it does not exist.
    fn ensure_session(id: i64) -> SessionSummary = sessions::ensure;
    fn create_session_with_id(id: i64) -> () = sessions::create_with_id;
    fn rename_session(id: i64, title: &str) -> bool = sessions::rename;
    fn delete_session(id: i64) -> bool = sessions::delete;

    fn add_message(m: &NewMessage<'_>) -> Message = messages::add;
    /// Rewrites a reply being streamed (its text, emotion, audio so far).
    fn update_reply(id: i64, m: &NewMessage<'_>) -> bool = messages::update_reply;
    fn add_messages(batch: &[NewMessage<'_>]) -> u64 = messages::add_many;
    fn get_message(id: i64) -> Option<Message> = messages::get;
    fn message_page(session_id: i64, cursor: Cursor, limit: i64) -> MessagePage = messages::page;
    /// The newest messages of a session that fit the prompt, oldest first.
    fn message_window(session_id: i64, max: i64) -> Vec<Message> = messages::window;
    fn all_messages(session_id: i64) -> Vec<Message> = messages::all;
    fn edit_message(session_id: i64, id: i64, text: &str) -> bool = messages::edit;
    fn delete_message(session_id: i64, id: i64) -> bool = messages::delete;
    /// Adds stage timings (a JSON object of stage → ms) to a reply's latency trace.
    fn merge_timings(id: i64, patch: &str) -> bool = messages::merge_timings;
    fn recent_timings(limit: i64) -> Vec<String> = messages::recent_timings;

    fn list_characters() -> Vec<Character> = characters::list;
    fn get_character(id: i64) -> Option<Character> = characters::get;
    /// The character a session talks to (`None`: no such session).
    fn character_for_session(
        session_id: i64,
        requested: Option<i64>
    ) -> Option<Option<Character>> = characters::for_session;
    fn create_character(f: &CharacterFields) -> Character = characters::create;
    fn update_character(id: i64, f: &CharacterFields) -> Option<Character> = characters::update;
    fn delete_character(id: i64) -> bool = characters::delete;
    fn card_json(id: i64) -> Option<Option<String>> = characters::card_json;
    fn insert_card(c: &CardRow<'_>, portrait: Option<&Portrait>) -> Character
        = characters::insert_card;
    fn update_card(id: i64, c: &CardRow<'_>) -> Option<Character> = characters::update_card;
    fn set_card_json(id: i64, card_json: &str, seen_ts: f64) -> Option<Character>
        = characters::set_card_json;
    fn portrait(id: i64) -> Option<Option<Portrait>> = characters::portrait;

    /// Full-text search over every message (or one session's).
    fn search(input: &str, session_id: Option<i64>, limit: i64, offset: i64) -> Vec<SearchHit>
        = search::search;
    /// Earlier messages that share words with `text`, for the prompt's memories.
    fn recall(text: &str, session_id: i64, in_prompt: i64, limit: i64) -> Vec<Memory>
        = search::recall;
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend().name())
    }
}

/// A PostgreSQL database shared by several instances, settings included.
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
}

impl PgStore {
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
    }
}

/// The SQLite store over an open pool, as a [`Db`].
pub fn sqlite(pool: sqlx::SqlitePool) -> Db {
    Arc::new(SqliteStore::new(pool))
}

/// The PostgreSQL store over an open pool, as a [`Db`].
pub fn postgres_db(pool: sqlx::PgPool) -> Db {
    Arc::new(PgStore::new(pool))
}
