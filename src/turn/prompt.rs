//! The prompt of one turn, laid out so that a model's prefix cache (llama.cpp's KV cache in the
//! built-in engine, the prompt cache of a remote server) can reuse the previous turn's prompt.
//!
//! Order: the character's system prompt (and the spoken-style line on spoken turns), the history
//! that fits, then the newest message with the memories recalled for it just before its text.
//! Everything that changes from turn to turn is at the end, so a new turn reads only the last
//! reply and the new message again.
//!
//! The history is a window whose start moves in large steps: when it outgrows its budget, half a
//! budget of the oldest messages goes at once, and the following turns share the new start. (A
//! window that dropped one old message per turn would change the start of the prompt every turn,
//! and the model would read the whole history again each time.)

use crate::{
    llm::{estimate_tokens, PromptMessage, PromptRole},
    shared::history::{format_ts, Message, Role},
    store::search::Memory,
};

/// A recalled message is cut to this many characters: enough to remind, not to crowd. The
/// memories are read anew every turn (they change), so on a small CPU each character costs time
/// before the first word.
const MEMORY_CHARS: usize = 160;

/// Added to the system prompt when the reply will be spoken: a listener wants a short answer in
/// plain words, and a small model left alone writes until its token limit.
pub const SPOKEN_STYLE: &str = "You are speaking aloud: answer in one to three short sentences \
     of plain spoken words, with no lists, markdown or emoji.";

pub struct PromptParts<'a> {
    pub system_prompt: &'a str,
    /// The card's `post_history_instructions`: a system message after the newest one.
    pub post_history: Option<&'a str>,
    /// The reply will be spoken: [`SPOKEN_STYLE`] joins the system prompt.
    pub spoken: bool,
    pub memories: &'a [Memory],
    /// Oldest first.
    pub history: &'a [Message],
    pub user_text: &'a str,
}

/// How a budget is shared. The memories and the new message have fixed reserves, so the
/// history's share, and with it where the window starts, does not move with their sizes.
struct Shares {
    memories: u32,
    history: u32,
}

impl Shares {
    fn of(budget: u32, system: u32) -> Self {
        let left = budget.saturating_sub(system);
        let memories = left / 5;
        let message = left / 8;
        Self {
            memories,
            history: left.saturating_sub(memories + message),
        }
    }
}

/// Builds the messages. `budget` is the number of prompt tokens the model can take. The system
/// prompt and the new message always go in; the memories take at most their share; the history
/// is the window that fits (see the module's docs).
pub fn build(parts: &PromptParts<'_>, budget: u32) -> Vec<PromptMessage> {
    let mut system = parts.system_prompt.trim().to_string();
    if parts.spoken {
        system.push_str("\n\n");
        system.push_str(SPOKEN_STYLE);
    }
    let shares = Shares::of(budget, estimate_tokens(&system));

    let mut memory_lines = Vec::new();
    let mut memory_left = shares.memories;
    for m in parts.memories {
        let line = memory_line(m);
        let cost = estimate_tokens(&line);
        if cost > memory_left {
            break;
        }
        memory_left -= cost;
        memory_lines.push(line);
    }
    let mut user = String::new();
    if !memory_lines.is_empty() {
        user.push_str("(Memories from earlier conversations; use them only if they help:\n");
        user.push_str(&memory_lines.join("\n"));
        user.push_str(")\n\n");
    }
    user.push_str(parts.user_text);

    // A message longer than its reserve takes the room from the history, this turn only.
    let used = estimate_tokens(&system)
        + estimate_tokens(&user)
        + parts.post_history.map_or(0, estimate_tokens);
    let fits = budget.saturating_sub(used).min(shares.history);
    let history: Vec<(PromptRole, &str)> = parts
        .history
        .iter()
        .filter_map(|m| {
            let role = match m.role {
                Role::User => PromptRole::User,
                Role::Assistant => PromptRole::Assistant,
                Role::System => return None,
            };
            (!m.text.trim().is_empty()).then_some((role, m.text.as_str()))
        })
        .collect();
    let costs: Vec<u32> = history.iter().map(|(_, t)| estimate_tokens(t)).collect();
    let start = window_start(&costs, shares.history, fits);

    let mut messages = Vec::with_capacity(history.len() - start + 2);
    messages.push(PromptMessage::new(PromptRole::System, system));
    messages.extend(
        history[start..]
            .iter()
            .map(|(role, text)| PromptMessage::new(*role, *text)),
    );
    messages.push(PromptMessage::new(PromptRole::User, user));
    if let Some(after) = parts.post_history {
        messages.push(PromptMessage::new(PromptRole::System, after));
    }
    messages
}

