//! The chat pipeline: one turn from the person's message to the stored reply.
//!
//! [`start`] checks the input, stores the user message (before the model is called, so nothing
//! typed is lost), builds the prompt and starts a task that streams the reply as
//! [`ChatStreamEvent`]s. The task owns the turn: when the receiver goes away (the person pressed
//! Stop or closed the page) it stops the model and stores what arrived as a partial reply, and so
//! it does when the model fails midway. Both chat endpoints and the UI read the same events.
//!
//! When the request asks for speech (`speak: true`), the visible text also goes through the
//! [`segment::Segmenter`]. Each finished segment is sent as a `sentence` event and handed to the
//! voice at once, while the model goes on writing; at most [`PARALLEL_SYNTHESES`] segments are
//! synthesised at a time, and each answer is an `audio` or `audio_error` event with the
//! segment's index (they may arrive out of order). The reply is stored as soon as its text is
//! complete; `done` follows the last voice event, and the stored timings are then completed with
//! the voice stages. Stop cancels the syntheses that have not finished.

mod prompt;
pub mod reply;
pub mod segment;

use super::{error::ApiError, state::AppState};
use crate::metrics::{self, TurnEnd};
use crate::{
    llm::{ChatEvent, ChatRequest, LlmError},
    shared::{
        chat::{
            AcceptedEvent, AudioErrorEvent, AudioEvent, ChatInput, ChatStreamEvent, DoneEvent,
            ErrorEvent, SentenceEvent, StatusEvent, Timings, TokenEvent,
        },
        config::TtsProvider,
        history::{Character, Role},
    },
    store::{characters, messages, messages::NewMessage, search, sessions},
    tts::{ChainError, SpeakOptions, Spoken, TtsService},
};
use futures::StreamExt;
use prompt::PromptParts;
use reply::ReplyFilter;
use segment::Segmenter;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{
    sync::{mpsc, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

/// The longest message accepted, in characters.
pub const MAX_INPUT_CHARS: usize = 8_000;
/// How many segments of one reply are synthesised at the same time.
///
/// A constant rather than a setting: two is enough to have segment *i+1* ready while *i* plays
/// (a segment is seconds of speech, its synthesis a fraction of a second), the warm Piper worker
/// serves one request at a time anyway, and more parallel requests only bring cloud voices nearer
/// their rate limits while taking CPU from the model that is still writing on a small machine.
pub const PARALLEL_SYNTHESES: usize = 2;

/// A reply in progress is rewritten in its row at least this often, so that a crash loses at
/// most this much of what was streamed.
pub const DRAFT_EVERY: Duration = Duration::from_secs(1);
/// ...or after this many visible tokens, whichever comes first. With many turns at once the
/// time bound alone keeps the writes to about one per turn a second; this bound only matters
/// for a fast model, whose second holds many tokens.
pub const DRAFT_TOKENS: u32 = 32;

/// A running turn: its events, in order, ending with `done` or `error`.
pub struct Turn {
    pub session_id: i64,
    pub events: mpsc::Receiver<ChatStreamEvent>,
    /// The character's voice choices, for speaking the whole reply (`POST /api/chat`).
    pub voice: SpeakOptions,
}

/// Checks and stores the message, then starts the reply. Errors here are the request's fault or
/// the database's (400/404/500); a model failure arrives later as an `error` event.
pub async fn start(state: &AppState, session_id: i64, input: ChatInput) -> Result<Turn, ApiError> {
    let received = Instant::now();
    let text = input.text.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "missing_text",
            "Type a message first: `text` is required.",
        ));
    }
    if text.chars().count() > MAX_INPUT_CHARS {
        return Err(ApiError::bad_request(
            "text_too_long",
            format!("A message can have at most {MAX_INPUT_CHARS} characters."),
        ));
    }
    if session_id < 1 {
        return Err(ApiError::bad_request(
            "invalid_session_id",
            "session_id must be a positive number.",
        ));
    }

    let cfg = state.config.get();
    // A place among the turns under way, before anything is stored: a refused turn leaves no
    // trace. The runner holds it until the turn's last event, its voice included.
    let place = state.gates.chat_turn(&cfg.limits)?;
    // Independent reads, on pooled connections at once. Recall runs before the message is
    // stored, so it can never find the message it was asked about.
    let max_history = i64::from(cfg.memory.max_history);
    let speaker = async {
        let requested = input.character_id;
        let found = match characters::for_session(&state.db, session_id, requested).await? {
            Some(found) => found,
            // A new session: create it, then the same rule picks its speaker.
            None => {
                sessions::create_with_id(&state.db, session_id).await?;
                characters::for_session(&state.db, session_id, requested)
                    .await?
                    .flatten()
            }
        };
        match (found, requested) {
            (Some(c), _) => Ok(c),
            (None, Some(id)) => Err(ApiError::not_found(format!("There is no character {id}."))),
            // The session's character was deleted: fall back to the default one.
            (None, None) => characters::get(&state.db, characters::DEFAULT_ID)
                .await?
                .ok_or_else(|| ApiError::not_found("The default character is missing.")),
        }
    };
    let recall = async {
        if cfg.memory.recall == 0 {
            return Vec::new();
        }
        let limit = i64::from(cfg.memory.recall);
        // Recall is a help, not a requirement: a failed search leaves it out.
        search::recall(&state.db, text, session_id, max_history, limit)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "recalling memories failed");
                Vec::new()
            })
    };
    let (character, history, memories) = tokio::join!(
        speaker,
        messages::recent(&state.db, session_id, max_history),
        recall,
    );
    let (character, history): (Character, _) = (character?, history?);
    let stored = messages::add(&state.db, &NewMessage::new(session_id, Role::User, text)).await?;

    let voice = voice_of(&character);
    let (tx, rx) = mpsc::channel(256);
    // The acknowledgement leads the stream; the channel is new and empty, so it cannot be full.
    let _ = tx.try_send(ChatStreamEvent::Accepted(AcceptedEvent {
        message_id: stored.id,
        session_id,
    }));
    let runner = Runner {
        place: Some(place),
        db: state.db.clone(),
        session_id,
        received,
        tx,
        timings: Timings::default(),
        speech: input
            .speak
            .then(|| Speech::new(state.tts.clone(), voice.clone())),
        limits: Limits {
            provider: cfg.llm.provider.label(),
            idle: Duration::from_secs(cfg.llm.idle_timeout_s.max(1)),
            total: Duration::from_secs(cfg.llm.total_timeout_s.max(1)),
        },
        shutdown: state.shutdown.clone(),
        draft: Draft::default(),
    };
    match state.llm.get(&cfg.llm) {
        Ok(model) => {
            let max_tokens = cfg.llm.max_tokens;
            let context = model.context_tokens();
            let parts = PromptParts {
                system_prompt: &character.system_prompt,
                memories: &memories,
                history: &history,
                user_text: text,
            };
            let request = ChatRequest {
                messages: prompt::build(
                    &parts,
                    context.saturating_sub(max_tokens.min(context / 2)),
                ),
                model: cfg.llm.model.clone(),
                temperature: cfg.llm.temperature,
                max_tokens,
            };
            tokio::spawn(runner.run(model, request));
        }
        Err(e) => {
            tokio::spawn(runner.fail_early(e));
        }
    }
    Ok(Turn {
        session_id,
        events: rx,
        voice,
    })
}

