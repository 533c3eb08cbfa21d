//! What can go wrong with a language model, classified so that each failure says what to do.

use crate::shared::health::ProviderState;
use std::time::Duration;

/// A language-model failure. Messages name the provider and the fix, never a key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{provider} at {endpoint} does not answer ({reason}). Start it, or check the endpoint in Setup.")]
    Unreachable {
        provider: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error("{provider} refused the API key ({status}). Enter a valid key in Setup.")]
    Auth { provider: &'static str, status: u16 },
    #[error("{provider} has no model loaded. Load a model in {provider}, or pick one in Setup.")]
    NoModel { provider: &'static str },
    #[error("{provider} does not have the model \"{model}\" ({message}). Choose an available model in Setup.")]
    ModelNotFound {
        provider: &'static str,
        model: String,
        message: String,
    },
    #[error("{provider} is rate limiting requests ({message}). Wait a moment and try again.")]
    RateLimited {
        provider: &'static str,
        message: String,
    },
    #[error("{provider} could not be reached within {} ms. Check that it is running, or raise the connect timeout in Setup.", .after.as_millis())]
    ConnectTimeout {
        provider: &'static str,
        after: Duration,
    },
    #[error("{provider} sent no reply within {} ms. The model may still be loading or too slow; try again or raise the first-token timeout in Setup.", .after.as_millis())]
    FirstTokenTimeout {
        provider: &'static str,
        after: Duration,
    },
    #[error("{provider} sent nothing for {} s in the middle of the reply. What arrived is kept; try again, or raise the silence limit in Setup.", .after.as_secs())]
    IdleTimeout {
        provider: &'static str,
        after: Duration,
    },
    #[error("{provider} had not finished the reply after {} s. What arrived is kept; ask for something shorter, or raise the reply time limit in Setup.", .after.as_secs())]
    TotalTimeout {
        provider: &'static str,
        after: Duration,
    },
    #[error("{provider} rejected the request ({status}: {message}).")]
    Rejected {
        provider: &'static str,
        status: u16,
        message: String,
    },
    #[error("{provider} failed ({status}: {message}). Check its log; try again.")]
    Server {
        provider: &'static str,
        status: u16,
        message: String,
    },
    #[error("{provider} reported an error mid-reply: {message}")]
    MidStream {
        provider: &'static str,
        message: String,
    },
    #[error("{provider} ended the reply early, without saying it was finished. What arrived is kept; try again.")]
    Interrupted { provider: &'static str },
    #[error("{provider} sent something that is not a chat completion ({detail}). Check that the endpoint is an OpenAI-compatible /v1 URL.")]
    BadResponse {
        provider: &'static str,
        detail: String,
    },
    #[error("The built-in model file is missing ({path}). Run `make setup` to install it, or choose another language model in Setup.")]
    ModelFileMissing { path: String },
    #[error("The built-in model could not run: {0}")]
    Engine(String),
    #[error(
        "The built-in model already has {waiting} requests waiting for it. Try again in a moment."
    )]
    Busy { waiting: usize },
}

/// Two errors are the same when they say the same thing (used by tests of the stream parsers).
impl PartialEq for LlmError {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code() && self.to_string() == other.to_string()
    }
}

impl LlmError {
    /// The stable `code` of the API error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "llm_unreachable",
            Self::Auth { .. } => "llm_auth",
            Self::NoModel { .. } => "llm_no_model",
            Self::ModelNotFound { .. } => "llm_model_not_found",
            Self::RateLimited { .. } => "llm_rate_limited",
            Self::ConnectTimeout { .. }
            | Self::FirstTokenTimeout { .. }
            | Self::IdleTimeout { .. }
            | Self::TotalTimeout { .. } => "llm_timeout",
            Self::Rejected { .. } => "llm_rejected",
            Self::Server { .. } | Self::MidStream { .. } => "llm_error",
            Self::Interrupted { .. } => "llm_interrupted",
            Self::BadResponse { .. } => "llm_bad_response",
            Self::ModelFileMissing { .. } => "llm_model_missing",
            Self::Engine(_) => "llm_engine",
            Self::Busy { .. } => "llm_busy",
        }
    }

    /// The HTTP status a REST answer carries: 504 for timeouts, 429 when rate limited, 503 when
    /// the built-in model's queue is full, 502 for every other provider failure.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::ConnectTimeout { .. }
            | Self::FirstTokenTimeout { .. }
            | Self::IdleTimeout { .. }
            | Self::TotalTimeout { .. } => 504,
            Self::RateLimited { .. } => 429,
            Self::Busy { .. } => 503,
            _ => 502,
        }
    }

    /// The health state this failure means.
    pub fn state(&self) -> ProviderState {
        match self {
            Self::Unreachable { .. } | Self::ConnectTimeout { .. } => ProviderState::Unreachable,
            Self::Auth { .. } => ProviderState::Auth,
            Self::NoModel { .. } | Self::ModelNotFound { .. } => ProviderState::NoModel,
            Self::RateLimited { .. } => ProviderState::Quota,
            Self::ModelFileMissing { .. } => ProviderState::Misconfigured,
            _ => ProviderState::Error,
        }
    }
}
