//! Cuts the visible reply into segments the voice can say while the model is still writing.
//!
//! It is fed the text the person sees (after [`super::reply::ReplyFilter`] has taken out
//! `<think>` blocks, reasoning and emotion tags), chunk by chunk as it streams, and hands back
//! each segment as soon as its end is certain. A segment ends:
//! - after `.`, `!`, `?` or `…` (and any closing quotes or brackets) followed by whitespace;
//! - right after the CJK `。！？` (and any closing bracket), which are not followed by spaces;
//! - at a newline;
//! - at a comma, semicolon or colon followed by whitespace once the segment has
//!   [`SOFT_BREAK_CHARS`] characters (the CJK `，、；：` after [`CJK_SOFT_BREAK_CHARS`]), so a long
//!   first sentence does not hold back the first audio;
//! - at the last space before [`MAX_SEGMENT_CHARS`] when the text has no punctuation at all.
//!
//! It does not end a segment after abbreviations (`Mr.`, `Dr.`, `e.g.`, `etc.`, single initials),
//! inside numbers (`3.14`, `1,000`), URLs (`https://example.com/a.b`), or at an ellipsis that
//! the sentence goes on after (`and so... we left`). When the next characters decide (a `.` at
//! the very end of what has arrived), it waits for the next chunk; [`Segmenter::finish`] says the
//! rest.

/// A comma, semicolon or colon ends a segment once it has this many characters.
///
/// Speech runs at about 15 characters a second, so 40 characters are 2.5–3 s of audio: long
/// enough to cover the synthesis of the next segment (Piper needs about 0.15 s for 8 words, cloud
/// voices 0.15–0.5 s), so playback does not stall between segments, and long enough for a natural
/// phrase (voices put a falling tone and a pause at every segment end, which sounds choppy on
/// 2–3 word pieces). At 30 tokens/s a model writes 40 characters in about 0.3 s, so a long first
/// sentence still starts speaking early instead of waiting for its full stop.
pub const SOFT_BREAK_CHARS: usize = 40;
/// CJK characters carry about a word each: the same 2–3 s of speech is about 20 of them.
pub const CJK_SOFT_BREAK_CHARS: usize = 20;
/// Text with no punctuation at all (a list the model wrote with spaces) is cut at a space here,
/// so the voice does not wait for the whole reply.
pub const MAX_SEGMENT_CHARS: usize = 240;

/// Words that end with a period but do not end a sentence (compared without case).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "approx", "mt", "ft", "lt",
    "col", "gen", "capt", "sgt", "rev", "fig",
];

/// Characters that close a sentence together with its punctuation: `"Stop!" He` ends after `"`.
const CLOSERS: &[char] = &[
    '"', '\'', '”', '’', ')', ']', '»', '」', '』', '）', '》', '】',
];

#[derive(Debug, Default)]
pub struct Segmenter {
    buf: String,
    /// Where scanning resumes: everything before it has been decided as "no boundary".
    scan: usize,
    /// Only sentence ends count (no soft breaks): for finding where the last sentence ends.
    sentences_only: bool,
}

/// The length in bytes of the part of `text` that ends with its last complete sentence (a `.`,
/// `!`, `?`, `…`, a CJK full stop or a newline, by the same rules as segments); 0 when no
/// sentence is complete. A reply cut by the token limit keeps this much.
pub fn complete_sentences(text: &str) -> usize {
    let mut s = Segmenter {
        buf: text.to_string(),
        scan: 0,
        sentences_only: true,
    };
    let mut end = 0;
    while let Step::Cut(at) = s.next_cut(true) {
        end = at;
        s.scan = at;
    }
    end
}

/// What the scan found.
enum Step {
    /// A segment ends at this byte offset.
    Cut(usize),
    /// Nothing certain yet; scanning resumes at this offset when more text arrives.
    Wait(usize),
}