/// The character's own voice, when it names one; otherwise the configured chain decides.
fn voice_of(character: &Character) -> SpeakOptions {
    SpeakOptions {
        provider: character
            .tts_provider
            .as_deref()
            .and_then(TtsProvider::from_name),
        voice_id: character.voice_id.clone().filter(|v| !v.trim().is_empty()),
        // The turn was admitted: its speech waits for a synthesis place (see `SpeakOptions`).
        wait: true,
        ..SpeakOptions::default()
    }
}

struct Runner {
    /// The turn's place in `limits.chat_turns`, given back just before the last event (so a
    /// client that sends its next message on `done` finds it free) or when the runner ends.
    place: Option<crate::limits::Pass>,
    db: sqlx::SqlitePool,
    session_id: i64,
    received: Instant,
    tx: mpsc::Sender<ChatStreamEvent>,
    timings: Timings,
    /// The voice pipeline, when the reply is spoken.
    speech: Option<Speech>,
    /// When the turn gives up on the model.
    limits: Limits,
    /// Cancelled when the server shuts down: the turn keeps what arrived and says so.
    shutdown: CancellationToken,
    /// The reply's row, written while the reply streams.
    draft: Draft,
}

/// `llm.idle_timeout_s` and `llm.total_timeout_s`, and whom to name when one runs out.
struct Limits {
    provider: &'static str,
    /// Between two events of the model, once its first token has come (before it, the
    /// adapter's first-token timeout applies).
    idle: Duration,
    /// From the request to the model until its last token.
    total: Duration,
}

