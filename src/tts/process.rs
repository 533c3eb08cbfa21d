//! Running a local speech program: text on stdin (never as an argument), output collected, the
//! child killed when the time is up or the caller goes away.

use super::TtsError;
use std::{path::Path, process::Stdio, time::Duration};
use tokio::{io::AsyncWriteExt, process::Command};

pub struct Finished {
    pub stdout: Vec<u8>,
}

/// Runs `program args…`, writes `stdin` and closes it, and waits at most `timeout`. A non-zero
/// exit is a [`TtsError::Server`] carrying the end of stderr.
pub async fn run(
    program: &Path,
    args: &[&std::ffi::OsStr],
    stdin: &str,
    timeout: Duration,
    what: &str,
) -> Result<Finished, TtsError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error(e, program, what))?;
    let work = async {
        if let Some(mut input) = child.stdin.take() {
            // A program that exits early closes the pipe; its exit status tells the story.
            let _ = input.write_all(stdin.as_bytes()).await;
            let _ = input.write_all(b"\n").await;
            drop(input);
        }
        child.wait_with_output().await
    };
    let out = match tokio::time::timeout(timeout, work).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(TtsError::Server(format!("{what} could not be run: {e}"))),
        // Dropping `work` drops the child, and kill_on_drop ends it.
        Err(_) => return Err(TtsError::Timeout(timeout.as_millis() as u64)),
    };
    if !out.status.success() {
        return Err(TtsError::Server(format!(
            "{what} exited with {}: {}",
            out.status,
            stderr_tail(&out.stderr)
        )));
    }
    Ok(Finished { stdout: out.stdout })
}

pub fn spawn_error(e: std::io::Error, program: &Path, what: &str) -> TtsError {
    match e.kind() {
        std::io::ErrorKind::NotFound => TtsError::MissingBinary(format!(
            "{what} was not found at {}; run `make setup`, or set its path in the Setup tab",
            program.display()
        )),
        std::io::ErrorKind::PermissionDenied => TtsError::MissingBinary(format!(
            "{} is not executable; fix its permissions (chmod +x) or choose another program",
            program.display()
        )),
        _ => TtsError::MissingBinary(format!(
            "{what} at {} could not be started: {e}",
            program.display()
        )),
    }
}

pub use crate::warm_worker::stderr_tail;
