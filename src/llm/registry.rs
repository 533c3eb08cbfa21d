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

type Lookup = Box<dyn Fn(&str) -> PathBuf + Send + Sync>;
type QueueLimit = Arc<dyn Fn() -> usize + Send + Sync>;

/// Holds the embedded model of the chosen file (loaded once, shared by every request, replaced
/// when `llm.local_model` names another file) and the adapter for the configured server, rebuilt
/// only when its settings change.
pub struct LlmRegistry {
    embedded: parking_lot::Mutex<Arc<Embedded>>,
    /// Where a `llm.local_model` file name is found.
    lookup: Lookup,
    queue_limit: QueueLimit,
    remote: parking_lot::Mutex<Option<(RemoteKey, Arc<OpenAiCompatible>)>>,
}

impl LlmRegistry {
    /// `model_file` is the built-in model to start with (`make setup` puts it into `models/` as
    /// [`MODEL_FILE`](super::embedded::MODEL_FILE)); `model_queue` says how many requests may wait for it (read at each
    /// request). Other files are looked up beside it unless [`Self::with_model_lookup`] says
    /// otherwise.
    pub fn new(
        model_file: PathBuf,
        model_queue: impl Fn() -> usize + Send + Sync + 'static,
    ) -> Self {
        let queue_limit: QueueLimit = Arc::new(model_queue);
        let folder = model_file.parent().map(PathBuf::from).unwrap_or_default();
        Self {
            embedded: parking_lot::Mutex::new(Arc::new(embedded(model_file, &queue_limit))),
            lookup: Box::new(move |file| folder.join(file)),
            queue_limit,
            remote: parking_lot::Mutex::new(None),
        }
    }

    /// Where a `llm.local_model` file name is found (the data folder's `models/`, else the
    /// install folder's).
    pub fn with_model_lookup(
        mut self,
        lookup: impl Fn(&str) -> PathBuf + Send + Sync + 'static,
    ) -> Self {
        self.lookup = Box::new(lookup);
        self
    }

    /// The embedded model loaded last (or to be loaded first).
    pub fn embedded(&self) -> Arc<Embedded> {
        self.embedded.lock().clone()
    }

    /// The embedded model of `cfg.local_model`. Another file than the current one replaces it:
    /// the old worker finishes what it is answering and ends, freeing its model, and the new
    /// file loads on its first request with its own chat template.
    pub fn embedded_for(&self, cfg: &LlmConfig) -> Arc<Embedded> {
        let path = (self.lookup)(&cfg.local_model);
        let mut current = self.embedded.lock();
        if current.path() != path {
            tracing::info!(file = %cfg.local_model, "the built-in model file changed");
            *current = Arc::new(embedded(path, &self.queue_limit));
        }
        current.clone()
    }

    /// The model for these settings.
    pub fn get(&self, cfg: &LlmConfig) -> Result<Arc<dyn ChatModel>, LlmError> {
        if cfg.provider == LlmProvider::Embedded {
            return Ok(self.embedded_for(cfg));
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

fn embedded(path: PathBuf, queue_limit: &QueueLimit) -> Embedded {
    let limit = queue_limit.clone();
    Embedded::new(path).with_queue_limit(move || limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choosing_another_file_replaces_the_model_and_keeping_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let registry = LlmRegistry::new(dir.path().join("a.gguf"), || 1);
        let mut cfg = LlmConfig {
            local_model: "a.gguf".into(),
            ..LlmConfig::default()
        };
        let first = registry.embedded_for(&cfg);
        assert_eq!(first.path(), dir.path().join("a.gguf"));
        assert!(Arc::ptr_eq(&first, &registry.embedded_for(&cfg)));
        cfg.local_model = "b.gguf".into();
        let second = registry.embedded_for(&cfg);
        assert_eq!(second.path(), dir.path().join("b.gguf"));
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&second, &registry.embedded()));
    }
}
