//! Lorebook activation: which entries of a character's book join this turn's prompt.
//!
//! An enabled entry joins when it is `constant`, or when one of its keys appears in the text
//! scanned (the last `scan_depth` messages, the new one included) and, for a `selective` entry
//! with secondary keys, one of those too. Keys match anywhere in the text, ignoring case unless
//! the entry is `case_sensitive`; with `use_regex` each key is a regular expression (written bare
//! or as `/pattern/flags`). The joined entries go in by `insertion_order` (lower first) within
//! the book's `token_budget`: constant entries claim the budget first, then the others in order;
//! an entry that does not fit is left out. Entries that do not join never reach the model.

use crate::shared::cards::{LoreEntryFields, LorePosition, LorebookFields};
use regex::{Regex, RegexBuilder};

/// The entries that joined a prompt, by where they go, and their names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Activated {
    pub before_char: Vec<String>,
    pub after_char: Vec<String>,
    /// Names, in prompt order, for the reply's record.
    pub names: Vec<String>,
}

impl Activated {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A regular-expression key; `/pattern/flags` takes its flags (`i` ignores case).
pub fn compile(key: &str, case_sensitive: bool) -> Result<Regex, regex::Error> {
    let (pattern, ignore_case) = match slashed(key) {
        Some((pattern, flags)) => (pattern, flags.contains('i') || !case_sensitive),
        None => (key, !case_sensitive),
    };
    RegexBuilder::new(pattern)
        .case_insensitive(ignore_case)
        // A key is a short pattern; a huge one is a mistake or an attack.
        .size_limit(1 << 20)
        .build()
}

fn slashed(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('/')?;
    let end = rest.rfind('/')?;
    let flags = &rest[end + 1..];
    flags
        .chars()
        .all(|c| "gimsuy".contains(c))
        .then_some((&rest[..end], flags))
}

/// How one entry's keys are matched.
struct Matcher<'a> {
    entry: &'a LoreEntryFields,
    primary: Vec<Key>,
    secondary: Vec<Key>,
}

enum Key {
    Regex(Regex),
    Plain(String),
}

impl Key {
    fn new(k: &str, e: &LoreEntryFields) -> Option<Key> {
        let k = k.trim();
        if k.is_empty() {
            return None;
        }
        if e.use_regex {
            // A key that does not compile cannot match (the form refuses saving one).
            return compile(k, e.case_sensitive).ok().map(Key::Regex);
        }
        Some(Key::Plain(if e.case_sensitive {
            k.to_string()
        } else {
            k.to_lowercase()
        }))
    }

    fn found(&self, text: &str, lower: &str, case_sensitive: bool) -> bool {
        match self {
            Key::Regex(r) => r.is_match(text),
            Key::Plain(k) if case_sensitive => text.contains(k.as_str()),
            Key::Plain(k) => lower.contains(k.as_str()),
        }
    }
}

impl<'a> Matcher<'a> {
    fn new(entry: &'a LoreEntryFields) -> Self {
        let keys = |list: &[String]| list.iter().filter_map(|k| Key::new(k, entry)).collect();
        Self {
            entry,
            primary: keys(&entry.keys),
            secondary: keys(&entry.secondary_keys),
        }
    }

    fn fires(&self, text: &str, lower: &str) -> bool {
        let cs = self.entry.case_sensitive;
        let any = |keys: &[Key]| keys.iter().any(|k| k.found(text, lower, cs));
        if !any(&self.primary) {
            return false;
        }
        !self.entry.selective || self.secondary.is_empty() || any(&self.secondary)
    }
}

