//! [ssr] The object store that holds avatars and cached audio, chosen by `STORAGE_URL`
//! (`--storage-url`): `file://<folder>` (the default: the data folder, laid out as before, with
//! `avatars/…` and `audio/…`) or `s3://bucket/prefix`, which several instances can share. The
//! S3 endpoint, region and credentials come from the standard `AWS_*` variables.
//!
//! Everything above this module talks to [`Blobs`] and never learns which backend is behind it;
//! the two places where a local folder still matters (refusing symlinks that lead out of it, and
//! the weak ETag a file's inode and time give) ask [`Blobs::local_root`].

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{
    aws::AmazonS3Builder, local::LocalFileSystem, path::Path as Key, prefix::PrefixStore,
    GetOptions, GetResult, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload,
};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

pub use object_store::Error as BlobError;

/// Why the configured storage cannot be used; the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("STORAGE_URL (or --storage-url) {url:?} is not usable: {reason}. Use file:///a/folder or s3://bucket/prefix")]
    BadUrl { url: String, reason: String },
    #[error("the storage folder {} could not be created: {source}", .path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the S3 storage {url:?} could not be set up: {source}. The endpoint, region and credentials come from the AWS_* variables (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; AWS_ALLOW_HTTP=true for a plain-HTTP endpoint)")]
    S3Setup {
        url: String,
        #[source]
        source: BlobError,
    },
    #[error("the storage {url:?} does not answer: {source}. Check that the bucket exists and that the AWS_* variables (endpoint, region, credentials) are right")]
    Unreachable {
        url: String,
        #[source]
        source: BlobError,
    },
}

/// Where the objects are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local folder; keys are paths inside it.
    Folder(PathBuf),
    /// A bucket, with keys under `prefix` (may be empty).
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Parses a storage URL. A bare path (no scheme) is a folder, like `file://` with that path.
    pub fn parse(raw: &str) -> Result<Self, StorageError> {
        let bad = |reason: &str| StorageError::BadUrl {
            url: raw.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = raw.strip_prefix("file://") {
            let path = percent_encoding::percent_decode_str(rest)
                .decode_utf8()
                .map_err(|_| bad("the path is not valid UTF-8"))?;
            if path.is_empty() {
                return Err(bad("the folder is missing (file:///absolute/path)"));
            }
            return Ok(Self::Folder(PathBuf::from(path.as_ref())));
        }
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c);
            if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
                return Err(bad(
                    "the bucket name must be 3 to 63 lower-case letters, digits, dots or hyphens",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|p| p == ".." || p == ".") {
                return Err(bad("the prefix may not contain . or .. parts"));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if raw.contains("://") {
            return Err(bad("only file:// and s3:// are supported"));
        }
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        Ok(Self::Folder(PathBuf::from(raw)))
    }
}

/// The handle every part of the server shares.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The folder behind a `file://` store.
    local: Option<Arc<PathBuf>>,
    /// For messages: where the objects are.
    describe: Arc<str>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs").field("at", &self.describe).finish()
    }
}