/// The reply's row while the reply streams: inserted (flagged partial) with the first visible
/// text, then rewritten at least every [`DRAFT_EVERY`] or [`DRAFT_TOKENS`] tokens, so that a
/// reply that was streamed survives a crash of the server. The end of the turn rewrites it a
/// last time, as complete or partial.
struct Draft {
    id: Option<i64>,
    /// Whether there is text or reasoning the row does not have yet.
    behind: bool,
    /// Visible tokens since the last write.
    tokens: u32,
    written: tokio::time::Instant,
}

impl Default for Draft {
    fn default() -> Self {
        Self {
            id: None,
            behind: false,
            tokens: 0,
            written: tokio::time::Instant::now(),
        }
    }
}

impl Draft {
    /// When the row must next be written, if it is behind.
    fn due(&self) -> tokio::time::Instant {
        self.written + DRAFT_EVERY
    }
}

/// The spoken side of a turn: segments on their way through the voice chain.
struct Speech {
    tts: Arc<TtsService>,
    options: SpeakOptions,
    segmenter: Segmenter,
    permits: Arc<Semaphore>,
    /// Dropping the set aborts every synthesis still waiting or running (Stop).
    tasks: JoinSet<Synthesis>,
    /// Which segment each task speaks, for a task that ends without an answer.
    ids: std::collections::HashMap<tokio::task::Id, u32>,
    /// Per segment: not answered yet (`None`), has audio (`Some(true)`), failed (`Some(false)`).
    answered: Vec<Option<bool>>,
}

/// One segment's answer from the voice chain, with when it started and ended (ms since input).
struct Synthesis {
    index: u32,
    started: u64,
    finished: u64,
    result: Result<Spoken, ChainError>,
}

impl Speech {
    fn new(tts: Arc<TtsService>, options: SpeakOptions) -> Self {
        Self {
            tts,
            options,
            segmenter: Segmenter::new(),
            permits: Arc::new(Semaphore::new(PARALLEL_SYNTHESES)),
            tasks: JoinSet::new(),
            ids: Default::default(),
            answered: Vec::new(),
        }
    }

    /// Starts synthesising segment `text`; returns its index. The semaphore is fair, so
    /// segments reach the voice in order.
    fn start(&mut self, text: String, received: Instant) -> u32 {
        let index = self.answered.len() as u32;
        self.answered.push(None);
        let (tts, options, permits) =
            (self.tts.clone(), self.options.clone(), self.permits.clone());
        let task = self.tasks.spawn(async move {
            // The semaphore is never closed; without a permit the synthesis runs anyway.
            let _permit = permits.acquire_owned().await.ok();
            let started = ms_since(received);
            let result = tts.speak(&text, options).await;
            Synthesis {
                index,
                started,
                finished: ms_since(received),
                result,
            }
        });
        self.ids.insert(task.id(), index);
        index
    }

    fn index_of(&self, task: tokio::task::Id) -> Option<u32> {
        self.ids.get(&task).copied()
    }

    /// Records segment `index`'s answer; true when, with it, the browser has its first audio
    /// it can play (every earlier segment answered, and one of them or this one has audio).
    fn answer(&mut self, index: u32, has_audio: bool) -> bool {
        let before = self.playable();
        if let Some(slot) = self.answered.get_mut(index as usize) {
            *slot = Some(has_audio);
        }
        !before && self.playable()
    }

