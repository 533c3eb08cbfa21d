//! The config file: loaded once at start, replaced atomically on every save, with its API keys
//! sealed under `secret.key` beside it (see `sealed`).

use super::{
    apply, cleared_key_notice, from_document, migrate_flat_asr, migrate_flat_tts,
    sealed::{self, KeyRing, Opened},
    strip_read_only, Changer, ConfigError, KeySlot,
};
use crate::shared::config::AppConfig;
use parking_lot::RwLock;
use serde_json::Value;
use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

/// What happened while loading, for the log and the health report.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub warnings: Vec<String>,
}

/// A saved change: the config now in effect, and the keys the change dropped because their
/// endpoint moved to another origin.
#[derive(Debug)]
pub struct Saved {
    pub config: Arc<AppConfig>,
    pub cleared_keys: Vec<KeySlot>,
}

impl Saved {
    /// The dotted paths of the dropped keys.
    pub fn cleared_paths(&self) -> Vec<String> {
        self.cleared_keys.iter().map(|s| s.path()).collect()
    }

    /// One sentence per dropped key, for the person who made the change.
    pub fn notices(&self) -> Vec<String> {
        self.cleared_keys
            .iter()
            .map(|slot| cleared_key_notice(*slot, &self.config))
            .collect()
    }
}

/// The live config and the file behind it. Readers get a cheap snapshot; writers are serialised
/// so that two concurrent PUTs cannot lose each other's changes.
pub struct ConfigStore {
    path: PathBuf,
    ring: Arc<KeyRing>,
    current: RwLock<Arc<AppConfig>>,
    writer: tokio::sync::Mutex<()>,
    /// Set when the settings live in a database shared by several instances (see `shared`).
    pub(super) shared: std::sync::OnceLock<super::shared::Shared>,
}

impl ConfigStore {
    /// Reads `path`, or writes the defaults there if there is no file. A file that is not valid
    /// JSON or not a valid config is kept as `.bak` and the app starts on defaults, with a warning.
    /// Keys found in plain text are sealed; sealed keys that cannot be opened (no or another
    /// `secret.key`) or that were saved for another origin count as unset, with a warning, and the
    /// file as it was is kept as `.bak`.
    pub fn load(path: PathBuf) -> Result<(Self, LoadReport), ConfigError> {
        let key = path.with_file_name("secret.key");
        Self::load_with_key(path, key)
    }

    /// [`ConfigStore::load`] with the keys sealed under `key_file` instead of the `secret.key`
    /// beside the settings: instances that share their settings must share this file too.
    pub fn load_with_key(
        path: PathBuf,
        key_file: PathBuf,
    ) -> Result<(Self, LoadReport), ConfigError> {
        let mut report = LoadReport::default();
        let (ring, ring_warning) = KeyRing::open(key_file);
        report.warnings.extend(ring_warning);
        let cfg = match fs::read_to_string(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let cfg = AppConfig::default();
                write_atomic(&path, &cfg, &ring)?;
                cfg
            }
            Err(source) => return Err(ConfigError::Write { path, source }),
            Ok(text) => match parse(&text, &ring) {
                Ok(parsed) => {
                    let Parsed {
                        cfg,
                        migrated,
                        plain_keys,
                        opened,
                    } = parsed;
                    let bak = if migrated || !opened.all_opened() {
                        Some(backup(&path)?)
                    } else {
                        None
                    };
                    if migrated || plain_keys || !opened.all_opened() {
                        write_atomic(&path, &cfg, &ring)?;
                    }
                    if let (true, Some(bak)) = (migrated, &bak) {
                        report.warnings.push(format!(
                            "The settings file was in the earlier flat form; it was migrated and the original kept as {}.",
                            bak.display()
                        ));
                    }
                    if plain_keys {
                        tracing::info!("API keys found in plain text in the settings file are now stored encrypted");
                    }
                    report
                        .warnings
                        .extend(opened.warnings(&cfg, &ring, bak.as_deref()));
                    cfg
                }
                Err(why) => {
                    let bak = backup(&path)?;
                    let cfg = AppConfig::default();
                    write_atomic(&path, &cfg, &ring)?;
                    report.warnings.push(format!(
                        "The settings file could not be used ({why}). It was kept as {} and the app started on default settings; fix or copy values from the backup in the Setup tab.",
                        bak.display()
                    ));
                    cfg
                }
            },
        };
        let store = Self {
            path,
            ring: Arc::new(ring),
            current: RwLock::new(Arc::new(cfg)),
            writer: tokio::sync::Mutex::new(()),
            shared: std::sync::OnceLock::new(),
        };
        Ok((store, report))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config in effect now.
    pub fn get(&self) -> Arc<AppConfig> {
        self.current.read().clone()
    }

