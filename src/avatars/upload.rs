//! An upload, from its first byte to its name in the object store: streamed into a hidden
//! temporary file in the data folder's avatars folder with the caps checked while reading,
//! validated whole, then put into the store. The temporary file goes whatever happens, also
//! when the caller's future is dropped (a client that goes away mid-upload): `NamedTempFile`
//! removes it on drop.

use super::{
    check_glb_head, extension, folder_usage, inspect, install, sanitize_upload_name, AvatarError,
    GLB_HEAD_LEN, MAX_JSON_BYTES, TEMP,
};
use crate::{
    atomic_file::{self, Access},
    blobs::Blobs,
    shared::{avatars::AvatarKind, config::AvatarConfig},
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::path::PathBuf;
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
/// safe first) in `blobs`, receiving it into a temporary file in `tmp_dir`. Without `overwrite`
/// an existing avatar of that name is never replaced.
pub async fn upload(
    blobs: &Blobs,
    tmp_dir: PathBuf,
    raw_name: &str,
    overwrite: bool,
    caps: Caps,
    body: impl Stream<Item = Result<Bytes, AvatarError>>,
) -> Result<Uploaded, AvatarError> {
    let name = sanitize_upload_name(raw_name)?;
    let ext = extension(&name).unwrap_or_default();
    let tmp = blocking(move || {
        atomic_file::temp_in(&tmp_dir, TEMP, Access::Default)
            .map_err(AvatarError::io("creating the upload file"))
    })
    .await?;
    let used = folder_usage(blobs, &skipped(&tmp, overwrite.then_some(name.as_str()))).await?;
    let size = receive(body, &tmp, &ext, caps, used).await?;
    let (bytes, kind) = blocking({
        let ext = ext.clone();
        move || {
            let bytes = std::fs::read(tmp.path()).map_err(AvatarError::io("reading the upload"))?;
            let kind = inspect(&ext, &bytes)?;
            Ok((Bytes::from(bytes), kind))
        }
    })
    .await?;
    // Checked once more: another upload may have finished meanwhile.
    caps.check_room(
        folder_usage(blobs, overwrite.then_some(name.as_str()).as_slice()).await?,
        size,
    )?;
    install(blobs, bytes, &name, overwrite).await?;
    Ok(Uploaded { name, kind })
}

/// The names the folder cap leaves out: the upload's own temporary file (listed when the store
/// is the data folder) and the avatar an overwrite replaces.
fn skipped<'a>(tmp: &'a NamedTempFile, replaced: Option<&'a str>) -> Vec<&'a str> {
    let own = tmp.path().file_name().and_then(|n| n.to_str());
    own.into_iter().chain(replaced).collect()
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

/// Runs file work on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AvatarError> + Send + 'static,
) -> Result<T, AvatarError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!("the upload check stopped: {e}");
        AvatarError::Stopped("The upload could not be checked; try again.")
    })?
}
