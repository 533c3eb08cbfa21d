//! An upload, from its first byte to its name in the avatars folder: streamed into a hidden
//! temporary file with the caps checked while reading, validated whole, then moved to its name.
//! The temporary file goes whatever happens unless it was installed, also when the caller's
//! future is dropped (a client that goes away mid-upload): `NamedTempFile` removes it on drop.

use super::{
    check_glb_head, extension, folder_usage, inspect, install, sanitize_upload_name, AvatarError,
    GLB_HEAD_LEN, MAX_JSON_BYTES, TEMP,
};
use crate::{
    atomic_file::{self, Access},
    shared::{avatars::AvatarKind, config::AvatarConfig},
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

const MB: u64 = 1024 * 1024;

/// The caps an upload is held to, read once per upload.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// `avatar.max_upload_mb`, in bytes.
    pub file: u64,
    /// `avatar.max_total_mb`, in bytes.
    folder: u64,
    folder_mb: u64,
}

impl Caps {
    pub fn of(avatar: &AvatarConfig) -> Self {
        Self {
            file: avatar.max_upload_mb.saturating_mul(MB),
            folder: avatar.max_total_mb.saturating_mul(MB),
            folder_mb: avatar.max_total_mb,
        }
    }

    /// The refusal of a file over the upload cap.
    pub fn too_large(&self) -> AvatarError {
        AvatarError::TooLarge {
            limit_mb: self.file / MB,
        }
    }

    /// Refuses once `size` bytes of upload would take a folder holding `used` past its cap.
    fn check_room(&self, used: u64, size: u64) -> Result<(), AvatarError> {
        if used.saturating_add(size) > self.folder {
            return Err(AvatarError::folder_full(used, size, self.folder_mb));
        }
        Ok(())
    }
}

/// A model moved to its name.
#[derive(Debug)]
pub struct Uploaded {
    pub name: String,
    pub kind: AvatarKind,
}

/// Saves the model whose bytes `body` yields under the name the browser sent (`raw_name`, made
/// safe first) in `dir`. Without `overwrite` an existing avatar of that name is never replaced.
pub async fn upload(
    dir: PathBuf,
    raw_name: &str,
    overwrite: bool,
    caps: Caps,
    body: impl Stream<Item = Result<Bytes, AvatarError>>,
) -> Result<Uploaded, AvatarError> {
    let name = sanitize_upload_name(raw_name)?;
    let ext = extension(&name).unwrap_or_default();
    let (used, tmp) = blocking({
        let (dir, target) = (dir.clone(), dir.join(&name));
        move || {
            let replaced = overwrite.then_some(target.as_path());
            let used = folder_usage(&dir, replaced.as_slice())?;
            let tmp = atomic_file::temp_in(&dir, TEMP, Access::Default)
                .map_err(AvatarError::io("creating the upload file"))?;
            Ok((used, tmp))
        }
    })
    .await?;
    let size = receive(body, &tmp, &ext, caps, used).await?;
    let kind = blocking({
        let name = name.clone();
        move || check_and_install(tmp, &dir, &name, &ext, overwrite, size, caps)
    })
    .await?;
    Ok(Uploaded { name, kind })
}

/// Streams `body` into `tmp`, refusing as soon as the bytes so far break a rule: the file cap,
/// the folder cap (`used` is what the folder holds without this upload), or a binary glTF whose
/// first 20 bytes declare a JSON chunk over 32 MB (the rest is then never read).
async fn receive(
    body: impl Stream<Item = Result<Bytes, AvatarError>>,
    tmp: &NamedTempFile,
    ext: &str,
    caps: Caps,
    used: u64,
) -> Result<u64, AvatarError> {
    let binary = ext == "glb" || ext == "vrm";
    let writing = AvatarError::io("writing the upload");
    let mut file = tokio::fs::File::from_std(tmp.as_file().try_clone().map_err(writing)?);
    let mut body = std::pin::pin!(body);
    let mut head = Vec::with_capacity(GLB_HEAD_LEN);
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > caps.file {
            return Err(caps.too_large());
        }
        caps.check_room(used, size)?;
        if binary && head.len() < GLB_HEAD_LEN {
            let want = GLB_HEAD_LEN - head.len();
            head.extend_from_slice(&chunk[..want.min(chunk.len())]);
            if head.len() == GLB_HEAD_LEN {
                check_glb_head(&head)?;
            }
        } else if !binary && size > MAX_JSON_BYTES {
            // A .gltf file is all JSON.
            return Err(AvatarError::JsonTooLarge {
                declared_mb: size.div_ceil(MB),
                limit_mb: MAX_JSON_BYTES / MB,
            });
        }
        file.write_all(&chunk)
            .await
            .map_err(AvatarError::io("writing the upload"))?;
    }
    file.flush()
        .await
        .map_err(AvatarError::io("writing the upload"))?;
    file.sync_all()
        .await
        .map_err(AvatarError::io("writing the upload"))?;
    Ok(size)
}

/// Validates the received file and moves it to its name, checking the folder cap once more
/// (another upload may have finished meanwhile). Runs on a blocking thread that owns `tmp`, so
/// the temporary file goes when this ends, even if the request was dropped meanwhile.
fn check_and_install(
    tmp: NamedTempFile,
    dir: &Path,
    name: &str,
    ext: &str,
    overwrite: bool,
    size: u64,
    caps: Caps,
) -> Result<AvatarKind, AvatarError> {
    let bytes = std::fs::read(tmp.path()).map_err(AvatarError::io("reading the upload"))?;
    let kind = inspect(ext, &bytes)?;
    let target = dir.join(name);
    let mut skip = vec![tmp.path()];
    if overwrite {
        skip.push(&target);
    }
    caps.check_room(folder_usage(dir, &skip)?, size)?;
    install(tmp, dir, name, overwrite)?;
    Ok(kind)
}

/// Runs file work on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AvatarError> + Send + 'static,
) -> Result<T, AvatarError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!("the upload check stopped: {e}");
        AvatarError::Stopped("The upload could not be checked; try again.")
    })?
}
