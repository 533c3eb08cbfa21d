//! [ssr] Warm helper processes: a long-lived program (a Python script in a private virtualenv)
//! that loads its model once and then answers requests over its pipes, one at a time. Piper's
//! voice (`tts::piper`) and Whisper's recogniser (`asr::whisper`) each run in one.
//!
//! The protocol, in both directions:
//! - start: the program writes one JSON line holding `"ready"` once its model is loaded;
//! - request: one JSON line; when it carries `"bytes": N`, exactly N raw bytes follow;
//! - answer: one JSON line `{"ok": true, …}`, followed by exactly N bytes when it carries
//!   `"bytes": N`; or `{"ok": false, "error": "…"}` for a request it could not serve.
//!
//! No request ever travels as an argument, and anything else the program prints goes to stderr,
//! whose last lines explain a failure.
//!
//! One task owns each worker and serves requests in turn, so a caller that gives up never leaves
//! the pipe half read; a worker that dies or hangs is killed and started again on the next
//! request. A request's time starts when the worker takes it, so time spent queued behind others
//! never counts against it and a healthy worker is never killed for a backlog; a full queue is
//! refused at once. After a failed start, requests are refused for a while rather than each
//! paying for another failed start.

use crate::metrics::{Queue, Queued};
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use std::{
    collections::VecDeque,
    ffi::OsString,
    path::PathBuf,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::{mpsc, oneshot},
};

/// After a worker fails to start, requests are refused with that failure for this long.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(60);

/// What to run, and its limits.
#[derive(Clone, Debug)]
pub struct Program {
    /// Who the worker is, for messages: "the Piper worker".
    pub name: &'static str,
    /// The script's text, written to `script_path` (whole, atomically) before each start.
    pub script: &'static str,
    pub script_path: PathBuf,
    /// The virtualenv's Python.
    pub python: PathBuf,
    /// Arguments after the script.
    pub args: Vec<OsString>,
    pub env: Vec<(&'static str, OsString)>,
    /// A worker that has not said it is ready within this time is given up on.
    pub load_timeout: Duration,
    /// The largest answer body a worker may announce.
    pub max_answer: usize,
    /// Requests that may wait for the worker.
    pub max_queued: usize,
    pub queue: Queue,
}

/// An answer: its JSON line and the bytes that followed it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub head: Value,
    pub body: Bytes,
}

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// The program could not be started or could not load its model.
    #[error("{0}")]
    CannotStart(String),
    #[error("{name} did not load within {} s", .after.as_secs())]
    LoadTimeout { name: &'static str, after: Duration },
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("{0} requests are already waiting")]
    Busy(usize),
    /// The pipe is out of step or the program died; the next request starts it afresh.
    #[error("{0}")]
    Broken(String),
    /// The program answered, in step, that it could not serve this request.
    #[error("{0}")]
    Refused(String),
}

enum Job {
    Warm,
    Call {
        head: Value,
        payload: Bytes,
        /// Counted from when the worker takes the job.
        timeout: Duration,
        reply: oneshot::Sender<Result<Reply, WorkerError>>,
    },
}

/// The way to one worker task. The task ends (and kills its process) when every handle is gone.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: mpsc::Sender<Job>,
    /// True while a process is loaded.
    running: Arc<AtomicBool>,
    program: Arc<Program>,
}

impl WorkerHandle {
    /// Starts the task; the process starts with the first request (or [`warm`](Self::warm)).
    pub fn start(program: Program) -> Self {
        let (tx, rx) = mpsc::channel(program.max_queued.max(1));
        let running = Arc::new(AtomicBool::new(false));
        let program = Arc::new(program);
        tokio::spawn(serve(program.clone(), rx, running.clone()));
        Self {
            tx,
            running,
            program,
        }
    }

    /// Whether the task is gone (it never is while a handle lives, unless it panicked).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether a process is loaded and waiting for requests.
    pub fn is_warm(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Starts the process now, so the first request does not wait for the model to load.
    pub fn warm(&self) {
        let _ = self.tx.try_send(Job::Warm);
    }

    /// Sends `head` (and `payload`, announced as `"bytes"`) and waits for the answer, which the
    /// worker has `timeout` to give once it takes the request.
    pub async fn call(
        &self,
        head: Value,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Reply, WorkerError> {
        let _queued = Queued::enter(self.program.queue);
        let (reply, answer) = oneshot::channel();
        let job = Job::Call {
            head,
            payload,
            timeout,
            reply,
        };
        let gone = || WorkerError::Broken(format!("{} stopped", self.program.name));
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WorkerError::Busy(self.program.max_queued),
            mpsc::error::TrySendError::Closed(_) => gone(),
        })?;
        answer.await.map_err(|_| gone())?
    }
}

