//! Separates a streamed reply into what is shown and spoken, the reasoning, and the emotion.
//!
//! Models write `<think>…</think>` blocks inline and the default character ends its replies with
//! an emotion tag such as `[happy]`. Tags can be split across stream chunks, so a possible tag
//! start is held back until the next chunk says what it is.

/// The emotions the avatar can show, and words models use for them.
const EMOTIONS: &[(&str, &str)] = &[
    ("happy", "happy"),
    ("joy", "happy"),
    ("joyful", "happy"),
    ("excited", "happy"),
    ("sad", "sad"),
    ("sadness", "sad"),
    ("angry", "angry"),
    ("anger", "angry"),
    ("mad", "angry"),
    ("relaxed", "relaxed"),
    ("calm", "relaxed"),
    ("surprised", "surprised"),
    ("surprise", "surprised"),
    ("shocked", "surprised"),
    ("neutral", "neutral"),
];

/// The emotion a tag's word names, if any (`Happy`, ` sad ` count).
pub fn emotion_of(tag: &str) -> Option<&'static str> {
    let word = tag.trim().to_ascii_lowercase();
    EMOTIONS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, e)| *e)
}

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
/// A bracket further than this from its `[` is text, not a tag.
const MAX_TAG: usize = 16;

#[derive(Debug, Default)]
pub struct ReplyFilter {
    pending: String,
    in_think: bool,
    /// A tag was just removed: drop one space after it so no double space remains.
    skip_space: bool,
    /// Nothing visible yet: leading whitespace is dropped.
    at_start: bool,
    visible: String,
    reasoning: String,
    emotion: Option<&'static str>,
}

impl ReplyFilter {
    pub fn new() -> Self {
        Self {
            at_start: true,
            ..Self::default()
        }
    }

    /// Takes the next chunk of model output and returns the newly visible text.
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let mut out = String::new();
        loop {
            if self.in_think {
                if let Some(i) = self.pending.find(THINK_CLOSE) {
                    self.reasoning.push_str(&self.pending[..i]);
                    self.pending.drain(..i + THINK_CLOSE.len());
                    self.in_think = false;
                    self.skip_space = true;
                    continue;
                }
                // Keep what could be the start of `</think>`.
                let keep = partial_suffix(&self.pending, THINK_CLOSE);
                let split = self.pending.len() - keep;
                self.reasoning.push_str(&self.pending[..split]);
                self.pending.drain(..split);
                break;
            }
            let Some(i) = self.pending.find(['<', '[']) else {
                out.push_str(&self.pending);
                self.pending.clear();
                break;
            };
            out.push_str(&self.pending[..i]);
            self.pending.drain(..i);
            let rest = self.pending.as_str();
            if rest.starts_with(THINK_OPEN) {
                self.pending.drain(..THINK_OPEN.len());
                self.in_think = true;
            } else if rest.starts_with(THINK_CLOSE) {
                // A closing tag without an opening one (the model began inside its thoughts).
                self.pending.drain(..THINK_CLOSE.len());
                self.skip_space = true;
            } else if rest.starts_with('<') {
                if rest.len() < THINK_CLOSE.len()
                    && (THINK_OPEN.starts_with(rest) || THINK_CLOSE.starts_with(rest))
                {
                    break; // wait for the rest of the tag
                }
                out.push('<');
                self.pending.drain(..1);
            } else if let Some(end) = rest[..rest.len().min(MAX_TAG + 2)].find(']') {
                match emotion_of(&rest[1..end]) {
                    Some(e) => {
                        self.emotion.get_or_insert(e);
                        self.pending.drain(..end + 1);
                        self.skip_space = true;
                    }
                    None => {
                        out.push('[');
                        self.pending.drain(..1);
                    }
                }
            } else if rest.len() <= MAX_TAG + 1 && !rest.contains(char::is_whitespace) {
                break; // maybe a tag still arriving
            } else {
                out.push('[');
                self.pending.drain(..1);
            }
        }
        self.emit(out)
    }

    /// The end of the stream: anything held back is text after all.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        if self.in_think {
            self.reasoning.push_str(&rest);
            String::new()
        } else {
            self.emit(rest)
        }
    }

    fn emit(&mut self, mut out: String) -> String {
        if self.skip_space && !out.is_empty() {
            if out.starts_with(' ') && (self.visible.is_empty() || self.visible.ends_with(' ')) {
                out.remove(0);
            }
            self.skip_space = false;
        }
        if self.at_start {
            let trimmed = out.trim_start();
            if trimmed.is_empty() {
                return String::new();
            }
            out = trimmed.to_string();
            self.at_start = false;
        }
        self.visible.push_str(&out);
        out
    }

    /// Keeps the visible text up to its last complete sentence, when it has one: a reply cut by
    /// the token limit does not end mid-sentence. Says whether it had one.
    pub fn cut_to_last_sentence(&mut self) -> bool {
        let end = super::segment::complete_sentences(&self.visible);
        if end > 0 {
            self.visible.truncate(end);
        }
        end > 0
    }

    /// Everything visible so far, trimmed: what is stored and spoken.
    pub fn visible(&self) -> &str {
        self.visible.trim_end()
    }

    pub fn reasoning(&self) -> Option<&str> {
        let r = self.reasoning.trim();
        (!r.is_empty()).then_some(r)
    }

    pub fn add_reasoning(&mut self, text: &str) {
        self.reasoning.push_str(text);
    }

    /// The first emotion tag of the reply.
    pub fn emotion(&self) -> Option<&'static str> {
        self.emotion
    }
}

