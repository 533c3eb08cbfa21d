//! Property tests of [`sanitize`]: what a voice is given never contains reasoning, emotion tags
//! (except Fish Audio's cues), markdown marks or emoji, and plain words pass through untouched.
//!
//! `sanitize` is not idempotent, and nothing relies on it being so (each provider's text is
//! cleaned once, from the raw reply): one pass can uncover what the next pass removes, e.g.
//! `- - x` → `- x` → `x`, `# # x` → `# x`, `[[happy]]` → `[]` → ``.

use super::{is_emoji, sanitize};
use crate::shared::config::TtsProvider;
use crate::testing::re;
use proptest::prelude::*;

fn provider() -> impl Strategy<Value = TtsProvider> {
    prop::sample::select(TtsProvider::ALL.to_vec())
}

/// Plain words: letters (no `Q`, which marks reasoning below), digits, sentence punctuation and
/// spaces. Nothing `sanitize` has a rule for.
fn plain() -> impl Strategy<Value = String> {
    re("[a-zA-PR-Z0-9 .,!?;:'\"]{0,16}")
}

/// Any text, and text made of exactly what `sanitize` has rules for.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        crate::testing::any_text(),
        prop::collection::vec(
            prop::sample::select(vec![
                "<think>",
                "</think>",
                "<THINK>",
                "</Think>",
                "<think",
                "think>",
                "[",
                "]",
                "(",
                ")",
                "](",
                "!",
                "[happy]",
                "[soft smile]",
                "*",
                "**",
                "_",
                "`",
                "```",
                "~",
                "#",
                ">",
                "- ",
                "* ",
                "+ ",
                "\n",
                "\r\n",
                " ",
                "\t",
                "word",
                "x_y",
                "日本",
                "😀",
                "👍🏽",
                "❤️",
                "\u{200D}",
                "\u{FE0F}",
                "🇯🇵",
                "→",
                "⌚",
                "\u{1F100}",
                "é",
            ]),
            0..24,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

proptest! {
    #![proptest_config(crate::testing::config())]

    /// Any text, any provider: no panic, and what comes out has no `*`, backtick or `~`, no emoji
    /// (nor their joiners and selectors), and single spaces only between words.
    #[test]
    fn any_text_comes_out_without_marks_emoji_or_stray_whitespace(
        provider in provider(),
        raw in nasty(),
    ) {
        let out = sanitize(provider, &raw);
        prop_assert!(!out.contains(['*', '`', '~']), "{out:?}");
        prop_assert!(!out.chars().any(is_emoji), "{out:?}");
        prop_assert_eq!(&collapse(&out), &out);
        prop_assert!(!out.contains(|c: char| c.is_whitespace() && c != ' '), "{out:?}");
    }

    /// Reasoning is never spoken: `<think>` blocks (any case), an unclosed `<think>` to the end,
    /// and reasoning before a lone `</think>` all go, and the visible text around them stays
    /// exactly (up to whitespace).
    #[test]
    fn reasoning_is_never_spoken_and_the_visible_text_stays(
        provider in provider(),
        orphan in prop::option::of((re("[QA-Z ]{0,10}"), any::<bool>())),
        first in plain(),
        blocks in prop::collection::vec(
            (re("[Qa-z <>/\n]{0,20}"), prop::sample::select(vec!["think", "THINK", "Think"]), plain()),
            0..5,
        ),
        unclosed in prop::option::of(re("[Qa-z \n]{0,20}")),
    ) {
        let mut raw = String::new();
        if let Some((reasoning, upper)) = &orphan {
            raw.push_str(&format!("Q{reasoning}{}", if *upper { "</THINK>" } else { "</think>" }));
        }
        let mut visible = first.clone();
        raw.push_str(&first);
        for (reasoning, tag, after) in &blocks {
            // A `</think>` inside the reasoning would close it early: keep the generator honest.
            let reasoning = reasoning.replace("</", "< /");
            raw.push_str(&format!("<{tag}>Q{reasoning}</{tag}>{after}"));
            visible.push_str(after);
        }
        if let Some(reasoning) = &unclosed {
            raw.push_str(&format!("<think>Q{reasoning}"));
        }
        let out = sanitize(provider, &raw);
        prop_assert!(!out.contains('Q'), "reasoning spoken: {raw:?} -> {out:?}");
        prop_assert_eq!(out, collapse(&visible), "from {:?}", raw);
    }

    /// Emotion tags are never spoken; Fish Audio gets each as its `(tag)` cue instead. The words
    /// around them stay.
    #[test]
    fn emotion_tags_go_or_become_fish_cues(
        provider in provider(),
        first in plain(),
        // `_` only inside a word: elsewhere it is markdown emphasis, removed before tags are read.
        tagged in prop::collection::vec(
            (prop_oneof![re("[a-z][a-z -]{0,15}"), re("[a-z]{1,6}_[a-z]{1,6}")], plain()),
            0..5,
        ),
    ) {
        let mut raw = first.clone();
        let mut plain = first.clone();
        let mut fish = first.clone();
        for (tag, after) in &tagged {
            raw.push_str(&format!("[{tag}]{after}"));
            plain.push_str(after);
            fish.push_str(&format!("({tag}) {after}"));
        }
        let want = if provider == TtsProvider::FishAudio { fish } else { plain };
        prop_assert_eq!(sanitize(provider, &raw), collapse(&want), "from {:?}", raw);
    }

    /// Markdown marks go and the words stay: headings, quotes, bullets, emphasis, code, strike,
    /// links and images.
    #[test]
    fn markdown_marks_go_and_the_words_stay(
        provider in provider(),
        lines in prop::collection::vec(
            (
                prop::sample::select(vec!["", "# ", "### ", "> ", "- ", "* ", "+ ", "  - "]),
                prop::collection::vec(
                    (
                        re("[a-zA-Z0-9]{1,8}"),
                        prop::sample::select(vec![
                            "{}", "**{}**", "*{}*", "_{}_", "__{}__", "`{}`", "~~{}~~",
                            "[{}](https://example.com/a_b)", "![{}](img.png)", "***{}***",
                        ]),
                    ),
                    1..6,
                ),
            ),
            1..5,
        ),
    ) {
        let mut raw = Vec::new();
        let mut words = Vec::new();
        for (prefix, marked) in &lines {
            let line: Vec<String> = marked.iter().map(|(w, how)| how.replace("{}", w)).collect();
            raw.push(format!("{prefix}{}", line.join(" ")));
            words.extend(marked.iter().map(|(w, _)| w.as_str()));
        }
        let raw = raw.join("\n");
        prop_assert_eq!(sanitize(provider, &raw), words.join(" "), "from {:?}", raw);
    }

    /// Text with nothing to clean reaches the voice as it is, up to whitespace.
    #[test]
    fn plain_text_passes_unchanged(
        provider in provider(),
        lines in prop::collection::vec(plain(), 0..6),
    ) {
        let raw = lines.join("\n");
        prop_assert_eq!(sanitize(provider, &raw), collapse(&raw));
    }
}

/// Removing emoji or markdown marks never assembles a `<think>` or an emotion tag that would then
/// be spoken.
#[test]
fn removing_marks_never_assembles_reasoning_or_a_tag() {
    for raw in ["<th😀ink>secret", "<th*ink>secret", "[ha😀ppy] hi"] {
        let out = sanitize(TtsProvider::PiperLocal, raw);
        assert!(
            !out.to_ascii_lowercase().contains("<think>") && !out.contains("[happy]"),
            "{raw:?} -> {out:?}"
        );
    }
}
