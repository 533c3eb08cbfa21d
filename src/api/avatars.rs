//! Server functions of the Viewer tab: the avatar list, delete, choosing the active avatar.
//! Uploads go to the REST route (`POST /api/avatars/upload`), which streams the bytes.

use crate::shared::json_text::Reply;
use crate::shared::{avatars::AvatarList, AppError};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::api_error;

/// Every avatar, the active one and the upload cap.
#[server(prefix = "/sfn", endpoint = "avatars", output = Reply)]
pub async fn list_avatars() -> Result<AvatarList, AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::avatars::list(&s).await.map_err(api_error)
}

/// The URL of the avatar to show (the default's when the active one is missing): all the Chat
/// tab needs, without the list's types in its WASM.
#[server(prefix = "/sfn", endpoint = "avatars/active_url", output = Reply)]
pub async fn active_avatar_url() -> Result<String, AppError> {
    Ok(list_avatars().await?.active_url())
}

/// Deletes an uploaded avatar (never the default).
#[server(prefix = "/sfn", endpoint = "avatars/delete", output = Reply)]
pub async fn delete_avatar(name: String) -> Result<(), AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::avatars::delete(&s, &name)
        .await
        .map_err(api_error)
}

/// Makes `name` the avatar shown (saved in the settings as `avatar.active`).
#[server(prefix = "/sfn", endpoint = "avatars/active", output = Reply)]
pub async fn set_active_avatar(name: String) -> Result<(), AppError> {
    let s = crate::server::AppState::from_context()?;
    crate::server::avatars::set_active(&s, &name)
        .await
        .map_err(api_error)
}
