//! The state every handler and server function shares.

use super::{preflight::Ready, security::Security};
use crate::{config::ConfigStore, llm::LlmRegistry, shared::AppError, tts::TtsService};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::SqlitePool;
use std::{path::PathBuf, sync::Arc};

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
        Ok(Self {
            security: Arc::new(Security::loopback(leptos_options.site_addr.port())),
            metrics: crate::metrics::handle(),
            leptos_options,
            config,
            db: ready.db,
            llm: Arc::new(LlmRegistry::new(&ready.paths.models)),
            tts: Arc::new(tts),
            paths: Arc::new(ready.paths),
            warnings: Arc::new(ready.warnings),
        })
    }

    /// The same state with other request rules (the command line's, or a test's).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = Arc::new(security);
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