    fn playable(&self) -> bool {
        for a in &self.answered {
            match a {
                None => return false,
                Some(true) => return true,
                Some(false) => {}
            }
        }
        false
    }

    /// The next finished synthesis; never resolves when none is under way.
    async fn next(
        &mut self,
    ) -> Option<Result<(tokio::task::Id, Synthesis), tokio::task::JoinError>> {
        if self.tasks.is_empty() {
            std::future::pending().await
        } else {
            self.tasks.join_next_with_id().await
        }
    }
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// How a reply ended.
enum End {
    Complete,
    /// The receiver went away: the person stopped it.
    Stopped,
    Failed(LlmError),
    /// The server is shutting down.
    ShuttingDown,
}

/// How waiting for the voice after the text ended.
enum SpeechEnd {
    Finished,
    Stopped,
    ShuttingDown,
}

/// The `error` event of a turn cut by the server shutting down.
fn shutting_down(message_id: Option<i64>) -> ChatStreamEvent {
    ChatStreamEvent::Error(ErrorEvent {
        code: "shutting_down".into(),
        message: "The server is shutting down; what arrived of the reply is kept. Send again once it is back.".into(),
        message_id,
    })
}

impl End {
    fn metric(&self) -> TurnEnd {
        match self {
            End::Complete => TurnEnd::Complete,
            End::Stopped => TurnEnd::Stopped,
            End::Failed(e) => TurnEnd::Failed(e.code()),
            End::ShuttingDown => TurnEnd::Failed("shutting_down"),
        }
    }
}

impl Runner {
    fn ms(&self) -> u64 {
        ms_since(self.received)
    }

    async fn fail_early(mut self, e: LlmError) {
        tracing::warn!(code = e.code(), error = %e, "the language model failed");
        metrics::chat_turn(TurnEnd::Failed(e.code()), self.timings.first_token);
        self.place = None;
        let _ = self
            .tx
            .send(ChatStreamEvent::Error(ErrorEvent {
                code: e.code().into(),
                message: e.to_string(),
                message_id: None,
            }))
            .await;
    }

