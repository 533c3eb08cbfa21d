//! `/api/characters…`.

use crate::server::{
    error::{parse_id, ApiError, ApiJson},
    history,
    state::AppState,
};
use crate::store::characters::CharacterFields;
use axum::{
    extract::{Path, State},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

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
    Ok(Json(
        json!({ "ok": true, "character": history::get_character(&s.db, id).await? }),
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
