//! Offline recognition: faster-whisper <https://github.com/SYSTRAN/faster-whisper> with Whisper
//! tiny.en in CTranslate2 format, int8, beam size 1.
//!
//! Loading the model takes seconds, so a warm worker keeps it loaded: a long-lived Python process
//! in faster-whisper's own virtualenv running `whisper_worker.py` (shipped in this folder),
//! through the same machinery as Piper's (`crate::warm_worker`). The recording goes to it as
//! bytes; it decodes any container PyAV's FFmpeg reads (WAV, WebM/Opus, OGG, MP3), measures it
//! and refuses one over `asr.max_seconds` before recognising anything. Nothing is fetched at run
//! time: the model is loaded from its folder with the Hugging Face hub offline.
//!
//! The virtualenv and the model are found where `make setup` put them: the data folder, then the
//! install folder, then `./data` of the checkout the server runs from.

use super::{AsrEngine, AsrError, AsrProbe, AsrRequest, Heard};
use crate::{
    server::paths::{DataPaths, WHISPER_MODEL, WHISPER_PYTHON},
    shared::config::{AsrProvider, WhisperLocalSettings},
    warm_worker::{Program, WorkerError, WorkerHandle},
};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

const WORKER_SCRIPT: &str = include_str!("whisper_worker.py");
/// Loading the model and its first run; generous, for a busy two-core machine.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Recordings that may wait for the worker. The route's limit (`limits.transcriptions`) keeps
/// the queue far shorter in practice; this bounds it even so.
const MAX_QUEUED: usize = 16;

/// Where faster-whisper's Python and the model are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WhisperPaths {
    pub python: PathBuf,
    /// The model's folder (model.bin, config.json, tokenizer.json, vocabulary.txt).
    pub model: PathBuf,
}

/// The warm workers, one per (Python, model, threads).
#[derive(Default)]
pub struct WhisperPool {
    workers: Mutex<HashMap<(WhisperPaths, u32), WorkerHandle>>,
}

impl WhisperPool {
    fn worker(&self, paths: &WhisperPaths, threads: u32) -> WorkerHandle {
        let key = (paths.clone(), threads);
        let mut workers = self.workers.lock();
        if let Some(w) = workers.get(&key).filter(|w| !w.is_closed()) {
            return w.clone();
        }
        let handle = WorkerHandle::start(program(paths, threads));
        workers.insert(key, handle.clone());
        handle
    }

    fn is_warm(&self, paths: &WhisperPaths, threads: u32) -> bool {
        self.workers
            .lock()
            .get(&(paths.clone(), threads))
            .is_some_and(WorkerHandle::is_warm)
    }
}

fn program(paths: &WhisperPaths, threads: u32) -> Program {
    // Beside the virtualenv: `<tools>/whisper/whisper_worker.py`.
    let script_dir = paths
        .python
        .ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Program {
        name: "the Whisper worker",
        script: WORKER_SCRIPT,
        script_path: script_dir.join("whisper_worker.py"),
        python: paths.python.clone(),
        args: vec![
            paths.model.as_os_str().to_os_string(),
            threads.to_string().into(),
        ],
        env: vec![
            ("HF_HUB_OFFLINE", "1".into()),
            ("HF_HUB_DISABLE_TELEMETRY", "1".into()),
        ],
        load_timeout: LOAD_TIMEOUT,
        // Answers are one JSON line, never followed by bytes.
        max_answer: 0,
        max_queued: MAX_QUEUED,
        queue: crate::metrics::Queue::AsrWhisper,
    }
}

/// Finds the virtualenv's Python and the model: the data folder, the install folder, then the
/// checkout's `data/`.
pub fn resolve(paths: &DataPaths) -> Result<WhisperPaths, AsrError> {
    let find = |relative: &str| {
        let located = paths.installed(Path::new(relative));
        if located.path.is_file() {
            return Some(located.path);
        }
        let checkout = Path::new("data").join(relative);
        checkout
            .is_file()
            .then(|| std::path::absolute(&checkout).unwrap_or(checkout))
    };
    let missing = |what: &str, relative: &str| {
        AsrError::NotInstalled(format!(
            "Offline speech recognition is not installed ({what} is missing from {}): run `make setup`, or choose another recogniser in Setup.",
            paths.root.join(relative).display()
        ))
    };
    let python = find(WHISPER_PYTHON).ok_or_else(|| missing("faster-whisper", WHISPER_PYTHON))?;
    let model = find(WHISPER_MODEL)
        .and_then(|bin| bin.parent().map(Path::to_path_buf))
        .ok_or_else(|| missing("the Whisper model", WHISPER_MODEL))?;
    Ok(WhisperPaths { python, model })
}