    async fn run(mut self, model: std::sync::Arc<dyn crate::llm::ChatModel>, request: ChatRequest) {
        self.timings.llm_request_started = Some(self.ms());
        let total_deadline = tokio::time::Instant::now() + self.limits.total;
        let stream = tokio::select! {
            s = model.chat(request) => s,
            () = self.tx.closed() => return metrics::chat_turn(TurnEnd::Stopped, None),
            () = tokio::time::sleep_until(total_deadline) => Err(self.total_timeout()),
            () = self.shutdown.cancelled() => {
                metrics::chat_turn(TurnEnd::Failed("shutting_down"), None);
                let _ = self.send(shutting_down(None)).await;
                return;
            }
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return self.fail_early(e).await,
        };
        let mut filter = ReplyFilter::new();
        let mut speech = self.speech.take();
        // Set by the model's first token: from then on, silence is limited too.
        let mut last_event: Option<tokio::time::Instant> = None;
        let mut end = loop {
            let deadline = match last_event {
                Some(at) => total_deadline.min(at + self.limits.idle),
                None => total_deadline,
            };
            let draft_due = self.draft.behind && !filter.visible().is_empty();
            let next = tokio::select! {
                next = stream.next() => next,
                Some(joined) = next_synthesis(&mut speech) => {
                    if let Some(sp) = speech.as_mut() {
                        if self.on_synthesis(sp, joined).await.is_err() {
                            break End::Stopped;
                        }
                    }
                    continue;
                }
                () = tokio::time::sleep_until(self.draft.due()), if draft_due => {
                    self.save_draft(&filter).await;
                    continue;
                }
                () = tokio::time::sleep_until(deadline) => {
                    break End::Failed(if deadline == total_deadline {
                        self.total_timeout()
                    } else {
                        LlmError::IdleTimeout {
                            provider: self.limits.provider,
                            after: self.limits.idle,
                        }
                    });
                }
                () = self.tx.closed() => break End::Stopped,
                () = self.shutdown.cancelled() => break End::ShuttingDown,
            };
            let event = match next {
                None => {
                    break End::Failed(LlmError::Interrupted {
                        provider: "the model",
                    })
                }
                Some(Err(e)) => break End::Failed(e),
                Some(Ok(e)) => e,
            };
            if last_event.is_some() {
                last_event = Some(tokio::time::Instant::now());
            }
            let visible = match event {
                ChatEvent::Loading(progress) => {
                    let status = StatusEvent {
                        state: "loading_model".into(),
                        progress,
                    };
                    if self.send(ChatStreamEvent::Status(status)).await.is_err() {
                        break End::Stopped;
                    }
                    continue;
                }
                ChatEvent::Finished { .. } => break End::Complete,
                ChatEvent::Reasoning(r) => {
                    self.timings.first_token.get_or_insert(self.ms());
                    last_event = Some(tokio::time::Instant::now());
                    filter.add_reasoning(&r);
                    self.draft.behind = true;
                    continue;
                }
                ChatEvent::Content(c) => {
                    self.timings.first_token.get_or_insert(self.ms());
                    last_event = Some(tokio::time::Instant::now());
                    filter.push(&c)
                }
            };
            if visible.is_empty() {
                continue;
            }
            let sent = self
                .send(ChatStreamEvent::Token(TokenEvent {
                    text: visible.clone(),
                }))
                .await;
            if sent.is_err()
                || self
                    .segments(&mut speech, &visible, filter.emotion(), false)
                    .await
                    .is_err()
            {
                break End::Stopped;
            }
            self.draft.behind = true;
            self.draft.tokens += 1;
            if self.draft.id.is_none()
                || self.draft.tokens >= DRAFT_TOKENS
                || tokio::time::Instant::now() >= self.draft.due()
            {
                self.save_draft(&filter).await;
            }
        };
        // Stop the model before storing: nothing more is wanted.
        drop(stream);
        let tail = filter.finish();
        if matches!(end, End::Complete) {
            let sent = if tail.is_empty() {
                Ok(())
            } else {
                self.send(ChatStreamEvent::Token(TokenEvent { text: tail.clone() }))
                    .await
            };
            if sent.is_err()
                || self
                    .segments(&mut speech, &tail, filter.emotion(), true)
                    .await
                    .is_err()
            {
                end = End::Stopped;
            }
        } else {
            // Stopped, failed or shutting down: the syntheses still waiting or running are not
            // wanted.
            speech = None;
        }
        self.timings.response_complete = Some(self.ms());
        metrics::chat_turn(end.metric(), self.timings.first_token);
        let Ok(stored) = self.store(&end, &filter).await else {
            return;
        };
        let last = match end {
            End::Stopped => {
                tracing::info!(
                    session_id = self.session_id,
                    "the reply was stopped; kept as partial"
                );
                return;
            }
            End::ShuttingDown => {
                tracing::info!(
                    session_id = self.session_id,
                    "the server is shutting down; the reply was kept as partial"
                );
                shutting_down(stored)
            }
            End::Failed(e) => {
                tracing::warn!(code = e.code(), error = %e, "the language model failed mid-reply");
                ChatStreamEvent::Error(ErrorEvent {
                    code: e.code().into(),
                    message: e.to_string(),
                    message_id: stored,
                })
            }
            End::Complete => {
                let voice = match speech {
                    Some(sp) => {
                        let voice = self.finish_speech(sp).await;
                        self.save_timings(stored).await;
                        voice
                    }
                    None => SpeechEnd::Finished,
                };
                match voice {
                    SpeechEnd::Finished => ChatStreamEvent::Done(DoneEvent {
                        message_id: stored.unwrap_or_default(),
                        session_id: self.session_id,
                        reply: filter.visible().to_string(),
                        emotion: filter.emotion().map(str::to_string),
                        timings: self.timings.clone(),
                    }),
                    SpeechEnd::ShuttingDown => shutting_down(stored),
                    SpeechEnd::Stopped => {
                        tracing::info!(
                            session_id = self.session_id,
                            "the voice was stopped after the text completed"
                        );
                        return;
                    }
                }
            }
        };
        self.place = None;
        let _ = self.send(last).await;
    }

