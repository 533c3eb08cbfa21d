//! [ssr] Where things live: the data folder's layout, and where the files `make setup` installs
//! (the built-in model, Piper) are found.
//!
//! Those files are looked up in the data folder first, then in the install folder
//! (`--install-dir`, `WAIFU_INSTALL_DIR`; `make run` passes the checkout's `data/`). So a second
//! instance on a data folder of its own (`make run ARGS="--data-dir /tmp/w"`) uses what
//! `make setup` put into the checkout, while a data folder can still carry its own copy.

use crate::shared::health::{InstallSource, InstalledFile};
use std::path::{Path, PathBuf};

/// The built-in model inside a data folder (`make setup`'s `LLM_FILE`).
pub fn model_file() -> PathBuf {
    Path::new("models").join(crate::llm::embedded::MODEL_FILE)
}

/// Piper's program inside a data folder: `make setup` installs it into a virtualenv in
/// `tools/piper/venv` (the Makefile's `PIPER_VENV`), where the voice module looks for it inside
/// the tools folder it is given.
pub const PIPER_PROGRAM: &str = "tools/piper/venv/bin/piper";

/// faster-whisper's Python inside a data folder: `make setup` makes the virtualenv in
/// `tools/whisper/venv` (the Makefile's `WHISPER_VENV`).
pub const WHISPER_PYTHON: &str = "tools/whisper/venv/bin/python3";

/// The Whisper model inside a data folder (the Makefile's `ASR_MODEL_DIR`); its folder is the model.
pub const WHISPER_MODEL: &str = "models/whisper-tiny.en/model.bin";

/// Where everything lives inside the data folder.
#[derive(Debug, Clone)]
pub struct DataPaths {
    pub root: PathBuf,
    pub config_file: PathBuf,
    pub db_file: PathBuf,
    pub avatars: PathBuf,
    pub audio: PathBuf,
    pub models: PathBuf,
    /// Programs `make setup` installs for the app (Piper's virtualenv).
    pub tools: PathBuf,
    /// Where `make setup` installed the model and the voices, when that is not `root`.
    pub install: Option<PathBuf>,
}

/// A file `make setup` installs, as the lookup found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file used; where it belongs in the data folder when neither folder has it.
    pub path: PathBuf,
    pub source: InstallSource,
}

impl Located {
    /// The folder that plays the data folder's part for this file: `relative` is inside it.
    fn base(&self, relative: &Path) -> Option<PathBuf> {
        let mut base = self.path.clone();
        for _ in relative.components() {
            base = base.parent()?.to_path_buf();
        }
        Some(base)
    }

    /// For the health report.
    pub fn report(&self) -> InstalledFile {
        InstalledFile {
            path: self.path.display().to_string(),
            source: self.source,
        }
    }
}

impl DataPaths {
    pub fn new(root: PathBuf) -> Self {
        Self {
            config_file: root.join("config").join("app.json"),
            db_file: root.join("db").join("app.db"),
            avatars: root.join("avatars"),
            audio: root.join("audio"),
            models: root.join("models"),
            tools: root.join("tools"),
            install: None,
            root,
        }
    }

    /// The same paths, with `dir` as the install folder to fall back on.
    pub fn with_install_dir(mut self, dir: &Path) -> Self {
        self.install = Some(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        self
    }

    /// The folders preflight creates.
    pub fn dirs(&self) -> [PathBuf; 5] {
        [
            self.root.join("config"),
            self.root.join("db"),
            self.avatars.clone(),
            self.audio.clone(),
            self.models.clone(),
        ]
    }

    /// `relative` (a path inside a data folder) in the data folder, else in the install folder;
    /// when neither has it, the data folder's path, so that messages name where it belongs.
    pub fn installed(&self, relative: &Path) -> Located {
        let own = self.root.join(relative);
        if own.is_file() {
            return Located {
                path: own,
                source: InstallSource::DataFolder,
            };
        }
        if let Some(shared) = self.install.as_ref().map(|dir| dir.join(relative)) {
            if shared.is_file() {
                return Located {
                    path: shared,
                    source: InstallSource::InstallFolder,
                };
            }
        }
        Located {
            path: own,
            source: InstallSource::Missing,
        }
    }

    /// The built-in model file to load.
    pub fn model(&self) -> Located {
        self.installed(&model_file())
    }

    /// The built-in model file `file` (a plain `.gguf` name, `llm.local_model`), looked up like
    /// the shipped one; a name that is not plain falls back to the shipped file.
    pub fn local_model(&self, file: &str) -> Located {
        if crate::shared::models::is_model_file_name(file) {
            self.installed(&Path::new("models").join(file))
        } else {
            self.model()
        }
    }

    /// The folders whose `.gguf` files Setup offers: the data folder's, then the install folder's.
    pub fn model_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.models.clone()];
        dirs.extend(self.install.as_ref().map(|dir| dir.join("models")));
        dirs
    }

    /// The Piper program `make setup` installed.
    pub fn piper(&self) -> Located {
        self.installed(Path::new(PIPER_PROGRAM))
    }

    /// faster-whisper's Python that `make setup` installed.
    pub fn whisper(&self) -> Located {
        self.installed(Path::new(WHISPER_PYTHON))
    }

    /// The Whisper model's `model.bin` that `make setup` installed.
    pub fn whisper_model(&self) -> Located {
        self.installed(Path::new(WHISPER_MODEL))
    }

    /// The tools folder the voices use: the one that holds the Piper found, else the data
    /// folder's own.
    pub fn voice_tools(&self) -> PathBuf {
        let piper = self.piper();
        match piper.source {
            InstallSource::InstallFolder => piper
                .base(Path::new(PIPER_PROGRAM))
                .map(|base| base.join("tools"))
                .unwrap_or_else(|| self.tools.clone()),
            InstallSource::DataFolder | InstallSource::Missing => self.tools.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn the_data_folder_comes_first_then_the_install_folder() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("w");
        let install = dir.path().join("checkout").join("data");
        let paths = DataPaths::new(data.clone()).with_install_dir(&install);

        // Neither has them: the data folder's paths, said to be missing.
        assert_eq!(paths.model().source, InstallSource::Missing);
        assert_eq!(paths.model().path, data.join(model_file()));
        assert_eq!(paths.piper().source, InstallSource::Missing);
        assert_eq!(paths.voice_tools(), data.join("tools"));

        // Only the install folder has them (a second instance on its own data folder).
        put(&install.join(model_file()));
        put(&install.join(PIPER_PROGRAM));
        assert_eq!(
            paths.model(),
            Located {
                path: install.join(model_file()),
                source: InstallSource::InstallFolder
            }
        );
        assert_eq!(paths.piper().source, InstallSource::InstallFolder);
        assert_eq!(paths.voice_tools(), install.join("tools"));

        // The data folder's own copy wins.
        put(&data.join(model_file()));
        put(&data.join(PIPER_PROGRAM));
        assert_eq!(
            paths.model(),
            Located {
                path: data.join(model_file()),
                source: InstallSource::DataFolder
            }
        );
        assert_eq!(paths.piper().source, InstallSource::DataFolder);
        assert_eq!(paths.voice_tools(), data.join("tools"));
    }

    #[test]
    fn without_an_install_folder_only_the_data_folder_counts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths::new(dir.path().join("data"));
        assert_eq!(paths.model().source, InstallSource::Missing);
        put(&dir.path().join("data").join(model_file()));
        assert_eq!(paths.model().source, InstallSource::DataFolder);
    }
}
