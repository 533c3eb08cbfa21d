//! `/api/avatars…`: list, upload, delete. The upload's rules (caps while reading, validation,
//! install) are the avatars service's; this route finds the `file` field and feeds its bytes in.

use crate::avatars::{AvatarError, Caps};
use crate::server::{
    error::{ApiError, ApiQuery},
    state::AppState,
};
use axum::{
    extract::{
        multipart::{MultipartError, MultipartRejection},
        Multipart, Path, State,
    },
    http::{header, HeaderMap, StatusCode},
    Json,
};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

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
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    // Refused before a byte of the body is read; the place is held until the upload is done.
    let _place = s.gates.upload(&s.config.get().limits)?;
    let caps = crate::server::avatars::upload_caps(&s);
    // A declared length over the cap is refused before a byte is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > caps.file + FRAMING_ALLOWANCE) {
        return Err(caps.too_large().into());
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
    while let Some(field) = multipart.next_field().await.map_err(unreadable(caps))? {
        if field.name() != Some("file") {
            continue;
        }
        let raw_name = field.file_name().unwrap_or_default().to_string();
        let body = field.map_err(unreadable(caps));
        let saved = crate::server::avatars::upload(&s, &raw_name, q.overwrite, caps, body).await?;
        return Ok(Json(json!({
            "ok": true,
            "name": saved.name,
            "url": crate::avatars::url_for(&saved.name),
            "kind": saved.kind,
        })));
    }
    Err(ApiError::bad_request(
        "missing_file",
        "The upload has no `file` field.",
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    crate::server::avatars::delete(&s, &name).await?;
    Ok(Json(json!({ "ok": true })))
}

/// A body cut off by the size limit is a file over the cap; anything else could not be read.
fn unreadable(caps: Caps) -> impl Fn(MultipartError) -> AvatarError + Copy {
    move |e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            caps.too_large()
        } else {
            AvatarError::Unreadable(e.body_text())
        }
    }
}