    /// Merges `patch` into the config, validates the result and saves it atomically. On any error
    /// the previous config stays in effect and on disk. For the server's own changes; what comes
    /// over HTTP goes through [`ConfigStore::update_from_client`].
    pub async fn update(&self, patch: Value) -> Result<Arc<AppConfig>, ConfigError> {
        Ok(self.save(patch, Changer::Server).await?.config)
    }

    /// [`ConfigStore::update`] for a change sent over HTTP: programs and model files cannot be
    /// changed, and the answer says which keys were dropped because their endpoint moved.
    pub async fn update_from_client(&self, patch: Value) -> Result<Saved, ConfigError> {
        self.save(patch, Changer::Client).await
    }

    async fn save(&self, patch: Value, who: Changer) -> Result<Saved, ConfigError> {
        let _writer = self.writer.lock().await;
        if let Some(shared) = self.shared.get() {
            return shared.save(self, patch, who).await;
        }
        let applied = apply(&self.get(), patch, who)?;
        let path = self.path.clone();
        let ring = self.ring.clone();
        let to_write = applied.config.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &to_write, &ring))
            .await
            .map_err(|e| ConfigError::Write {
                path: self.path.clone(),
                source: io::Error::other(e),
            })??;
        Ok(Saved {
            config: self.set_current(applied.config),
            cleared_keys: applied.cleared_keys,
        })
    }

    /// Puts `cfg` in effect (a change another instance saved).
    pub(super) fn set_current(&self, cfg: AppConfig) -> Arc<AppConfig> {
        let next = Arc::new(cfg);
        *self.current.write() = next.clone();
        next
    }

    pub(super) fn ring(&self) -> &KeyRing {
        &self.ring
    }

    pub(super) async fn writer(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }
}

/// A config file, read.
pub(super) struct Parsed {
    pub(super) cfg: AppConfig,
    /// It was in the earlier flat form.
    pub(super) migrated: bool,
    /// It held keys in plain text.
    pub(super) plain_keys: bool,
    pub(super) opened: Opened,
}

/// Parses a config file, migrating the flat form and opening its sealed keys.
pub(super) fn parse(text: &str, ring: &KeyRing) -> Result<Parsed, String> {
    let mut doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    if !doc.is_object() {
        return Err("not a JSON object".into());
    }
    let migrated =
        migrate_flat_tts(&mut doc, AppConfig::default().tts.provider) | migrate_flat_asr(&mut doc);
    let sealed = sealed::take_sealed(&mut doc);
    let plain_keys = sealed::has_plain_keys(&doc);
    match from_document(&doc) {
        Ok(mut cfg) => {
            let opened = sealed::open_into(&mut cfg, sealed, ring);
            Ok(Parsed {
                cfg,
                migrated,
                plain_keys,
                opened,
            })
        }
        Err(ConfigError::Invalid(fields)) => Err(fields
            .iter()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect::<Vec<_>>()
            .join("; ")),
        Err(other) => Err(other.to_string()),
    }
}

/// Copies `path` to a backup name that does not exist yet (`app.json.bak`, `app.json.bak.1`, ...),
/// readable by its owner only: it may hold keys.
fn backup(path: &Path) -> Result<PathBuf, ConfigError> {
    let candidate = crate::private_file::unused_backup_name(path);
    let err = |source| ConfigError::Write {
        path: candidate.clone(),
        source,
    };
    let bytes = fs::read(path).map_err(err)?;
    if !crate::private_file::create_new(&candidate, &bytes).map_err(err)? {
        return Err(err(io::ErrorKind::AlreadyExists.into()));
    }
    Ok(candidate)
}

