//! The chat pipeline: one turn from the person's message to the stored reply.
//!
//! [`start`] checks the input, stores the user message (before the model is called, so nothing
//! typed is lost), builds the prompt and starts a task that streams the reply as
//! [`ChatStreamEvent`]s. The task owns the turn: when the receiver goes away (the person pressed
//! Stop or closed the page) it stops the model and stores what arrived as a partial reply, and so
//! it does when the model fails midway. Both chat endpoints and the UI read the same events.

mod prompt;
pub mod segment;
pub mod reply;

use super::{error::ApiError, state::AppState};
use crate::{
    llm::{ChatEvent, ChatRequest, LlmError},
    shared::{
        chat::{
            ChatInput, ChatStreamEvent, DoneEvent, ErrorEvent, StatusEvent, Timings, TokenEvent,
        },
        history::Role,
    },
    store::{characters, messages, messages::NewMessage, search, sessions},
};
use futures::StreamExt;
use prompt::PromptParts;
use reply::ReplyFilter;
use std::time::Instant;
use tokio::sync::mpsc;

/// The longest message accepted, in characters.
pub const MAX_INPUT_CHARS: usize = 8_000;
/// The character used when neither the request nor the session names one.
const DEFAULT_CHARACTER: i64 = 1;

/// A running turn: its events, in order, ending with `done` or `error`.
pub struct Turn {
    pub session_id: i64,
    pub events: mpsc::Receiver<ChatStreamEvent>,
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
    let session_character = sessions::ensure_for_chat(&state.db, session_id).await?;
    let character_id = input
        .character_id
        .or(session_character)
        .unwrap_or(DEFAULT_CHARACTER);
    let character = match characters::get(&state.db, character_id).await? {
        Some(c) => c,
        None if input.character_id.is_some() => {
            return Err(ApiError::not_found(format!(
                "There is no character {character_id}."
            )))
        }
        // The session's character was deleted: fall back to the default one.
        None => characters::get(&state.db, DEFAULT_CHARACTER)
            .await?
            .ok_or_else(|| ApiError::not_found("The default character is missing."))?,
    };

    let history =
        messages::recent(&state.db, session_id, i64::from(cfg.memory.max_history)).await?;
    let user = messages::add(&state.db, &NewMessage::new(session_id, Role::User, text)).await?;
    let recent_from = history.first().map_or(user.id, |m| m.id);
    let memories = if cfg.memory.recall == 0 {
        Vec::new()
    } else {
        // Recall is a help, not a requirement: a failed search leaves it out.
        search::recall(
            &state.db,
            text,
            session_id,
            recent_from,
            i64::from(cfg.memory.recall),
        )
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "recalling memories failed");
            Vec::new()
        })
    };

    let (tx, rx) = mpsc::channel(256);
    let runner = Runner {
        db: state.db.clone(),
        session_id,
        received,
        tx,
        timings: Timings::default(),
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
    })
}

struct Runner {
    db: sqlx::SqlitePool,
    session_id: i64,
    received: Instant,
    tx: mpsc::Sender<ChatStreamEvent>,
    timings: Timings,
}

/// How a reply ended.
enum End {
    Complete,
    /// The receiver went away: the person stopped it.
    Stopped,
    Failed(LlmError),
}

impl Runner {
    fn ms(&self) -> u64 {
        self.received.elapsed().as_millis() as u64
    }

    async fn fail_early(self, e: LlmError) {
        tracing::warn!(code = e.code(), error = %e, "the language model failed");
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
        let stream = tokio::select! {
            s = model.chat(request) => s,
            () = self.tx.closed() => return,
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return self.fail_early(e).await,
        };
        let mut filter = ReplyFilter::new();
        let end = loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = self.tx.closed() => break End::Stopped,
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
                    filter.add_reasoning(&r);
                    continue;
                }
                ChatEvent::Content(c) => {
                    self.timings.first_token.get_or_insert(self.ms());
                    filter.push(&c)
                }
            };
            if !visible.is_empty()
                && self
                    .send(ChatStreamEvent::Token(TokenEvent { text: visible }))
                    .await
                    .is_err()
            {
                break End::Stopped;
            }
        };
        // Stop the model before storing: nothing more is wanted.
        drop(stream);
        let tail = filter.finish();
        if !tail.is_empty() && matches!(end, End::Complete) {
            let _ = self
                .send(ChatStreamEvent::Token(TokenEvent { text: tail }))
                .await;
        }
        self.timings.response_complete = Some(self.ms());
        self.finish(end, &filter).await;
    }

    async fn send(&self, event: ChatStreamEvent) -> Result<(), ()> {
        self.tx.send(event).await.map_err(|_| ())
    }

    /// Stores the reply (flagged partial unless it completed) and sends the last event.
    async fn finish(self, end: End, filter: &ReplyFilter) {
        let reply = filter.visible();
        let partial = !matches!(end, End::Complete);
        let timings = serde_json::to_string(&self.timings).ok();
        let stored = if reply.is_empty() && partial {
            // Nothing arrived, so nothing is lost; no empty message is stored.
            None
        } else {
            let message = NewMessage {
                reasoning: filter.reasoning(),
                emotion: filter.emotion(),
                partial,
                timings: timings.as_deref(),
                ..NewMessage::new(self.session_id, Role::Assistant, reply)
            };
            match messages::add(&self.db, &message).await {
                Ok(m) => Some(m.id),
                Err(e) => {
                    tracing::error!(error = %e, session_id = self.session_id, "storing the reply failed");
                    let _ = self
                        .send(ChatStreamEvent::Error(ErrorEvent {
                            code: "store_failed".into(),
                            message: "The reply could not be saved to the history; check the disk and the server log.".into(),
                            message_id: None,
                        }))
                        .await;
                    return;
                }
            }
        };
        let last = match end {
            End::Stopped => {
                tracing::info!(
                    session_id = self.session_id,
                    "the reply was stopped; kept as partial"
                );
                return;
            }
            End::Failed(e) => {
                tracing::warn!(code = e.code(), error = %e, "the language model failed mid-reply");
                ChatStreamEvent::Error(ErrorEvent {
                    code: e.code().into(),
                    message: e.to_string(),
                    message_id: stored,
                })
            }
            End::Complete => ChatStreamEvent::Done(DoneEvent {
                message_id: stored.unwrap_or_default(),
                session_id: self.session_id,
                reply: reply.to_string(),
                emotion: filter.emotion().map(str::to_string),
                timings: self.timings.clone(),
            }),
        };
        let _ = self.send(last).await;
    }
}

/// The HTTP status for an `error` event's code, for the non-streaming endpoint.
pub fn status_for(code: &str) -> u16 {
    match code {
        "llm_timeout" => 504,
        "llm_rate_limited" => 429,
        "store_failed" => 500,
        _ => 502,
    }
}
