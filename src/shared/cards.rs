//! [both] Character cards as the Characters tab edits them: the fields of a V3 card
//! (character-card-spec-v3) and of its lorebook, typed. The server keeps the whole card JSON;
//! these are the parts a person edits, and saving them leaves every other field of the card as
//! it was.

use serde::{Deserialize, Serialize};

/// The editable fields of a card's `data`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CardFields {
    pub name: String,
    /// `{{char}}` says this name when it is set.
    pub nickname: String,
    pub description: String,
    pub personality: String,
    pub scenario: String,
    /// The greeting: the first message of a new conversation.
    pub first_mes: String,
    pub alternate_greetings: Vec<String>,
    /// Example dialogue, blocks separated by `<START>`.
    pub mes_example: String,
    /// Empty: the app's default main prompt. `{{original}}` inside it stands for that default.
    pub system_prompt: String,
    pub post_history_instructions: String,
    pub creator_notes: String,
    pub creator: String,
    pub character_version: String,
    pub tags: Vec<String>,
    pub book: Option<LorebookFields>,
}

/// A lorebook (`character_book`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LorebookFields {
    pub name: String,
    /// How many of the latest messages are searched for keys.
    pub scan_depth: u32,
    /// At most this many tokens of entries go into a prompt.
    pub token_budget: u32,
    pub recursive_scanning: bool,
    pub entries: Vec<LoreEntryFields>,
}

impl Default for LorebookFields {
    fn default() -> Self {
        Self {
            name: String::new(),
            scan_depth: DEFAULT_SCAN_DEPTH,
            token_budget: DEFAULT_TOKEN_BUDGET,
            recursive_scanning: false,
            entries: Vec::new(),
        }
    }
}

pub const DEFAULT_SCAN_DEPTH: u32 = 2;
pub const DEFAULT_TOKEN_BUDGET: u32 = 512;

/// One lorebook entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoreEntryFields {
    /// The entry's `id` in the card, when it has one: saving matches entries by it (else by
    /// position) so that an entry's unknown fields stay with it.
    pub id: Option<i64>,
    /// A label for people (`name`, or `comment` in older books).
    pub name: String,
    pub keys: Vec<String>,
    pub secondary_keys: Vec<String>,
    pub content: String,
    pub enabled: bool,
    /// Always in the prompt, keys or not.
    pub constant: bool,
    /// Needs a primary and a secondary key.
    pub selective: bool,
    pub case_sensitive: bool,
    /// Keys are regular expressions.
    pub use_regex: bool,
    /// Lower goes first.
    pub insertion_order: i64,
    pub position: LorePosition,
}

impl Default for LoreEntryFields {
    fn default() -> Self {
        Self {
            id: None,
            name: String::new(),
            keys: Vec::new(),
            secondary_keys: Vec::new(),
            content: String::new(),
            enabled: true,
            constant: false,
            selective: false,
            case_sensitive: false,
            use_regex: false,
            insertion_order: 100,
            position: LorePosition::BeforeChar,
        }
    }
}

/// Where an activated entry goes: before or after the character's description block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LorePosition {
    #[default]
    BeforeChar,
    AfterChar,
}

/// A character with its card, for the Characters tab's form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CharacterCard {
    pub character: super::history::Character,
    pub fields: CardFields,
}

/// What the Characters tab saves besides the card's fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CharacterChoices {
    /// 0: `first_mes`; n: the n-th alternate greeting.
    pub greeting: u32,
    /// Empty: the configured voice.
    pub tts_provider: String,
    pub voice_id: String,
    /// `/files/avatars/…`; empty: the configured default avatar.
    pub avatar_url: String,
}
