//! Card macros: `{{char}}`, `{{user}}`, `{{random:a,b}}`, `{{roll:N}}`, `{{// comment}}`, and the
//! older `<USER>`/`<BOT>`. Names are matched without regard to case; anything else in braces is
//! left as written, so text that merely looks like a macro survives.
//!
//! The random ones draw from a seed rather than the clock: a conversation seeds them with its id,
//! so its prompt says the same thing every turn (and a model's prompt cache keeps working), while
//! another conversation may draw differently.

/// Who `{{char}}` and `{{user}}` are, and the seed of the random macros.
#[derive(Clone, Debug)]
pub struct Macros<'a> {
    pub char: &'a str,
    pub user: &'a str,
    pub seed: u64,
}

impl Macros<'_> {
    /// `text` with its macros replaced. A macro's own output is not expanded again.
    pub fn expand(&self, text: &str) -> String {
        let mut rng = SplitMix(self.seed);
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                out.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let body = &after[..close];
            match self.one(body, &mut rng) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("{{");
                    out.push_str(body);
                    out.push_str("}}");
                }
            }
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        legacy(&out, self.char, self.user)
    }

    fn one(&self, body: &str, rng: &mut SplitMix) -> Option<String> {
        if body.trim_start().starts_with("//") {
            return Some(String::new());
        }
        let (name, arg) = match body.find(':') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        match (name.trim().to_ascii_lowercase().as_str(), arg) {
            ("char", None) => Some(self.char.to_string()),
            ("user", None) => Some(self.user.to_string()),
            ("random", Some(arg)) => {
                // `{{random::a::b}}` lets items hold commas; `{{random:a,b}}` is the common form.
                let items: Vec<&str> = match arg.strip_prefix(':') {
                    Some(list) => list.split("::").collect(),
                    None => arg.split(',').collect(),
                };
                let pick = rng.below(items.len() as u64) as usize;
                items.get(pick).map(|s| s.trim().to_string())
            }
            ("roll", Some(arg)) => roll(arg.trim(), rng).map(|n| n.to_string()),
            _ => None,
        }
    }
}

/// `N`, `dN` or `XdN` (at most 100 dice of at most a million sides): the sum of the dice.
fn roll(arg: &str, rng: &mut SplitMix) -> Option<u64> {
    let (count, sides) = match arg.to_ascii_lowercase().split_once('d') {
        Some(("", sides)) => (1, sides.trim().parse::<u64>().ok()?),
        Some((count, sides)) => (count.trim().parse().ok()?, sides.trim().parse().ok()?),
        None => (1, arg.parse().ok()?),
    };
    if !(1..=100).contains(&count) || !(1..=1_000_000).contains(&sides) {
        return None;
    }
    Some((0..count).map(|_| rng.below(sides) + 1).sum())
}

/// Cards written for older front ends say `<USER>` and `<BOT>` (or `<CHAR>`).
fn legacy(text: &str, char: &str, user: &str) -> String {
    if !text.contains('<') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let tag = tail.get(..6).map(str::to_ascii_uppercase);
        let short = tail.get(..5).map(str::to_ascii_uppercase);
        if tag.as_deref() == Some("<USER>") {
            out.push_str(user);
            rest = &tail[6..];
        } else if tag.as_deref() == Some("<CHAR>") {
            out.push_str(char);
            rest = &tail[6..];
        } else if short.as_deref() == Some("<BOT>") {
            out.push_str(char);
            rest = &tail[5..];
        } else {
            out.push('<');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A small, seedable generator (SplitMix64): the macros need variety, not secrecy.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` ≥ 1).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A seed from the operating system, for one-off draws (a new conversation's greeting).
pub fn fresh_seed() -> u64 {
    let mut bytes = [0u8; 8];
    // Variety is all that is at stake: without the system's numbers, the clock will do.
    if getrandom::fill(&mut bytes).is_err() {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(seed: u64) -> Macros<'static> {
        Macros {
            char: "Seraphina",
            user: "Mika",
            seed,
        }
    }

    #[test]
    fn names_are_replaced_in_any_case() {
        assert_eq!(
            m(1).expand("{{char}} greets {{USER}}; {{Char}} smiles at <USER> and <BOT>."),
            "Seraphina greets Mika; Seraphina smiles at Mika and Seraphina."
        );
    }

    #[test]
    fn comments_vanish_and_unknown_macros_stay() {
        assert_eq!(
            m(1).expand("a{{// a note for editors }}b {{time}} {{char"),
            "ab {{time}} {{char"
        );
        assert_eq!(m(1).expand("<b>bold</b> <User"), "<b>bold</b> <User");
    }

    #[test]
    fn random_picks_one_item_and_the_seed_decides() {
        let picks: std::collections::BTreeSet<String> = (0..64)
            .map(|seed| m(seed).expand("{{random:red, green,blue}}"))
            .collect();
        assert_eq!(
            picks.into_iter().collect::<Vec<_>>(),
            ["blue", "green", "red"]
        );
        assert_eq!(
            m(7).expand("{{random:a,b,c}}"),
            m(7).expand("{{random:a,b,c}}")
        );
        let double = m(3).expand("{{random::x, y::z}}");
        assert!(double == "x, y" || double == "z", "{double}");
    }

    #[test]
    fn rolls_stay_in_range() {
        for seed in 0..200 {
            let n: u64 = m(seed).expand("{{roll:6}}").parse().unwrap();
            assert!((1..=6).contains(&n));
            let n: u64 = m(seed).expand("{{roll:2d6}}").parse().unwrap();
            assert!((2..=12).contains(&n));
            let n: u64 = m(seed).expand("{{roll:d20}}").parse().unwrap();
            assert!((1..=20).contains(&n));
        }
        assert_eq!(
            m(1).expand("{{roll:0}} {{roll:x}}"),
            "{{roll:0}} {{roll:x}}"
        );
    }

    proptest! {
        #[test]
        fn any_text_expands_without_panicking(text in ".{0,200}", seed in any::<u64>()) {
            let out = m(seed).expand(&text);
            // Text without a macro or legacy tag comes back unchanged.
            if !text.contains("{{") && !text.contains('<') {
                prop_assert_eq!(out, text);
            }
        }
    }
}
