//! Start-up checks: the built front end, the data folder tree, the config file and the database.
//! Every failure says what is wrong and how to fix it. Temporary files a crash or `kill -9` left
//! behind go first.

use super::paths::DataPaths;
use crate::{
    config::ConfigStore,
    store::{self, DatabaseUrl},
};
use anyhow::anyhow;
use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

/// Everything preflight prepared.
pub struct Ready {
    pub paths: DataPaths,
    /// Where avatars and cached audio are kept.
    pub blobs: crate::blobs::Blobs,
    pub config: Arc<ConfigStore>,
    pub db: store::Db,
    pub warnings: Vec<String>,
}

/// Where the shared state lives, when not in the data folder (the command line's choices).
#[derive(Debug, Clone, Default)]
pub struct Backends {
    /// The database (`None`: the SQLite file in the data folder).
    pub database: Option<DatabaseUrl>,
    /// The key that seals API keys in the settings (`None`: `config/secret.key` in the data
    /// folder). Instances that share a database must share this key.
    pub secret_key_file: Option<PathBuf>,
    /// Where avatars and cached audio are kept (`None`: the data folder), as a `file://` or
    /// `s3://bucket/prefix` URL.
    pub storage: Option<String>,
}

/// Preflight with everything in the data folder.
pub async fn run(data_dir: &Path) -> anyhow::Result<Ready> {
    run_with(data_dir, &Backends::default()).await
}

/// Preflight with the database, key file and object store `backends` names.
pub async fn run_with(data_dir: &Path, backends: &Backends) -> anyhow::Result<Ready> {
    let paths = DataPaths::new(data_dir.to_path_buf());
    for dir in paths.dirs() {
        fs::create_dir_all(&dir).map_err(|e| io_problem("create the folder", &dir, &e))?;
    }
    probe_writable(&paths.root)?;
    let swept = sweep_temp_files(&paths) + crate::tts::remove_stale_output_dirs();
    if swept > 0 {
        tracing::info!(
            removed = swept,
            "removed {swept} temporary file(s) left behind by an earlier run"
        );
    }
    let location = match backends.storage.as_deref() {
        Some(url) => crate::blobs::Location::parse(url)?,
        None => crate::blobs::Location::Folder(paths.root.clone()),
    };
    let blobs = crate::blobs::Blobs::open(&location).await?;
    // The built-in avatar, so the viewer works with no setup.
    crate::avatars::ensure_default(&blobs)
        .await
        .map_err(|e| match e {
            crate::avatars::AvatarError::Store { source, .. }
                if crate::blobs::is_disk_full(&source) =>
            {
                io_problem(
                    "write the default avatar into",
                    &paths.avatars,
                    &io::Error::from(io::ErrorKind::StorageFull),
                )
            }
            other => anyhow!(
                "could not install the default avatar into {}: {other}",
                blobs.describe()
            ),
        })?;

    let config_file = paths.config_file.clone();
    let key_file = backends
        .secret_key_file
        .clone()
        .unwrap_or_else(|| config_file.with_file_name("secret.key"));
    let (config, mut report) =
        ConfigStore::load_with_key(config_file.clone(), key_file).map_err(|e| match e {
            crate::config::ConfigError::Write { path, source } => {
                io_problem("write the settings file", &path, &source)
            }
            other => anyhow!(
                "could not load the settings from {}: {other}",
                config_file.display()
            ),
        })?;

    let database = backends
        .database
        .clone()
        .unwrap_or_else(|| DatabaseUrl::Sqlite(paths.db_file.clone()));
    let db = store::connect(&database).await.map_err(|e| match &database {
        DatabaseUrl::Sqlite(file) => anyhow!(
            "could not open the database {}: {e}. If the disk is full, free some space; if the file is damaged, move it aside (the app will start with an empty history)",
            file.display()
        ),
        DatabaseUrl::Postgres(_) => anyhow!(
            "could not open the database {database}: {e}. Check that the server is up, the database exists and the user may create tables in it"
        ),
    })?;

    let config = Arc::new(config);
    let shared = config.share_through(db.clone()).await.map_err(|e| {
        anyhow!("could not read or write the shared settings in the database {database}: {e}")
    })?;
    report.warnings.extend(shared);

    Ok(Ready {
        paths,
        blobs,
        config,
        db,
        warnings: report.warnings,
    })
}

