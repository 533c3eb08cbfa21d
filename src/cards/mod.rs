//! Character cards (character-card-spec-v2/v3): what a card says and how it reaches the prompt.

pub mod fields;
pub mod lore;
pub mod macros;