/// One worker's task: starts the process when needed and serves jobs one at a time.
async fn serve(program: Arc<Program>, mut rx: mpsc::Receiver<Job>, running: Arc<AtomicBool>) {
    let mut worker: Option<Worker> = None;
    let mut failed_at: Option<(Instant, WorkerError)> = None;
    while let Some(job) = rx.recv().await {
        if let Job::Call { reply, .. } = &job {
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
                    if let Job::Call { reply, .. } = job {
                        let _ = reply.send(Err(e.clone()));
                    }
                    continue;
                }
            }
            match Worker::start(&program).await {
                Ok(w) => {
                    worker = Some(w);
                    failed_at = None;
                }
                Err(e) => {
                    tracing::warn!("{} did not start: {e}", program.name);
                    failed_at = Some((Instant::now(), e.clone()));
                    if let Job::Call { reply, .. } = job {
                        let _ = reply.send(Err(e));
                    }
                    running.store(false, Ordering::Relaxed);
                    continue;
                }
            }
        }
        running.store(true, Ordering::Relaxed);
        let Job::Call {
            head,
            payload,
            timeout,
            reply,
        } = job
        else {
            continue;
        };
        let Some(w) = worker.as_mut() else { continue };
        // The job's time starts now that the worker is ready for it (loading has its own limit).
        let answer = match tokio::time::timeout(timeout, w.exchange(head, &payload)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                // The pipe is out of step or the process died: start afresh next time.
                worker = None;
                Err(e)
            }
            Err(_) => {
                worker = None;
                Err(WorkerError::Timeout(timeout))
            }
        };
        if worker.is_none() {
            running.store(false, Ordering::Relaxed);
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
    program: Arc<Program>,
}