/// Removes the temporary files each writer leaves only when the process dies mid-write: avatar
/// uploads (`avatars/.upload-*.part`), the object store's writes in the data folder
/// (`avatars/<name>#<n>`, `audio/…#<n>`), earlier versions' audio cache (`audio/.tmp-*`, `audio/.meta/.tmp-*`),
/// the private files' (`config/*.tmp`: settings, key file, access token).
/// Each module says what its temp names look like. One server uses a data folder at a time, so
/// every such file here is from an earlier run. Returns how many went. (Piper's one-shot output
/// folders, in the shared system temp folder, are swept by `tts` with more care.)
pub fn sweep_temp_files(paths: &DataPaths) -> usize {
    type IsTemp = fn(&str) -> bool;
    let sweeps: [(PathBuf, IsTemp); 7] = [
        (paths.avatars.clone(), crate::avatars::is_temp_name),
        (paths.audio.clone(), crate::tts::is_cache_temp_name),
        (paths.audio.join(".meta"), crate::tts::is_cache_temp_name),
        (paths.avatars.clone(), crate::blobs::is_staging_name),
        (paths.audio.clone(), crate::blobs::is_staging_name),
        (paths.audio.join(".meta"), crate::blobs::is_staging_name),
        (paths.root.join("config"), crate::private_file::is_temp_name),
    ];
    let mut removed = 0;
    for (dir, is_temp) in sweeps {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && is_temp(&name.to_string_lossy()) && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Creating a folder that already exists succeeds even when it is read-only, so try a real write.
fn probe_writable(root: &Path) -> anyhow::Result<()> {
    let probe = root.join(".write-test");
    fs::write(&probe, b"ok").map_err(|e| io_problem("write into", root, &e))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// What is wrong with the built front end. Without it every page would fail (Leptos reads the
/// hashed file names on the first page and panics when they are missing), so the server does not
/// start and says which command builds it.
#[derive(Debug, thiserror::Error)]
pub enum FrontEndError {
    #[error(
        "the front end is not built: {} is missing. Build it with `make build` (or `make run`, which builds and starts the server) in the repository folder, or point --leptos-config at the settings of a built site",
        .pkg.display()
    )]
    NotBuilt { pkg: PathBuf },
    #[error(
        "the front end's file names are unknown: {} is missing (cargo-leptos writes it beside the server binary when it builds the site). Build both with `make build` (or `make run`)",
        .hash_file.display()
    )]
    NoHashFile { hash_file: PathBuf },
    #[error(
        "the front end in {} does not belong to this server binary: {} is not there{}. Rebuild both with `make build` (or `make run`)",
        .pkg.display(),
        .file,
        .hash_file.as_ref().map(|h| format!(" (named in {})", h.display())).unwrap_or_default()
    )]
    Mismatch {
        pkg: PathBuf,
        file: String,
        hash_file: Option<PathBuf>,
    },
    #[error("could not read {}: {source}", .path.display())]
    Unreadable { path: PathBuf, source: io::Error },
}

/// Checks that the site folder holds the front end this binary's pages name: its `pkg/` folder
/// with the script and the WebAssembly, under the hashed names in `hash.txt` when the site is
/// built with hashed names. Leptos reads that file beside the running binary, so this does too.
pub fn front_end(options: &leptos::config::LeptosOptions) -> Result<(), FrontEndError> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    front_end_beside(options, &exe_dir)
}

