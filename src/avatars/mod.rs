//! [ssr] Avatar files: what a model file is (validation with the `gltf` crate), safe names, the
//! list, uploads written through a temporary file, delete, and the built-in default avatar that
//! the project generates itself (`default_model`) and embeds in the binary.

pub mod default_model;
mod names;
mod upload;
mod validate;

pub use names::{sanitize_upload_name, url_for};
pub use upload::{upload, Caps, Uploaded};
pub use validate::{check_glb_head, inspect, kind_of_file, GLB_HEAD_LEN, MAX_JSON_BYTES};

use crate::atomic_file::{self, Access, TempName};
use crate::shared::avatars::{AvatarInfo, AvatarKind, DEFAULT_AVATAR};
use std::{io, path::Path};
use tempfile::NamedTempFile;

/// The generated default avatar (VRM 1.0), written into the avatars folder when it is missing.
pub static DEFAULT_VRM1: &[u8] = include_bytes!("../../assets/avatars/default.vrm");
/// Its VRM 0.x twin: not installed, but served to tests and anyone who wants a 0.x sample.
pub static DEFAULT_VRM0: &[u8] = include_bytes!("../../assets/avatars/default-vrm0.vrm");

/// The extensions an avatar may have.
pub const EXTENSIONS: [&str; 3] = ["vrm", "glb", "gltf"];

#[derive(Debug, thiserror::Error)]
pub enum AvatarError {
    #[error("{0}")]
    BadName(String),
    #[error("only .vrm, .glb and .gltf files can be avatars, not {0:?}")]
    BadExtension(String),
    #[error("the file is not a glTF model: {0}")]
    NotGltf(String),
    #[error("the .vrm file has no VRM extension (neither `VRM` nor `VRMC_vrm`)")]
    NotVrm,
    #[error("the file is larger than the upload limit of {limit_mb} MB")]
    TooLarge { limit_mb: u64 },
    #[error("the model's JSON part is {declared_mb} MB, over the {limit_mb} MB an avatar's JSON may have (meshes and textures belong in the binary part)")]
    JsonTooLarge { declared_mb: u64, limit_mb: u64 },
    #[error("this upload would take the avatars folder past its limit of {limit_mb} MB (avatar.max_total_mb): {used_mb} MB are in use and the upload is at least {upload_mb} MB. Delete avatars you no longer use in the Viewer tab, or raise avatar.max_total_mb in the settings")]
    FolderFull {
        used_mb: String,
        upload_mb: String,
        limit_mb: u64,
    },
    #[error("an avatar named {0:?} already exists")]
    Exists(String),
    #[error("there is no avatar named {0:?}")]
    NotFound(String),
    #[error("the default avatar cannot be deleted")]
    DefaultProtected,
    /// The upload's body broke off or was not valid multipart.
    #[error("the upload could not be read: {0}")]
    Unreadable(String),
    /// The blocking task doing the work stopped (a panic); the text is the whole answer.
    #[error("{0}")]
    Stopped(&'static str),
    /// Saving the active avatar's name in the settings failed.
    #[error(transparent)]
    Settings(#[from] crate::config::ConfigError),
    #[error("{action} failed: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl AvatarError {
    pub fn io(action: &'static str) -> impl FnOnce(io::Error) -> AvatarError {
        move |source| AvatarError::Io { action, source }
    }

    /// The folder cap was reached: `used` bytes are there already and the upload has `upload`.
    pub fn folder_full(used: u64, upload: u64, limit_mb: u64) -> AvatarError {
        let mb = |bytes: u64| format!("{:.1}", bytes as f64 / (1024.0 * 1024.0));
        AvatarError::FolderFull {
            used_mb: mb(used),
            upload_mb: mb(upload),
            limit_mb,
        }
    }

    /// The disk itself is full (not the folder's own cap).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, AvatarError::Io { source, .. } if crate::disk::is_full(source))
    }
}

/// The extension of a file name, lower case.
pub fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.')
        .map(|(stem, ext)| (stem, ext.to_ascii_lowercase()))
        .filter(|(stem, _)| !stem.is_empty())
        .map(|(_, ext)| ext)
}

/// Every model in the folder, default first, then by name. Hidden files (uploads in progress)
/// and other files are left out; a model whose header cannot be read is listed by its extension.
pub fn list(dir: &Path) -> Result<Vec<AvatarInfo>, AvatarError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(AvatarError::io("reading the avatars folder"))? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(ext) = extension(&name) else {
            continue;
        };
        if name.starts_with('.') || !EXTENSIONS.contains(&ext.as_str()) {
            continue;
        }
        // `file_type` does not follow symlinks: a link is not listed (and not served).
        let Ok(meta) = entry.metadata() else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let kind = kind_of_file(&path, &ext).unwrap_or(match ext.as_str() {
            "gltf" => AvatarKind::Gltf,
            _ => AvatarKind::Glb,
        });
        out.push(AvatarInfo {
            url: url_for(&name),
            default: name == DEFAULT_AVATAR,
            name,
            size: meta.len(),
            kind,
        });
    }
    out.sort_by(|a, b| b.default.cmp(&a.default).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// Writes the default avatar when it is missing, so the viewer works with no setup.
pub fn ensure_default(dir: &Path) -> Result<bool, AvatarError> {
    let path = dir.join(DEFAULT_AVATAR);
    if path.is_file() {
        return Ok(false);
    }
    atomic_file::replace(&path, DEFAULT_VRM1, TEMP, Access::Default)
        .map_err(AvatarError::io("writing the default avatar"))?;
    Ok(true)
}

/// An upload's temporary file: hidden (never listed or served) and in the avatars folder itself,
/// on the same disk as the final name so that moving it there is a rename.
const TEMP: TempName = TempName {
    prefix: ".upload-",
    suffix: ".part",
};

/// Whether a name in the avatars folder is one of the uploads' temporary files (left behind only
/// by a crash).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP.prefix) && name.ends_with(TEMP.suffix)
}

