//! The state every handler and server function shares.

use super::{limits::Gates, preflight::Ready, security::Security, site::Site};
use crate::{config::ConfigStore, llm::LlmRegistry, shared::AppError, tts::TtsService};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::SqlitePool;
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

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
            root,
        }
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
}

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<ConfigStore>,
    pub db: SqlitePool,
    pub paths: Arc<DataPaths>,
    /// Problems found at start-up that a person should see (shown in the health report).
    pub warnings: Arc<Vec<String>>,
    /// The language models: the built-in one (loaded once) and the configured server's adapter.
    pub llm: Arc<LlmRegistry>,
    /// Speech: the provider chain and the audio cache.
    pub tts: Arc<TtsService>,
    /// Who may send requests: host names, other origins, the access token.
    pub security: Arc<Security>,
    /// Cancelled when the server begins to shut down: chat turns in progress store what they
    /// have and end their streams, so that the server can stop.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The built front end, read once at start-up (the viewer bundle's hashed address).
    pub site: Arc<Site>,
    /// Chat turns and uploads under way, against `limits.*`.
    pub gates: Gates,
    /// Renders `GET /metrics` from the process-wide recorder (shared by every state).
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// The state of a server whose data folder passed preflight.
    pub fn new(leptos_options: LeptosOptions, ready: Ready) -> anyhow::Result<Self> {
        use anyhow::Context;
        let config = Arc::new(ready.config);
        let tts = TtsService::new(
            config.clone(),
            ready.paths.audio.clone(),
            ready.paths.tools.clone(),
        )
        .context("the HTTP client for the voice providers could not be set up")?;
        let llm = Arc::new(LlmRegistry::new(&ready.paths.models, {
            let config = config.clone();
            move || crate::limits::places(config.get().limits.model_queue)
        }));
        Ok(Self {
            security: Arc::new(Security::loopback(leptos_options.site_addr.port())),
            site: Arc::new(Site::open(Path::new(leptos_options.site_root.as_ref()))),
            metrics: crate::metrics::handle(),
            leptos_options,
            config,
            db: ready.db,
            llm,
            tts: Arc::new(tts),
            paths: Arc::new(ready.paths),
            warnings: Arc::new(ready.warnings),
            shutdown: tokio_util::sync::CancellationToken::new(),
            gates: Gates::default(),
        })
    }

    /// The same state with other request rules (the command line's, or a test's).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = Arc::new(security);
        self
    }

    /// The same state serving the front end built into another folder (a test's).
    pub fn with_site_root(mut self, root: &Path) -> Self {
        self.leptos_options.site_root = root.to_string_lossy().as_ref().into();
        self.site = Arc::new(Site::open(root));
        self
    }

    /// The state, from inside a server function.
    pub fn from_context() -> Result<Self, AppError> {
        leptos::prelude::use_context::<AppState>().ok_or_else(|| {
            tracing::error!("server function called without AppState in context");
            AppError::new(
                "internal",
                "The server is not set up correctly; restart it.",
            )
        })
    }
}
