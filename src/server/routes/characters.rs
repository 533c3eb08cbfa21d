//! `/api/characters…`.

use crate::server::{
    cards,
    error::{parse_id, ApiError, ApiJson, ApiQuery},
    history,
    state::AppState,
};
use crate::store::characters::CharacterFields;
use axum::{
    extract::{multipart::MultipartError, FromRequest, Multipart, Path, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Deserialize, Default)]
pub struct CharacterBody {
    name: Option<String>,
    system_prompt: Option<String>,
    avatar_url: Option<String>,
    voice_id: Option<String>,
    tts_provider: Option<String>,
    personality_traits: Option<Vec<String>>,
}

impl From<CharacterBody> for CharacterFields {
    fn from(b: CharacterBody) -> Self {
        CharacterFields {
            name: b.name,
            system_prompt: b.system_prompt,
            avatar_url: b.avatar_url,
            voice_id: b.voice_id,
            tts_provider: b.tts_provider,
            personality_traits: b.personality_traits,
        }
    }
}

pub async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "characters": history::list_characters(&s.db).await? }),
    ))
}

pub async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "character")?;
    let character = history::get_character(&s.db, id).await?;
    let card = cards::card_of(&s.db, &character).await?;
    Ok(Json(
        json!({ "ok": true, "character": character, "card": card }),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<CharacterBody>,
) -> Result<Json<Value>, ApiError> {
    let default_voice = s.config.get().tts.provider;
    let c = history::create_character(&s.db, b.into(), default_voice).await?;
    Ok(Json(json!({ "ok": true, "id": c.id, "character": c })))
}

pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CharacterBody>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "character")?;
    let default_voice = s.config.get().tts.provider;
    let c = history::update_character(&s.db, id, b.into(), default_voice).await?;
    Ok(Json(json!({ "ok": true, "character": c })))
}

pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "character")?;
    history::delete_character(&s.db, id).await?;
    Ok(Json(json!({ "ok": true })))
}

/// Multipart framing around the file: boundaries and part headers.
const FRAMING_ALLOWANCE: usize = 64 * 1024;
/// The body limit of the file routes: the file's cap and its framing.
pub const BODY_LIMIT: usize = crate::cards::MAX_IMPORT_BYTES + FRAMING_ALLOWANCE;

/// The `file` field of a multipart request, read up to `max` bytes (413 beyond). `what` names
/// the file in messages ("character card").
async fn file_field(req: Request, s: &AppState, max: usize, what: &str) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max + FRAMING_ALLOWANCE) {
        return Err(cards::too_large(max));
    }
    let mut form = Multipart::from_request(req, s).await.map_err(|e| {
        ApiError::bad_request(
            "bad_upload",
            format!(
                "Send the {what} as multipart/form-data with a `file` field ({}).",
                e.body_text()
            ),
        )
    })?;
    let unreadable = |e: MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            cards::too_large(max)
        } else {
            ApiError::bad_request(
                "bad_upload",
                format!("The upload could not be read ({}).", e.body_text()),
            )
        }
    };
    while let Some(mut field) = form.next_field().await.map_err(unreadable)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            if bytes.len() + chunk.len() > max {
                return Err(cards::too_large(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(bytes.into());
    }
    Err(ApiError::bad_request(
        "missing_file",
        format!("The upload has no `file` field: put the {what} there."),
    ))
}

/// `POST /api/characters/import`: a character card file (PNG, JSON or CHARX).
pub async fn import(State(s): State<AppState>, req: Request) -> Result<Json<Value>, ApiError> {
    // Refused before a byte of the body is read; the place is held until the import is done.
    let _place = s.gates.upload(&s.config.get().limits)?;
    let bytes = file_field(req, &s, crate::cards::MAX_IMPORT_BYTES, "character card").await?;
    let made = cards::import(&s, bytes).await?;
    Ok(Json(json!({
        "ok": true,
        "character": made.character,
        "format": made.format,
        "avatar_url": made.avatar_url,
    })))
}

/// `POST /api/characters/{id}/lorebook`: a lorebook file whose entries join the character's.
pub async fn attach_lorebook(
    State(s): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "character")?;
    let _place = s.gates.upload(&s.config.get().limits)?;
    let bytes = file_field(req, &s, crate::cards::MAX_IMPORT_BYTES, "lorebook").await?;
    let (character, entries) = cards::attach_lorebook(&s, id, bytes).await?;
    Ok(Json(
        json!({ "ok": true, "character": character, "entries": entries }),
    ))
}

#[derive(Deserialize, Default)]
pub struct ExportQuery {
    format: Option<String>,
}

/// `GET /api/characters/{id}/export?format=png|json|charx`: a V3 card to download.
pub async fn export(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "character")?;
    let file = cards::export(&s, id, q.format.as_deref().unwrap_or("png")).await?;
    Ok((
        [
            (header::CONTENT_TYPE, file.content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                super::attachment(&file.file_name),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        file.bytes,
    )
        .into_response())
}

/// `GET /api/characters/{id}/portrait`: the character's image; 404 when it has none.
pub async fn portrait(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "character")?;
    let p =
        s.db.portrait(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("There is no character {id}.")))?
            .ok_or_else(|| ApiError::not_found(format!("Character {id} has no portrait.")))?;
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&p.bytes))[..32]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let common = [
        (header::ETAG, etag.clone()),
        // Portraits change when a character is edited; the browser asks again each time and
        // gets a 304 while it is the same.
        (header::CACHE_CONTROL, "no-cache".to_string()),
    ];
    if fresh {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    Ok((common, [(header::CONTENT_TYPE, p.media_type)], p.bytes).into_response())
}
