//! The fallback chain: `tts.provider`, then `tts.fallback_chain`, each with its own settings.
//! Text is cleaned for each provider inside the loop, the cache is asked before any provider,
//! and a provider that failed on auth or quota sits out a cool-down so that later sentences skip
//! it without waiting. The cool-down ends early when that provider's settings change (a new key).
//! The chain's input and output ([`SpeakOptions`], [`Spoken`]) are defined here, so that the
//! service that drives it depends on it and not the other way round.

use super::{
    cache, cache::AudioCache, engine_for, sanitize, EngineContext, SynthRequest, TtsError,
};
use crate::limits::{places, Gate};
use crate::shared::{
    config::{AppConfig, AudioFormat, TtsProvider, TtsProviderSettings},
    health::{LastError, LastSuccess},
    tts::{FellBack, Speech, SpeechMeta, Timings},
};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

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

/// Why nothing was spoken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "there is nothing to say: the text is empty once markup, reasoning and emoji are removed"
    )]
    NothingToSay,
    #[error("no voice could speak: {}", summary(.0))]
    AllFailed(Vec<FellBack>),
    /// A voice spoke but its audio could not be saved. The chain stops there: every other voice's
    /// audio would meet the same full disk, and a paid one would be charged for nothing.
    #[error("{0}")]
    DiskFull(String),
    /// Every place among the running syntheses (`limits.syntheses`) was taken.
    #[error("the voices are busy: {0} syntheses are already running; try again in a moment")]
    Busy(u32),
}

fn summary(failures: &[FellBack]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.provider, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ChainError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NothingToSay => "empty_text",
            Self::DiskFull(_) => crate::disk::FULL,
            Self::Busy(_) => "tts_busy",
            Self::AllFailed(f) if all_timeouts(f) => "tts_timeout",
            Self::AllFailed(f) if all_busy(f) => "tts_busy",
            Self::AllFailed(_) => "tts_failed",
        }
    }

    /// 400 for nothing to say, 507 for a full disk, 504 when every provider timed out, else 502.
    pub fn status(&self) -> u16 {
        match self {
            Self::NothingToSay => 400,
            Self::DiskFull(_) => 507,
            Self::Busy(_) => 503,
            Self::AllFailed(f) if all_timeouts(f) => 504,
            Self::AllFailed(f) if all_busy(f) => 503,
            Self::AllFailed(_) => 502,
        }
    }

    pub fn failures(&self) -> &[FellBack] {
        match self {
            Self::NothingToSay | Self::DiskFull(_) | Self::Busy(_) => &[],
            Self::AllFailed(f) => f,
        }
    }
}

fn all_timeouts(f: &[FellBack]) -> bool {
    !f.is_empty() && f.iter().all(|f| f.code == "timeout")
}

fn all_busy(f: &[FellBack]) -> bool {
    !f.is_empty() && f.iter().all(|f| f.code == "busy")
}

/// Providers sitting out after an auth or quota failure.
#[derive(Default)]
pub struct Cooldowns(parking_lot::Mutex<HashMap<TtsProvider, Cooldown>>);

struct Cooldown {
    until: Instant,
    /// The settings it failed with: any change (a new key) ends the cool-down.
    settings: TtsProviderSettings,
    error: TtsError,
}

impl Cooldowns {
    /// The error that put `provider` out, and how long it still sits out.
    pub fn active(&self, p: TtsProvider, s: &TtsProviderSettings) -> Option<(TtsError, Duration)> {
        let mut map = self.0.lock();
        let c = map.get(&p)?;
        let left = c.until.checked_duration_since(Instant::now());
        match left {
            Some(left) if c.settings == *s => Some((c.error.clone(), left)),
            _ => {
                map.remove(&p);
                None
            }
        }
    }

    fn start(&self, p: TtsProvider, s: &TtsProviderSettings, e: &TtsError) {
        if let Some(d) = e.cooldown() {
            self.0.lock().insert(
                p,
                Cooldown {
                    until: Instant::now() + d,
                    settings: s.clone(),
                    error: e.clone(),
                },
            );
        }
    }
}

/// What each provider did last (since the server started), for the health report.
#[derive(Default)]
pub struct Outcomes(parking_lot::Mutex<HashMap<TtsProvider, Outcome>>);

#[derive(Clone, Default)]
pub struct Outcome {
    pub last_error: Option<LastError>,
    pub last_success: Option<LastSuccess>,
}

impl Outcomes {
    pub fn get(&self, p: TtsProvider) -> Outcome {
        self.0.lock().get(&p).cloned().unwrap_or_default()
    }

    fn failed(&self, p: TtsProvider, e: &TtsError) {
        self.0.lock().entry(p).or_default().last_error = Some(LastError {
            code: e.code().into(),
            message: e.to_string(),
            ts: crate::store::now_ts(),
        });
    }

    fn spoke(&self, p: TtsProvider, took: Duration) {
        self.0.lock().entry(p).or_default().last_success = Some(LastSuccess {
            latency_ms: took.as_millis() as u64,
            ts: crate::store::now_ts(),
        });
    }
}