/// Writes the config to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path`: a crash or a full disk leaves either the old file or the new one, never half of one.
/// Keys are sealed first; the file is readable by its owner only all the same.
pub(crate) fn write_atomic(
    path: &Path,
    cfg: &AppConfig,
    ring: &KeyRing,
) -> Result<(), ConfigError> {
    let text = document(cfg, ring, path)?;
    crate::private_file::replace(path, text.as_bytes()).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The settings as stored: pretty JSON without the read-only fields, with keys sealed. A failure
/// names `destination`, where the document was going.
pub(super) fn document(
    cfg: &AppConfig,
    ring: &KeyRing,
    destination: &Path,
) -> Result<String, ConfigError> {
    let err = |e| ConfigError::Write {
        path: destination.to_path_buf(),
        source: io::Error::other(e),
    };
    let mut doc = serde_json::to_value(cfg).map_err(err)?;
    strip_read_only(&mut doc);
    sealed::seal_keys(&mut doc, cfg, ring).map_err(|source| ConfigError::Write {
        path: ring.path().to_path_buf(),
        source,
    })?;
    let mut text = serde_json::to_string_pretty(&doc).map_err(err)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::config::Secret;
    use serde_json::json;

    #[test]
    fn missing_file_gets_defaults_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        let (store, report) = ConfigStore::load(path.clone()).unwrap();
        assert!(report.warnings.is_empty());
        assert_eq!(*store.get(), AppConfig::default());
        let on_disk: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(on_disk["llm"]["provider"], "embedded");
        assert!(on_disk["llm"].get("api_key_set").is_none());
    }

    #[test]
    fn corrupt_file_is_kept_as_bak_and_defaults_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        fs::write(&path, "{ this is not json").unwrap();
        let (store, report) = ConfigStore::load(path.clone()).unwrap();
        assert_eq!(*store.get(), AppConfig::default());
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert_eq!(
            fs::read_to_string(dir.path().join("app.json.bak")).unwrap(),
            "{ this is not json"
        );
        // A second corrupt file does not overwrite the first backup.
        fs::write(&path, "[]").unwrap();
        ConfigStore::load(path.clone()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("app.json.bak.1")).unwrap(),
            "[]"
        );
    }

    #[test]
    fn invalid_values_are_kept_as_bak_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        fs::write(&path, r#"{"llm": {"provider": "skynet"}}"#).unwrap();
        let (store, report) = ConfigStore::load(path.clone()).unwrap();
        assert_eq!(*store.get(), AppConfig::default());
        assert!(
            report.warnings[0].contains("llm.provider"),
            "{:?}",
            report.warnings
        );
        assert!(dir.path().join("app.json.bak").exists());
    }

    #[test]
    fn flat_seed_file_is_migrated_and_the_original_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        fs::write(
            &path,
            r#"{"tts": {"provider": "elevenlabs", "voice_id": "abc", "api_key": "xi-secret"}}"#,
        )
        .unwrap();
        let (store, report) = ConfigStore::load(path.clone()).unwrap();
        assert_eq!(store.get().tts.providers.elevenlabs.voice_id, "abc");
        assert_eq!(
            store.get().tts.providers.elevenlabs.api_key.expose(),
            "xi-secret"
        );
        assert_eq!(report.warnings.len(), 1);
        let on_disk: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(on_disk["tts"]["providers"]["elevenlabs"]["voice_id"], "abc");
        assert!(on_disk["tts"].get("voice_id").is_none());
    }

    #[tokio::test]
    async fn update_saves_atomically_and_keeps_old_config_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        let (store, _) = ConfigStore::load(path.clone()).unwrap();
        store
            .update(json!({"llm": {"api_key": "sk-1", "model": "a"}}))
            .await
            .unwrap();
        assert_eq!(store.get().llm.model, "a");
        assert!(store
            .update(json!({"memory": {"max_history": -1}}))
            .await
            .is_err());
        assert_eq!(store.get().llm.model, "a");
        let (reloaded, _) = ConfigStore::load(path.clone()).unwrap();
        assert_eq!(reloaded.get().llm.api_key, Secret::new("sk-1"));
        let temporary = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                crate::private_file::is_temp_name(
                    &e.as_ref().unwrap().file_name().to_string_lossy(),
                )
            })
            .count();
        assert_eq!(temporary, 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn plain_keys_in_an_older_file_are_sealed_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        fs::write(
            &path,
            r#"{"llm": {"provider": "openai", "endpoint": "https://api.openai.com/v1", "api_key": "sk-plain-old"},
                "tts": {"providers": {"fish_audio": {"api_key": "fish-plain-old"}}}}"#,
        )
        .unwrap();
        let (store, report) = ConfigStore::load(path.clone()).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(store.get().llm.api_key.expose(), "sk-plain-old");
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("sk-plain-old") && !text.contains("fish-plain-old"),
            "{text}"
        );
        let on_disk: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            on_disk["llm"]["api_key"]["origin"],
            "https://api.openai.com:443"
        );
        assert!(on_disk["llm"]["api_key"]["sealed"].is_string());
        // Sealing is not a migration: no copy of the plain text is left behind.
        assert!(!dir.path().join("app.json.bak").exists());
        let key_file = dir.path().join("secret.key");
        assert_eq!(fs::read(&key_file).unwrap().len(), 32);
        #[cfg(unix)]
        assert_eq!(mode(&key_file), 0o600);
        let (again, report) = ConfigStore::load(path).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(*again.get(), *store.get());
        assert_eq!(
            again.get().tts.providers.fish_audio.api_key.expose(),
            "fish-plain-old"
        );
    }

    #[cfg(unix)]
    #[test]
    fn backups_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        fs::write(
            &path,
            r#"{"tts": {"provider": "elevenlabs", "api_key": "xi-old"}}"#,
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        ConfigStore::load(path.clone()).unwrap();
        assert_eq!(mode(&dir.path().join("app.json.bak")), 0o600);
        fs::write(&path, "{ broken").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        ConfigStore::load(path.clone()).unwrap();
        assert_eq!(mode(&dir.path().join("app.json.bak.1")), 0o600);
        assert_eq!(mode(&path), 0o600);
    }

    /// A store with an LLM key and a Fish key saved, and the file's text.
    async fn saved_with_keys(dir: &Path) -> String {
        let path = dir.join("app.json");
        let (store, _) = ConfigStore::load(path.clone()).unwrap();
        store
            .update(json!({"llm": {"provider": "openai", "endpoint": "https://api.openai.com/v1", "api_key": "sk-sealed-1"},
                "tts": {"providers": {"fish_audio": {"api_key": "fish-sealed-1"}}}}))
            .await
            .unwrap();
        fs::read_to_string(path).unwrap()
    }

    #[tokio::test]
    async fn without_the_key_file_sealed_keys_are_unset_and_the_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let before = saved_with_keys(dir.path()).await;
        fs::remove_file(dir.path().join("secret.key")).unwrap();
        let (store, report) = ConfigStore::load(dir.path().join("app.json")).unwrap();
        assert!(store.get().llm.api_key.is_empty());
        assert!(store.get().tts.providers.fish_audio.api_key.is_empty());
        // The rest of the settings are in effect.
        assert_eq!(store.get().llm.endpoint, "https://api.openai.com/v1");
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        let warning = &report.warnings[0];
        assert!(warning.contains("could not be decrypted"), "{warning}");
        assert!(warning.contains("missing"), "{warning}");
        assert!(warning.contains("app.json.bak"), "{warning}");
        assert_eq!(
            fs::read_to_string(dir.path().join("app.json.bak")).unwrap(),
            before
        );
        // No key file is made until a key is saved.
        assert!(!dir.path().join("secret.key").exists());
    }

    #[tokio::test]
    async fn with_another_key_file_sealed_keys_are_unset_and_the_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let before = saved_with_keys(dir.path()).await;
        fs::write(dir.path().join("secret.key"), [42u8; 32]).unwrap();
        let (store, report) = ConfigStore::load(dir.path().join("app.json")).unwrap();
        assert!(store.get().llm.api_key.is_empty());
        assert!(
            report.warnings[0].contains("not the key file"),
            "{:?}",
            report.warnings
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("app.json.bak")).unwrap(),
            before
        );
        // The other key file is left as it was.
        assert_eq!(fs::read(dir.path().join("secret.key")).unwrap(), [42u8; 32]);
    }

    #[tokio::test]
    async fn a_key_whose_endpoint_was_edited_by_hand_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let text = saved_with_keys(dir.path()).await;
        let path = dir.path().join("app.json");
        let edited = text.replace("https://api.openai.com/v1", "https://collector.example/v1");
        assert_ne!(edited, text);
        fs::write(&path, edited).unwrap();
        let (store, report) = ConfigStore::load(path).unwrap();
        assert!(store.get().llm.api_key.is_empty());
        assert_eq!(store.get().llm.endpoint, "https://collector.example/v1");
        // The Fish key's endpoint did not move: it stays.
        assert_eq!(
            store.get().tts.providers.fish_audio.api_key.expose(),
            "fish-sealed-1"
        );
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(
            report.warnings[0].contains("https://api.openai.com:443")
                && report.warnings[0].contains("https://collector.example:443"),
            "{:?}",
            report.warnings
        );
        // Changing the origin stored beside the sealed key does not help: it is authenticated.
        let dir = tempfile::tempdir().unwrap();
        let text = saved_with_keys(dir.path()).await;
        let path = dir.path().join("app.json");
        let edited = text
            .replace("https://api.openai.com/v1", "https://collector.example/v1")
            .replace(
                "https://api.openai.com:443",
                "https://collector.example:443",
            );
        fs::write(&path, edited).unwrap();
        let (store, report) = ConfigStore::load(path).unwrap();
        assert!(store.get().llm.api_key.is_empty());
        assert!(report.warnings[0].contains("could not be decrypted"));
    }

    #[tokio::test]
    async fn a_client_cannot_change_program_paths_and_learns_of_dropped_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ConfigStore::load(dir.path().join("app.json")).unwrap();
        store
            .update(json!({"tts": {"providers": {"piper_local": {"binary": "/opt/piper/piper"}}},
                "llm": {"provider": "openai", "endpoint": "https://api.openai.com/v1", "api_key": "sk-1"}}))
            .await
            .unwrap();
        let err = store
            .update_from_client(
                json!({"tts": {"providers": {"piper_local": {"binary": "/tmp/evil"}}}}),
            )
            .await
            .unwrap_err();
        let ConfigError::Invalid(fields) = err else {
            panic!("{err:?}")
        };
        assert_eq!(fields[0].path, "tts.providers.piper_local.binary");
        assert_eq!(
            store.get().tts.providers.piper_local.binary,
            "/opt/piper/piper"
        );
        let saved = store
            .update_from_client(json!({"llm": {"endpoint": "http://127.0.0.1:9/v1"}}))
            .await
            .unwrap();
        assert_eq!(saved.cleared_paths(), ["llm.api_key"]);
        assert!(saved.notices()[0].contains("http://127.0.0.1:9"));
        assert!(store.get().llm.api_key.is_empty());
    }

    #[tokio::test]
    async fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ConfigStore::load(dir.path().join("app.json")).unwrap();
        let store = Arc::new(store);
        let a = {
            let s = store.clone();
            tokio::spawn(async move { s.update(json!({"llm": {"model": "m"}})).await })
        };
        let b = {
            let s = store.clone();
            tokio::spawn(async move { s.update(json!({"memory": {"max_history": 30}})).await })
        };
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(store.get().llm.model, "m");
        assert_eq!(store.get().memory.max_history, 30);
    }
}
