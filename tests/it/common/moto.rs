//! An S3 server for the object-store tests: moto (`make setup-test` installs it into
//! `tools/moto/venv`), started once per test process on a free port, each test in a bucket of
//! its own. The AWS_* variables the app reads point at it.
//!
//! The server runs under a small shell that holds its stdin: when the test process ends, for
//! whatever reason, the pipe closes and the shell stops the server, so no moto outlives a run.

use std::{
    io::Read,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

pub struct Moto {
    pub port: u16,
    /// Kept so that its stdin stays open; dropping it stops the server.
    child: parking_lot::Mutex<Child>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let mut child = self.child.lock();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn program() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/moto/venv/bin/moto_server")
}

/// The shared server, started on first use. Panics (the test fails) when moto is not installed.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

fn start() -> Moto {
    let program = program();
    assert!(
        program.is_file(),
        "the S3 test server is not installed ({} is missing): run `make setup-test`",
        program.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(
            r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & m=$!; cat >/dev/null; kill $m; wait $m"#,
        )
        .arg(&program)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting moto_server");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("moto_server stopped at start-up ({status}); try `make setup-test` again");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto_server did not answer on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Read by object_store's `AmazonS3Builder::from_env`, like any deployment's.
    for (key, value) in [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ] {
        std::env::set_var(key, value);
    }
    Moto {
        port,
        child: parking_lot::Mutex::new(child),
    }
}

impl Moto {
    /// A new, empty bucket; its `s3://` URL with `prefix`.
    pub fn bucket(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "waifu-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // Creating a bucket needs no signature on moto; object_store has no call for it.
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        use std::io::Write;
        write!(
            stream,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("create the bucket");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "moto did not create bucket {name}: {answer}"
        );
        format!("s3://{name}/{prefix}")
    }
}