pub struct WhisperLocal {
    found: Result<WhisperPaths, AsrError>,
    threads: u32,
    pool: Arc<WhisperPool>,
}

impl WhisperLocal {
    pub fn new(s: &WhisperLocalSettings, paths: &DataPaths, pool: Arc<WhisperPool>) -> Self {
        Self {
            found: resolve(paths),
            threads: s.threads.max(1),
            pool,
        }
    }
}

#[async_trait]
impl AsrEngine for WhisperLocal {
    fn provider(&self) -> AsrProvider {
        AsrProvider::WhisperLocal
    }

    async fn transcribe(&self, req: &AsrRequest) -> Result<Heard, AsrError> {
        let paths = self.found.clone()?;
        let worker = self.pool.worker(&paths, self.threads);
        let head = serde_json::json!({
            "language": req.language,
            "max_seconds": req.max_seconds,
        });
        // Recognition runs several times faster than real time even on two cores; this only
        // catches a worker that hangs.
        let timeout = Duration::from_secs(30 + 2 * u64::from(req.max_seconds));
        let reply = worker
            .call(head, req.audio.clone(), timeout)
            .await
            .map_err(from_worker)?;
        let head = reply.head;
        let duration_ms = head["duration_ms"].as_u64();
        match head["rejected"].as_str() {
            Some("too_long") => {
                return Err(AsrError::TooLong {
                    max_seconds: req.max_seconds,
                })
            }
            Some(_) => {
                let why = head["error"]
                    .as_str()
                    .unwrap_or("the decoder could not read it");
                return Err(AsrError::BadAudio(why.to_string()));
            }
            None => {}
        }
        let text = head["text"]
            .as_str()
            .ok_or_else(|| AsrError::Engine("the Whisper worker answered without a text".into()))?;
        Ok(Heard {
            text: text.trim().to_string(),
            language: head["language"].as_str().unwrap_or_default().to_string(),
            duration_ms,
            decode_ms: head["decode_ms"].as_f64(),
            transcribe_ms: head["transcribe_ms"].as_f64(),
        })
    }

    async fn probe(&self) -> AsrProbe {
        match &self.found {
            Ok(p) => {
                let model = p.model.file_name().unwrap_or_default().to_string_lossy();
                let warm = if self.pool.is_warm(p, self.threads) {
                    "loaded and warm"
                } else {
                    "loads when the microphone is first used (a few seconds)"
                };
                AsrProbe::ok(format!(
                    "Whisper {model} (int8, {} threads): {warm}.",
                    self.threads
                ))
            }
            Err(e) => AsrProbe::from_error(e),
        }
    }

    fn warm(&self) {
        if let Ok(paths) = &self.found {
            self.pool.worker(paths, self.threads).warm();
        }
    }
}

/// A worker's failure, in recognition's terms.
fn from_worker(e: WorkerError) -> AsrError {
    match e {
        WorkerError::CannotStart(m) => AsrError::Unavailable(format!(
            "Offline speech recognition could not start: {m}. Run `make setup` to reinstall it."
        )),
        WorkerError::LoadTimeout { after, .. } => AsrError::Unavailable(format!(
            "The Whisper model did not load within {} s; the machine may be overloaded, try again.",
            after.as_secs()
        )),
        WorkerError::Timeout(after) => AsrError::Timeout(after.as_millis() as u64),
        WorkerError::Busy(n) => AsrError::Busy(format!("{n} recordings are already waiting")),
        WorkerError::Broken(m) | WorkerError::Refused(m) => AsrError::Engine(m),
    }
}