/// The providers to try, in order: an explicit provider first, then the configured chain.
pub fn order(cfg: &AppConfig, first: Option<TtsProvider>) -> Vec<TtsProvider> {
    let mut chain = cfg.tts_chain();
    if let Some(p) = first {
        chain.retain(|c| *c != p);
        chain.insert(0, p);
    }
    chain
}

pub struct Chain<'a> {
    pub cfg: &'a AppConfig,
    pub ctx: &'a Arc<EngineContext>,
    pub cache: &'a Arc<AudioCache>,
    pub cooldowns: &'a Cooldowns,
    pub outcomes: &'a Outcomes,
    pub syntheses: &'a Arc<Gate>,
}

impl Chain<'_> {
    pub async fn speak(&self, raw: &str, opts: &SpeakOptions) -> Result<Spoken, ChainError> {
        if sanitize(TtsProvider::PiperLocal, raw).is_empty() {
            return Err(ChainError::NothingToSay);
        }
        let tts = &self.cfg.tts;
        let format = opts.format.unwrap_or(tts.format);
        let max_bytes = tts.cache_max_mb.saturating_mul(1024 * 1024);
        let mut fell_back_from = Vec::new();
        let providers = match (opts.only, opts.provider) {
            (true, Some(p)) => vec![p],
            _ => order(self.cfg, opts.provider),
        };
        for (i, provider) in providers.into_iter().enumerate() {
            let settings = tts.providers.get(provider);
            let failed = |e: &TtsError, prefix: &str| FellBack {
                provider: provider.name().into(),
                code: e.code().into(),
                error: format!("{prefix}{e}"),
            };
            if let Some((e, left)) = self.cooldowns.active(provider, settings) {
                let prefix = format!("skipped for another {} s after: ", left.as_secs().max(1));
                fell_back_from.push(failed(&e, &prefix));
                continue;
            }
            let text = sanitize(provider, raw);
            if text.is_empty() {
                continue;
            }
            // A voice id names a voice of one provider: it goes to the first one only.
            let voice = match (&opts.voice_id, i) {
                (Some(v), 0) => v.trim().to_string(),
                _ => String::new(),
            };
            let engine = engine_for(provider, settings, self.ctx);
            let req = SynthRequest {
                text,
                voice,
                format,
                sample_rate: tts.sample_rate,
            };
            let kind = engine.output(&req);
            let hash = cache::key(&[
                provider.name(),
                &engine.identity(&req),
                &settings.voice_id,
                &req.voice,
                kind.ext,
                &req.text,
            ]);
            let timeout = Duration::from_millis(settings.timeout_ms.max(1));
            let hit = match opts.fresh {
                true => None,
                false => self.cache.lookup(&hash, kind).await,
            };
            let tried = Instant::now();
            let made = match hit {
                Some(entry) => Ok((entry, true)),
                None => {
                    // The place is taken by the synthesis itself, which runs in a task of its
                    // own (see `cache`): identical requests that join it need none, and it is
                    // given back when the program or request has ended, even if every caller
                    // went away before.
                    let limit = self.cfg.limits.syntheses;
                    let (gate, wait) = (self.syntheses.clone(), opts.wait);
                    let refused = Arc::new(AtomicBool::new(false));
                    let refusal = refused.clone();
                    let make = async move {
                        let _place = if wait {
                            gate.enter(|| places(limit)).await
                        } else {
                            let Some(place) = gate.try_enter(places(limit)) else {
                                refusal.store(true, Ordering::Relaxed);
                                return Err(TtsError::Busy("no synthesis place".into()));
                            };
                            place
                        };
                        if engine.times_itself() {
                            return engine.synthesize(&req).await;
                        }
                        tokio::time::timeout(timeout, engine.synthesize(&req))
                            .await
                            .unwrap_or(Err(TtsError::Timeout(timeout.as_millis() as u64)))
                    };
                    let made = self
                        .cache
                        .create(&hash, kind, provider.name(), max_bytes, make)
                        .await;
                    if refused.load(Ordering::Relaxed) {
                        return Err(ChainError::Busy(limit));
                    }
                    made
                }
            };
            match made {
                Ok((entry, cached)) => {
                    if !cached {
                        self.outcomes.spoke(provider, tried.elapsed());
                    }
                    return Ok(Spoken {
                        url: format!("/files/audio/{}", entry.name),
                        provider,
                        cached,
                        content_type: entry.meta.content_type,
                        duration_ms: entry.meta.duration_ms,
                        sample_rate: entry.meta.sample_rate,
                        fell_back_from,
                        timings: entry.meta.timings,
                    });
                }
                Err(TtsError::DiskFull(why)) => {
                    tracing::error!(provider = provider.name(), "speech not saved: {why}");
                    return Err(ChainError::DiskFull(why));
                }
                Err(e) => {
                    tracing::warn!(
                        provider = provider.name(),
                        code = e.code(),
                        "speech failed: {e}"
                    );
                    self.cooldowns.start(provider, settings, &e);
                    self.outcomes.failed(provider, &e);
                    fell_back_from.push(failed(&e, ""));
                }
            }
        }
        Err(ChainError::AllFailed(fell_back_from))
    }
}
