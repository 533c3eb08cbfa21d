//! `/api/avatars…`: list, upload (streamed to a temporary file with the caps enforced while
//! reading, and removed whatever happens unless installed), delete.

use crate::avatars::{self, AvatarError};
use crate::server::{
    error::{ApiError, ApiQuery},
    state::AppState,
};
use crate::shared::avatars::AvatarKind;
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
    let cap = Limits::now(&s).file;
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
        let limits = Limits::now(&s);
        // Removed when dropped: on any refusal below, and when the client goes away mid-upload.
        let tmp = avatars::TempFile::new(&dir);
        let overwrite = q.overwrite;
        let used = blocking({
            let (dir, target) = (dir.clone(), dir.join(&name));
            move || {
                let replaced = overwrite.then_some(target.as_path());
                Ok(avatars::folder_usage(&dir, replaced.as_slice())?)
            }
        })
        .await?;
        let size = receive(&mut field, &tmp, &ext, limits, used).await?;
        let kind = blocking({
            let name = name.clone();
            move || check_and_install(tmp, &dir, &name, &ext, overwrite, size, limits)
        })
        .await?;
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

/// The caps an upload is held to, read once per upload.
#[derive(Clone, Copy)]
struct Limits {
    /// `avatar.max_upload_mb`, in bytes.
    file: u64,
    /// `avatar.max_total_mb`, in bytes.
    folder: u64,
    folder_mb: u64,
}

impl Limits {
    fn now(s: &AppState) -> Self {
        let avatar = &s.config.get().avatar;
        Self {
            file: avatar.max_upload_mb.saturating_mul(MB),
            folder: avatar.max_total_mb.saturating_mul(MB),
            folder_mb: avatar.max_total_mb,
        }
    }

    /// Refuses once `size` bytes of upload would take a folder holding `used` past its cap.
    fn check_room(&self, used: u64, size: u64) -> Result<(), ApiError> {
        if used.saturating_add(size) > self.folder {
            return Err(AvatarError::folder_full(used, size, self.folder_mb).into());
        }
        Ok(())
    }
}

const MB: u64 = 1024 * 1024;

/// Streams the `file` field into `tmp`, refusing as soon as the bytes so far break a rule: the
/// file cap, the folder cap (`used` is what the folder holds without this upload), or a binary
/// glTF whose first 20 bytes declare a JSON chunk over 32 MB (the rest is then never read).
async fn receive(
    field: &mut axum::extract::multipart::Field<'_>,
    tmp: &avatars::TempFile,
    ext: &str,
    limits: Limits,
    used: u64,
) -> Result<u64, ApiError> {
    let binary = ext == "glb" || ext == "vrm";
    let mut file = tokio::fs::File::create(tmp.path())
        .await
        .map_err(AvatarError::io("creating the upload file"))?;
    let mut head = Vec::with_capacity(avatars::GLB_HEAD_LEN);
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error(limits.file))? {
        size += chunk.len() as u64;
        if size > limits.file {
            return Err(too_large(limits.file));
        }
        limits.check_room(used, size)?;
        if binary && head.len() < avatars::GLB_HEAD_LEN {
            let want = avatars::GLB_HEAD_LEN - head.len();
            head.extend_from_slice(&chunk[..want.min(chunk.len())]);
            if head.len() == avatars::GLB_HEAD_LEN {
                avatars::check_glb_head(&head)?;
            }
        } else if !binary && size > avatars::MAX_JSON_BYTES {
            // A .gltf file is all JSON.
            return Err(AvatarError::JsonTooLarge {
                declared_mb: size.div_ceil(MB),
                limit_mb: avatars::MAX_JSON_BYTES / MB,
            }
            .into());
        }
        file.write_all(&chunk)
            .await
            .map_err(AvatarError::io("writing the upload"))?;
    }
    file.flush()
        .await
        .map_err(AvatarError::io("writing the upload"))?;
    Ok(size)
}

/// Validates the received file and moves it to its name, checking the folder cap once more
/// (another upload may have finished meanwhile). Runs on a blocking thread that owns `tmp`, so
/// the temporary file goes when this ends, even if the request was dropped meanwhile.
fn check_and_install(
    tmp: avatars::TempFile,
    dir: &std::path::Path,
    name: &str,
    ext: &str,
    overwrite: bool,
    size: u64,
    limits: Limits,
) -> Result<AvatarKind, ApiError> {
    let bytes = std::fs::read(tmp.path()).map_err(AvatarError::io("reading the upload"))?;
    let kind = avatars::inspect(ext, &bytes)?;
    let target = dir.join(name);
    let mut skip = vec![tmp.path()];
    if overwrite {
        skip.push(&target);
    }
    limits.check_room(avatars::folder_usage(dir, &skip)?, size)?;
    avatars::install(tmp.path(), dir, name, overwrite)?;
    tmp.installed();
    Ok(kind)
}

/// Runs file work on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!("the upload check stopped: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The upload could not be checked; try again.",
        )
    })?
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