/// Where the history window starts, given each message's cost, oldest first.
///
/// The candidate starts are fixed by the history itself: 0, then each next one where the
/// messages since the previous start reach half of `share`. The window starts at the first
/// candidate whose messages fit in `fits`. The candidates depend only on what came before them,
/// so as the conversation grows the start stays put until the window is full, then jumps by
/// about half a share.
pub(crate) fn window_start(costs: &[u32], share: u32, fits: u32) -> usize {
    let step = (share / 2).max(1);
    let mut total: u32 = costs.iter().sum();
    let mut start = 0;
    while total > fits && start < costs.len() {
        // Drop a block of about `step` tokens (at least one message).
        let mut dropped = 0;
        while start < costs.len() && (dropped < step || dropped == 0) {
            dropped += costs[start];
            total -= costs[start];
            start += 1;
        }
    }
    start
}

fn memory_line(m: &Memory) -> String {
    let date = format_ts(m.ts);
    let date = date.get(..10).unwrap_or(&date);
    let who = if m.role == "user" {
        "the user said"
    } else {
        "you said"
    };
    let text: String = m.text.chars().take(MEMORY_CHARS).collect();
    let more = if m.text.chars().count() > MEMORY_CHARS {
        "…"
    } else {
        ""
    };
    format!("- On {date}, {who}: \"{}{more}\"", text.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: i64, role: Role, text: &str) -> Message {
        Message {
            id,
            session_id: 1,
            role,
            text: text.into(),
            reasoning: None,
            emotion: None,
            partial: false,
            input: Default::default(),
            ts: 1_764_000_000.0,
            edited_ts: None,
            lore: Vec::new(),
        }
    }

    fn memory(text: &str) -> Memory {
        Memory {
            id: 1,
            session_id: 2,
            role: "user".into(),
            text: text.into(),
            ts: 1_764_000_000.0,
        }
    }

    fn parts<'a>(
        history: &'a [Message],
        memories: &'a [Memory],
        user_text: &'a str,
    ) -> PromptParts<'a> {
        PromptParts {
            system_prompt: "You are Aiko.",
            post_history: None,
            spoken: false,
            memories,
            history,
            user_text,
        }
    }

    #[test]
    fn post_history_instructions_follow_the_newest_message() {
        let history = [msg(1, Role::User, "hi"), msg(2, Role::Assistant, "hello!")];
        let mut p = parts(&history, &[], "And now?");
        p.post_history = Some("Stay in character.");
        let out = build(&p, 2_000);
        let last = &out[out.len() - 2..];
        assert_eq!(last[0].role, PromptRole::User);
        assert_eq!(last[0].content, "And now?");
        assert_eq!(last[1].role, PromptRole::System);
        assert_eq!(last[1].content, "Stay in character.");
    }

    #[test]
    fn stable_parts_come_first_and_memories_sit_just_before_the_new_message() {
        let history = [msg(1, Role::User, "hi"), msg(2, Role::Assistant, "hello!")];
        let memories = [memory("My cat is called Mochi")];
        let out = build(&parts(&history, &memories, "How is my cat?"), 2_000);
        let roles: Vec<_> = out.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                PromptRole::System,
                PromptRole::User,
                PromptRole::Assistant,
                PromptRole::User
            ]
        );
        // The system prompt is the character's alone: nothing that changes per turn.
        assert_eq!(out[0].content, "You are Aiko.");
        let last = &out[3].content;
        assert!(
            last.contains("Memories from earlier conversations"),
            "{last}"
        );
        assert!(last.contains("the user said: \"My cat is called Mochi\""));
        assert!(last.ends_with("\n\nHow is my cat?"), "{last}");
        // Without memories the message is the person's text alone.
        let out = build(&parts(&history, &[], "How is my cat?"), 2_000);
        assert_eq!(out[3].content, "How is my cat?");
    }

    #[test]
    fn a_spoken_turn_asks_for_a_short_spoken_reply() {
        let mut p = parts(&[], &[], "hi");
        p.spoken = true;
        let out = build(&p, 2_000);
        assert!(out[0].content.starts_with("You are Aiko."));
        assert!(out[0].content.ends_with(SPOKEN_STYLE));
    }

    #[test]
    fn the_budget_drops_the_oldest_history_first() {
        let history: Vec<Message> = (0..50)
            .map(|i| {
                msg(
                    i,
                    Role::User,
                    &format!("message number {i} {}", "x".repeat(60)),
                )
            })
            .collect();
        let out = build(&parts(&history, &[], "now"), 300);
        let total: u32 = out.iter().map(|m| estimate_tokens(&m.content)).sum();
        assert!(
            total <= 300,
            "prompt of {total} tokens over a budget of 300"
        );
        assert!(out.len() > 2 && out.len() < 52);
        // What is kept is the newest, in order.
        assert!(out[out.len() - 2].content.starts_with("message number 49 "));
    }

    /// The prompts of a growing conversation: each turn's prompt without its last message (the
    /// part the next turn could find in the cache).
    fn turns(n: usize, budget: u32, memories: &[Memory]) -> Vec<Vec<PromptMessage>> {
        let mut history = Vec::new();
        let mut prompts = Vec::new();
        for turn in 0..n {
            let question = format!("question {turn}: {}", "tell me more ".repeat(turn % 4 + 1));
            prompts.push(build(&parts(&history, memories, &question), budget));
            history.push(msg(2 * turn as i64, Role::User, &question));
            history.push(msg(
                2 * turn as i64 + 1,
                Role::Assistant,
                &format!("answer {turn}: {}", "well, ".repeat(20 + turn % 7 * 5)),
            ));
        }
        prompts
    }

    fn shared_prefix(a: &[PromptMessage], b: &[PromptMessage]) -> usize {
        a.iter().zip(b).take_while(|(x, y)| x == y).count()
    }

    #[test]
    fn a_growing_conversation_keeps_its_prefix_and_drops_history_in_large_blocks() {
        let budget = 1_500;
        let memories = [memory("My cat is called Mochi")];
        let prompts = turns(60, budget, &memories);
        let mut jumps = 0;
        for (i, pair) in prompts.windows(2).enumerate() {
            let (before, after) = (&pair[0], &pair[1]);
            for p in [before, after] {
                let total: u32 = p.iter().map(|m| estimate_tokens(&m.content)).sum();
                assert!(total <= budget, "turn {i}: {total} tokens");
            }
            // Everything of the previous prompt but its last message (which carried the
            // memories) is the start of the next one...
            let kept = shared_prefix(&before[..before.len() - 1], after);
            if kept == before.len() - 1 {
                continue;
            }
            // ...except when a block of history goes, and then it is a large one.
            jumps += 1;
            assert_eq!(
                kept, 1,
                "turn {i}: only the system prompt is shared at a jump"
            );
            let dropped = before.len() as i64 - after.len() as i64 + 2;
            assert!(
                dropped >= 4,
                "turn {i}: only {dropped} messages went at once"
            );
        }
        // 60 turns of about 60 tokens' worth each overflow a 1,500-token budget many times over;
        // one-at-a-time trimming would break the prefix on nearly every turn.
        assert!(jumps > 0 && jumps <= 12, "{jumps} jumps in 60 turns");
    }

    #[test]
    fn the_window_start_only_moves_forward_and_in_steps() {
        let costs: Vec<u32> = (0..200).map(|i| 10 + (i * 7 % 13)).collect();
        let mut last = 0;
        let mut moves = 0;
        for n in 1..=costs.len() {
            let start = window_start(&costs[..n], 400, 400);
            assert!(start >= last, "the start went back at {n}");
            let total: u32 = costs[start..n].iter().sum();
            assert!(total <= 400);
            if start != last {
                moves += 1;
                let dropped: u32 = costs[last..start].iter().sum();
                assert!(dropped >= 200, "a step of only {dropped} tokens at {n}");
            }
            last = start;
        }
        assert!(moves > 3);
        // Nothing fits: the window is empty, not out of range.
        assert_eq!(window_start(&[50, 50], 10, 0), 2);
        assert_eq!(window_start(&[], 10, 0), 0);
    }
}
