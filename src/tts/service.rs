//! [`TtsService`]: the one entry point the server uses to speak. Cheap to call from many tasks
//! at once, and cancel-safe: a dropped call leaves no temp file and no stuck single-flight entry
//! (synthesis runs in its own task; see `cache`).

use super::{
    cache::AudioCache,
    chain::{Chain, ChainError, Cooldowns, Outcomes, SpeakOptions, Spoken},
    engine_for,
    piper::PiperPool,
    EngineContext,
};
use crate::{
    config::ConfigStore,
    limits::Gate,
    shared::{
        config::TtsProvider,
        health::{ProviderHealth, ProviderState},
    },
};
use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

pub struct TtsService {
    config: Arc<ConfigStore>,
    cache: Arc<AudioCache>,
    ctx: Arc<EngineContext>,
    cooldowns: Cooldowns,
    outcomes: Outcomes,
    /// Syntheses under way (provider calls; cache hits take no place), at most `limits.syntheses`.
    syntheses: Arc<Gate>,
}

/// Health probes give up after this, so the health report answers in time.
const PROBE_TIMEOUT: Duration = Duration::from_millis(2_500);

impl TtsService {
    /// `blobs` holds the audio cache (in its `audio/`); `tools` is where `make setup` puts Piper.
    pub fn new(
        config: Arc<ConfigStore>,
        blobs: crate::blobs::Blobs,
        tools: PathBuf,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::outbound::client_builder()
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("waifu-rt3d/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let cache = AudioCache::new(blobs, "audio");
        Ok(Self {
            config,
            cache: Arc::new(cache),
            ctx: Arc::new(EngineContext {
                http,
                tools,
                piper: PiperPool::default(),
            }),
            cooldowns: Cooldowns::default(),
            outcomes: Outcomes::default(),
            syntheses: Gate::new(),
        })
    }

    /// Says `text` with the first provider of the chain that can, from the cache when possible.
    pub async fn speak(&self, text: &str, opts: SpeakOptions) -> Result<Spoken, ChainError> {
        let cfg = self.config.get();
        Chain {
            cfg: &cfg,
            ctx: &self.ctx,
            cache: &self.cache,
            cooldowns: &self.cooldowns,
            outcomes: &self.outcomes,
            syntheses: &self.syntheses,
        }
        .speak(text, &opts)
        .await
    }

    /// Starts the Piper worker in the background when Piper is in the chain, so the first
    /// sentence does not wait for the voice to load.
    pub fn warm_up(&self) {
        let cfg = self.config.get();
        if cfg.tts_chain().contains(&TtsProvider::PiperLocal) {
            self.ctx
                .piper
                .warm(&self.ctx.tools, &cfg.tts.providers.piper_local);
        }
    }

    /// How many syntheses did real work since start (cache hits and shared flights excluded).
    pub fn synthesis_count(&self) -> u64 {
        self.cache.syntheses.load(Ordering::Relaxed)
    }

    /// How many syntheses are running now.
    pub fn syntheses_running(&self) -> usize {
        self.syntheses.in_use()
    }

    /// One health entry per provider in the chain, probed in parallel with a short timeout.
    pub async fn probe_all(&self) -> Vec<ProviderHealth> {
        let cfg = self.config.get();
        let probes = cfg.tts_chain().into_iter().map(|p| {
            let settings = cfg.tts.providers.get(p).clone();
            let ctx = self.ctx.clone();
            let cooling = self.cooldowns.active(p, &settings);
            let outcome = self.outcomes.get(p);
            async move {
                let started = Instant::now();
                let engine = engine_for(p, &settings, &ctx);
                let found = tokio::time::timeout(PROBE_TIMEOUT, engine.probe()).await;
                let latency_ms = Some(started.elapsed().as_millis() as u64);
                let (state, mut detail) = match found {
                    Ok(r) => (r.state, r.detail),
                    Err(_) => (
                        ProviderState::Unreachable,
                        format!(
                            "no answer within {} ms; check that it runs",
                            PROBE_TIMEOUT.as_millis()
                        ),
                    ),
                };
                if let Some((e, left)) = cooling {
                    detail = format!(
                        "{detail} Left out of the chain for another {} s after: {e}",
                        left.as_secs().max(1)
                    );
                }
                ProviderHealth {
                    provider: p.name().into(),
                    state,
                    detail,
                    latency_ms,
                    last_error: outcome.last_error,
                    last_success: outcome.last_success,
                }
            }
        });
        futures::future::join_all(probes).await
    }
}
