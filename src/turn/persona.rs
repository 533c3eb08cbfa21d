//! Who speaks: a character's card turned into the stable part of the prompt.
//!
//! The usual order of character-card front ends: the main prompt, the lorebook entries placed
//! before the character, the description, the personality, the scenario, the entries placed
//! after the character, and the example dialogue (`mes_example`, blocks split on `<START>`).
//! The card's `post_history_instructions` come after the history. Macros are expanded with the
//! conversation's own seed, so a `{{random}}` says the same thing on every turn of it.

use crate::{
    cards::{
        fields::{self, DEFAULT_MAIN_PROMPT, EMOTION_LINE},
        lore::{self, Activated},
        macros::Macros,
    },
    llm::estimate_tokens,
    shared::{cards::LorebookFields, history::Character},
};
use serde_json::Value;

pub struct Persona {
    name: String,
    user: String,
    seed: u64,
    main: String,
    description: String,
    personality: String,
    scenario: String,
    examples: String,
    post_history: String,
    book: Option<LorebookFields>,
}

impl Persona {
    /// `card` is the character's stored card, `None` for one made before cards (its own prompt
    /// is then the whole of it). `seed` is the conversation's.
    pub fn new(character: &Character, card: Option<&Value>, user: &str, seed: u64) -> Self {
        let f = card.map(fields::fields_of).unwrap_or_default();
        let name = [&f.nickname, &f.name, &character.name]
            .into_iter()
            .find(|n| !n.trim().is_empty())
            .map(|n| n.trim().to_string())
            .unwrap_or_default();
        let mut main = match card {
            None => character.system_prompt.clone(),
            Some(_) if f.system_prompt.trim().is_empty() => DEFAULT_MAIN_PROMPT.to_string(),
            // `{{original}}` is the prompt the card replaces (the spec's way to extend it).
            Some(_) => replace_ci(&f.system_prompt, "{{original}}", DEFAULT_MAIN_PROMPT),
        };
        if card.is_some() && !main.contains("[happy]") {
            main = format!("{} {EMOTION_LINE}", main.trim_end());
        }
        Self {
            name,
            user: user.to_string(),
            seed,
            main,
            description: f.description,
            personality: f.personality,
            scenario: f.scenario,
            examples: f.mes_example,
            post_history: f.post_history_instructions,
            book: f.book,
        }
    }

    fn macros(&self) -> Macros<'_> {
        Macros {
            char: &self.name,
            user: &self.user,
            seed: self.seed,
        }
    }

    /// The lorebook entries woken by `recent` (oldest first, the new message last).
    pub fn lore(&self, recent: &[&str]) -> Activated {
        match &self.book {
            Some(book) => {
                let m = self.macros();
                lore::activate(book, recent, estimate_tokens, |t| m.expand(t))
            }
            None => Activated::default(),
        }
    }

    /// The system prompt with `lore` in its places.
    pub fn system_prompt(&self, lore: &Activated) -> String {
        let m = self.macros();
        let mut parts: Vec<String> = vec![m.expand(self.main.trim())];
        parts.extend(lore.before_char.iter().cloned());
        let description = m.expand(self.description.trim());
        if !description.is_empty() {
            parts.push(description);
        }
        let personality = m.expand(self.personality.trim());
        if !personality.is_empty() {
            parts.push(format!("{}'s personality: {personality}", self.name));
        }
        let scenario = m.expand(self.scenario.trim());
        if !scenario.is_empty() {
            parts.push(format!("Scenario: {scenario}"));
        }
        parts.extend(lore.after_char.iter().cloned());
        let examples = examples(&m.expand(&self.examples));
        if !examples.is_empty() {
            parts.push(format!(
                "Examples of how {} speaks:\n{}",
                self.name,
                examples.join("\n\n")
            ));
        }
        parts.retain(|p| !p.trim().is_empty());
        parts.join("\n\n")
    }

    /// `post_history_instructions`, expanded; `None` when the card has none.
    pub fn post_history(&self) -> Option<String> {
        let text = self.macros().expand(self.post_history.trim());
        (!text.trim().is_empty()).then_some(text)
    }
}

