//! [ssr] Language models: one async trait ([`ChatModel`]), provider-neutral request and event
//! types, and the [`LlmRegistry`] that hands out the configured model.
//!
//! Two adapters implement it: [`openai::OpenAiCompatible`] speaks the OpenAI chat-completions
//! protocol to LM Studio, Ollama, OpenAI, vLLM or a llama.cpp server (one adapter, parameterised by
//! base URL and key), and [`embedded::Embedded`] runs SmolLM2 in-process so the app answers with no
//! server at all.

pub mod embedded;
mod error;
pub mod gguf;
pub mod openai;
mod registry;

pub use error::LlmError;
pub use registry::LlmRegistry;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::Serialize;

/// Who said a prompt message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptRole {
    System,
    User,
    Assistant,
}

impl PromptRole {
    /// The role's name in a chat template, as serde writes it for the OpenAI wire format.
    pub fn name(self) -> &'static str {
        crate::shared::wire_name::of(&self)
    }
}

/// One message of a prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PromptMessage {
    pub role: PromptRole,
    pub content: String,
}

impl PromptMessage {
    pub fn new(role: PromptRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// What to ask a model.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub messages: Vec<PromptMessage>,
    /// The model id; empty lets the server choose (LM Studio answers with the loaded model).
    pub model: String,
    /// 0 means greedy.
    pub temperature: f32,
    pub max_tokens: u32,
}

/// Why a reply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The provider filtered the reply.
    ContentFilter,
    /// Anything else the provider said (tool calls, which this app does not use).
    Other,
}

/// Token counts, where the provider reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Of the prompt tokens, how many the model found in its cache from an earlier request
    /// rather than read again, when it says.
    pub cached_tokens: Option<u32>,
}

/// One step of a streamed reply.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatEvent {
    /// The embedded model is being loaded (0.0–1.0), before the first token.
    Loading(f32),
    /// Visible text, possibly with inline `<think>` blocks and emotion tags still in it.
    Content(String),
    /// Reasoning the provider sent apart from the content (`reasoning_content`, `reasoning`).
    Reasoning(String),
    /// The reply is complete.
    Finished {
        reason: FinishReason,
        usage: Option<Usage>,
    },
}

pub type ChatStream = BoxStream<'static, Result<ChatEvent, LlmError>>;

/// A probe's answer: the same states as the health report.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub models: Vec<String>,
    pub detail: String,
}

/// A language model, whatever runs it.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Streams a reply. The stream ends after `Finished` or an error; dropping it cancels the
    /// generation.
    async fn chat(&self, request: ChatRequest) -> Result<ChatStream, LlmError>;

    /// The model ids the provider offers.
    async fn list_models(&self) -> Result<Vec<String>, LlmError>;

    /// A cheap check that the provider answers and has a model: no generation.
    async fn probe(&self) -> Result<Probe, LlmError>;

    /// How many tokens fit in one request (prompt and reply), as far as the app knows.
    fn context_tokens(&self) -> u32;
}

/// A rough token count for budgeting prompts: about 3.5 characters per token for English text
/// with the tokenizers in use; rounded up so the budget errs on the safe side.
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count() as u32;
    // Each message also costs its role and separator tokens.
    chars.div_ceil(3) + 4
}
