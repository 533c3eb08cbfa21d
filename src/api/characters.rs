//! Server functions of the Characters tab. Importing, exporting and portraits are plain HTTP
//! routes (`/api/characters/import`, `…/{id}/export`, `…/{id}/portrait`, `…/{id}/lorebook`):
//! they carry files.

use crate::shared::json_text::Reply;
use crate::shared::{
    cards::{CardFields, CharacterCard, CharacterChoices},
    history::Character,
    AppError,
};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use super::api_error;

/// Every character, by id.
#[server(prefix = "/sfn", endpoint = "characters", output = Reply)]
pub async fn list_characters() -> Result<Vec<Character>, AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::history::list_characters(&s.db)
        .await
        .map_err(api_error)
}

/// One character with its card's fields.
#[server(prefix = "/sfn", endpoint = "characters/load", output = Reply)]
pub async fn load_character(id: i64) -> Result<CharacterCard, AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::cards::load(&s.db, id)
        .await
        .map_err(api_error)
}

/// Saves the form: the card's fields (every other field of the card stays as it was) and the
/// greeting, voice and avatar. `id` `None` creates a character.
#[server(prefix = "/sfn", endpoint = "characters/save", input = Json, output = Reply)]
pub async fn save_character(
    id: Option<i64>,
    fields: CardFields,
    choices: CharacterChoices,
) -> Result<CharacterCard, AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::cards::save(&s, id, fields, choices)
        .await
        .map_err(api_error)
}

#[server(prefix = "/sfn", endpoint = "characters/delete", output = Reply)]
pub async fn delete_character(id: i64) -> Result<(), AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::history::delete_character(&s.db, id)
        .await
        .map_err(api_error)
}