impl Blobs {
    /// The store at `location`, checked to answer (a listing) so that a wrong bucket or
    /// credentials stop the server at start-up rather than at the first upload.
    pub async fn open(location: &Location) -> Result<Self, StorageError> {
        let blobs = match location {
            Location::Folder(dir) => Self::folder(dir)?,
            Location::S3 { bucket, prefix } => {
                let url = format!("s3://{bucket}/{prefix}");
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|source| StorageError::S3Setup {
                        url: url.clone(),
                        source,
                    })?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                Self {
                    store,
                    local: None,
                    describe: url.into(),
                }
            }
        };
        blobs
            .store
            .list_with_delimiter(Some(&Key::from("avatars")))
            .await
            .map_err(|source| StorageError::Unreachable {
                url: blobs.describe.to_string(),
                source,
            })?;
        Ok(blobs)
    }

    /// A store in a local folder (created if missing).
    pub fn folder(dir: &Path) -> Result<Self, StorageError> {
        let folder = |source| StorageError::Folder {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(folder)?;
        let root = std::fs::canonicalize(dir).map_err(folder)?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| folder(std::io::Error::other(e)))?;
        Ok(Self {
            store: Arc::new(store),
            describe: format!("file://{}", root.display()).into(),
            local: Some(Arc::new(root)),
        })
    }

    /// The folder behind a `file://` store (`None` for S3).
    pub fn local_root(&self) -> Option<&Path> {
        self.local.as_deref().map(PathBuf::as_path)
    }

    /// Where the objects are, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Writes `bytes` under `key`, replacing what was there. Readers see the old object or the
    /// new one, never part of one (a rename on a folder, a single PUT on S3).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&Key::from(key), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
    }

    /// Writes `bytes` under `key` unless something is there already: whether it wrote. Safe
    /// when several instances try at once (S3's `If-None-Match: *`, a no-replace link locally).
    pub async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool, BlobError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&Key::from(key), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(BlobError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The object with `opts` (a range, conditions, or only its metadata).
    pub async fn get(&self, key: &str, opts: GetOptions) -> Result<GetResult, BlobError> {
        self.store.get_opts(&Key::from(key), opts).await
    }

    /// The whole object, or `None` when there is none.
    pub async fn read(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&Key::from(key)).await {
            Ok(found) => found.bytes().await.map(Some),
            Err(BlobError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Bytes `range` of the object.
    pub async fn read_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, BlobError> {
        self.store.get_range(&Key::from(key), range).await
    }

    /// The object's metadata, or `None` when there is none.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, BlobError> {
        match self.store.head(&Key::from(key)).await {
            Ok(meta) => Ok(Some(meta)),
            Err(BlobError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The objects directly inside `folder` (not in its sub-folders), with their names.
    pub async fn list(&self, folder: &str) -> Result<Vec<(String, ObjectMeta)>, BlobError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&Key::from(folder)))
            .await?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|meta| {
                // Keys keep a few characters percent-encoded (`%`, `#`, …); names do not.
                let raw = meta.location.filename()?;
                let name = percent_encoding::percent_decode_str(raw)
                    .decode_utf8()
                    .ok()?
                    .into_owned();
                Some((name, meta))
            })
            .collect())
    }

    /// Every object under `folder`, sub-folders included.
    pub async fn list_all(&self, folder: &str) -> Result<Vec<ObjectMeta>, BlobError> {
        self.store
            .list(Some(&Key::from(folder)))
            .try_collect()
            .await
    }

    /// Deletes the object; one that is not there is no error (S3 does not say whether there
    /// was one, so ask [`Self::head`] first when it matters).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(BlobError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The `ETag` header for an object's own tag. A folder's tag (inode, time, size) does not
    /// follow the bytes, so it is sent as a weak one; S3's (the MD5 of the bytes, quoted) as is.
    pub fn etag_header(&self, raw: &str) -> String {
        if self.local.is_some() {
            format!("W/\"{raw}\"")
        } else if raw.starts_with('"') || raw.starts_with("W/") {
            raw.to_string()
        } else {
            format!("\"{raw}\"")
        }
    }

    /// An `If-None-Match` list in the store's own spelling of its tags (the inverse of
    /// [`Self::etag_header`]), so that the store itself answers "not modified".
    pub fn store_etags(&self, header: &str) -> String {
        header
            .split(',')
            .map(|t| {
                let t = t.trim();
                let t = t.strip_prefix("W/").unwrap_or(t);
                if self.local.is_some() {
                    t.trim_matches('"').to_string()
                } else {
                    t.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a file name in a `file://` store is a write in progress: `LocalFileSystem` writes
/// `<name>#<n>` beside the object and renames it into place. Never listed or served; a crash
/// can leave one behind, which start-up removes from the data folder.
pub fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a store error comes from a full disk (a `file://` store).
pub fn is_disk_full(e: &BlobError) -> bool {
    crate::disk::is_full_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_a_folder_or_a_bucket() {
        assert_eq!(
            Location::parse("file:///srv/waifu%20data").unwrap(),
            Location::Folder("/srv/waifu data".into())
        );
        assert_eq!(
            Location::parse("data").unwrap(),
            Location::Folder("data".into())
        );
        assert_eq!(
            Location::parse("s3://my-bucket/some/prefix/").unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(
            Location::parse("s3://my-bucket").unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            }
        );
        assert!(is_staging_name("a.vrm#1") && is_staging_name("x#12"));
        assert!(!is_staging_name("a#b.vrm") && !is_staging_name("a.vrm#") && !is_staging_name("a"));
        for bad in [
            "",
            "file://",
            "gs://b/p",
            "s3://",
            "s3://Bad_Bucket/x",
            "s3://ok-bucket/../x",
        ] {
            assert!(
                matches!(Location::parse(bad), Err(StorageError::BadUrl { .. })),
                "{bad:?}"
            );
        }
    }
}
