//! The prompt of one turn: the character's system prompt, memories recalled by full-text search,
//! the recent history and the new message, within the model's token budget.

use crate::{
    llm::{estimate_tokens, PromptMessage, PromptRole},
    shared::history::{format_ts, Message, Role},
    store::search::Memory,
};

/// A recalled message is cut to this many characters: enough to remind, not to crowd.
const MEMORY_CHARS: usize = 240;

pub struct PromptParts<'a> {
    pub system_prompt: &'a str,
    pub memories: &'a [Memory],
    /// Oldest first.
    pub history: &'a [Message],
    pub user_text: &'a str,
}

/// Builds the messages. `budget` is the number of prompt tokens the model can take; the system
/// prompt and the new message always go in, then memories (at most a fifth of the budget), then
/// as much recent history as fits, newest first.
pub fn build(parts: &PromptParts<'_>, budget: u32) -> Vec<PromptMessage> {
    let fixed = estimate_tokens(parts.system_prompt) + estimate_tokens(parts.user_text);
    let mut left = budget.saturating_sub(fixed);

    let mut system = parts.system_prompt.trim().to_string();
    let mut memory_lines = Vec::new();
    let mut memory_budget = left / 5;
    for m in parts.memories {
        let line = memory_line(m);
        let cost = estimate_tokens(&line);
        if cost > memory_budget {
            break;
        }
        memory_budget -= cost;
        left -= cost;
        memory_lines.push(line);
    }
    if !memory_lines.is_empty() {
        system.push_str("\n\nMemories from earlier conversations (use them only if they help):\n");
        system.push_str(&memory_lines.join("\n"));
    }

    let mut history = Vec::new();
    for m in parts.history.iter().rev() {
        let role = match m.role {
            Role::User => PromptRole::User,
            Role::Assistant => PromptRole::Assistant,
            Role::System => continue,
        };
        if m.text.trim().is_empty() {
            continue;
        }
        let cost = estimate_tokens(&m.text);
        if cost > left {
            break;
        }
        left -= cost;
        history.push(PromptMessage::new(role, m.text.clone()));
    }
    history.reverse();

    let mut messages = Vec::with_capacity(history.len() + 2);
    messages.push(PromptMessage::new(PromptRole::System, system));
    messages.extend(history);
    messages.push(PromptMessage::new(PromptRole::User, parts.user_text));
    messages
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

    #[test]
    fn order_is_system_history_user_and_memories_are_marked() {
        let history = [msg(1, Role::User, "hi"), msg(2, Role::Assistant, "hello!")];
        let memories = [memory("My cat is called Mochi")];
        let out = build(
            &PromptParts {
                system_prompt: "You are Aiko.",
                memories: &memories,
                history: &history,
                user_text: "How is my cat?",
            },
            2_000,
        );
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
        assert!(out[0].content.starts_with("You are Aiko."));
        assert!(out[0]
            .content
            .contains("Memories from earlier conversations"));
        assert!(out[0]
            .content
            .contains("the user said: \"My cat is called Mochi\""));
        assert_eq!(out[3].content, "How is my cat?");
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
        let out = build(
            &PromptParts {
                system_prompt: "sys",
                memories: &[],
                history: &history,
                user_text: "now",
            },
            300,
        );
        let total: u32 = out.iter().map(|m| estimate_tokens(&m.content)).sum();
        assert!(
            total <= 300,
            "prompt of {total} tokens over a budget of 300"
        );
        assert!(out.len() > 2 && out.len() < 52);
        // What is kept is the newest, in order.
        assert!(out[out.len() - 2].content.starts_with("message number 49 "));
    }
}