impl Worker {
    async fn start(program: &Arc<Program>) -> Result<Worker, WorkerError> {
        let name = program.name;
        let script = program.script_path.clone();
        if let Some(dir) = script.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                WorkerError::CannotStart(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        // Written whole: a worker starting meanwhile (another voice) runs the old script or the
        // new one, never half of one.
        let to = script.clone();
        let text = program.script;
        tokio::task::spawn_blocking(move || {
            crate::atomic_file::replace(
                &to,
                text.as_bytes(),
                crate::atomic_file::TempName {
                    prefix: ".worker-",
                    suffix: ".tmp",
                },
                crate::atomic_file::Access::Default,
            )
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|written| written)
        .map_err(|e| WorkerError::CannotStart(format!("cannot write {}: {e}", script.display())))?;
        let mut child = Command::new(&program.python)
            .arg(&script)
            .args(&program.args)
            .envs(program.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                WorkerError::CannotStart(format!(
                    "{name}'s Python at {} could not be started ({e}); run `make setup`",
                    program.python.display()
                ))
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(WorkerError::CannotStart(format!("{name} has no pipes")));
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(keep_stderr(stderr, tail.clone(), name));
        let mut w = Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: tail,
            program: program.clone(),
        };
        let mut line = String::new();
        let ready = tokio::time::timeout(program.load_timeout, w.stdout.read_line(&mut line)).await;
        match ready {
            Ok(Ok(n)) if n > 0 && line.contains("\"ready\"") => Ok(w),
            Err(_) => Err(WorkerError::LoadTimeout {
                name,
                after: program.load_timeout,
            }),
            _ => {
                // Give stderr a moment to arrive: it says why (a missing module, a bad model).
                let _ = tokio::time::timeout(Duration::from_secs(2), w.child.wait()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(WorkerError::CannotStart(format!(
                    "{name} could not load its model: {}",
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
        stderr_tail(lines.join("\n").as_bytes())
    }

    /// One request and its answer. The outer error means the pipe can no longer be trusted; the
    /// inner one is a refusal the worker reported in step.
    async fn exchange(
        &mut self,
        mut head: Value,
        payload: &[u8],
    ) -> Result<Result<Reply, WorkerError>, WorkerError> {
        let name = self.program.name;
        let broken =
            |what: &str, e: std::io::Error| WorkerError::Broken(format!("{name} {what} ({e})"));
        if !payload.is_empty() {
            head["bytes"] = payload.len().into();
        }
        let mut line = serde_json::to_vec(&head)
            .map_err(|e| WorkerError::Broken(format!("cannot encode the request: {e}")))?;
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .map_err(|e| broken("stopped reading", e))?;
        self.stdin
            .write_all(payload)
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
            return Err(WorkerError::Broken(format!(
                "{name} died: {}",
                self.stderr_tail()
            )));
        }
        let head: Value = serde_json::from_str(&header)
            .map_err(|_| WorkerError::Broken(format!("{name} answered out of step")))?;
        if head["ok"] != true {
            let why = head["error"].as_str().unwrap_or("no reason given");
            return Ok(Err(WorkerError::Refused(why.to_string())));
        }
        let len = match head.get("bytes") {
            None => 0,
            Some(n) => n
                .as_u64()
                .filter(|n| *n as usize <= self.program.max_answer)
                .ok_or_else(|| WorkerError::Broken(format!("{name} announced a bad length")))?
                as usize,
        };
        let mut body = vec![0u8; len];
        self.stdout
            .read_exact(&mut body)
            .await
            .map_err(|e| broken("cut its answer short", e))?;
        Ok(Ok(Reply {
            head,
            body: body.into(),
        }))
    }
}

/// Keeps the last lines the worker wrote to stderr, for error messages.
async fn keep_stderr(
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    name: &'static str,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "warm_worker", worker = name, "{line}");
        let mut t = tail.lock();
        if t.len() == 20 {
            t.pop_front();
        }
        t.push_back(line);
    }
}

/// The last few lines of a program's complaint, on one line.
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    let short: String = tail.chars().take(300).collect();
    if short.is_empty() {
        "no error output".into()
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A stand-in for a worker's Python: it says it is ready, then answers each request after
    /// `delay` seconds with four bytes.
    fn stand_in(dir: &Path, delay: &str, max_queued: usize) -> Program {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("python3");
        let script = format!(
            "#!/bin/sh\necho '{{\"ready\": true}}'\nwhile read -r line; do\n  sleep {delay}\n  printf '{{\"ok\": true, \"bytes\": 4}}\\n'\n  printf 'RIFF'\ndone\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Program {
            name: "the test worker",
            script: "",
            script_path: dir.join("worker.py"),
            python: path,
            args: Vec::new(),
            env: Vec::new(),
            load_timeout: Duration::from_secs(10),
            max_answer: 1024,
            max_queued,
            queue: Queue::TtsPiper,
        }
    }

    async fn ask(
        worker: &WorkerHandle,
        text: &str,
        timeout: Duration,
    ) -> Result<Bytes, WorkerError> {
        worker
            .call(serde_json::json!({ "text": text }), Bytes::new(), timeout)
            .await
            .map(|r| r.body)
    }

    /// Four requests at once, each taking 0.4 s and each allowed 1 s: the last waits 1.2 s in
    /// the queue, which must not count against it, and the worker is never restarted.
    #[tokio::test]
    async fn a_queued_request_is_not_timed_out_by_its_time_in_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let worker = WorkerHandle::start(stand_in(dir.path(), "0.4", 64));
        let timeout = Duration::from_secs(1);
        let texts: Vec<String> = (0..4).map(|i| format!("sentence {i}")).collect();
        let answers =
            futures::future::join_all(texts.iter().map(|t| ask(&worker, t, timeout))).await;
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a.as_deref().ok(), Some(&b"RIFF"[..]), "request {i}: {a:?}");
        }
        assert!(worker.is_warm(), "the worker was kept");
    }

    /// A full queue is refused at once with a busy error, and the worker goes on serving.
    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let worker = WorkerHandle::start(stand_in(dir.path(), "0.3", 1));
        let timeout = Duration::from_secs(10);
        let first = ask(&worker, "one", timeout);
        let second = ask(&worker, "two", timeout);
        let third = ask(&worker, "three", timeout);
        let refused = async {
            // Let the first two take the worker and the queue's one place.
            tokio::task::yield_now().await;
            ask(&worker, "four", timeout).await
        };
        let (a, b, c, d) = tokio::join!(first, second, third, refused);
        let results = [a, b, c, d];
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(WorkerError::Busy(_))))
            .count();
        assert!(busy >= 1, "{results:?}");
        assert!(results.iter().any(|r| r.is_ok()), "{results:?}");
        assert!(results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(WorkerError::Busy(_)))));
    }

    /// A payload travels after its line, announced by `bytes`, and comes back whole.
    #[tokio::test]
    async fn a_payload_follows_its_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut program = stand_in(dir.path(), "0", 4);
        // Echoes the payload: reads the line, then `bytes` bytes with head -c.
        let script = "#!/bin/sh\necho '{\"ready\": true}'\nwhile read -r line; do\n  n=$(echo \"$line\" | sed 's/.*\"bytes\":\\([0-9]*\\).*/\\1/')\n  printf '{\"ok\": true, \"bytes\": %s}\\n' \"$n\"\n  head -c \"$n\"\ndone\n";
        std::fs::write(&program.python, script).unwrap();
        std::fs::set_permissions(&program.python, std::fs::Permissions::from_mode(0o755)).unwrap();
        program.max_answer = 1 << 20;
        let worker = WorkerHandle::start(program);
        let payload = Bytes::from(vec![7u8; 100_000]);
        let reply = worker
            .call(
                serde_json::json!({}),
                payload.clone(),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(reply.body, payload);
        assert_eq!(reply.head["bytes"], 100_000);
    }
}
