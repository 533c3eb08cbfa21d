//! `/api/avatars…`: list, upload (streamed to a temporary file with the size cap enforced while
//! reading), delete.

use crate::avatars::{self, AvatarError};
use crate::server::{
    error::{ApiError, ApiQuery},
    state::AppState,
};
use axum::{
    extract::{Multipart, Path, State},
    http::{header, HeaderMap, StatusCode},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// Multipart framing around the file: boundaries and part headers.
const FRAMING_ALLOWANCE: u64 = 64 * 1024;

pub async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = crate::server::avatars::list(&s).await?;
    Ok(Json(
        json!({ "avatars": list.avatars, "active": list.active }),
    ))
}

#[derive(Deserialize, Default)]
pub struct UploadQuery {
    #[serde(default)]
    overwrite: bool,
}

pub async fn upload(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    // Refused before a byte of the body is read; the place is held until the upload is done.
    let _place = s.gates.upload(&s.config.get().limits)?;
    let cap = s
        .config
        .get()
        .avatar
        .max_upload_mb
        .saturating_mul(1024 * 1024);
    // A declared length over the cap is refused before a byte is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap + FRAMING_ALLOWANCE) {
        return Err(too_large(cap));
    }
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(
            "bad_upload",
            format!(
                "Send the avatar as multipart/form-data with a `file` field ({}).",
                e.body_text()
            ),
        )
    })?;
    loop {
        let field = multipart.next_field().await.map_err(multipart_error(cap))?;
        let Some(mut field) = field else {
            return Err(ApiError::bad_request(
                "missing_file",
                "The upload has no `file` field.",
            ));
        };
        if field.name() != Some("file") {
            continue;
        }
        let raw_name = field.file_name().unwrap_or_default().to_string();
        let name = avatars::sanitize_upload_name(&raw_name)?;
        let ext = avatars::extension(&name).unwrap_or_default();
        let dir = s.paths.avatars.clone();
        let tmp = avatars::temp_path(&dir);
        let written = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(AvatarError::io("creating the upload file"))?;
            let mut size: u64 = 0;
            while let Some(chunk) = field.chunk().await.map_err(multipart_error(cap))? {
                size += chunk.len() as u64;
                if size > cap {
                    return Err(too_large(cap));
                }
                file.write_all(&chunk)
                    .await
                    .map_err(AvatarError::io("writing the upload"))?;
            }
            file.flush()
                .await
                .map_err(AvatarError::io("writing the upload"))?;
            Ok::<u64, ApiError>(size)
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let (tmp2, dir2, name2) = (tmp.clone(), dir.clone(), name.clone());
        let installed = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&tmp2).map_err(AvatarError::io("reading the upload"))?;
            let kind = avatars::inspect(&ext, &bytes);
            match kind {
                Ok(kind) => avatars::install(&tmp2, &dir2, &name2, q.overwrite).map(|()| kind),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp2);
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| {
            tracing::error!("the upload check stopped: {e}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The upload could not be checked; try again.",
            )
        });
        let kind = match installed {
            Ok(Ok(kind)) => kind,
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        tracing::info!(name = %name, kind = ?kind, "avatar uploaded");
        return Ok(Json(json!({
            "ok": true,
            "name": name,
            "url": avatars::url_for(&name),
            "kind": kind,
        })));
    }
}

pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::server::avatars::delete(&s, &name).await?;
    Ok(Json(json!({ "ok": true })))
}

fn too_large(cap: u64) -> ApiError {
    AvatarError::TooLarge {
        limit_mb: cap / (1024 * 1024),
    }
    .into()
}

fn multipart_error(cap: u64) -> impl Fn(axum::extract::multipart::MultipartError) -> ApiError {
    move |e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(cap)
        } else {
            ApiError::bad_request(
                "bad_upload",
                format!("The upload could not be read: {}.", e.body_text()),
            )
        }
    }
}
