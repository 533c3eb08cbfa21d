//! What the routes call: the engine the settings choose, the recording's checks that do not
//! depend on the engine, and the health probe.

use super::{
    openai::OpenaiCompatible,
    whisper::{WhisperLocal, WhisperPool},
    AsrEngine, AsrError, AsrRequest, AudioKind, Heard,
};
use crate::{
    config::ConfigStore,
    server::paths::DataPaths,
    shared::{
        config::{AsrConfig, AsrProvider},
        health::ProviderHealth,
    },
};
use bytes::Bytes;
use std::{sync::Arc, time::Instant};

pub struct AsrService {
    config: Arc<ConfigStore>,
    paths: DataPaths,
    http: reqwest::Client,
    whisper: Arc<WhisperPool>,
}

impl AsrService {
    pub fn new(config: Arc<ConfigStore>, paths: DataPaths) -> Result<Self, reqwest::Error> {
        Ok(Self {
            config,
            paths,
            http: crate::outbound::client_builder().build()?,
            whisper: Arc::default(),
        })
    }

    /// The engine `cfg` chooses; none when recognition is off.
    pub fn engine(&self, cfg: &AsrConfig) -> Result<Box<dyn AsrEngine>, AsrError> {
        Ok(match cfg.provider {
            AsrProvider::WhisperLocal => Box::new(WhisperLocal::new(
                &cfg.providers.whisper_local,
                &self.paths,
                self.whisper.clone(),
            )),
            AsrProvider::OpenaiCompatible => Box::new(OpenaiCompatible::new(
                &cfg.providers.openai_compatible,
                self.http.clone(),
            )),
            AsrProvider::Disabled => return Err(AsrError::Disabled),
        })
    }

    /// Transcribes a recording declared as `declared`; its first bytes, when they show a known
    /// container, win over the declaration. Answers the provider that heard it.
    pub async fn transcribe(
        &self,
        audio: Bytes,
        declared: AudioKind,
    ) -> Result<(AsrProvider, Heard), AsrError> {
        let cfg = self.config.get().asr.clone();
        let engine = self.engine(&cfg)?;
        if audio.is_empty() {
            return Err(AsrError::BadAudio("the recording is empty".into()));
        }
        let req = AsrRequest {
            kind: AudioKind::sniff(&audio).unwrap_or(declared),
            audio,
            language: cfg.language.trim().to_string(),
            max_seconds: cfg.max_seconds,
        };
        let mut heard = engine.transcribe(&req).await?;
        if heard.language.is_empty() {
            heard.language = req.language;
        }
        Ok((engine.provider(), heard))
    }

    /// Starts the configured local engine, so the first recording does not wait for the model.
    /// Answers whether there is anything to warm.
    pub fn warm(&self) -> Result<AsrProvider, AsrError> {
        let cfg = self.config.get().asr.clone();
        let engine = self.engine(&cfg)?;
        engine.warm();
        Ok(engine.provider())
    }

    /// The health report's entry.
    pub async fn probe(&self) -> ProviderHealth {
        let cfg = self.config.get().asr.clone();
        let started = Instant::now();
        let probe = match self.engine(&cfg) {
            Ok(engine) => engine.probe().await,
            Err(e) => super::AsrProbe::from_error(&e),
        };
        ProviderHealth {
            provider: cfg.provider.name().to_string(),
            state: probe.state,
            detail: probe.detail,
            latency_ms: Some(started.elapsed().as_millis() as u64),
            last_error: None,
            last_success: None,
        }
    }
}
