//! The HTTP side of bounded work: the gates of the work the server admits (chat turns, uploads
//! and transcriptions here; syntheses live in the voice service, the built-in model's queue in its engine),
//! the 503 for a full gate, and the per-client request rate on `/api` (429).
//!
//! Every refusal is decided without waiting and carries `Retry-After`. The in-flight limits are
//! read from the settings at each request; the request rate is set when the router is built, so
//! a change to it applies from the next start.

use super::error::ApiError;
use crate::{
    limits::{places, Gate, Pass},
    shared::config::LimitsConfig,
};
use axum::{body::Body, extract::ConnectInfo, http::StatusCode, Router};
use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};
use tower_governor::{
    governor::GovernorConfigBuilder, key_extractor::KeyExtractor, GovernorError, GovernorLayer,
};

/// How often the rate limit forgets the addresses whose quota is whole again.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// What a client is told to wait before trying again after a 503: a turn or a synthesis takes
/// seconds, so a second is a fair first guess.
pub const RETRY_AFTER_S: u64 = 1;

/// The gates of the work admitted over HTTP, shared by every request. A chat turn takes its
/// place through `chat::deps`; the refusal is the turn's `TurnError::Busy`.
#[derive(Clone, Default)]
pub struct Gates {
    pub chat_turns: Arc<Gate>,
    pub uploads: Arc<Gate>,
    pub transcriptions: Arc<Gate>,
}

impl Gates {
    /// A place for one upload, or the 503 that refuses it.
    pub fn upload(&self, limits: &LimitsConfig) -> Result<Pass, ApiError> {
        self.uploads
            .try_enter(places(limits.uploads))
            .ok_or_else(|| {
                busy(
                    "busy_uploads",
                    format!(
                        "{} uploads are already being received; try again when one has finished.",
                        limits.uploads
                    ),
                )
            })
    }
}

impl Gates {
    /// A place for one recording, from its first byte to its transcript, or the 503 that
    /// refuses it.
    pub fn transcription(&self, limits: &LimitsConfig) -> Result<Pass, ApiError> {
        self.transcriptions
            .try_enter(places(limits.transcriptions))
            .ok_or_else(|| {
                busy(
                    "busy_transcriptions",
                    format!(
                        "{} recordings are already being transcribed; try again when one has finished.",
                        limits.transcriptions
                    ),
                )
            })
    }
}

/// A 503 for work refused for want of capacity.
pub fn busy(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(RETRY_AFTER_S)
}

/// `routes` with the request rate limit of the settings, keyed by the client's address.
pub fn rate_limited<S>(routes: Router<S>, limits: &LimitsConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let per_second = u64::from(limits.requests_per_second.max(1));
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientIp)
        // One request's worth of quota comes back every 1/rate seconds.
        .period(Duration::from_nanos(1_000_000_000 / per_second))
        .burst_size(limits.request_burst.max(1))
        .finish();
    match config {
        Some(config) => {
            // The limiter keeps a row per client address; without this every address that ever
            // sent a request would stay in memory. A row whose quota has fully come back says
            // nothing a new one would not, so it goes. The task ends with the router.
            let limiter = Arc::downgrade(config.limiter());
            repeat_while(FORGET_IDLE_EVERY, move || {
                let Some(limiter) = limiter.upgrade() else {
                    return false;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
                true
            });
            routes.layer(GovernorLayer::<_, _, Body>::new(config).error_handler(too_many))
        }
        None => {
            // Validation keeps a zero rate or burst out of the settings.
            tracing::error!("the request rate limit is not usable; /api is not rate limited");
            routes
        }
    }
}

/// Calls `job` every `period` (the first time after one period) until it answers false. Outside
/// a tokio runtime (a router built for a one-off check) there is nothing to run it on, and nothing
/// lives long enough to need it.
fn repeat_while(period: Duration, mut job: impl FnMut() -> bool + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(period);
        every.tick().await;
        loop {
            every.tick().await;
            if !job() {
                return;
            }
        }
    });
}

fn too_many(e: GovernorError) -> axum::response::Response {
    use axum::response::IntoResponse;
    let wait = match e {
        GovernorError::TooManyRequests { wait_time, .. } => wait_time,
        // `ClientIp` always finds a key; nothing else is refused.
        _ => RETRY_AFTER_S,
    };
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests from this address; wait a moment and try again.",
    )
    // The wait is rounded down to whole seconds; never tell a client to come back at once.
    .retry_after(wait + 1)
    .into_response()
}

/// The rate limit's key: the peer's address. Requests that reach the router without one (driven
/// in-process, as tests do) share a single key rather than failing. Forwarding headers are not
/// read: the server is reached directly, and a header any client can set would let each request
/// pick its own key.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        Ok(req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn the_job_runs_every_period_until_it_says_stop() {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        repeat_while(Duration::from_millis(20), move || {
            // The third call finds the limiter gone.
            counted.fetch_add(1, Ordering::SeqCst) < 2
        });
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not before one period");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "it stops once the job says so"
        );
    }

    #[tokio::test]
    async fn a_client_whose_quota_came_back_leaves_the_table() {
        // The same limiter the router uses, with a quota that comes back in a millisecond.
        let config = GovernorConfigBuilder::default()
            .key_extractor(ClientIp)
            .period(Duration::from_millis(1))
            .burst_size(1)
            .finish()
            .unwrap();
        let limiter = config.limiter();
        limiter.check_key(&IpAddr::V6(Ipv6Addr::LOCALHOST)).unwrap();
        assert_eq!(limiter.len(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        limiter.retain_recent();
        assert_eq!(limiter.len(), 0);
    }
}