/// [`front_end`] for a binary in `exe_dir`.
pub fn front_end_beside(
    options: &leptos::config::LeptosOptions,
    exe_dir: &Path,
) -> Result<(), FrontEndError> {
    let pkg = Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    if !pkg.is_dir() {
        return Err(FrontEndError::NotBuilt { pkg });
    }
    let name = options.output_name.as_ref();
    let mismatch = |file: String, hash_file: Option<&Path>| FrontEndError::Mismatch {
        pkg: pkg.clone(),
        file,
        hash_file: hash_file.map(Path::to_path_buf),
    };
    if !options.hash_files {
        // Without hashes the WebAssembly is `<name>_bg.wasm` from a plain `cargo build`, and
        // `<name>.wasm` from cargo-leptos.
        let js = format!("{name}.js");
        if !pkg.join(&js).is_file() {
            return Err(mismatch(js, None));
        }
        let wasm = [format!("{name}.wasm"), format!("{name}_bg.wasm")];
        if !wasm.iter().any(|w| pkg.join(w).is_file()) {
            return Err(mismatch(wasm[0].clone(), None));
        }
        return Ok(());
    }
    let hash_file = exe_dir.join(options.hash_file.as_ref());
    let hashes = match fs::read_to_string(&hash_file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FrontEndError::NoHashFile { hash_file })
        }
        Err(source) => {
            return Err(FrontEndError::Unreadable {
                path: hash_file,
                source,
            })
        }
    };
    let hash_of = |kind: &str| {
        hashes.lines().find_map(|line| {
            let (k, v) = line.trim().split_once(':')?;
            (k.trim() == kind).then(|| v.trim().to_string())
        })
    };
    for ext in ["js", "wasm"] {
        let file = match hash_of(ext) {
            Some(hash) => format!("{name}.{hash}.{ext}"),
            None => format!("{name}.<hash>.{ext}"),
        };
        if !pkg.join(&file).is_file() {
            return Err(mismatch(file, Some(&hash_file)));
        }
    }
    Ok(())
}

