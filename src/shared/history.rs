//! Wire types of the conversation history: sessions, messages, search results, characters.

use serde::{Deserialize, Serialize};

/// A conversation in the sidebar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub id: i64,
    pub title: String,
    pub created_ts: f64,
    pub message_count: i64,
    /// Time of the latest message, or of creation for an empty session.
    pub last_ts: f64,
    pub character_id: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    System,
}

impl Role {
    /// The name stored in the database and sent on the wire, as serde writes it.
    pub fn name(self) -> &'static str {
        super::wire_name::of(&self)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        super::wire_name::parse(name)
    }
}

/// One message, as stored: `text` is what was shown and spoken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub session_id: i64,
    pub role: Role,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emotion: Option<String>,
    /// The reply was cut short (stopped or failed) and kept as it was.
    #[serde(default)]
    pub partial: bool,
    /// Typed or spoken (a person's message sent with `"input": "voice"`).
    #[serde(default)]
    pub input: super::chat::InputKind,
    pub ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_ts: Option<f64>,
    /// The lorebook entries (their names) that were in the prompt of this reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lore: Vec<String>,
}

/// A page of a session's messages, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// Older messages exist before the first one in this page.
    pub has_more_before: bool,
    /// Newer messages exist after the last one in this page.
    pub has_more_after: bool,
}

/// A search hit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub message_id: i64,
    pub session_id: i64,
    pub session_title: String,
    pub role: Role,
    pub ts: f64,
    /// The snippet as safe HTML: escaped text with the matches wrapped in `<mark>`. Kept for
    /// clients that came before `snippet_parts`.
    pub snippet: String,
    /// The same snippet as plain text pieces, each a match or not: nothing to parse or escape.
    #[serde(default)]
    pub snippet_parts: Vec<SnippetPart>,
    pub rank: f64,
}

/// A piece of a search snippet: text as the message has it, and whether it is a match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetPart {
    pub text: String,
    #[serde(default)]
    pub mark: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Character {
    pub id: i64,
    pub name: String,
    pub system_prompt: String,
    pub avatar_url: Option<String>,
    pub voice_id: Option<String>,
    pub tts_provider: Option<String>,
    pub personality_traits: Vec<String>,
    /// A portrait is at `/api/characters/{id}/portrait`.
    #[serde(default)]
    pub has_portrait: bool,
    /// The greeting new conversations start with: 0 is the card's `first_mes`, n its n-th
    /// alternate greeting.
    #[serde(default)]
    pub greeting: u32,
    /// Seconds: changes with every edit, so a portrait URL can carry it to skip stale caches.
    #[serde(default)]
    pub updated_ts: f64,
}

/// `2026-11-25 14:03 UTC`, without pulling in a date library.
pub fn format_ts(ts: f64) -> String {
    let secs = ts as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_ts;

    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(format_ts(0.0), "1970-01-01 00:00 UTC");
        assert_eq!(format_ts(1_795_000_000.5), "2026-11-18 11:06 UTC");
        assert_eq!(format_ts(951_782_400.0), "2000-02-29 00:00 UTC");
    }
}