/// The entries of `book` that join a prompt whose latest messages are `recent` (oldest first,
/// the new message last). `cost` counts an entry's tokens; `expand` turns its content into what
/// the model reads (macros).
pub fn activate(
    book: &LorebookFields,
    recent: &[&str],
    cost: impl Fn(&str) -> u32,
    expand: impl Fn(&str) -> String,
) -> Activated {
    let depth = (book.scan_depth as usize).min(recent.len());
    let mut scanned = recent[recent.len() - depth..].join("\n");
    let matchers: Vec<Matcher> = book
        .entries
        .iter()
        .filter(|e| e.enabled && !e.content.trim().is_empty())
        .map(Matcher::new)
        .collect();
    let mut on = vec![false; matchers.len()];
    for (i, m) in matchers.iter().enumerate() {
        on[i] = m.entry.constant;
    }
    // Recursive books let a joined entry's text wake others; a few rounds settle any real book.
    let rounds = if book.recursive_scanning { 4 } else { 1 };
    for _ in 0..rounds {
        let lower = scanned.to_lowercase();
        let mut woke = Vec::new();
        for (i, m) in matchers.iter().enumerate() {
            if !on[i] && m.fires(&scanned, &lower) {
                on[i] = true;
                woke.push(i);
            }
        }
        if woke.is_empty() {
            break;
        }
        for i in woke {
            scanned.push('\n');
            scanned.push_str(&matchers[i].entry.content);
        }
    }

    let mut chosen: Vec<(usize, String)> = Vec::new();
    let mut left = book.token_budget;
    let mut order: Vec<usize> = (0..matchers.len()).filter(|&i| on[i]).collect();
    order.sort_by_key(|&i| {
        (
            !matchers[i].entry.constant,
            matchers[i].entry.insertion_order,
            i,
        )
    });
    for i in order {
        let text = expand(matchers[i].entry.content.trim());
        let c = cost(&text);
        if c <= left {
            left -= c;
            chosen.push((i, text));
        }
    }
    chosen.sort_by_key(|(i, _)| (matchers[*i].entry.insertion_order, *i));

    let mut out = Activated::default();
    for (i, text) in chosen {
        let e = matchers[i].entry;
        match e.position {
            LorePosition::BeforeChar => out.before_char.push(text),
            LorePosition::AfterChar => out.after_char.push(text),
        }
        let name = if !e.name.trim().is_empty() {
            e.name.trim().to_string()
        } else if let Some(k) = e.keys.first() {
            k.trim().to_string()
        } else {
            format!("entry {}", i + 1)
        };
        out.names.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, keys: &[&str], content: &str) -> LoreEntryFields {
        LoreEntryFields {
            name: name.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            content: content.into(),
            ..LoreEntryFields::default()
        }
    }

    fn book(entries: Vec<LoreEntryFields>) -> LorebookFields {
        LorebookFields {
            entries,
            ..LorebookFields::default()
        }
    }

    fn run(b: &LorebookFields, recent: &[&str]) -> Activated {
        activate(b, recent, |t| t.len() as u32 / 4 + 1, str::to_string)
    }

    #[test]
    fn keys_match_ignoring_case_unless_told() {
        let mut strict = entry("Strict", &["Eldoria"], "Strict text.");
        strict.case_sensitive = true;
        let b = book(vec![entry("Loose", &["ELDORIA"], "Loose text."), strict]);
        assert_eq!(run(&b, &["we rode to eldoria"]).names, ["Loose"]);
        assert_eq!(run(&b, &["we rode to Eldoria"]).names, ["Loose", "Strict"]);
        assert!(run(&b, &["nothing here"]).is_empty());
    }

    #[test]
    fn only_the_last_scan_depth_messages_count() {
        let mut b = book(vec![entry("Dragon", &["dragon"], "Dragons sleep.")]);
        let talk = ["a dragon!", "hm", "ok"];
        assert!(run(&b, &talk).is_empty());
        b.scan_depth = 3;
        assert_eq!(run(&b, &talk).names, ["Dragon"]);
    }

    #[test]
    fn regex_keys_with_and_without_slashes() {
        let mut a = entry("Years", &[r"\b1[0-9]{3}\b"], "Old times.");
        a.use_regex = true;
        let mut b2 = entry("Ship", &["/s(hip|loop)s?/i"], "Ships.");
        b2.use_regex = true;
        b2.case_sensitive = true;
        let b = book(vec![a, b2]);
        assert_eq!(run(&b, &["in 1850 a SLOOP sank"]).names, ["Years", "Ship"]);
        assert!(run(&b, &["in 850 a boat"]).is_empty());
    }

    #[test]
    fn selective_needs_a_secondary_key_too() {
        let mut e = entry("Queen", &["queen"], "The queen is ill.");
        e.selective = true;
        e.secondary_keys = vec!["palace".into(), "castle".into()];
        let b = book(vec![e.clone()]);
        assert!(run(&b, &["the queen rides"]).is_empty());
        assert_eq!(run(&b, &["the queen's CASTLE"]).names, ["Queen"]);
        // Not selective: the secondary keys are not needed.
        e.selective = false;
        assert_eq!(run(&book(vec![e]), &["the queen rides"]).names, ["Queen"]);
    }

    #[test]
    fn constant_disabled_order_position_and_budget() {
        let mut always = entry("Always", &[], "World rules.");
        always.constant = true;
        always.insertion_order = 50;
        let mut off = entry("Off", &["sea"], "Never.");
        off.enabled = false;
        let mut after = entry("After", &["sea"], "The sea is cold.");
        after.position = LorePosition::AfterChar;
        after.insertion_order = 10;
        let mut big = entry("Big", &["sea"], &"long ".repeat(400));
        big.insertion_order = 1;
        let mut b = book(vec![always, off, after, big]);
        b.token_budget = 100;
        let got = run(&b, &["by the sea"]);
        // Big (500 tokens) does not fit; the rest go in by insertion order.
        assert_eq!(got.names, ["After", "Always"]);
        assert_eq!(got.before_char, ["World rules."]);
        assert_eq!(got.after_char, ["The sea is cold."]);
        b.token_budget = 5;
        assert_eq!(run(&b, &["by the sea"]).names, ["Always"]);
    }

    #[test]
    fn recursion_lets_entries_wake_each_other_only_when_asked() {
        let b1 = entry("Sword", &["sword"], "The sword was forged in Karth.");
        let b2 = entry("Karth", &["karth"], "Karth is a volcano city.");
        let mut b = book(vec![b1, b2]);
        assert_eq!(run(&b, &["my sword"]).names, ["Sword"]);
        b.recursive_scanning = true;
        assert_eq!(run(&b, &["my sword"]).names, ["Sword", "Karth"]);
    }

    #[test]
    fn bad_regex_never_matches_and_compile_says_why() {
        let mut e = entry("Bad", &["(open"], "x");
        e.use_regex = true;
        assert!(run(&book(vec![e]), &["(open"]).is_empty());
        assert!(compile("(open", false).is_err());
        assert!(compile("/a+/", true).unwrap().is_match("aaa"));
    }
}
