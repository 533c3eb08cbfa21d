//! Text cleaning, per provider, done inside the fallback loop so that each engine gets text made
//! for it. What a language model writes is not what a voice should say: reasoning in
//! `<think>…</think>`, emotion tags like `[happy]` (the avatar's, not the voice's), markdown
//! marks, and emoji that local engines spell out ("grinning face").

use crate::shared::config::TtsProvider;

#[cfg(test)]
mod props;

/// The text `provider` should receive for `raw`. Empty when nothing speakable is left.
///
/// Emoji and markdown marks go first: removing them later could assemble a `<think>` or an
/// emotion tag (`<th😀ink>`, `[ha*ppy*]`) that would then be read aloud.
pub fn sanitize(provider: TtsProvider, raw: &str) -> String {
    let text: String = raw.chars().filter(|c| !is_emoji(*c)).collect();
    let text = strip_markdown(&text);
    let text = strip_think(&text);
    let text = emotion_tags(&text, provider);
    collapse_whitespace(&text)
}

/// Removes `<think>…</think>` blocks, an unclosed `<think>` to the end, and reasoning that ends
/// with a lone `</think>` (some servers drop the opening tag).
fn strip_think(raw: &str) -> String {
    let lower = raw.to_ascii_lowercase();
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    if let Some(end) = lower.find("</think>") {
        if !lower[..end].contains("<think>") {
            at = end + "</think>".len();
        }
    }
    while let Some(start) = lower[at..].find("<think>").map(|i| i + at) {
        out.push_str(&raw[at..start]);
        match lower[start..].find("</think>") {
            Some(end) => at = start + end + "</think>".len(),
            None => return out,
        }
    }
    out.push_str(&raw[at..]);
    out
}

/// Drops markdown marks and keeps the words: links and images keep their text, code keeps its
/// content, emphasis, headings, quotes and list bullets lose their marks.
fn strip_markdown(text: &str) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut l = line.trim_start();
        if l.starts_with("```") {
            continue;
        }
        l = l
            .trim_start_matches('#')
            .trim_start_matches('>')
            .trim_start();
        for bullet in ["- ", "* ", "+ "] {
            if let Some(rest) = l.strip_prefix(bullet) {
                l = rest;
            }
        }
        lines.push(links_to_text(l));
    }
    let joined = lines.join("\n");
    let mut out = String::with_capacity(joined.len());
    let chars: Vec<char> = joined.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let next = chars.get(i + 1).copied();
        let drop = match c {
            '*' | '`' | '~' => true,
            // `snake_case` keeps its underscore; `_emphasis_` loses it.
            '_' => {
                !(prev.is_some_and(char::is_alphanumeric)
                    && next.is_some_and(char::is_alphanumeric))
            }
            _ => false,
        };
        if !drop {
            out.push(c);
        }
    }
    out
}

/// `[text](url)` and `![alt](url)` become `text` / `alt`.
fn links_to_text(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| i + open) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| i + close) else {
            break;
        };
        let before = rest[..open].strip_suffix('!').unwrap_or(&rest[..open]);
        out.push_str(before);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Emotion tags (`[happy]`, `[soft smile]`) steer the avatar. Fish Audio's voices understand the
/// same cue written as `(happy)`; every other engine would read the word aloud, so it goes.
fn emotion_tags(text: &str, provider: TtsProvider) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close)
                if close <= 32
                    && after[..close]
                        .chars()
                        .all(|c| c.is_alphabetic() || c == ' ' || c == '_' || c == '-') =>
            {
                if provider == TtsProvider::FishAudio && close > 0 {
                    out.push('(');
                    out.push_str(&after[..close]);
                    out.push_str(") ");
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Pictographs, dingbats, flags, and the joiners and selectors that build emoji sequences.
fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0xFE00..=0xFE0F | 0x200D
        | 0x20E3 | 0xE0020..=0xE007F | 0x2190..=0x21FF | 0x2300..=0x23FF)
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use TtsProvider::*;

    #[test]
    fn reasoning_is_never_spoken() {
        assert_eq!(sanitize(PiperLocal, "<think>plan</think>Hello."), "Hello.");
        assert_eq!(
            sanitize(PiperLocal, "Hi <THINK>a\nb</think> there"),
            "Hi there"
        );
        assert_eq!(sanitize(PiperLocal, "Hi <think>never closed"), "Hi");
        assert_eq!(sanitize(PiperLocal, "dropped opening</think> Yes."), "Yes.");
    }

    #[test]
    fn emotion_tags_go_or_become_fish_cues() {
        assert_eq!(
            sanitize(PiperLocal, "[happy] Hello [soft smile]there"),
            "Hello there"
        );
        assert_eq!(sanitize(FishAudio, "[happy] Hello"), "(happy) Hello");
        // Not a tag: numbers and long brackets stay.
        assert_eq!(sanitize(Espeak, "see [1] now"), "see [1] now");
    }

    #[test]
    fn markdown_marks_go_and_words_stay() {
        assert_eq!(
            sanitize(
                Elevenlabs,
                "# Title\n- **bold** and _it_ with `code` and [a link](http://x)"
            ),
            "Title bold and it with code and a link"
        );
        assert_eq!(sanitize(PiperLocal, "my_var stays"), "my_var stays");
        assert_eq!(
            sanitize(PiperLocal, "```rust\nlet x = 1;\n```"),
            "let x = 1;"
        );
    }

    #[test]
    fn emoji_are_not_spelled_out() {
        assert_eq!(sanitize(Espeak, "Great 😀👍🏽 job ❤️!"), "Great job !");
        assert_eq!(sanitize(PiperLocal, "🎉🎉"), "");
    }

    #[test]
    fn any_input_is_safe() {
        for s in [
            "[",
            "]",
            "[]",
            "<think>",
            "</think>",
            "[a](",
            "![](",
            "_",
            "日本語 [嬉しい]",
        ] {
            let _ = sanitize(FishAudio, s);
            let _ = sanitize(PiperLocal, s);
        }
        assert_eq!(sanitize(PiperLocal, "日本語 [嬉しい]"), "日本語");
    }
}
