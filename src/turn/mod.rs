//! [ssr] A conversation turn: one message from the person to the stored reply, spoken or not.
//!
//! [`start`] checks the input, takes a place among the turns under way, stores the user message
//! (before the model is called, so nothing typed is lost), builds the prompt (`prompt`) and
//! starts a task that streams the reply as [`ChatStreamEvent`]s. The task owns the turn: when
//! the receiver goes away (the person pressed Stop or closed the page) it stops the model and
//! stores what arrived as a partial reply, and so it does when the model fails midway, runs out
//! of time or the server shuts down. Both chat endpoints and the UI read the same events.
//!
//! The rules of the turn are a state machine without I/O (`state`: [`TurnState`]); the task
//! (`runner`) waits for the model, the voice, the timers and the receiver, and does what the
//! state says. The model's text goes through the [`reply::ReplyFilter`] (reasoning, emotion
//! tags); when the request asks for speech (`speak: true`), the visible text also goes through
//! the [`segment::Segmenter`]. Each finished segment is sent as a `sentence` event and handed
//! to the voice at once, while the model goes on writing; at most [`PARALLEL_SYNTHESES`]
//! segments are synthesised at a time, and each answer is an `audio` or `audio_error` event
//! with the segment's index (they may arrive out of order). The reply is stored as soon as its
//! text is complete; `done` follows the last voice event, and the stored timings are then
//! completed with the voice stages. Stop cancels the syntheses that have not finished.
//!
//! A turn uses the models (`llm`), the voices (`tts`), the history (`store`) and the wire types
//! (`shared`); the server hands it what it needs in [`TurnDeps`] and turns a [`TurnError`] into
//! an HTTP answer.

mod error;
mod persona;
mod prompt;
pub mod reply;
mod runner;
pub mod segment;
pub mod state;

pub use error::TurnError;
pub use state::TurnState;

use crate::{
    llm::{ChatRequest, LlmRegistry},
    shared::{
        chat::{AcceptedEvent, ChatInput, ChatStreamEvent, DoneEvent},
        config::{LlmConfig, MemoryConfig, TtsProvider},
        history::{Character, Role},
    },
    store::{characters, messages::NewMessage},
    tts::{SpeakOptions, TtsService},
};
use prompt::PromptParts;
use runner::{Runner, Voice};
use std::{sync::Arc, time::Duration};
use tokio::sync::{mpsc, oneshot};
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

/// A place among the turns under way, held until the turn's last event; what it is belongs to
/// whoever admits turns (the server's gate).
pub type Place = Box<dyn Send + Sync>;

/// What a turn needs from the server.
pub struct TurnDeps {
    pub db: crate::store::Db,
    pub llm: Arc<LlmRegistry>,
    pub tts: Arc<TtsService>,
    /// Cancelled when the server shuts down: the turn keeps what arrived and says so.
    pub shutdown: CancellationToken,
    pub settings: TurnSettings,
    /// Takes a place among the turns under way; `None` when every place is taken. Called once
    /// the input is checked, before anything is read or stored, so that a refused turn leaves
    /// no trace.
    pub admit: Box<dyn FnOnce() -> Option<Place> + Send>,
}

/// The settings a turn reads, as they were when it began.
pub struct TurnSettings {
    pub llm: LlmConfig,
    pub memory: MemoryConfig,
    /// `limits.chat_turns`, to say in the refusal when every place is taken.
    pub chat_turns: u32,
    /// `user.name`: what `{{user}}` in a character card becomes.
    pub user_name: String,
}

/// A running turn: its events, in order, ending with `done` or `error`.
pub struct Turn {
    pub session_id: i64,
    pub events: mpsc::Receiver<ChatStreamEvent>,
    /// The character's voice choices, for speaking the whole reply (`POST /api/chat`).
    pub voice: SpeakOptions,
    /// The failure behind the `error` event, for answers that carry a status.
    failure: oneshot::Receiver<TurnError>,
}

/// A turn read to its end: the `done` event and the id of the stored user message.
pub struct Finished {
    pub done: DoneEvent,
    pub user_message_id: Option<i64>,
}

impl Turn {
    /// Reads the events to the end of the turn: its `done`, or the failure its `error` event
    /// says.
    pub async fn reply(mut self) -> Result<Finished, TurnError> {
        let mut user_message_id = None;
        while let Some(event) = self.events.recv().await {
            match event {
                ChatStreamEvent::Accepted(a) => user_message_id = Some(a.message_id),
                ChatStreamEvent::Done(done) => {
                    return Ok(Finished {
                        done,
                        user_message_id,
                    })
                }
                // The failure is handed over before its event is sent.
                ChatStreamEvent::Error(_) => {
                    return Err(self.failure.try_recv().unwrap_or(TurnError::NoResult))
                }
                _ => {}
            }
        }
        Err(TurnError::NoResult)
    }
}

