//! The server's side of a chat turn: what it hands the turn from its state. The turn itself
//! (checks, prompt, streaming, voice, storage) is [`crate::turn`].

use super::state::AppState;
use crate::limits::places;
pub use crate::turn::{
    reply, segment, speak_whole, Finished, Turn, TurnError, DRAFT_EVERY, DRAFT_TOKENS,
    MAX_INPUT_CHARS, PARALLEL_SYNTHESES,
};
use crate::{
    shared::chat::ChatInput,
    turn::{self, Place, TurnDeps, TurnSettings},
};

/// What a turn needs, from the server's state and the settings as they are now.
pub fn deps(state: &AppState) -> TurnDeps {
    let cfg = state.config.get();
    let (gate, limit) = (state.gates.chat_turns.clone(), cfg.limits.chat_turns);
    TurnDeps {
        db: state.db.clone(),
        llm: state.llm.clone(),
        tts: state.tts.clone(),
        shutdown: state.shutdown.clone(),
        settings: TurnSettings {
            llm: cfg.llm.clone(),
            memory: cfg.memory.clone(),
            chat_turns: limit,
            user_name: cfg.user.name.clone(),
        },
        admit: Box::new(move || {
            gate.try_enter(places(limit))
                .map(|pass| Box::new(pass) as Place)
        }),
    }
}

/// Starts a turn in session `session_id` (see [`turn::start`]).
pub async fn start(state: &AppState, session_id: i64, input: ChatInput) -> Result<Turn, TurnError> {
    turn::start(deps(state), session_id, input).await
}