impl Segmenter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next chunk of visible text and returns the segments it completed, in order.
    pub fn push(&mut self, chunk: &str) -> Vec<String> {
        self.buf.push_str(chunk);
        self.drain(false)
    }

    /// The end of a reply that was cut short: the segments up to its last complete sentence;
    /// the unfinished sentence after it is never said. When no sentence of the whole reply ended
    /// (`any_sentence` false), everything.
    pub fn finish_complete(&mut self, any_sentence: bool) -> Vec<String> {
        if any_sentence {
            let keep = complete_sentences(&self.buf);
            self.buf.truncate(keep);
            self.scan = 0;
        }
        self.finish()
    }

    /// The end of the reply: what waited for more text, and whatever is left (if it says
    /// anything).
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = self.drain(true);
        let rest = std::mem::take(&mut self.buf);
        self.scan = 0;
        out.extend(clean(&rest));
        out
    }

    fn drain(&mut self, at_end: bool) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match self.next_cut(at_end) {
                Step::Cut(end) => {
                    // A boundary found only past MAX_SEGMENT_CHARS (the text arrived in one big
                    // chunk) is cut where smaller chunks would have been: at the overlong cut.
                    let end = match self.overlong() {
                        Some(at)
                            if self.buf[..end].trim_start().chars().count() > MAX_SEGMENT_CHARS =>
                        {
                            at
                        }
                        _ => end,
                    };
                    let piece: String = self.buf.drain(..end).collect();
                    self.scan = 0;
                    out.extend(clean(&piece));
                }
                Step::Wait(at) => {
                    self.scan = at;
                    if let Some(end) = self.overlong() {
                        let piece: String = self.buf.drain(..end).collect();
                        self.scan = 0;
                        out.extend(clean(&piece));
                        continue;
                    }
                    return out;
                }
            }
        }
    }

    fn next_cut(&self, at_end: bool) -> Step {
        let buf = self.buf.as_str();
        let mut i = self.scan;
        while let Some(c) = buf[i..].chars().next() {
            let after = i + c.len_utf8();
            match c {
                '\n' => return Step::Cut(after),
                '。' | '！' | '？' => {
                    // Wait only to see whether a closing bracket (`」`) belongs to the sentence.
                    let end = absorb_closers(buf, after);
                    return if end == buf.len() && !at_end {
                        Step::Wait(i)
                    } else {
                        Step::Cut(end)
                    };
                }
                '.' | '!' | '?' | '…' => {
                    let run_end = run_of(buf, i, |c| matches!(c, '.' | '!' | '?' | '…'));
                    let end = absorb_closers(buf, run_end);
                    let Some(next) = buf[end..].chars().next() else {
                        return if at_end {
                            Step::Cut(end)
                        } else {
                            Step::Wait(i)
                        };
                    };
                    if next.is_whitespace() {
                        let run = &buf[i..run_end];
                        if run == "." && is_abbreviation(word_before(buf, i)) {
                            i = run_end;
                            continue;
                        }
                        if run.chars().count() > 1 && run.chars().all(|c| c == '.' || c == '…')
                            || run == "…"
                        {
                            // An ellipsis: a sentence that goes on in lower case is one sentence.
                            match buf[end..].trim_start().chars().next() {
                                None if !at_end => return Step::Wait(i),
                                Some(n) if n.is_lowercase() => {
                                    i = run_end;
                                    continue;
                                }
                                _ => {}
                            }
                        }
                        return Step::Cut(end);
                    }
                    // `3.14`, `example.com`, `e.g.x`: not an end.
                    i = run_end;
                    continue;
                }
                ',' | ';' | ':'
                    if !self.sentences_only && chars_before(buf, i) >= SOFT_BREAK_CHARS =>
                {
                    match buf[after..].chars().next() {
                        None if at_end => return Step::Cut(after),
                        None => return Step::Wait(i),
                        Some(n) if n.is_whitespace() => return Step::Cut(after),
                        // `1,000`, `https://`, `10:30`
                        Some(_) => {}
                    }
                }
                '，' | '、' | '；' | '：'
                    if !self.sentences_only && chars_before(buf, i) >= CJK_SOFT_BREAK_CHARS =>
                {
                    return Step::Cut(after)
                }
                _ => {}
            }
            i = after;
        }
        Step::Wait(buf.len())
    }

    /// Where to cut text that has run past [`MAX_SEGMENT_CHARS`] without a boundary.
    fn overlong(&self) -> Option<usize> {
        let start = self.buf.len() - self.buf.trim_start().len();
        let (limit, next) = self.buf[start..].char_indices().nth(MAX_SEGMENT_CHARS)?;
        // A space right after the limit ends a piece of exactly MAX_SEGMENT_CHARS: cut after it,
        // as the whole text would have been cut at the sentence end before it.
        let reach = if next.is_whitespace() {
            next.len_utf8()
        } else {
            0
        };
        let head = &self.buf[..start + limit + reach];
        head.char_indices()
            .rev()
            .find(|&(_, c)| c.is_whitespace())
            .filter(|&(at, _)| at > start)
            // After the space, which may be wider than a byte (U+3000, U+00A0).
            .map(|(at, space)| at + space.len_utf8())
            // One enormous word: cut it at the limit rather than wait for ever.
            .or(Some(start + limit))
    }
}

