//! `/api/sessions…` and `/api/search`.

use crate::server::{
    error::{parse_id, ApiError, ApiJson, ApiQuery, OptionalJson},
    history,
    state::AppState,
};
use crate::store::messages::Cursor;
use axum::{
    extract::{Path, State},
    http::header,
    response::IntoResponse,
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
pub struct Paging {
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<Paging>,
) -> Result<Json<Value>, ApiError> {
    let sessions = history::list_sessions(&s.db, p.limit, p.offset).await?;
    Ok(Json(json!({ "sessions": sessions })))
}

#[derive(Deserialize, Default)]
pub struct TitleBody {
    title: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct NewSession {
    title: Option<String>,
    /// Binds the session to this character, whose greeting opens it.
    character_id: Option<i64>,
    /// Which greeting: 0 the card's first message, n its n-th alternate one.
    greeting: Option<u32>,
}

pub async fn create(
    State(s): State<AppState>,
    OptionalJson(b): OptionalJson<NewSession>,
) -> Result<Json<Value>, ApiError> {
    let created =
        crate::server::cards::create_session(&s, b.title.as_deref(), b.character_id, b.greeting)
            .await?;
    Ok(Json(json!({
        "ok": true,
        "id": created.id,
        "session_id": created.id,
        "title": created.title,
        "created_ts": created.created_ts,
        "character_id": created.character_id,
        "message_count": created.message_count,
    })))
}

pub async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "session")?;
    let session =
        s.db.get_session(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("There is no session {id}.")))?;
    Ok(Json(json!({ "ok": true, "session": session })))
}

pub async fn rename(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<TitleBody>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "session")?;
    history::rename_session(&s.db, id, b.title.as_deref()).await?;
    Ok(Json(json!({ "ok": true })))
}

pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "session")?;
    history::delete_session(&s.db, id).await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize, Default)]
pub struct MessageQuery {
    limit: Option<i64>,
    before: Option<i64>,
    after: Option<i64>,
    around: Option<i64>,
}

pub async fn messages(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "session")?;
    let cursor = match (q.before, q.after, q.around) {
        (None, None, None) => Cursor::Latest,
        (Some(b), None, None) => Cursor::Before(b),
        (None, Some(a), None) => Cursor::After(a),
        (None, None, Some(m)) => Cursor::Around(m),
        _ => {
            return Err(ApiError::bad_request(
                "bad_cursor",
                "Use at most one of before, after and around.",
            ));
        }
    };
    let page = history::messages(&s.db, id, cursor, q.limit).await?;
    Ok(Json(json!({
        "messages": page.messages,
        "has_more_before": page.has_more_before,
        "has_more_after": page.has_more_after,
    })))
}

#[derive(Deserialize, Default)]
pub struct MessageBody {
    role: Option<String>,
    text: Option<String>,
}

pub async fn append(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<MessageBody>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "session")?;
    let message = history::append_message(&s.db, id, b.role.as_deref(), b.text.as_deref()).await?;
    Ok(Json(
        json!({ "ok": true, "message_id": message.id, "message": message }),
    ))
}

pub async fn edit_message(
    State(s): State<AppState>,
    Path((sid, mid)): Path<(String, String)>,
    ApiJson(b): ApiJson<MessageBody>,
) -> Result<Json<Value>, ApiError> {
    let (sid, mid) = (parse_id(&sid, "session")?, parse_id(&mid, "message")?);
    let message = history::edit_message(&s.db, sid, mid, b.text.as_deref()).await?;
    Ok(Json(json!({ "ok": true, "message": message })))
}

pub async fn delete_message(
    State(s): State<AppState>,
    Path((sid, mid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (sid, mid) = (parse_id(&sid, "session")?, parse_id(&mid, "message")?);
    history::delete_message(&s.db, sid, mid).await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize, Default)]
pub struct ExportQuery {
    format: Option<String>,
}

pub async fn export(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id, "session")?;
    let doc = history::export(&s.db, id, q.format.as_deref()).await?;
    Ok((
        [
            (header::CONTENT_TYPE, doc.content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                super::attachment(&doc.file_name),
            ),
        ],
        doc.body,
    ))
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    q: Option<String>,
    session_id: Option<i64>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn search(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let results = history::search(&s.db, q.q.as_deref(), q.session_id, q.limit, q.offset).await?;
    Ok(Json(json!({ "results": results })))
}
