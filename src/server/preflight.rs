//! Start-up checks: the data folder tree, the config file and the database. Every failure says
//! what is wrong and how to fix it.

use super::state::DataPaths;
use crate::{config::ConfigStore, store};
use anyhow::anyhow;
use sqlx::SqlitePool;
use std::{fs, io, path::Path};

/// Everything preflight prepared.
pub struct Ready {
    pub paths: DataPaths,
    pub config: ConfigStore,
    pub db: SqlitePool,
    pub warnings: Vec<String>,
}

pub async fn run(data_dir: &Path) -> anyhow::Result<Ready> {
    let paths = DataPaths::new(data_dir.to_path_buf());
    for dir in paths.dirs() {
        fs::create_dir_all(&dir).map_err(|e| io_problem("create the folder", &dir, &e))?;
    }
    probe_writable(&paths.root)?;
    // The built-in avatar, so the viewer works with no setup.
    crate::avatars::ensure_default(&paths.avatars).map_err(|e| match e {
        crate::avatars::AvatarError::Io { source, .. } => {
            io_problem("write the default avatar into", &paths.avatars, &source)
        }
        other => anyhow!("could not install the default avatar: {other}"),
    })?;

    let config_file = paths.config_file.clone();
    let (config, report) = ConfigStore::load(config_file.clone()).map_err(|e| match e {
        crate::config::ConfigError::Write { path, source } => {
            io_problem("write the settings file", &path, &source)
        }
        other => anyhow!(
            "could not load the settings from {}: {other}",
            config_file.display()
        ),
    })?;

    let db = store::open(&paths.db_file).await.map_err(|e| {
        anyhow!(
            "could not open the database {}: {e}. If the disk is full, free some space; if the file is damaged, move it aside (the app will start with an empty history)",
            paths.db_file.display()
        )
    })?;

    Ok(Ready {
        paths,
        config,
        db,
        warnings: report.warnings,
    })
}

/// Creating a folder that already exists succeeds even when it is read-only, so try a real write.
fn probe_writable(root: &Path) -> anyhow::Result<()> {
    let probe = root.join(".write-test");
    fs::write(&probe, b"ok").map_err(|e| io_problem("write into", root, &e))?;
    let _ = fs::remove_file(&probe);
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