/// The example dialogue's blocks: `<START>` separates them (any case), empty ones dropped.
fn examples(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut blocks = Vec::new();
    let mut from = 0;
    let mut search = 0;
    while let Some(i) = lower[search..].find("<start>") {
        let at = search + i;
        blocks.push(text[from..at].trim().to_string());
        from = at + "<start>".len();
        search = from;
    }
    blocks.push(text[from..].trim().to_string());
    blocks.retain(|b| !b.is_empty());
    blocks
}

/// `text` with every `pattern` (ASCII, any case) replaced.
fn replace_ci(text: &str, pattern: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in lower.match_indices(pattern) {
        out.push_str(&text[last..i]);
        out.push_str(with);
        last = i + pattern.len();
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn character() -> Character {
        Character {
            id: 2,
            name: "Seraphina".into(),
            system_prompt: "unused with a card".into(),
            avatar_url: None,
            voice_id: None,
            tts_provider: None,
            personality_traits: vec![],
            has_portrait: false,
            greeting: 0,
            updated_ts: 0.0,
        }
    }

    fn card() -> Value {
        json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": {
            "name": "Seraphina",
            "description": "{{char}} guards the forest of <b>Eldoria</b>.",
            "personality": "caring, {{random:calm,calm}}",
            "scenario": "{{user}} wakes in her glade.",
            "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello.\n<start>\n{{user}}: Who are you?\n{{char}}: A guardian.",
            "system_prompt": "{{original}} Stay in character.{{// editors only}}",
            "post_history_instructions": "Reply as {{char}} only.",
            "character_book": {"entries": [
                {"keys": ["glade"], "content": "The glade heals {{user}}.", "insertion_order": 1, "name": "Glade"},
                {"keys": ["sword"], "content": "Never used.", "name": "Sword"},
                {"keys": [], "content": "Magic is rare.", "constant": true, "position": "after_char", "insertion_order": 5, "name": "Magic"}
            ]}
        }})
    }

    #[test]
    fn card_parts_come_in_the_usual_order() {
        let p = Persona::new(&character(), Some(&card()), "Mika", 9);
        let lore = p.lore(&["hello", "what is this glade?"]);
        assert_eq!(lore.names, ["Glade", "Magic"]);
        let s = p.system_prompt(&lore);
        let at = |needle: &str| {
            s.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from {s}"))
        };
        assert!(s.starts_with(
            "Write Seraphina's next reply in a fictional chat between Seraphina and Mika."
        ));
        assert!(at("Stay in character.") < at("The glade heals Mika."));
        assert!(at("The glade heals Mika.") < at("Seraphina guards the forest of <b>Eldoria</b>."));
        assert!(at("Eldoria") < at("Seraphina's personality: caring, calm"));
        assert!(at("personality") < at("Scenario: Mika wakes in her glade."));
        assert!(at("Scenario") < at("Magic is rare."));
        assert!(at("Magic is rare.") < at("Examples of how Seraphina speaks:\nMika: Hi\nSeraphina: Hello.\n\nMika: Who are you?"));
        assert!(!s.contains("Never used.") && !s.contains("editors only") && !s.contains("{{"));
        // The avatar's face needs the emotion tags; the card did not ask for them.
        assert!(at("Stay in character.") < at("Begin every reply with exactly one emotion tag"));
        assert_eq!(
            p.post_history().as_deref(),
            Some("Reply as Seraphina only.")
        );
    }

    #[test]
    fn a_character_without_a_card_keeps_its_own_prompt() {
        let p = Persona::new(&character(), None, "You", 1);
        let lore = p.lore(&["glade"]);
        assert!(lore.is_empty());
        assert_eq!(p.system_prompt(&lore), "unused with a card");
        assert_eq!(p.post_history(), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_prompt() {
        let mut c = card();
        c["data"]["personality"] = json!("{{random:a,b,c,d,e,f,g,h}} {{roll:d1000}}");
        let a = Persona::new(&character(), Some(&c), "You", 42);
        let b = Persona::new(&character(), Some(&c), "You", 42);
        let none = Activated::default();
        assert_eq!(a.system_prompt(&none), b.system_prompt(&none));
        assert_eq!(a.system_prompt(&none), a.system_prompt(&none));
    }
}
