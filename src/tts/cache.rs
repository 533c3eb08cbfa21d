//! The audio cache: `audio/<sha256>.<ext>` in the object store, named by everything that changes
//! the sound, so the same sentence is never synthesised twice and its URL never changes (served
//! as immutable).
//!
//! - What is known about each file (provider, duration, timings) sits in `audio/.meta/<sha256>.json`,
//!   hidden from `/files/audio`. The audio object appears last, so its presence means complete.
//! - Each object is written whole or not at all (a rename in a folder, one PUT on S3). A full disk
//!   is [`TtsError::DiskFull`]: the file that was there stays.
//! - Single flight: identical requests that arrive together share one synthesis, which runs in a
//!   task of its own, so a caller that goes away neither cancels it for the others nor leaves its
//!   entry behind. That holds per instance: two instances sharing a bucket may both synthesise
//!   the same sentence, and both write the same bytes under the same key, so both answer the
//!   same URL.
//! - The oldest files go when the cache outgrows its cap, by the store's last-modified time. In a
//!   folder a hit refreshes that time, so the least recently used go first; S3 objects cannot be
//!   touched, so there the least recently written go first.

use super::{Audio, OutputKind, TtsError};
use crate::blobs::{BlobError, Blobs};
use crate::shared::tts::Timings;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::SystemTime,
};
use tokio::sync::watch;

/// What the cache keeps beside each audio file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredMeta {
    pub provider: String,
    pub content_type: String,
    pub duration_ms: Option<u64>,
    pub sample_rate: Option<u32>,
    #[serde(default)]
    pub timings: Option<Timings>,
}

/// A file in the cache.
#[derive(Clone, Debug)]
pub struct Entry {
    /// `<hash>.<ext>`
    pub name: String,
    pub meta: StoredMeta,
}

type Outcome = Option<Result<Entry, TtsError>>;

pub struct AudioCache {
    blobs: Blobs,
    /// The cache's folder in the store (`audio`).
    folder: String,
    inflight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    /// Bytes in the folder; `u64::MAX` until the first scan.
    total: AtomicU64,
    evicting: AtomicBool,
    /// Synthesis runs that did real work (for tests and the benchmark).
    pub syntheses: AtomicU64,
}

/// The cache key: sha256 over the parts, each length-prefixed so no two lists collide.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"waifu-tts-v1");
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

impl AudioCache {
    /// The cache in `folder` of `blobs`.
    pub fn new(blobs: Blobs, folder: &str) -> Self {
        Self {
            blobs,
            folder: folder.trim_matches('/').to_string(),
            inflight: Mutex::new(HashMap::new()),
            total: AtomicU64::new(u64::MAX),
            evicting: AtomicBool::new(false),
            syntheses: AtomicU64::new(0),
        }
    }

    /// The cached file, if complete. A hit counts as a use for eviction.
    pub async fn lookup(&self, hash: &str, kind: OutputKind) -> Option<Entry> {
        let found = self.find(hash, kind).await;
        crate::metrics::audio_cache(found.is_some());
        found
    }