    fn total_timeout(&self) -> LlmError {
        LlmError::TotalTimeout {
            provider: self.limits.provider,
            after: self.limits.total,
        }
    }

    /// Writes the reply so far to its row (inserting it the first time), flagged partial. A
    /// failure is logged and the reply goes on: the end of the turn tries again, and says so
    /// when that fails too.
    async fn save_draft(&mut self, filter: &ReplyFilter) {
        let reply = filter.visible();
        if reply.is_empty() {
            return;
        }
        let message = NewMessage {
            reasoning: filter.reasoning(),
            emotion: filter.emotion(),
            partial: true,
            ..NewMessage::new(self.session_id, Role::Assistant, reply)
        };
        let written = match self.draft.id {
            None => messages::add(&self.db, &message).await.map(|m| {
                self.draft.id = Some(m.id);
            }),
            Some(id) => messages::update_reply(&self.db, id, &message)
                .await
                .map(|_| ()),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, session_id = self.session_id, "saving the reply in progress failed");
        }
        self.draft.behind = false;
        self.draft.tokens = 0;
        self.draft.written = tokio::time::Instant::now();
    }

    async fn send(&self, event: ChatStreamEvent) -> Result<(), ()> {
        self.tx.send(event).await.map_err(|_| ())
    }

    /// Feeds visible text to the segmenter (and, on the `last` call, flushes it): each finished
    /// segment is a `sentence` event and goes to the voice at once.
    async fn segments(
        &mut self,
        speech: &mut Option<Speech>,
        visible: &str,
        emotion: Option<&str>,
        last: bool,
    ) -> Result<(), ()> {
        let Some(sp) = speech.as_mut() else {
            return Ok(());
        };
        let mut segments = sp.segmenter.push(visible);
        if last {
            segments.extend(sp.segmenter.finish());
        }
        for text in segments {
            self.timings.first_segment.get_or_insert(self.ms());
            let index = sp.start(text.clone(), self.received);
            self.send(ChatStreamEvent::Sentence(SentenceEvent {
                index,
                text,
                emotion: emotion.map(str::to_string),
            }))
            .await?;
        }
        Ok(())
    }

