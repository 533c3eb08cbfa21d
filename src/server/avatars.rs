//! The avatar operations both the REST routes and the server functions use: the list with the
//! active avatar, delete (which moves the active choice back to the default), choosing the
//! active avatar (saved in the settings).

use super::{error::ApiError, state::AppState};
use crate::avatars::{self, AvatarError};
use crate::shared::avatars::{AvatarList, DEFAULT_AVATAR};
use axum::http::StatusCode;

impl From<AvatarError> for ApiError {
    fn from(e: AvatarError) -> Self {
        let message = {
            let m = e.to_string();
            let mut c = m.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
                + "."
        };
        let (status, code) = match &e {
            AvatarError::BadName(_) => (StatusCode::BAD_REQUEST, "bad_name"),
            AvatarError::BadExtension(_) => (StatusCode::BAD_REQUEST, "bad_extension"),
            AvatarError::NotGltf(_) | AvatarError::NotVrm => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_a_model")
            }
            AvatarError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AvatarError::JsonTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "json_too_large"),
            AvatarError::FolderFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "avatars_full"),
            AvatarError::Exists(_) => (StatusCode::CONFLICT, "exists"),
            AvatarError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AvatarError::DefaultProtected => (StatusCode::BAD_REQUEST, "default_avatar"),
            AvatarError::Io { .. } if e.is_disk_full() => {
                tracing::error!(error = %e, "avatar file operation failed: the disk is full");
                return ApiError::disk_full(format!(
                    "The disk is full: the avatar could not be saved. {}",
                    crate::disk::advice(
                        "nothing was changed, and the avatars already there are intact."
                    )
                ));
            }
            AvatarError::Io { .. } => {
                tracing::error!(error = %e, "avatar file operation failed");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "avatar_io",
                    "The avatars folder could not be written or read; check free disk space and permissions.",
                );
            }
        };
        ApiError::new(status, code, message)
    }
}

pub async fn list(s: &AppState) -> Result<AvatarList, ApiError> {
    let dir = s.paths.avatars.clone();
    let avatars = tokio::task::spawn_blocking(move || avatars::list(&dir))
        .await
        .map_err(|_| internal())??;
    let cfg = s.config.get();
    Ok(AvatarList {
        avatars,
        active: cfg.avatar.active.clone(),
        max_upload_bytes: cfg.avatar.max_upload_mb.saturating_mul(1024 * 1024),
    })
}

pub async fn delete(s: &AppState, name: &str) -> Result<(), ApiError> {
    let dir = s.paths.avatars.clone();
    let owned = name.to_string();
    tokio::task::spawn_blocking(move || avatars::delete(&dir, &owned))
        .await
        .map_err(|_| internal())??;
    if s.config.get().avatar.active == name {
        set_active(s, DEFAULT_AVATAR).await?;
    }
    tracing::info!(name, "avatar deleted");
    Ok(())
}

pub async fn set_active(s: &AppState, name: &str) -> Result<(), ApiError> {
    if !crate::config::is_plain_file_name(name) || !s.paths.avatars.join(name).is_file() {
        return Err(AvatarError::NotFound(name.into()).into());
    }
    s.config
        .update(serde_json::json!({ "avatar": { "active": name } }))
        .await?;
    Ok(())
}

fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "The avatar operation stopped unexpectedly; try again.",
    )
}
