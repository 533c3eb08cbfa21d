//! Which model answers: the registry maps the configured provider to its adapter.

use super::{
    embedded::Embedded,
    openai::{OpenAiCompatible, OpenAiSettings},
    ChatModel, LlmError,
};
use crate::shared::config::{LlmConfig, LlmProvider};
use std::{path::PathBuf, sync::Arc, time::Duration};

/// The settings an OpenAI-compatible adapter was built from; a change builds a new one.
#[derive(Clone, PartialEq)]
struct RemoteKey {
    provider: LlmProvider,
    endpoint: String,
    api_key: String,
    model: String,
    connect_timeout_ms: u64,
    first_token_timeout_ms: u64,
}

/// Holds the one embedded model (loaded once, shared by every request) and the adapter for the
/// configured server, rebuilt only when its settings change.
pub struct LlmRegistry {
    embedded: Arc<Embedded>,
    remote: parking_lot::Mutex<Option<(RemoteKey, Arc<OpenAiCompatible>)>>,
}

impl LlmRegistry {
    /// `model_file` is the built-in model (`make setup` puts it into `models/` as
    /// [`MODEL_FILE`](super::embedded::MODEL_FILE)); `model_queue` says how many requests may wait for it (read at each
    /// request).
    pub fn new(
        model_file: PathBuf,
        model_queue: impl Fn() -> usize + Send + Sync + 'static,
    ) -> Self {
        Self {
            embedded: Arc::new(Embedded::new(model_file).with_queue_limit(model_queue)),
            remote: parking_lot::Mutex::new(None),
        }
    }

    pub fn embedded(&self) -> &Arc<Embedded> {
        &self.embedded
    }

    /// The model for these settings.
    pub fn get(&self, cfg: &LlmConfig) -> Result<Arc<dyn ChatModel>, LlmError> {
        if cfg.provider == LlmProvider::Embedded {
            return Ok(self.embedded.clone());
        }
        Ok(self.remote(cfg)?)
    }

    fn remote(&self, cfg: &LlmConfig) -> Result<Arc<OpenAiCompatible>, LlmError> {
        let key = RemoteKey {
            provider: cfg.provider,
            endpoint: cfg.endpoint.clone(),
            api_key: cfg.api_key.expose().to_string(),
            model: cfg.model.clone(),
            connect_timeout_ms: cfg.connect_timeout_ms,
            first_token_timeout_ms: cfg.first_token_timeout_ms,
        };
        let mut cached = self.remote.lock();
        if let Some((k, adapter)) = cached.as_ref() {
            if *k == key {
                return Ok(adapter.clone());
            }
        }
        let adapter = Arc::new(OpenAiCompatible::new(OpenAiSettings {
            provider: cfg.provider,
            base_url: cfg.endpoint.clone(),
            api_key: cfg.api_key.clone(),
            model: cfg.model.clone(),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            first_token_timeout: Duration::from_millis(cfg.first_token_timeout_ms),
        })?);
        *cached = Some((key, adapter.clone()));
        Ok(adapter)
    }
}
