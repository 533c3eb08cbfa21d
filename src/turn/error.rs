//! Why a turn was refused, or why it ended without a reply.

use super::MAX_INPUT_CHARS;
use crate::{llm::LlmError, store::StoreError};

/// A turn's failure. [`start`](super::start) refuses with the first group (nothing is stored,
/// or the database failed); a turn under way ends with the second, sent as its `error` event
/// (and kept for answers that need a status, see [`Turn::reply`](super::Turn::reply)). The HTTP
/// statuses are the server's business (`server::error`).
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("Type a message first: `text` is required.")]
    MissingText,
    #[error("A message can have at most {} characters.", MAX_INPUT_CHARS)]
    TextTooLong,
    #[error("session_id must be a positive number.")]
    InvalidSessionId,
    #[error("There is no character {0}.")]
    NoSuchCharacter(i64),
    #[error("The default character is missing.")]
    NoDefaultCharacter,
    /// Every place among the turns under way (`limits.chat_turns`) is taken.
    #[error("The server is already answering {limit} messages; try again in a moment.")]
    Busy { limit: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The model failed, or ran out of time, before or during the reply.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The reply arrived but could not be written to the history.
    #[error("The reply could not be saved to the history; check the disk and the server log.")]
    StoreFailed,
    /// The server began to shut down; what arrived of the reply is kept.
    #[error("The server is shutting down; what arrived of the reply is kept. Send again once it is back.")]
    ShuttingDown,
    /// The turn's events ended with neither `done` nor `error` (its task died).
    #[error("The reply ended without a result; see the server log.")]
    NoResult,
}

impl TurnError {
    /// The stable `code` of the `error` event or the API error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingText => "missing_text",
            Self::TextTooLong => "text_too_long",
            Self::InvalidSessionId => "invalid_session_id",
            Self::NoSuchCharacter(_) | Self::NoDefaultCharacter => "not_found",
            Self::Busy { .. } => "busy_chat",
            Self::Store(_) => "database_error",
            Self::Llm(e) => e.code(),
            Self::StoreFailed => "store_failed",
            Self::ShuttingDown => "shutting_down",
            Self::NoResult => "internal",
        }
    }
}