/// The trimmed segment, if it has anything to say (a lone `...` or `—` has not).
fn clean(piece: &str) -> Option<String> {
    let t = piece.trim();
    t.chars().any(char::is_alphanumeric).then(|| t.to_string())
}

/// The end of the run of characters matching `f` that starts at `i`.
fn run_of(buf: &str, i: usize, f: impl Fn(char) -> bool) -> usize {
    buf[i..]
        .char_indices()
        .find(|&(_, c)| !f(c))
        .map_or(buf.len(), |(j, _)| i + j)
}

fn absorb_closers(buf: &str, i: usize) -> usize {
    run_of(buf, i, |c| CLOSERS.contains(&c))
}

/// The characters of the segment before byte `i`, leading whitespace not counted.
fn chars_before(buf: &str, i: usize) -> usize {
    buf[..i].trim_start().chars().count()
}

/// The word that ends at byte `i`, without opening quotes or brackets.
fn word_before(buf: &str, i: usize) -> &str {
    let head = &buf[..i];
    let start = head
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace())
        .map_or(0, |(j, space)| j + space.len_utf8());
    head[start..].trim_start_matches(['(', '[', '"', '\'', '“', '‘', '«'])
}

/// `Mr`, `etc`, a single capital (`J. K. Rowling`), or dotted short letters (`e.g`, `i.e`,
/// `p.m`, `U.S`, `Ph.D`). Dotted longer words (`example.com`) are ordinary words.
fn is_abbreviation(word: &str) -> bool {
    let mut chars = word.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return c.is_uppercase();
    }
    if word.contains('.') {
        return word.split('.').all(|p| {
            !p.is_empty() && p.chars().count() <= 2 && p.chars().all(char::is_alphabetic)
        });
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments of `text` fed in one piece.
    fn whole(text: &str) -> Vec<String> {
        feed(&[text])
    }

    fn feed(chunks: &[&str]) -> Vec<String> {
        let mut s = Segmenter::new();
        let mut out: Vec<String> = chunks.iter().flat_map(|c| s.push(c)).collect();
        out.extend(s.finish());
        out
    }

    /// The same segments whatever the chunking: split in two at every char boundary, and one
    /// character at a time.
    fn check(text: &str, want: &[&str]) {
        assert_eq!(whole(text), want, "whole: {text:?}");
        for (cut, _) in text.char_indices().skip(1) {
            assert_eq!(
                feed(&[&text[..cut], &text[cut..]]),
                want,
                "cut at byte {cut}: {:?} | {:?}",
                &text[..cut],
                &text[cut..]
            );
        }
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(feed(&refs), want, "char by char: {text:?}");
    }

    #[test]
    fn sentence_punctuation_ends_segments() {
        check(
            "Hello there! How are you? I am fine. Really…  Yes.",
            &[
                "Hello there!",
                "How are you?",
                "I am fine.",
                "Really…",
                "Yes.",
            ],
        );
    }

    #[test]
    fn a_segment_is_given_as_soon_as_its_end_is_certain() {
        let mut s = Segmenter::new();
        assert!(s.push("Hi there").is_empty());
        // A period at the very end could be `3.` of `3.14`: wait for the next character.
        assert!(s.push(".").is_empty());
        assert_eq!(s.push(" How"), ["Hi there."]);
        assert!(s.push(" are you?").is_empty());
        assert_eq!(s.push("\n"), ["How are you?"]);
        assert!(s.finish().is_empty());
        // CJK punctuation needs no lookahead.
        let mut s = Segmenter::new();
        assert_eq!(s.push("こんにちは。元気"), ["こんにちは。"]);
        assert_eq!(s.finish(), ["元気"]);
    }

    #[test]
    fn cjk_sentences_end_without_spaces() {
        check(
            "今日はいい天気ですね。散歩しましょう！本当？「はい。」では",
            &[
                "今日はいい天気ですね。",
                "散歩しましょう！",
                "本当？",
                "「はい。」",
                "では",
            ],
        );
    }

    #[test]
    fn newlines_end_segments_and_blank_lines_say_nothing() {
        check(
            "First line\n\nSecond line\n- third",
            &["First line", "Second line", "- third"],
        );
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        check(
            "Mr. Smith met Dr. Jones, e.g. at St. Mary's. Then J. K. Rowling arrived, i.e. later, etc. and so on. Cats vs. dogs? Done.",
            &[
                "Mr. Smith met Dr. Jones, e.g. at St. Mary's.",
                "Then J. K. Rowling arrived, i.e. later, etc. and so on.",
                "Cats vs. dogs?",
                "Done.",
            ],
        );
        check("It is 5 p.m. now. Ok.", &["It is 5 p.m. now.", "Ok."]);
    }

    #[test]
    fn numbers_urls_and_dotted_names_stay_whole() {
        check(
            "Pi is 3.14 and a list has 1,000 items. See https://example.com/a.b?x=1 for more. Visit example.com. Bye.",
            &[
                "Pi is 3.14 and a list has 1,000 items.",
                "See https://example.com/a.b?x=1 for more.",
                "Visit example.com.",
                "Bye.",
            ],
        );
    }

    #[test]
    fn an_ellipsis_followed_by_lower_case_goes_on() {
        check(
            "I was thinking... maybe we could go. Well... I don't know… perhaps not.",
            &[
                "I was thinking... maybe we could go.",
                "Well...",
                "I don't know… perhaps not.",
            ],
        );
    }

    #[test]
    fn closing_quotes_and_brackets_stay_with_their_sentence() {
        check(
            "She said \"Stop!\" Then (quietly.) we left?! Yes",
            &["She said \"Stop!\"", "Then (quietly.)", "we left?!", "Yes"],
        );
    }

    #[test]
    fn commas_end_a_segment_only_once_it_is_long_enough() {
        // Under the threshold: the comma is not a break.
        check("Oh, hi, you. Yes", &["Oh, hi, you.", "Yes"]);
        let long = "When I was walking through the park this morning, I saw a heron; it was tall: really tall.";
        check(
            long,
            &[
                "When I was walking through the park this morning,",
                "I saw a heron; it was tall: really tall.",
            ],
        );
        // A soft break is not taken inside a number or a URL.
        check(
            "The population of the little town grew to 12,000 people by https://x.org/a:b then, ok",
            &[
                "The population of the little town grew to 12,000 people by https://x.org/a:b then,",
                "ok",
            ],
        );
        check(
            "今日はとても良い天気なので公園に散歩に行きました、そして鳥を見ました。",
            &[
                "今日はとても良い天気なので公園に散歩に行きました、",
                "そして鳥を見ました。",
            ],
        );
    }

    #[test]
    fn the_first_segment_comes_early_in_a_long_sentence() {
        let mut s = Segmenter::new();
        let mut first_at = None;
        let text = "Well, I have been thinking about what you said yesterday, and I believe you are right about the garden.";
        for (n, word) in text.split_inclusive(' ').enumerate() {
            if !s.push(word).is_empty() && first_at.is_none() {
                first_at = Some(n);
            }
        }
        assert!(
            first_at.is_some_and(|n| n < 12),
            "first segment after {first_at:?} words"
        );
    }

    #[test]
    fn text_without_punctuation_is_cut_at_a_space() {
        let text = "word ".repeat(120);
        let segments = whole(&text);
        assert!(segments.len() >= 2, "{segments:?}");
        for s in &segments {
            assert!(s.chars().count() <= MAX_SEGMENT_CHARS, "{s}");
            assert!(!s.contains("wor ") && s.ends_with("word"), "{s}");
        }
        assert_eq!(segments.join(" "), text.trim());
        let blob = "x".repeat(MAX_SEGMENT_CHARS * 2 + 5);
        assert_eq!(whole(&blob).concat(), blob);
    }

    #[test]
    fn the_last_complete_sentence_is_found_by_the_segment_rules() {
        fn cut(t: &str) -> &str {
            &t[..complete_sentences(t)]
        }
        assert_eq!(cut("Hello there. I was going to"), "Hello there.");
        assert_eq!(cut("One! Two? Three, and then four"), "One! Two?");
        assert_eq!(cut("Ask Dr. Who, and e.g. the"), "");
        assert_eq!(cut("Pi is 3.14 or so. It is"), "Pi is 3.14 or so.");
        assert_eq!(cut("Done."), "Done.");
        assert_eq!(cut("a line\nand more"), "a line\n");
        assert_eq!(cut("元気です。でも"), "元気です。");
        // A long clause with commas is not a sentence.
        assert_eq!(cut(&format!("{}, and so on", "word ".repeat(20))), "");
    }

    #[test]
    fn a_cut_reply_says_its_complete_sentences_and_not_the_rest() {
        let mut s = Segmenter::new();
        let text = "I love tea. It is warm and I drink it every morning with";
        let mut said = s.push(text);
        said.extend(s.finish_complete(complete_sentences(text) > 0));
        assert_eq!(said, ["I love tea."]);
        // A long clause was already said at its comma; the unfinished rest is not.
        let mut s = Segmenter::new();
        let text = "It is fine. When the morning comes and the birds begin, I walk to the";
        let mut said = s.push(text);
        said.extend(s.finish_complete(complete_sentences(text) > 0));
        assert_eq!(
            said,
            ["It is fine.", "When the morning comes and the birds begin,"]
        );
        // With no complete sentence anywhere, everything is said.
        let mut s = Segmenter::new();
        let mut said = s.push("just words");
        said.extend(s.finish_complete(complete_sentences("just words") > 0));
        assert_eq!(said, ["just words"]);
    }

    #[test]
    fn the_rest_is_flushed_at_the_end_and_punctuation_alone_says_nothing() {
        check("no full stop at the end", &["no full stop at the end"]);
        check("Ends with a dot.", &["Ends with a dot."]);
        check("Really...", &["Really..."]);
        check("... — !", &[]);
        check("", &[]);
        check("   ", &[]);
        check("Hi. ...", &["Hi."]);
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::config())]

        /// However the text is chunked, the segments are the same, and nothing is lost.
        #[test]
        fn chunking_never_changes_the_segments(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "Hello", "there", "Mr.", "Smith", "3.14", "1,000", "e.g.", "okay.", "why?",
                    "wow!", "so...", "well…", "and,", "then;", "note:", "J.", "\n", "本当。",
                    "(yes.)", "\"no!\"", "https://a.b/c", "tall", "trees", "by", "the", "river",
                ]),
                0..60,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let text = words.join(" ");
            let mut bounds: Vec<usize> = cuts
                .into_iter()
                .map(|c| c.min(text.len()))
                .filter(|&c| text.is_char_boundary(c))
                .collect();
            bounds.push(0);
            bounds.push(text.len());
            bounds.sort_unstable();
            bounds.dedup();
            let chunks: Vec<&str> = bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect();
            let chunked = feed(&chunks);
            proptest::prop_assert_eq!(&chunked, &whole(&text));
            let squash = |s: &str| s.split_whitespace().collect::<String>();
            let kept: String = chunked.concat();
            // Only pieces with nothing to say (lone punctuation) may be dropped.
            let said: String = squash(&text).chars().filter(|c| c.is_alphanumeric()).collect();
            let kept: String = squash(&kept).chars().filter(|c| c.is_alphanumeric()).collect();
            proptest::prop_assert_eq!(kept, said);
        }
    }

    /// A reply's visible text: anything, text made of what the segmenter has rules for, and
    /// long runs without a boundary that end in one late.
    fn reply_text() -> impl proptest::strategy::Strategy<Value = String> {
        use crate::testing::re;
        use proptest::prelude::*;
        prop_oneof![
            crate::testing::any_text(),
            prop::collection::vec(
                prop::sample::select(vec![
                    "Hello",
                    "there",
                    "word",
                    "x",
                    " ",
                    "  ",
                    "\n",
                    "\t",
                    "\u{3000}",
                    ".",
                    "..",
                    "...",
                    "…",
                    "!",
                    "?",
                    "?!",
                    ",",
                    ";",
                    ":",
                    "。",
                    "！",
                    "？",
                    "，",
                    "、",
                    "；",
                    "：",
                    "「",
                    "」",
                    "\"",
                    "”",
                    "’",
                    ")",
                    "(",
                    "]",
                    "Mr",
                    "Dr.",
                    "e.g.",
                    "i.e.",
                    "J.",
                    "3",
                    "14",
                    "1,000",
                    "10:30",
                    "https://a.b/c.d",
                    "日本",
                    "本当",
                    "and",
                    "so",
                    "A",
                    "é",
                    "🙂",
                    "—",
                ]),
                0..80,
            )
            .prop_map(|parts| parts.concat()),
            (
                re("[a-zA-Z]{1,12}( [a-z]{1,12}){15,60}"),
                prop::sample::select(vec![
                    ".",
                    ". Next one.",
                    "... and on.",
                    "... Then.",
                    ", more",
                    "; more",
                    "。続き",
                    "! ",
                    "?\n",
                    "",
                    "」",
                ]),
                re("[a-z .]{0,30}"),
            )
                .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
            re("[a-z]{200,300}[.!?]? ?[a-z ]{0,20}"),
            re(" {0,300}[a-z]{1,5}\\.\\.\\. {200,300}[a-zA-Z]{1,5}"),
        ]
    }

    /// `text` cut at the given places (on character boundaries: the reply filter hands over
    /// whole characters).
    fn chunks_at(text: &str, cuts: &[proptest::sample::Index]) -> Vec<String> {
        let bounds: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()))
            .collect();
        let mut at: Vec<usize> = cuts.iter().map(|c| bounds[c.index(bounds.len())]).collect();
        at.push(0);
        at.push(text.len());
        at.sort_unstable();
        at.dedup();
        at.windows(2)
            .map(|w| text[w[0]..w[1]].to_string())
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::config())]

        /// Any text, however it streams in: the same segments as when it comes whole.
        #[test]
        fn any_text_gives_the_same_segments_however_it_is_chunked(
            text in reply_text(),
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..12),
            // Character by character costs a scan per character: one case in ten.
            one_by_one in proptest::bool::weighted(0.1),
        ) {
            let chunks = if one_by_one {
                text.chars().map(String::from).collect()
            } else {
                chunks_at(&text, &cuts)
            };
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(feed(&refs), whole(&text), "chunks {:?}", chunks);
        }

        /// The segments are the text itself, in order: each is a trimmed piece of it with a
        /// letter or digit, at most MAX_SEGMENT_CHARS long, and what lies between them (and
        /// after the last) is whitespace or punctuation with nothing to say.
        #[test]
        fn segments_are_the_text_in_order(text in reply_text()) {
            let segments = whole(&text);
            let mut rest = text.as_str();
            for s in &segments {
                proptest::prop_assert_eq!(s.trim(), s.as_str());
                proptest::prop_assert!(s.chars().any(char::is_alphanumeric), "{s:?}");
                proptest::prop_assert!(s.chars().count() <= MAX_SEGMENT_CHARS, "{} chars", s.chars().count());
                let at = rest.find(s.as_str());
                proptest::prop_assert!(at.is_some(), "{s:?} is not next in {rest:?}");
                let at = at.unwrap_or_default();
                let gap = &rest[..at];
                proptest::prop_assert!(!gap.chars().any(char::is_alphanumeric), "{gap:?} was dropped");
                rest = &rest[at + s.len()..];
            }
            proptest::prop_assert!(!rest.chars().any(char::is_alphanumeric), "{rest:?} was dropped");
        }
    }

    #[test]
    fn a_sentence_of_exactly_the_longest_length_is_cut_the_same_however_it_arrives() {
        let first = format!("{} aaaaaaaa...", "a".repeat(MAX_SEGMENT_CHARS - 12));
        assert_eq!(first.chars().count(), MAX_SEGMENT_CHARS);
        let text = format!("{first} Then we left.");
        let expected = [first.as_str(), "Then we left."];
        check(&text, &expected);
        assert_eq!(feed(&[&format!("{first} "), "Then we left."]), expected);
    }

    #[test]
    fn wide_spaces_before_an_abbreviation_or_a_long_run_are_no_trouble() {
        // U+3000 and U+00A0 are whitespace of three and two bytes.
        check("\u{3000}Dr. Who? Yes", &["Dr. Who?", "Yes"]);
        check("Mr.\u{a0}Smith. Ok", &["Mr.\u{a0}Smith.", "Ok"]);
        let text = "word\u{3000}".repeat(80);
        let segments = whole(&text);
        assert!(segments.len() >= 2, "{segments:?}");
        assert_eq!(segments.join("\u{3000}"), text.trim_end());
    }

    #[test]
    fn a_boundary_past_the_limit_is_cut_as_overlong_whatever_the_chunking() {
        let text = format!("{} end. Next.", "word ".repeat(60));
        let segments = whole(&text);
        assert!(
            segments
                .iter()
                .all(|s| s.chars().count() <= MAX_SEGMENT_CHARS),
            "{segments:?}"
        );
        let small: Vec<&str> = text.split_inclusive(' ').collect();
        assert_eq!(feed(&small), segments);
    }

    #[test]
    fn segments_rejoin_to_the_text() {
        let text = "Hello! I'm Aiko, your companion. Dr. Who said 3.5 times, \"Run!\" Then... nothing\nNew line? 本当。Yes";
        let segments = whole(text);
        let squash = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(squash(&segments.concat()), squash(text));
    }
}
