//! [ssr] What the server measures for `GET /metrics`: every metric's name, and the one-line calls
//! the code that does the work makes. The Prometheus text itself is rendered by
//! `metrics-exporter-prometheus` from the process-wide recorder [`handle`] installs.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | [`HTTP_REQUESTS`] | counter | `method`, `route`, `status` |
//! | [`HTTP_SECONDS`] | histogram | `method`, `route` |
//! | [`CHAT_TURNS`] | counter | `outcome` (`complete`, `stopped`, `failed`), `code` |
//! | [`FIRST_TOKEN_SECONDS`] | histogram | |
//! | [`FIRST_AUDIO_SECONDS`] | histogram | |
//! | [`TTS_SYNTHESES`] | counter | `provider`, `outcome` (`ok`, `failed`), `code` |
//! | [`TTS_SYNTHESIS_SECONDS`] | histogram | `provider` |
//! | [`AUDIO_CACHE`] | counter | `result` (`hit`, `miss`) |
//! | [`QUEUE_DEPTH`] | gauge | `queue` (`llm_embedded`, `tts_piper`) |
//!
//! Every label takes its value from a closed set (route templates, never raw paths; error
//! codes; provider names), so the number of series stays bounded whatever clients send.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::{sync::OnceLock, time::Duration};

pub const HTTP_REQUESTS: &str = "waifu_http_requests_total";
pub const HTTP_SECONDS: &str = "waifu_http_request_duration_seconds";
pub const CHAT_TURNS: &str = "waifu_chat_turns_total";
pub const FIRST_TOKEN_SECONDS: &str = "waifu_chat_first_token_seconds";
pub const FIRST_AUDIO_SECONDS: &str = "waifu_chat_first_audio_seconds";
pub const TTS_SYNTHESES: &str = "waifu_tts_syntheses_total";
pub const TTS_SYNTHESIS_SECONDS: &str = "waifu_tts_synthesis_duration_seconds";
pub const AUDIO_CACHE: &str = "waifu_tts_cache_lookups_total";
pub const QUEUE_DEPTH: &str = "waifu_queue_depth";

/// Histogram buckets, in seconds: from a fast API answer to a slow turn's first audio.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// How often histogram samples are folded in when nobody scrapes (scrapes do it too), so memory
/// stays flat on a server nobody watches.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The renderer of the process-wide recorder, installed on first use.
///
/// A recorder is global to the process, while tests build many servers in one: the first call
/// installs it and every later one shares it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics stays empty");
            }
            describe();
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = started {
                tracing::warn!(
                    "metrics upkeep thread did not start ({e}); scrapes still fold samples in"
                );
            }
            handle
        })
        .clone()
}

/// A recorder that renders every histogram with [`BUCKETS`].
fn recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    let builder = PrometheusBuilder::new();
    // `set_buckets` fails only on an empty list, and BUCKETS is not empty.
    let builder = builder
        .set_buckets(&BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new());
    builder.build_recorder()
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template and status."
    );
    describe_histogram!(
        HTTP_SECONDS,
        Unit::Seconds,
        "Time to the response's headers (for a stream, until it starts), by route template."
    );
    describe_counter!(CHAT_TURNS, "Chat turns by how their text ended.");
    describe_histogram!(
        FIRST_TOKEN_SECONDS,
        Unit::Seconds,
        "From the message's arrival to the model's first token."
    );
    describe_histogram!(
        FIRST_AUDIO_SECONDS,
        Unit::Seconds,
        "From the message's arrival to the first audio the browser can play (spoken turns)."
    );
    describe_counter!(
        TTS_SYNTHESES,
        "Syntheses a voice provider was asked for (cache hits excluded)."
    );
    describe_histogram!(
        TTS_SYNTHESIS_SECONDS,
        Unit::Seconds,
        "How long a voice provider took to answer, a wait for a synthesis place included."
    );
    describe_counter!(AUDIO_CACHE, "Audio cache lookups, hit or miss.");
    describe_gauge!(
        QUEUE_DEPTH,
        "Requests waiting for or being served by a one-at-a-time worker."
    );
}

/// One answered HTTP request. `route` is the route template (`/api/sessions/{id}`), never the
/// path a client sent.
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    let (method, route) = (method.to_owned(), route.to_owned());
    counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_SECONDS, "method" => method, "route" => route).record(took.as_secs_f64());
}