/// The length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| {
            text.len() >= n
                && text.is_char_boundary(text.len() - n)
                && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` and returns (streamed text, stored text, reasoning, emotion).
    fn run(chunks: &[&str]) -> (String, String, Option<String>, Option<&'static str>) {
        let mut f = ReplyFilter::new();
        let mut streamed: String = chunks.iter().map(|c| f.push(c)).collect();
        streamed.push_str(&f.finish());
        (
            streamed,
            f.visible().to_string(),
            f.reasoning().map(str::to_string),
            f.emotion(),
        )
    }

    #[test]
    fn think_blocks_split_anywhere_never_reach_the_text() {
        let reply = "<think>The user greets me.</think>Hello there!";
        for cut in 1..reply.len() {
            let (streamed, stored, reasoning, _) = run(&[&reply[..cut], &reply[cut..]]);
            assert_eq!(streamed, "Hello there!", "cut at {cut}");
            assert_eq!(stored, "Hello there!");
            assert_eq!(reasoning.as_deref(), Some("The user greets me."));
        }
    }

    #[test]
    fn emotion_tags_are_taken_out_wherever_they_are_split() {
        let reply = "[happy] Nice to see you! [Happy]";
        for cut in 1..reply.len() {
            let (streamed, stored, _, emotion) = run(&[&reply[..cut], &reply[cut..]]);
            assert_eq!(stored, "Nice to see you!", "cut at {cut}");
            assert_eq!(streamed.trim_end(), "Nice to see you!");
            assert_eq!(emotion, Some("happy"));
        }
    }

    #[test]
    fn a_tag_in_the_middle_leaves_one_space() {
        let (_, stored, _, emotion) = run(&["I am ", "[sad]", " today."]);
        assert_eq!(stored, "I am today.");
        assert_eq!(emotion, Some("sad"));
    }

    #[test]
    fn other_brackets_and_angles_stay_text() {
        let (streamed, stored, _, emotion) =
            run(&["a [link] and 2 < 3 and [this is a long bracket] and <b>"]);
        assert_eq!(
            stored,
            "a [link] and 2 < 3 and [this is a long bracket] and <b>"
        );
        assert_eq!(streamed, stored);
        assert_eq!(emotion, None);
        let (_, stored, _, _) = run(&["ends with [hap"]);
        assert_eq!(stored, "ends with [hap");
    }

    #[test]
    fn an_unclosed_think_is_reasoning_and_a_stray_close_is_dropped() {
        let (_, stored, reasoning, _) = run(&["Hi. <think>hmm, and then"]);
        assert_eq!(stored, "Hi.");
        assert_eq!(reasoning.as_deref(), Some("hmm, and then"));
        let (_, stored, _, _) = run(&["</think> Hello"]);
        assert_eq!(stored, "Hello");
    }
}