/// The bytes the files in the avatars folder take, leaving out `skip` (the upload's own
/// temporary file, and the file an overwrite would replace). Other uploads in progress count.
pub fn folder_usage(dir: &Path, skip: &[&Path]) -> Result<u64, AvatarError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(AvatarError::io("reading the avatars folder"))? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if skip.contains(&path.as_path()) {
            continue;
        }
        // `DirEntry::metadata` does not follow links: a link counts for its own few bytes.
        if let Ok(meta) = entry.metadata() {
            if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Moves a validated upload to its name. Without `overwrite`, an existing file is never replaced
/// (the move fails when the name is taken, so two uploads cannot race past a check). The
/// temporary file is gone afterwards either way.
fn install(tmp: NamedTempFile, dir: &Path, name: &str, overwrite: bool) -> Result<(), AvatarError> {
    if name == DEFAULT_AVATAR {
        return Err(AvatarError::Exists(name.into()));
    }
    atomic_file::install(tmp, &dir.join(name), overwrite).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            AvatarError::Exists(name.into())
        } else {
            AvatarError::Io {
                action: "saving the avatar",
                source: e,
            }
        }
    })
}

/// Deletes an uploaded avatar. The default avatar stays.
pub fn delete(dir: &Path, name: &str) -> Result<(), AvatarError> {
    if !crate::config::is_plain_file_name(name) {
        return Err(AvatarError::BadName(format!(
            "{name:?} is not a file name in the avatars folder"
        )));
    }
    if name == DEFAULT_AVATAR {
        return Err(AvatarError::DefaultProtected);
    }
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {}
        _ => return Err(AvatarError::NotFound(name.into())),
    }
    std::fs::remove_file(&path).map_err(AvatarError::io("deleting the avatar"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upload's temporary file holding `content`.
    fn written(dir: &Path, content: &[u8]) -> NamedTempFile {
        let tmp = atomic_file::temp_in(dir, TEMP, Access::Default).unwrap();
        std::fs::write(tmp.path(), content).unwrap();
        assert!(is_temp_name(
            &tmp.path().file_name().unwrap().to_string_lossy()
        ));
        tmp
    }

    #[test]
    fn lists_models_only_default_first() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_default(dir.path()).unwrap());
        assert!(!ensure_default(dir.path()).unwrap());
        std::fs::write(dir.path().join("b.vrm"), DEFAULT_VRM0).unwrap();
        std::fs::write(dir.path().join("a.txt"), b"x").unwrap();
        std::fs::write(dir.path().join(".upload-1.part"), b"x").unwrap();
        let list = list(dir.path()).unwrap();
        let names: Vec<_> = list.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["default.vrm", "b.vrm"]);
        assert_eq!(list[0].kind, AvatarKind::Vrm1);
        assert!(list[0].default);
        assert_eq!(list[1].kind, AvatarKind::Vrm0);
        assert_eq!(list[1].url, "/files/avatars/b.vrm");
    }

    #[test]
    fn install_never_overwrites_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let put = |content: &[u8], overwrite| {
            let tmp = written(dir.path(), content);
            let tmp_path = tmp.path().to_path_buf();
            let r = install(tmp, dir.path(), "x.glb", overwrite);
            assert!(
                !tmp_path.exists(),
                "the temporary file is always cleaned up"
            );
            r
        };
        put(b"one", false).unwrap();
        assert!(matches!(put(b"two", false), Err(AvatarError::Exists(_))));
        assert_eq!(std::fs::read(dir.path().join("x.glb")).unwrap(), b"one");
        put(b"three", true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("x.glb")).unwrap(), b"three");
    }

    #[test]
    fn the_default_cannot_be_deleted_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        ensure_default(dir.path()).unwrap();
        assert!(matches!(
            delete(dir.path(), "default.vrm"),
            Err(AvatarError::DefaultProtected)
        ));
        let tmp = written(dir.path(), b"x");
        assert!(install(tmp, dir.path(), "default.vrm", true).is_err());
        assert_eq!(
            std::fs::read(dir.path().join("default.vrm")).unwrap(),
            DEFAULT_VRM1
        );
        assert!(matches!(
            delete(dir.path(), "../default.vrm"),
            Err(AvatarError::BadName(_))
        ));
        assert!(matches!(
            delete(dir.path(), "nope.vrm"),
            Err(AvatarError::NotFound(_))
        ));
    }
}
