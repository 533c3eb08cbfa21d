//! The state every handler and server function shares.

use super::{limits::Gates, paths::DataPaths, preflight::Ready, security::Security, site::Site};
use crate::{
    asr::AsrService,
    config::ConfigStore,
    llm::LlmRegistry,
    shared::{health::InstalledHealth, AppError},
    tts::TtsService,
};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use metrics_exporter_prometheus::PrometheusHandle;
use std::{path::Path, sync::Arc};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<ConfigStore>,
    /// History, characters and traces: SQLite or PostgreSQL behind one interface.
    pub db: crate::store::Db,
    pub paths: Arc<DataPaths>,
    /// Avatars and cached audio: the data folder or a shared bucket (`STORAGE_URL`).
    pub blobs: crate::blobs::Blobs,
    /// Problems found at start-up that a person should see (shown in the health report).
    pub warnings: Arc<Vec<String>>,
    /// The language models: the built-in one (loaded once) and the configured server's adapter.
    pub llm: Arc<LlmRegistry>,
    /// Speech: the provider chain and the audio cache.
    pub tts: Arc<TtsService>,
    /// Speech recognition: the configured recogniser and the warm Whisper worker.
    pub asr: Arc<AsrService>,
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
    /// The built-in model and the Piper program in use, and where they were found.
    pub installed: Arc<InstalledHealth>,
}

impl AppState {
    /// The state of a server whose data folder passed preflight.
    pub fn new(leptos_options: LeptosOptions, ready: Ready) -> anyhow::Result<Self> {
        use anyhow::Context;
        let config = ready.config;
        // Looked up once: the data folder's own copies, else the install folder's.
        let model = ready.paths.local_model(&config.get().llm.local_model);
        let piper = ready.paths.piper();
        let tts = TtsService::new(
            config.clone(),
            ready.blobs.clone(),
            ready.paths.voice_tools(),
        )
        .context("the HTTP client for the voice providers could not be set up")?;
        let asr = AsrService::new(config.clone(), ready.paths.clone())
            .context("the HTTP client for speech recognition could not be set up")?;
        let (whisper, whisper_model) = (ready.paths.whisper(), ready.paths.whisper_model());
        let llm = Arc::new(
            LlmRegistry::new(model.path.clone(), {
                let config = config.clone();
                move || crate::limits::places(config.get().limits.model_queue)
            })
            .with_model_lookup({
                let paths = ready.paths.clone();
                move |file| paths.local_model(file).path
            }),
        );
        Ok(Self {
            security: Arc::new(Security::loopback(leptos_options.site_addr.port())),
            site: Arc::new(Site::open(Path::new(leptos_options.site_root.as_ref()))),
            metrics: crate::metrics::handle(),
            leptos_options,
            config,
            db: ready.db,
            blobs: ready.blobs,
            llm,
            tts: Arc::new(tts),
            asr: Arc::new(asr),
            paths: Arc::new(ready.paths),
            warnings: Arc::new(ready.warnings),
            shutdown: tokio_util::sync::CancellationToken::new(),
            gates: Gates::default(),
            installed: Arc::new(InstalledHealth {
                model: model.report(),
                piper: piper.report(),
                whisper: whisper.report(),
                whisper_model: whisper_model.report(),
            }),
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