fn io_problem(action: &str, path: &Path, e: &io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "this user may not write there: fix the folder's owner or permissions, or choose another folder with --data-dir"
        }
        io::ErrorKind::StorageFull => "the disk is full: free some space and start again",
        io::ErrorKind::ReadOnlyFilesystem => {
            "that disk is read-only: choose a writable folder with --data-dir"
        }
        io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => {
            "a file is in the way of a folder there: move it, or choose another folder with --data-dir"
        }
        _ => "check the path, or choose another folder with --data-dir",
    };
    anyhow!("cannot {action} {}: {e}; {hint}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(root: &Path, hash_files: bool) -> leptos::config::LeptosOptions {
        leptos::config::LeptosOptions::builder()
            .output_name("waifu-rt3d")
            .site_root(root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .hash_files(hash_files)
            .build()
    }

    #[test]
    fn a_missing_front_end_names_the_command_that_builds_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = front_end_beside(&site(&dir.path().join("site"), true), dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not built"), "{err}");
        assert!(err.contains("make build"), "{err}");
        assert!(err.contains("site/pkg"), "{err}");
    }

    #[test]
    fn hashed_names_must_be_known_and_present() {
        let dir = tempfile::tempdir().unwrap();
        let (root, bin) = (dir.path().join("site"), dir.path().join("release"));
        let pkg = root.join("pkg");
        fs::create_dir_all(&pkg).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let options = site(&root, true);
        // No hash.txt beside the binary: the names the pages need are unknown.
        let err = front_end_beside(&options, &bin).unwrap_err().to_string();
        assert!(err.contains("hash.txt"), "{err}");
        assert!(err.contains("make build"), "{err}");
        // hash.txt from another build than the files in pkg/.
        fs::write(bin.join("hash.txt"), "js: aaa\nwasm: bbb\ncss: ccc\n").unwrap();
        fs::write(pkg.join("waifu-rt3d.old.js"), b"").unwrap();
        fs::write(pkg.join("waifu-rt3d.old.wasm"), b"").unwrap();
        let err = front_end_beside(&options, &bin).unwrap_err().to_string();
        assert!(err.contains("waifu-rt3d.aaa.js"), "{err}");
        assert!(err.contains("does not belong"), "{err}");
        fs::write(pkg.join("waifu-rt3d.aaa.js"), b"").unwrap();
        let err = front_end_beside(&options, &bin).unwrap_err().to_string();
        assert!(err.contains("waifu-rt3d.bbb.wasm"), "{err}");
        fs::write(pkg.join("waifu-rt3d.bbb.wasm"), b"").unwrap();
        front_end_beside(&options, &bin).unwrap();
    }

    #[test]
    fn plain_names_are_checked_without_a_hash_file() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        fs::create_dir_all(&pkg).unwrap();
        let options = site(dir.path(), false);
        let err = front_end_beside(&options, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("waifu-rt3d.js"), "{err}");
        fs::write(pkg.join("waifu-rt3d.js"), b"").unwrap();
        assert!(front_end_beside(&options, dir.path()).is_err());
        fs::write(pkg.join("waifu-rt3d_bg.wasm"), b"").unwrap();
        front_end_beside(&options, dir.path()).unwrap();
    }

    #[tokio::test]
    async fn creates_the_tree_config_and_database() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fresh");
        let ready = run(&root).await.unwrap();
        for d in ready.paths.dirs() {
            assert!(d.is_dir(), "{}", d.display());
        }
        assert!(ready.paths.config_file.is_file());
        assert!(ready.paths.db_file.is_file());
        assert!(ready.paths.avatars.join("default.vrm").is_file());
        assert!(ready.warnings.is_empty());
    }

    #[tokio::test]
    async fn start_up_removes_temporary_files_a_crash_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let paths = run(&root).await.unwrap().paths;
        let left = [
            paths.avatars.join(".upload-41-0-123.part"),
            paths.audio.join(".tmp-abc.wav-41-0"),
            paths.audio.join(".meta").join(".tmp-abc.json-41-1"),
            paths.root.join("config").join("app.json.tmp"),
            paths.root.join("config").join("secret.key.tmp"),
            paths.root.join("config").join("auth-token.tmp"),
        ];
        let kept = [
            paths.avatars.join("mine.vrm"),
            paths.avatars.join(".hidden-by-hand.vrm"),
            paths.audio.join("abc.wav"),
            paths.audio.join(".meta").join("abc.json"),
        ];
        fs::create_dir_all(paths.audio.join(".meta")).unwrap();
        for f in left.iter().chain(&kept) {
            fs::write(f, b"x").unwrap();
        }
        assert_eq!(sweep_temp_files(&paths), left.len());
        // Through preflight itself too, as a restart would.
        for f in &left {
            fs::write(f, b"x").unwrap();
        }
        let ready = run(&root).await.unwrap();
        for f in &left {
            assert!(!f.exists(), "{} is left", f.display());
        }
        for f in &kept {
            assert!(f.exists(), "{} was removed", f.display());
        }
        assert!(ready.paths.config_file.is_file());
        assert!(ready.paths.avatars.join("default.vrm").is_file());
    }

    #[tokio::test]
    async fn a_file_in_the_way_gives_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blocked");
        fs::write(&root, b"not a folder").unwrap();
        let err = run(&root).await.err().unwrap().to_string();
        assert!(err.contains("cannot create the folder"), "{err}");
        assert!(err.contains("--data-dir"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_read_only_folder_gives_a_clear_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ro");
        run(&root).await.unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o500)).unwrap();
        // root ignores permissions; only check when they apply.
        if fs::write(root.join("x"), b"").is_err() {
            let err = run(&root).await.err().unwrap().to_string();
            assert!(err.contains("--data-dir"), "{err}");
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    }
}