    /// The key of `name` in the cache's folder.
    fn key(&self, name: &str) -> String {
        if self.folder.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.folder)
        }
    }

    fn meta_key(&self, hash: &str) -> String {
        self.key(&format!(".meta/{hash}.json"))
    }

    async fn find(&self, hash: &str, kind: OutputKind) -> Option<Entry> {
        let name = format!("{hash}.{}", kind.ext);
        let meta = self.blobs.read(&self.meta_key(hash)).await.ok()??;
        let meta: StoredMeta = serde_json::from_slice(&meta).ok()?;
        self.blobs.head(&self.key(&name)).await.ok()??;
        if let Some(root) = self.blobs.local_root() {
            let touch = root.join(self.key(&name));
            tokio::task::spawn_blocking(move || {
                if let Ok(f) = std::fs::File::options().write(true).open(&touch) {
                    let _ = f.set_modified(SystemTime::now());
                }
            });
        }
        Some(Entry { name, meta })
    }

    /// The cached file, or the result of `make` stored under `hash`. Identical concurrent calls
    /// run `make` once. The bool says whether it was a cache hit.
    pub async fn get_or_create<F>(
        self: &Arc<Self>,
        hash: &str,
        kind: OutputKind,
        provider: &str,
        max_bytes: u64,
        make: F,
    ) -> Result<(Entry, bool), TtsError>
    where
        F: Future<Output = Result<Audio, TtsError>> + Send + 'static,
    {
        if let Some(hit) = self.lookup(hash, kind).await {
            return Ok((hit, true));
        }
        self.create(hash, kind, provider, max_bytes, make).await
    }

    /// Like [`Self::get_or_create`] without asking the cache first: the voice is really asked
    /// (a health test), and its answer replaces the cached file. Identical calls in flight are
    /// still shared.
    pub async fn create<F>(
        self: &Arc<Self>,
        hash: &str,
        kind: OutputKind,
        provider: &str,
        max_bytes: u64,
        make: F,
    ) -> Result<(Entry, bool), TtsError>
    where
        F: Future<Output = Result<Audio, TtsError>> + Send + 'static,
    {
        let name = format!("{hash}.{}", kind.ext);
        let mut rx = {
            let mut inflight = self.inflight.lock();
            match inflight.get(&name) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    inflight.insert(name.clone(), rx.clone());
                    let cache = self.clone();
                    let (hash, provider) = (hash.to_string(), provider.to_string());
                    tokio::spawn(async move {
                        let entry = InflightGuard {
                            cache: &cache,
                            name: &name,
                        };
                        let started = std::time::Instant::now();
                        let made = make.await;
                        let result = made.as_ref().map(|_| ()).map_err(TtsError::code);
                        crate::metrics::synthesis(&provider, result, started.elapsed());
                        let outcome = match made {
                            Ok(audio) => {
                                cache.syntheses.fetch_add(1, Ordering::Relaxed);
                                cache.store(&hash, &provider, audio, max_bytes).await
                            }
                            Err(e) => Err(e),
                        };
                        // Leave the in-flight list before answering: a call that comes after
                        // the answer starts afresh (a stored file is then a cache hit) instead
                        // of being handed this finished result, a failure included.
                        drop(entry);
                        let _ = tx.send(Some(outcome));
                    });
                    rx
                }
            }
        };
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map(|o| o.clone())
            .map_err(|_| TtsError::Server("the synthesis task stopped".into()))?;
        match outcome {
            Some(result) => result.map(|e| (e, false)),
            None => Err(TtsError::Server("the synthesis task stopped".into())),
        }
    }

    /// Writes the metadata, then the audio, each whole or not at all.
    async fn store(
        &self,
        hash: &str,
        provider: &str,
        audio: Audio,
        max_bytes: u64,
    ) -> Result<Entry, TtsError> {
        let failed = |what: &str, e: BlobError| {
            if crate::blobs::is_disk_full(&e) {
                return TtsError::DiskFull(format!(
                    "the disk is full: the audio could not be saved in {} ({what})",
                    self.blobs.describe()
                ));
            }
            TtsError::Server(format!(
                "the audio could not be saved ({what}: {e}); check free space in {}",
                self.blobs.describe()
            ))
        };
        let meta = StoredMeta {
            provider: provider.to_string(),
            content_type: audio.kind.content_type.to_string(),
            duration_ms: audio.duration_ms,
            sample_rate: audio.sample_rate,
            timings: audio.timings,
        };
        let meta_json =
            serde_json::to_vec(&meta).map_err(|e| TtsError::Server(format!("meta: {e}")))?;
        let added = audio.bytes.len() as u64 + meta_json.len() as u64;
        let name = format!("{hash}.{}", audio.kind.ext);
        self.blobs
            .put(&self.meta_key(hash), meta_json.into())
            .await
            .map_err(|e| failed("metadata", e))?;
        self.blobs
            .put(&self.key(&name), audio.bytes.clone())
            .await
            .map_err(|e| failed("audio", e))?;
        self.account(added, max_bytes).await;
        Ok(Entry { name, meta })
    }

    /// Adds `added` bytes to the running total and evicts when it passes the cap.
    async fn account(&self, added: u64, max_bytes: u64) {
        if self.total.load(Ordering::Relaxed) == u64::MAX {
            let scanned = self.scan().await.map(|(_, total)| total).unwrap_or(0);
            let _ = self.total.compare_exchange(
                u64::MAX,
                scanned,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        } else {
            self.total.fetch_add(added, Ordering::Relaxed);
        }
        if self.total.load(Ordering::Relaxed) <= max_bytes
            || self.evicting.swap(true, Ordering::Acquire)
        {
            return;
        }
        if let Some(left) = self.evict(max_bytes - max_bytes / 10).await {
            self.total.store(left, Ordering::Relaxed);
        }
        self.evicting.store(false, Ordering::Release);
    }

    /// The audio objects (not hidden ones) with their last-modified time and size, and the total
    /// including metadata.
    async fn scan(&self) -> Option<(Vec<(SystemTime, u64, String)>, u64)> {
        let listed = match self.blobs.list_all(&self.folder).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!("the audio cache could not be listed: {e}");
                return None;
            }
        };
        let mut files = Vec::new();
        let mut total = 0;
        let meta_folder = self.key(".meta");
        for object in listed {
            total += object.size;
            let key = object.location.to_string();
            let hidden = object
                .location
                .filename()
                .is_none_or(|name| name.starts_with('.'));
            if !hidden && !key.starts_with(&meta_folder) {
                files.push((object.last_modified.into(), object.size, key));
            }
        }
        Some((files, total))
    }

    /// Deletes the oldest audio objects (and their metadata) until at most `target` bytes
    /// remain. Returns what remains.
    async fn evict(&self, target: u64) -> Option<u64> {
        let (mut files, mut total) = self.scan().await?;
        files.sort_by_key(|(modified, _, _)| *modified);
        for (_, size, key) in files {
            if total <= target {
                break;
            }
            if self.blobs.delete(&key).await.is_err() {
                continue;
            }
            total = total.saturating_sub(size);
            let hash = key
                .rsplit('/')
                .next()
                .and_then(|name| name.split_once('.'))
                .map(|(hash, _)| hash.to_string());
            if let Some(hash) = hash {
                let meta = self.meta_key(&hash);
                let len = self.blobs.head(&meta).await.ok().flatten().map(|m| m.size);
                if self.blobs.delete(&meta).await.is_ok() {
                    total = total.saturating_sub(len.unwrap_or(0));
                }
            }
        }
        Some(total)
    }
}

/// Whether a name in the cache folder or its `.meta` is one of the temp files earlier versions
/// wrote beside the audio (left behind only by a crash; start-up removes them).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(".tmp-")
}

/// Removes the entry from the single-flight map however the task ends.
struct InflightGuard<'a> {
    cache: &'a AudioCache,
    name: &'a str,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let mut inflight = self.cache.inflight.lock();
        inflight.remove(self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_every_part_and_parts_do_not_run_together() {
        let a = key(&["piper_local", "voice", "hello"]);
        assert_eq!(a, key(&["piper_local", "voice", "hello"]));
        assert_ne!(a, key(&["piper_local", "voice", "hello!"]));
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(a.len(), 64);
    }
}
