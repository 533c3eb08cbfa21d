//! Server functions of the Chat tab's history: sessions, messages, search.

use crate::shared::json_text::Reply;
use crate::shared::{
    history::{MessagePage, SearchHit, SessionSummary},
    AppError,
};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::api_error;

/// Sessions by last activity, newest first.
#[server(prefix = "/sfn", endpoint = "sessions", output = Reply)]
pub async fn list_sessions() -> Result<Vec<SessionSummary>, AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::history::list_sessions(&s.db, Some(500), None)
        .await
        .map_err(api_error)
}

/// A new conversation; with `character_id`, bound to that character and opened by its greeting
/// (`greeting`, else the character's chosen one).
#[server(prefix = "/sfn", endpoint = "sessions/create", output = Reply)]
pub async fn create_session(
    title: Option<String>,
    character_id: Option<i64>,
    greeting: Option<u32>,
) -> Result<SessionSummary, AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::cards::create_session(&s, title.as_deref(), character_id, greeting)
        .await
        .map_err(api_error)
}

#[server(prefix = "/sfn", endpoint = "sessions/rename", output = Reply)]
pub async fn rename_session(id: i64, title: String) -> Result<(), AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::history::rename_session(&s.db, id, Some(&title))
        .await
        .map_err(api_error)
}

#[server(prefix = "/sfn", endpoint = "sessions/delete", output = Reply)]
pub async fn delete_session(id: i64) -> Result<(), AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::history::delete_session(&s.db, id)
        .await
        .map_err(api_error)
}

/// A page of a session's messages: the newest, those before or after an id, or a window around one.
#[server(prefix = "/sfn", endpoint = "messages", output = Reply)]
pub async fn load_messages(
    session_id: i64,
    before: Option<i64>,
    after: Option<i64>,
    around: Option<i64>,
) -> Result<MessagePage, AppError> {
    use crate::store::messages::Cursor;
    let s = crate::server::AppState::from_context()?;
    let cursor = match (before, after, around) {
        (Some(b), _, _) => Cursor::Before(b),
        (_, Some(a), _) => Cursor::After(a),
        (_, _, Some(m)) => Cursor::Around(m),
        _ => Cursor::Latest,
    };
    crate::server::history::messages(&s.db, session_id, cursor, Some(40))
        .await
        .map_err(api_error)
}

#[server(prefix = "/sfn", endpoint = "search", output = Reply)]
pub async fn search_history(q: String) -> Result<Vec<SearchHit>, AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::history::search(&s.db, Some(&q), None, Some(30), None)
        .await
        .map_err(api_error)
}
