//! [`TtsService`]: the one entry point the server uses to speak. Cheap to call from many tasks
//! at once, and cancel-safe: a dropped call leaves no temp file and no stuck single-flight entry
//! (synthesis runs in its own task; see `cache`).

use super::{
    cache::AudioCache,
    chain::{Chain, ChainError, Cooldowns, Outcomes},
    engine_for,
    piper::PiperPool,
};
use crate::{
    config::ConfigStore,
    limits::Gate,
    shared::{
        config::{AudioFormat, TtsProvider},
        health::{ProviderHealth, ProviderState},
        tts::{FellBack, Speech, SpeechMeta, Timings},
    },
};
use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

/// What the engines share: the HTTP connection pool, where tools live, the warm Piper workers.
pub struct EngineContext {
    pub http: reqwest::Client,
    pub tools: PathBuf,
    pub piper: PiperPool,
}

/// Per-call choices that override the settings.
#[derive(Clone, Debug, Default)]
pub struct SpeakOptions {
    /// Try this provider first, then the configured chain.
    pub provider: Option<TtsProvider>,
    /// A voice of the first provider tried.
    pub voice_id: Option<String>,
    pub format: Option<AudioFormat>,
    /// Only `provider`, no fallback (the System tab's "Test").
    pub only: bool,
    /// Ask the provider even when the text is cached (a test must reach the provider).
    pub fresh: bool,
    /// Wait for a place among the `limits.syntheses` running syntheses instead of being refused
    /// ([`ChainError::Busy`]) when all are taken.
    ///
    /// A chat turn's segments wait: the turn was admitted under `limits.chat_turns`, it asks for
    /// at most `PARALLEL_SYNTHESES` segments at a time, and a segment refused midway would leave
    /// a hole in the spoken reply. Everything else (`POST /api/tts`, the Setup and System tabs'
    /// tests) is a request of its own and is refused at once, so the number of voice processes
    /// never exceeds the limit either way.
    pub wait: bool,
}

/// Spoken text: where the audio is and what it is.
#[derive(Clone, Debug)]
pub struct Spoken {
    /// `/files/audio/<hash>.<ext>`
    pub url: String,
    pub path: PathBuf,
    pub provider: TtsProvider,
    pub cached: bool,
    pub content_type: String,
    pub duration_ms: Option<u64>,
    pub sample_rate: Option<u32>,
    pub fell_back_from: Vec<FellBack>,
    pub timings: Option<Timings>,
}

impl Spoken {
    /// The wire form, with the time the caller measured.
    pub fn into_speech(self, latency: Duration) -> Speech {
        Speech {
            url: self.url,
            latency_ms: latency.as_millis() as u64,
            meta: SpeechMeta {
                provider: self.provider.name().into(),
                cached: self.cached,
                content_type: self.content_type,
                duration_ms: self.duration_ms,
                sample_rate: self.sample_rate,
                fell_back_from: self.fell_back_from,
                timings: self.timings,
            },
        }
    }
}

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
    /// `audio` is the cache folder; `tools` is where `make setup` puts Piper.
    pub fn new(
        config: Arc<ConfigStore>,
        audio: PathBuf,
        tools: PathBuf,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::outbound::client_builder()
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("waifu-rt3d/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let cache = AudioCache::new(audio);
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
