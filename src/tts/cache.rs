//! The audio cache: `<audio>/<sha256>.<ext>`, named by everything that changes the sound, so the
//! same sentence is never synthesised twice and its URL never changes (served as immutable).
//!
//! - What is known about each file (provider, duration, timings) sits in `<audio>/.meta/<sha256>.json`,
//!   hidden from `/files/audio`. The audio file appears last, so its presence means complete.
//! - Writes go to a hidden temp file and are renamed into place; a guard removes the temp file
//!   on every exit path. A full disk is [`TtsError::DiskFull`]: the file that was there stays.
//! - Single flight: identical requests that arrive together share one synthesis, which runs in a
//!   task of its own, so a caller that goes away neither cancels it for the others nor leaves its
//!   entry behind.
//! - Least recently used files go when the folder outgrows its cap: a hit refreshes the file's
//!   modification time, and eviction removes the oldest first.

use super::{Audio, OutputKind, TtsError};
use crate::atomic_file;
use crate::shared::tts::Timings;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
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
    pub path: PathBuf,
    pub meta: StoredMeta,
}

type Outcome = Option<Result<Entry, TtsError>>;

pub struct AudioCache {
    dir: PathBuf,
    meta_dir: PathBuf,
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
    pub fn new(dir: PathBuf) -> Self {
        Self {
            meta_dir: dir.join(".meta"),
            dir,
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

    async fn find(&self, hash: &str, kind: OutputKind) -> Option<Entry> {
        let name = format!("{hash}.{}", kind.ext);
        let path = self.dir.join(&name);
        let meta = tokio::fs::read(self.meta_dir.join(format!("{hash}.json")))
            .await
            .ok()?;
        let meta: StoredMeta = serde_json::from_slice(&meta).ok()?;
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return None;
        }
        let touch = path.clone();
        tokio::task::spawn_blocking(move || {
            if let Ok(f) = std::fs::File::options().write(true).open(&touch) {
                let _ = f.set_modified(SystemTime::now());
            }
        });
        Some(Entry { name, path, meta })
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

    /// Writes the metadata, then the audio, each through a temp file and a rename.
    async fn store(
        &self,
        hash: &str,
        provider: &str,
        audio: Audio,
        max_bytes: u64,
    ) -> Result<Entry, TtsError> {
        let io = |what: &str, e: std::io::Error| {
            if crate::disk::is_full(&e) {
                return TtsError::DiskFull(format!(
                    "the disk is full: the audio could not be saved in {} ({what})",
                    self.dir.display()
                ));
            }
            TtsError::Server(format!(
                "the audio could not be saved ({what}: {e}); check free disk space in {}",
                self.dir.display()
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
        tokio::fs::create_dir_all(&self.meta_dir)
            .await
            .map_err(|e| io("create folder", e))?;
        let name = format!("{hash}.{}", audio.kind.ext);
        let path = self.dir.join(&name);
        atomic_write(&self.meta_dir.join(format!("{hash}.json")), &meta_json)
            .await
            .map_err(|e| io("metadata", e))?;
        atomic_write(&path, &audio.bytes)
            .await
            .map_err(|e| io("audio", e))?;
        self.account(audio.bytes.len() as u64 + meta_json.len() as u64, max_bytes)
            .await;
        Ok(Entry { name, path, meta })
    }

    /// Adds `added` bytes to the running total and evicts when it passes the cap.
    async fn account(&self, added: u64, max_bytes: u64) {
        if self.total.load(Ordering::Relaxed) == u64::MAX {
            let dir = self.dir.clone();
            let scanned = tokio::task::spawn_blocking(move || scan(&dir).1)
                .await
                .unwrap_or(0);
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
        let dir = self.dir.clone();
        let left = tokio::task::spawn_blocking(move || evict(&dir, max_bytes - max_bytes / 10))
            .await
            .ok();
        if let Some(left) = left {
            self.total.store(left, Ordering::Relaxed);
        }
        self.evicting.store(false, Ordering::Release);
    }
}

/// Whether a name in the cache folder or its `.meta` is one of [`atomic_write`]'s temp files (left
/// behind only by a crash; start-up removes them).
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

/// Hidden (never served from `/files/audio`) and recognised by [`is_temp_name`].
const TEMP: atomic_file::TempName = atomic_file::TempName {
    prefix: ".tmp-",
    suffix: "",
};

async fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
    tokio::task::spawn_blocking(move || {
        atomic_file::replace(&path, &bytes, TEMP, atomic_file::Access::Default)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The audio files (not hidden ones) with their modification time and size, and the total
/// including metadata.
fn scan(dir: &Path) -> (Vec<(SystemTime, u64, PathBuf)>, u64) {
    let mut files = Vec::new();
    let mut total = 0;
    for sub in [dir.to_path_buf(), dir.join(".meta")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            total += meta.len();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if sub == dir && !hidden {
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.push((mtime, meta.len(), e.path()));
            }
        }
    }
    (files, total)
}

/// Deletes least recently used audio files (and their metadata) until at most `target` bytes
/// remain. Returns what remains.
fn evict(dir: &Path, target: u64) -> u64 {
    let (mut files, mut total) = scan(dir);
    files.sort_by_key(|(mtime, _, _)| *mtime);
    for (_, size, path) in files {
        if total <= target {
            break;
        }
        let meta = path.file_stem().map(|stem| {
            dir.join(".meta")
                .join(format!("{}.json", stem.to_string_lossy()))
        });
        if std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(size);
            if let Some(meta) = meta {
                let len = std::fs::metadata(&meta).map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(&meta).is_ok() {
                    total = total.saturating_sub(len);
                }
            }
        }
    }
    total
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