/// Checks and stores the message, then starts the reply. Errors here are the request's fault
/// or the database's; a model failure arrives later as an `error` event.
pub async fn start(deps: TurnDeps, session_id: i64, input: ChatInput) -> Result<Turn, TurnError> {
    let received = tokio::time::Instant::now();
    let text = input.text.trim();
    if text.is_empty() {
        return Err(TurnError::MissingText);
    }
    if text.chars().count() > MAX_INPUT_CHARS {
        return Err(TurnError::TextTooLong);
    }
    if session_id < 1 {
        return Err(TurnError::InvalidSessionId);
    }

    let TurnDeps {
        db,
        llm,
        tts,
        shutdown,
        settings,
        admit,
    } = deps;
    // A place among the turns under way, before anything is stored: a refused turn leaves no
    // trace. The runner holds it until the turn's last event, its voice included.
    let place = admit().ok_or(TurnError::Busy {
        limit: settings.chat_turns,
    })?;
    // Independent reads, on pooled connections at once. Recall runs before the message is
    // stored, so it can never find the message it was asked about.
    let max_history = i64::from(settings.memory.max_history);
    let speaker = async {
        let requested = input.character_id;
        let found = match db.character_for_session(session_id, requested).await? {
            Some(found) => found,
            // A new session: create it, then the same rule picks its speaker.
            None => {
                db.create_session_with_id(session_id).await?;
                db.character_for_session(session_id, requested)
                    .await?
                    .flatten()
            }
        };
        let character = match (found, requested) {
            (Some(c), _) => c,
            (None, Some(id)) => return Err(TurnError::NoSuchCharacter(id)),
            // The session's character was deleted: fall back to the default one.
            (None, None) => db
                .get_character(characters::DEFAULT_ID)
                .await?
                .ok_or(TurnError::NoDefaultCharacter)?,
        };
        // Written only from a JSON value (`server::cards`); anything else counts as no card.
        let card = db
            .card_json(character.id)
            .await?
            .flatten()
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok());
        Ok::<_, TurnError>((character, card))
    };
    let recall = async {
        if settings.memory.recall == 0 {
            return Vec::new();
        }
        let limit = i64::from(settings.memory.recall);
        // Recall is a help, not a requirement: a failed search leaves it out.
        db.recall(text, session_id, max_history, limit)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "recalling memories failed");
                Vec::new()
            })
    };
    let (character, history, memories) =
        tokio::join!(speaker, db.message_window(session_id, max_history), recall,);
    let ((character, card), history): ((Character, _), _) = (character?, history?);
    // Seeded by the conversation, so its random macros hold still from turn to turn.
    let persona = persona::Persona::new(
        &character,
        card.as_ref(),
        &settings.user_name,
        session_id.unsigned_abs(),
    );
    let recent: Vec<&str> = history
        .iter()
        .map(|m| m.text.as_str())
        .chain([text])
        .collect();
    let lore = persona.lore(&recent);
    let system_prompt = persona.system_prompt(&lore);
    let post_history = persona.post_history();
    let lore_names = (!lore.is_empty())
        .then(|| serde_json::to_string(&lore.names).ok())
        .flatten();
    let stored = db
        .add_message(&NewMessage {
            input: input.input,
            ..NewMessage::new(session_id, Role::User, text)
        })
        .await?;

    let voice = voice_of(&character);
    let (tx, rx) = mpsc::channel(256);
    let (failure_tx, failure_rx) = oneshot::channel();
    // The acknowledgement leads the stream; the channel is new and empty, so it cannot be full.
    let _ = tx.try_send(ChatStreamEvent::Accepted(AcceptedEvent {
        message_id: stored.id,
        session_id,
    }));
    let cfg = &settings.llm;
    let rules = state::Rules {
        session_id,
        speak: input.speak,
        provider: cfg.provider.label(),
        idle: Duration::from_secs(cfg.idle_timeout_s.max(1)),
        total: Duration::from_secs(cfg.total_timeout_s.max(1)),
    };
    let runner = Runner {
        state: TurnState::new(rules, ms_since(received)).with_lead(input.lead()),
        place: Some(place),
        db,
        session_id,
        received,
        tx,
        failure: Some(failure_tx),
        voice: Voice::new(tts, voice.clone()),
        shutdown,
        lore: lore_names,
    };
    let model = llm.get(cfg).map(|model| {
        let max_tokens = if input.speak {
            cfg.spoken_max_tokens
        } else {
            cfg.max_tokens
        };
        let context = model.context_tokens();
        let parts = PromptParts {
            system_prompt: &system_prompt,
            post_history: post_history.as_deref(),
            spoken: input.speak,
            memories: &memories,
            history: &history,
            user_text: text,
        };
        let request = ChatRequest {
            messages: prompt::build(&parts, context.saturating_sub(max_tokens.min(context / 2))),
            model: cfg.model.clone(),
            temperature: cfg.temperature,
            max_tokens,
        };
        (model, request)
    });
    tokio::spawn(runner.run(model));
    Ok(Turn {
        session_id,
        events: rx,
        voice,
        failure: failure_rx,
    })
}

fn ms_since(t: tokio::time::Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
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

/// Says a whole reply in one piece; the audio URL, or `None` when no voice could (logged).
pub async fn speak_whole(tts: &TtsService, reply: &str, voice: SpeakOptions) -> Option<String> {
    if reply.trim().is_empty() {
        return None;
    }
    match tts.speak(reply, voice).await {
        Ok(spoken) => Some(spoken.url),
        Err(e) => {
            tracing::warn!(code = e.code(), "the reply could not be spoken: {e}");
            None
        }
    }
}
