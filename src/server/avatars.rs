//! The avatar operations both the REST routes and the server functions use: the list with the
//! active avatar, upload under the configured caps, delete (which moves the active choice back
//! to the default), choosing the active avatar (saved in the settings). Errors are
//! [`AvatarError`]s; `server::error` says how each is answered.

use super::state::AppState;
use crate::avatars::{self, AvatarError, Caps, Uploaded};
use crate::shared::avatars::{AvatarList, DEFAULT_AVATAR};
use bytes::Bytes;
use futures::Stream;

pub async fn list(s: &AppState) -> Result<AvatarList, AvatarError> {
    let avatars = avatars::list(&s.blobs).await?;
    let cfg = s.config.get();
    Ok(AvatarList {
        avatars,
        active: cfg.avatar.active.clone(),
        max_upload_bytes: cfg.avatar.max_upload_mb.saturating_mul(1024 * 1024),
    })
}

/// The caps an upload started now is held to.
pub fn upload_caps(s: &AppState) -> Caps {
    Caps::of(&s.config.get().avatar)
}

/// Saves the model `body` yields as `raw_name` (made safe first), under `caps`.
pub async fn upload(
    s: &AppState,
    raw_name: &str,
    overwrite: bool,
    caps: Caps,
    body: impl Stream<Item = Result<Bytes, AvatarError>>,
) -> Result<Uploaded, AvatarError> {
    let uploaded = avatars::upload(
        &s.blobs,
        s.paths.avatars.clone(),
        raw_name,
        overwrite,
        caps,
        body,
    )
    .await?;
    tracing::info!(name = %uploaded.name, kind = ?uploaded.kind, "avatar uploaded");
    Ok(uploaded)
}

pub async fn delete(s: &AppState, name: &str) -> Result<(), AvatarError> {
    avatars::delete(&s.blobs, name).await?;
    if s.config.get().avatar.active == name {
        set_active(s, DEFAULT_AVATAR).await?;
    }
    tracing::info!(name, "avatar deleted");
    Ok(())
}

pub async fn set_active(s: &AppState, name: &str) -> Result<(), AvatarError> {
    if !crate::config::is_plain_file_name(name) || !avatars::exists(&s.blobs, name).await? {
        return Err(AvatarError::NotFound(name.into()));
    }
    s.config
        .update(serde_json::json!({ "avatar": { "active": name } }))
        .await?;
    Ok(())
}
