//! [ssr] A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` into a temporary
//! folder, `postgres` on a free local port, a fresh database per caller. Not used by the app.
//!
//! The server runs under a small `sh` that is this process's direct child (no `pg_ctl`, no
//! daemon: the server is owned and waited for, not orphaned). The shell holds the read end of a
//! pipe whose write end only this process has; when this process ends, for any reason, the
//! kernel closes it, and the shell stops the server (fast shutdown) and deletes the folder. A
//! cluster shared by a whole test process lives in a static, which is never dropped, so this is
//! what ends it; an owned [`Cluster`] also ends it when dropped. (The crate forbids `unsafe`,
//! which rules out `prctl(PR_SET_PDEATHSIG)` in `pre_exec`; the pipe does not depend on which
//! thread spawned the server either.) As root, `initdb` and the server run as `nobody`, since
//! PostgreSQL refuses to run as root.

use sqlx::{Connection, PgConnection, PgPool};
use std::{
    io::Read,
    net::TcpListener,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

/// Why no cluster could be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL is not installed: no initdb in /usr/lib/postgresql/*/bin or from pg_config \
         (install it with `make setup-test` or `apt-get install postgresql-15`)"
    )]
    NotInstalled,
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("initdb failed: {0}")]
    Initdb(String),
    #[error("the PostgreSQL server did not start: {0}")]
    Start(String),
    #[error("creating a test database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("opening the store failed: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The shared cluster failed to start earlier in this process.
    #[error("{0}")]
    Shared(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ClusterError {
    move |source| ClusterError::Io { what, source }
}

/// A running server. Dropping it stops the server and deletes its folder.
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    /// The shell's stdin: closing it stops the server.
    stop: Option<ChildStdin>,
    shell: Child,
    databases: AtomicU64,
}

/// The folder with `initdb` and `postgres`: Debian's newest `/usr/lib/postgresql/N/bin`, else
/// what `pg_config --bindir` says.
pub fn bindir() -> Result<PathBuf, ClusterError> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    if let Some(out) = out.ok().filter(|o| o.status.success()) {
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if bin.join("initdb").is_file() && bin.join("postgres").is_file() {
            return Ok(bin);
        }
    }
    Err(ClusterError::NotInstalled)
}

/// The user to run PostgreSQL as when this process is root: `nobody` (from /etc/passwd).
fn unprivileged() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.first() == Some(&"nobody") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    });
    Some(ids.unwrap_or((65534, 65534)))
}

fn is_root() -> bool {
    // The owner of this process's own /proc entry is its effective user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// A port nothing listens on right now.
fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

/// Starts the server, then stops it and deletes its folder once stdin closes (see the module
/// docs). `$1` bindir, `$2` folder, `$3` port. The reader runs beside the server so that the
/// shell also ends when the server does.
const SUPERVISOR: &str = r#"
exec 3<&0
"$1/postgres" -D "$2/pg" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=200 >"$2/log" 2>&1 &
pg=$!
( cat <&3 >/dev/null; kill -INT "$pg" 2>/dev/null ) &
wait "$pg"
rm -rf "$2"
"#;

impl Cluster {
    /// Initialises and starts a new cluster and waits until it accepts connections.
    pub fn start() -> Result<Cluster, ClusterError> {
        let bin = bindir()?;
        let user = unprivileged();
        let dir = tempfile::Builder::new()
            .prefix("waifu-pg.")
            .tempdir()
            .map_err(io("making the cluster folder"))?
            .keep();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(io("handing the cluster folder to nobody"))?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("closing the cluster folder"))?;
        let init = as_user(&mut Command::new(bin.join("initdb")), user)
            .args([
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth=trust",
            ])
            .args(["-U", "postgres", "-D"])
            .arg(dir.join("pg"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(io("running initdb"))?;
        if !init.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ClusterError::Initdb(
                String::from_utf8_lossy(&init.stderr).trim().to_string(),
            ));
        }
        // A port found free may be taken before the server binds it: try a few.
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let shell = as_user(&mut Command::new("sh"), user)
                .args(["-c", SUPERVISOR, "waifu-pg"])
                .arg(&bin)
                .arg(&dir)
                .arg(port.to_string())
                .current_dir(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(io("starting postgres"))?;
            let mut cluster = Cluster {
                port,
                dir: dir.clone(),
                stop: None,
                shell,
                databases: AtomicU64::new(0),
            };
            cluster.stop = cluster.shell.stdin.take();
            match cluster.wait_ready(&bin) {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(ClusterError::Start(last))
    }

    /// Polls `pg_isready` until the server accepts connections (a fresh cluster takes well under
    /// a second; a loaded machine may take longer).
    fn wait_ready(&mut self, bin: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.shell.try_wait() {
                return Err(format!("the server exited ({status}): {}", self.log()));
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 60 s: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of the server's log, for error messages.
    fn log(&self) -> String {
        let mut log = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("log")) {
            let _ = f.read_to_string(&mut log);
        }
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database of its own and returns its URL.
    pub async fn create_database(&self) -> Result<String, ClusterError> {
        let name = format!("t_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut admin = PgConnection::connect(&self.url("postgres")).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(self.url(&name))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing the pipe makes the shell stop the server and delete the folder.
        self.stop.take();
        let _ = self.shell.wait();
    }
}

/// The cluster this process shares, started on first use. It ends with the process.
pub fn shared() -> Result<&'static Cluster, &'static ClusterError> {
    static SHARED: OnceLock<Result<Cluster, ClusterError>> = OnceLock::new();
    SHARED.get_or_init(Cluster::start).as_ref()
}

/// A fresh database on the shared cluster, opened as the store (migrated). Tests call this.
pub async fn fresh_pool() -> Result<PgPool, ClusterError> {
    let cluster = shared().map_err(|e| ClusterError::Shared(e.to_string()))?;
    let url = cluster.create_database().await?;
    Ok(crate::store::postgres::open(&url).await?)
}