    /// Sends one segment's `audio` or `audio_error` event and notes the voice stages.
    async fn on_synthesis(
        &mut self,
        sp: &mut Speech,
        joined: Result<(tokio::task::Id, Synthesis), tokio::task::JoinError>,
    ) -> Result<(), ()> {
        let (index, event) = match joined {
            Ok((_, s)) => {
                let t = &mut self.timings;
                t.tts_request_started = Some(
                    t.tts_request_started
                        .map_or(s.started, |v| v.min(s.started)),
                );
                match s.result {
                    Ok(spoken) => {
                        t.tts_ready.get_or_insert(s.finished);
                        let event = ChatStreamEvent::Audio(AudioEvent {
                            index: s.index,
                            url: spoken.url,
                            provider: spoken.provider.name().into(),
                            duration_ms: spoken.duration_ms.unwrap_or(0),
                            timings: spoken.timings,
                        });
                        (s.index, event)
                    }
                    Err(e) => {
                        tracing::warn!(
                            code = e.code(),
                            index = s.index,
                            "a segment has no voice: {e}"
                        );
                        let event = ChatStreamEvent::AudioError(AudioErrorEvent {
                            index: s.index,
                            code: e.code().into(),
                            message: e.to_string(),
                        });
                        (s.index, event)
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a synthesis task failed");
                let Some(index) = sp.index_of(e.id()) else {
                    return Ok(());
                };
                let event = ChatStreamEvent::AudioError(AudioErrorEvent {
                    index,
                    code: "tts_failed".into(),
                    message: "The voice stopped unexpectedly; see the server log.".into(),
                });
                (index, event)
            }
        };
        let has_audio = matches!(event, ChatStreamEvent::Audio(_));
        let first_playable = sp.answer(index, has_audio);
        self.send(event).await?;
        if first_playable {
            metrics::first_audio(*self.timings.first_audio_sent.get_or_insert(self.ms()));
        }
        Ok(())
    }

    /// Waits for every segment's voice after the text is complete; the person stopping or the
    /// server shutting down meanwhile cancels the rest.
    async fn finish_speech(&mut self, mut sp: Speech) -> SpeechEnd {
        while !sp.tasks.is_empty() {
            let joined = tokio::select! {
                Some(joined) = sp.tasks.join_next_with_id() => joined,
                () = self.tx.closed() => return SpeechEnd::Stopped,
                () = self.shutdown.cancelled() => return SpeechEnd::ShuttingDown,
            };
            if self.on_synthesis(&mut sp, joined).await.is_err() {
                return SpeechEnd::Stopped;
            }
        }
        SpeechEnd::Finished
    }

    /// Completes the stored timings with the voice stages.
    async fn save_timings(&self, stored: Option<i64>) {
        let Some(id) = stored else { return };
        let Ok(json) = serde_json::to_string(&self.timings) else {
            return;
        };
        if let Err(e) = messages::merge_timings(&self.db, id, &json).await {
            tracing::warn!(error = %e, message_id = id, "saving the voice timings failed");
        }
    }

    /// Stores the reply (flagged partial unless it completed): rewrites its row when it was
    /// written while streaming, else adds it. `Err` when storing failed; the `error` event has
    /// then been sent.
    async fn store(&self, end: &End, filter: &ReplyFilter) -> Result<Option<i64>, ()> {
        let reply = filter.visible();
        let partial = !matches!(end, End::Complete);
        if reply.is_empty() && partial {
            // Nothing arrived, so nothing is lost; no empty message is stored.
            return Ok(None);
        }
        let timings = serde_json::to_string(&self.timings).ok();
        let message = NewMessage {
            reasoning: filter.reasoning(),
            emotion: filter.emotion(),
            partial,
            timings: timings.as_deref(),
            ..NewMessage::new(self.session_id, Role::Assistant, reply)
        };
        let stored = match self.draft.id {
            Some(id) => match messages::update_reply(&self.db, id, &message).await {
                Ok(true) => Ok(Some(id)),
                // Deleted while it was streaming: as the person wished, it stays deleted.
                Ok(false) => Ok(None),
                Err(e) => Err(e),
            },
            None => messages::add(&self.db, &message).await.map(|m| Some(m.id)),
        };
        match stored {
            Ok(id) => Ok(id),
            Err(e) => {
                tracing::error!(error = %e, session_id = self.session_id, "storing the reply failed");
                let _ = self
                    .send(ChatStreamEvent::Error(ErrorEvent {
                        code: "store_failed".into(),
                        message: "The reply could not be saved to the history; check the disk and the server log.".into(),
                        message_id: None,
                    }))
                    .await;
                Err(())
            }
        }
    }
}

/// The next finished synthesis of the turn; never resolves when the reply is not spoken.
async fn next_synthesis(
    speech: &mut Option<Speech>,
) -> Option<Result<(tokio::task::Id, Synthesis), tokio::task::JoinError>> {
    match speech {
        Some(sp) => sp.next().await,
        None => std::future::pending().await,
    }
}

/// Says a whole reply in one piece; the audio URL, or `None` when no voice could (logged).
pub async fn speak_whole(state: &AppState, reply: &str, voice: SpeakOptions) -> Option<String> {
    if reply.trim().is_empty() {
        return None;
    }
    match state.tts.speak(reply, voice).await {
        Ok(spoken) => Some(spoken.url),
        Err(e) => {
            tracing::warn!(code = e.code(), "the reply could not be spoken: {e}");
            None
        }
    }
}

/// The HTTP status for an `error` event's code, for the non-streaming endpoint.
pub fn status_for(code: &str) -> u16 {
    match code {
        "llm_timeout" => 504,
        "llm_rate_limited" => 429,
        "llm_busy" => 503,
        "store_failed" => 500,
        "shutting_down" => 503,
        _ => 502,
    }
}
