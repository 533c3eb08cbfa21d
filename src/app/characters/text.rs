//! [both] The Characters tab's small text rules: comma lists, greeting labels, shortened
//! previews, and the form's choices from a stored character.

use crate::shared::{cards::CharacterChoices, history::Character};

/// `text` on one line, cut to `max` characters with an ellipsis.
pub fn short(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

/// A comma-separated list as typed: trimmed items, empty ones dropped.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub fn join_list(items: &[String]) -> String {
    items.join(", ")
}

/// The label of greeting `index` in the greeting choice: which one it is and how it starts.
pub fn greeting_label(index: usize, text: &str) -> String {
    let which = if index == 0 {
        "First message".to_string()
    } else {
        format!("Alternate {index}")
    };
    let start = short(text, 60);
    if start.is_empty() {
        format!("{which} (empty)")
    } else {
        format!("{which}: {start}")
    }
}

/// The greeting, voice and avatar a stored character has, as the form edits them.
pub fn choices_of(c: &Character) -> CharacterChoices {
    CharacterChoices {
        greeting: c.greeting,
        tts_provider: c.tts_provider.clone().unwrap_or_default(),
        voice_id: c.voice_id.clone().unwrap_or_default(),
        avatar_url: c.avatar_url.clone().unwrap_or_default(),
    }
}

/// The greeting choice after the alternate at `removed` (1-based, as in the choice) goes: the
/// same greeting stays chosen, or the first message when it was the one removed.
pub fn greeting_after_removal(chosen: u32, removed: u32) -> u32 {
    match chosen.cmp(&removed) {
        std::cmp::Ordering::Less => chosen,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => chosen - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_flattens_and_cuts_on_characters() {
        assert_eq!(short("  a\n\n b  ", 10), "a b");
        assert_eq!(short("abcdef", 3), "abc…");
        assert_eq!(short("ab cdef", 3), "ab…");
        // Cut on characters, never inside one.
        assert_eq!(short("ミクミクミク", 2), "ミク…");
    }

    #[test]
    fn lists_split_on_commas_and_drop_empty_items() {
        assert_eq!(
            split_list(" fantasy, , healer ,"),
            vec!["fantasy", "healer"]
        );
        assert!(split_list(" , ").is_empty());
        assert_eq!(join_list(&split_list("a,b")), "a, b");
    }

    #[test]
    fn greeting_labels_say_which_and_how_it_starts() {
        assert_eq!(
            greeting_label(0, "Hello\nthere"),
            "First message: Hello there"
        );
        assert_eq!(greeting_label(2, ""), "Alternate 2 (empty)");
        let long = "x".repeat(100);
        assert_eq!(
            greeting_label(1, &long),
            format!("Alternate 1: {}…", "x".repeat(60))
        );
    }

    #[test]
    fn removing_an_alternate_keeps_the_chosen_greeting() {
        assert_eq!(greeting_after_removal(0, 1), 0);
        assert_eq!(greeting_after_removal(1, 2), 1);
        assert_eq!(greeting_after_removal(2, 2), 0);
        assert_eq!(greeting_after_removal(3, 1), 2);
    }
}