/// How a chat turn's text ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEnd {
    Complete,
    /// The person pressed Stop or went away.
    Stopped,
    /// The model failed; the error event's code.
    Failed(&'static str),
}

/// One finished chat turn, with its time to first token (ms since the message arrived) when
/// the model wrote anything.
pub fn chat_turn(end: TurnEnd, first_token_ms: Option<u64>) {
    let (outcome, code) = match end {
        TurnEnd::Complete => ("complete", ""),
        TurnEnd::Stopped => ("stopped", ""),
        TurnEnd::Failed(code) => ("failed", code),
    };
    counter!(CHAT_TURNS, "outcome" => outcome, "code" => code).increment(1);
    if let Some(ms) = first_token_ms {
        histogram!(FIRST_TOKEN_SECONDS).record(ms as f64 / 1000.0);
    }
}

/// A spoken turn's first playable audio, `ms` after the message arrived.
pub fn first_audio(ms: u64) {
    histogram!(FIRST_AUDIO_SECONDS).record(ms as f64 / 1000.0);
}

/// One synthesis by `provider`: `Err` holds the voice error's code.
pub fn synthesis(provider: &str, result: Result<(), &'static str>, took: Duration) {
    let provider = provider.to_owned();
    let (outcome, code) = match result {
        Ok(()) => ("ok", ""),
        Err(code) => ("failed", code),
    };
    counter!(TTS_SYNTHESES, "provider" => provider.clone(), "outcome" => outcome, "code" => code)
        .increment(1);
    histogram!(TTS_SYNTHESIS_SECONDS, "provider" => provider).record(took.as_secs_f64());
}

/// One audio cache lookup.
pub fn audio_cache(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    counter!(AUDIO_CACHE, "result" => result).increment(1);
}

/// The one-at-a-time workers whose queues are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The built-in language model's worker thread.
    LlmEmbedded,
    /// Piper's warm worker process.
    TtsPiper,
    /// Whisper's warm worker process.
    AsrWhisper,
}

impl Queue {
    fn label(self) -> &'static str {
        match self {
            Queue::LlmEmbedded => "llm_embedded",
            Queue::TtsPiper => "tts_piper",
            Queue::AsrWhisper => "asr_whisper",
        }
    }
}

/// A request counted in its queue's depth until this is dropped, whichever way it ends (answered,
/// failed or cancelled).
#[must_use = "the request leaves the queue when this is dropped"]
pub struct Queued(Queue);

impl Queued {
    pub fn enter(queue: Queue) -> Self {
        gauge!(QUEUE_DEPTH, "queue" => queue.label()).increment(1.0);
        Self(queue)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        gauge!(QUEUE_DEPTH, "queue" => self.0.label()).decrement(1.0);
    }
}

/// `stream`, counted in `queue` until it is dropped (a streamed answer holds its worker until
/// its reader lets go).
pub fn queued_stream<S>(queue: Queue, stream: S) -> QueuedStream<S> {
    QueuedStream {
        stream,
        _queued: Queued::enter(queue),
    }
}

pub struct QueuedStream<S> {
    stream: S,
    _queued: Queued,
}

impl<S: futures::Stream + Unpin> futures::Stream for QueuedStream<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.stream).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, line_start: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    #[test]
    fn a_queued_request_leaves_its_queue_however_it_ends() {
        // A recorder of this test's own: the global one is shared with the other tests.
        let recorder = recorder();
        let h = recorder.handle();
        let line = r#"waifu_queue_depth{queue="tts_piper"}"#;
        metrics::with_local_recorder(&recorder, || {
            let held = Queued::enter(Queue::TtsPiper);
            assert_eq!(sample(&h.render(), line), 1.0);
            let stream = queued_stream(Queue::TtsPiper, futures::stream::empty::<()>());
            assert_eq!(sample(&h.render(), line), 2.0);
            drop(stream);
            assert_eq!(sample(&h.render(), line), 1.0);
            drop(held);
            assert_eq!(sample(&h.render(), line), 0.0);
            assert_eq!(
                sample(&h.render(), r#"waifu_queue_depth{queue="llm_embedded"}"#),
                0.0
            );
        });
    }
}
