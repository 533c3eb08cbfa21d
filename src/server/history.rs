//! The history service: sessions, messages, search, export and characters, with the checks of
//! docs/api.md. The REST routes and the UI's server functions both call these; what each
//! [`HistoryError`] is on the wire is said once, in `server::error`.

use crate::store::Db;
use crate::{
    shared::config::TtsProvider,
    shared::history::{
        format_ts, Character, Message, MessagePage, Role, SearchHit, SessionSummary,
    },
    store::{
        characters::{self, CharacterFields},
        messages::{Cursor, NewMessage},
        StoreError,
    },
    tts::voice_id,
};

/// Why a history request was refused or failed. The texts are the messages on the wire.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("There is no session {0}.")]
    SessionNotFound(i64),
    #[error("There is no message {id} in session {session_id}.")]
    MessageNotFound { session_id: i64, id: i64 },
    /// Edited, then gone before it could be read back.
    #[error("There is no message {0}.")]
    MessageGone(i64),
    #[error("There is no character {0}.")]
    CharacterNotFound(i64),
    #[error("A title is required.")]
    MissingTitle,
    #[error("A title can have at most 200 characters.")]
    TitleTooLong,
    #[error("The message text is required.")]
    MissingText,
    #[error("A message can have at most 100,000 characters.")]
    TextTooLong,
    #[error("The role must be user, assistant or system.")]
    BadRole,
    #[error("The export format must be md or json.")]
    BadFormat,
    /// One field of a character is wrong: `problem` reads as the rest of the sentence after the
    /// field's name ("must be …").
    #[error("{field} {problem}.")]
    BadField {
        code: &'static str,
        field: String,
        problem: String,
    },
    #[error("A character needs a name and a system_prompt.")]
    CharacterIncomplete,
    #[error("A character's name and system_prompt cannot be empty.")]
    CharacterEmptied,
    #[error("Send at least one of name, system_prompt, avatar_url, voice_id, tts_provider, personality_traits.")]
    NoFields,
    #[error("The default character cannot be deleted.")]
    DefaultCharacter,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_MESSAGE_CHARS: usize = 100_000;

/// Caps on a character's fields, in characters. A system prompt may be a long description; the
/// rest are names and short labels. Voice ids are capped by `tts::voice_id::MAX_CHARS`.
pub const MAX_CHARACTER_NAME_CHARS: usize = 100;
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 32_000;
pub const MAX_AVATAR_URL_CHARS: usize = 2_048;
pub const MAX_TRAITS: usize = 32;
pub const MAX_TRAIT_CHARS: usize = 100;

fn clamp(limit: Option<i64>, default: i64, max: i64) -> i64 {
    limit.unwrap_or(default).clamp(1, max)
}

fn clean_title(title: Option<&str>) -> Result<String, HistoryError> {
    let title = title.map(str::trim).unwrap_or_default();
    if title.is_empty() {
        return Err(HistoryError::MissingTitle);
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(HistoryError::TitleTooLong);
    }
    Ok(title.to_string())
}

pub async fn list_sessions(
    db: &Db,
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<Vec<SessionSummary>, HistoryError> {
    Ok(db
        .list_sessions(clamp(limit, 100, 1000), offset.unwrap_or(0).max(0))
        .await?)
}

pub async fn create_session(db: &Db, title: Option<&str>) -> Result<SessionSummary, HistoryError> {
    let title = match title {
        Some(t) if !t.trim().is_empty() => Some(clean_title(Some(t))?),
        _ => None,
    };
    Ok(db.create_session(title.as_deref()).await?)
}

/// The body is checked before the id is looked up, so a bad title is a 400 even for an unknown id.
pub async fn rename_session(db: &Db, id: i64, title: Option<&str>) -> Result<(), HistoryError> {
    let title = clean_title(title)?;
    if db.rename_session(id, &title).await? {
        Ok(())
    } else {
        Err(HistoryError::SessionNotFound(id))
    }
}

pub async fn delete_session(db: &Db, id: i64) -> Result<(), HistoryError> {
    if db.delete_session(id).await? {
        Ok(())
    } else {
        Err(HistoryError::SessionNotFound(id))
    }
}

pub async fn messages(
    db: &Db,
    session_id: i64,
    cursor: Cursor,
    limit: Option<i64>,
) -> Result<MessagePage, HistoryError> {
    if db.get_session(session_id).await?.is_none() {
        return Err(HistoryError::SessionNotFound(session_id));
    }
    Ok(db
        .message_page(session_id, cursor, clamp(limit, 50, 1000))
        .await?)
}

fn clean_text(text: Option<&str>) -> Result<&str, HistoryError> {
    let text = text.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(HistoryError::MissingText);
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(HistoryError::TextTooLong);
    }
    Ok(text)
}

/// Adds a message to an existing session (imports, outside clients).
pub async fn append_message(
    db: &Db,
    session_id: i64,
    role: Option<&str>,
    text: Option<&str>,
) -> Result<Message, HistoryError> {
    let text = clean_text(text)?;
    let role = match role {
        None => Role::User,
        Some(r) => Role::from_name(r).ok_or(HistoryError::BadRole)?,
    };
    if db.get_session(session_id).await?.is_none() {
        return Err(HistoryError::SessionNotFound(session_id));
    }
    Ok(db
        .add_message(&NewMessage::new(session_id, role, text))
        .await?)
}

pub async fn edit_message(
    db: &Db,
    session_id: i64,
    id: i64,
    text: Option<&str>,
) -> Result<Message, HistoryError> {
    let text = clean_text(text)?;
    if !db.edit_message(session_id, id, text).await? {
        return Err(HistoryError::MessageNotFound { session_id, id });
    }
    db.get_message(id)
        .await?
        .ok_or(HistoryError::MessageGone(id))
}

pub async fn delete_message(db: &Db, session_id: i64, id: i64) -> Result<(), HistoryError> {
    if db.delete_message(session_id, id).await? {
        Ok(())
    } else {
        Err(HistoryError::MessageNotFound { session_id, id })
    }
}

pub async fn search(
    db: &Db,
    q: Option<&str>,
    session_id: Option<i64>,
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<Vec<SearchHit>, HistoryError> {
    let q = q.unwrap_or_default();
    Ok(db
        .search(
            q,
            session_id,
            clamp(limit, 20, 100),
            offset.unwrap_or(0).clamp(0, 10_000),
        )
        .await?)
}

/// A session as a downloadable document.
pub struct Export {
    pub content_type: &'static str,
    pub file_name: String,
    pub body: String,
}

pub async fn export(db: &Db, id: i64, format: Option<&str>) -> Result<Export, HistoryError> {
    let format = format.unwrap_or("md");
    if !matches!(format, "md" | "json") {
        return Err(HistoryError::BadFormat);
    }
    let session = db
        .get_session(id)
        .await?
        .ok_or(HistoryError::SessionNotFound(id))?;
    let messages = db.all_messages(id).await?;
    let stem = file_stem(&session.title).unwrap_or_else(|| format!("session-{id}"));
    Ok(if format == "json" {
        let doc = serde_json::json!({"session": session, "messages": messages});
        Export {
            content_type: "application/json",
            file_name: format!("{stem}.json"),
            body: serde_json::to_string_pretty(&doc).unwrap_or_default(),
        }
    } else {
        Export {
            content_type: "text/markdown; charset=utf-8",
            file_name: format!("{stem}.md"),
            body: markdown(&session, &messages),
        }
    })
}

/// A file name's stem made from a title or a name: its letters and digits (any script), each
/// run of anything else one `-`. `None` when nothing is left.
pub fn file_stem(text: &str) -> Option<String> {
    let stem = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    (!stem.is_empty()).then_some(stem)
}

fn markdown(session: &SessionSummary, messages: &[Message]) -> String {
    let mut out = format!("# {}\n\n", session.title);
    for m in messages {
        let who = match m.role {
            Role::User => "You",
            Role::Assistant => "Companion",
            Role::System => "System",
        };
        let mut note = String::new();
        if let Some(e) = &m.emotion {
            note.push_str(&format!(" ({e})"));
        }
        if m.partial {
            note.push_str(" (cut short)");
        }
        out.push_str(&format!(
            "**{who}**{note} · {}\n\n{}\n\n",
            format_ts(m.ts),
            m.text.trim()
        ));
    }
    out
}

pub async fn list_characters(db: &Db) -> Result<Vec<Character>, HistoryError> {
    Ok(db.list_characters().await?)
}

pub async fn get_character(db: &Db, id: i64) -> Result<Character, HistoryError> {
    db.get_character(id)
        .await?
        .ok_or(HistoryError::CharacterNotFound(id))
}

fn bad_field(code: &'static str, field: &str, problem: impl std::fmt::Display) -> HistoryError {
    HistoryError::BadField {
        code,
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

/// `value` has at most `max` characters, or a refusal naming `field`.
fn capped(field: &str, value: Option<&str>, max: usize) -> Result<(), HistoryError> {
    match value {
        Some(v) if v.chars().count() > max => Err(bad_field(
            "field_too_long",
            field,
            format!("can have at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// The checks a character's fields need on their own, before anything is looked up.
pub(crate) fn check_character_fields(f: &CharacterFields) -> Result<(), HistoryError> {
    capped("name", f.name.as_deref(), MAX_CHARACTER_NAME_CHARS)?;
    capped(
        "system_prompt",
        f.system_prompt.as_deref(),
        MAX_SYSTEM_PROMPT_CHARS,
    )?;
    capped("avatar_url", f.avatar_url.as_deref(), MAX_AVATAR_URL_CHARS)?;
    capped("voice_id", f.voice_id.as_deref(), voice_id::MAX_CHARS)?;
    if let Some(p) = f.tts_provider.as_deref() {
        if !p.is_empty() && TtsProvider::from_name(p).is_none() {
            let names: Vec<&str> = TtsProvider::ALL.iter().map(|p| p.name()).collect();
            return Err(bad_field(
                "invalid_tts_provider",
                "tts_provider",
                format!(
                    "must be empty (the configured voice) or one of {}",
                    names.join(", ")
                ),
            ));
        }
    }
    if let Some(traits) = &f.personality_traits {
        if traits.len() > MAX_TRAITS {
            return Err(bad_field(
                "too_many_traits",
                "personality_traits",
                format!("can have at most {MAX_TRAITS} entries"),
            ));
        }
        for (i, t) in traits.iter().enumerate() {
            capped(
                &format!("personality_traits[{i}]"),
                Some(t),
                MAX_TRAIT_CHARS,
            )?;
        }
    }
    Ok(())
}

/// A character's voice id must suit the provider that will get it: its own `tts_provider`, else
/// the configured first voice (`default`), as in a chat turn.
pub(crate) fn check_character_voice(
    voice: Option<&str>,
    tts_provider: Option<&str>,
    default: TtsProvider,
) -> Result<(), HistoryError> {
    let Some(v) = voice.filter(|v| !v.trim().is_empty()) else {
        return Ok(());
    };
    let provider = tts_provider
        .and_then(TtsProvider::from_name)
        .unwrap_or(default);
    voice_id::check(provider, v).map_err(|e| bad_field("invalid_voice_id", "voice_id", e))
}

/// `default_voice` is the configured first voice provider, which speaks for a character that
/// names none.
pub async fn create_character(
    db: &Db,
    f: CharacterFields,
    default_voice: TtsProvider,
) -> Result<Character, HistoryError> {
    check_character_fields(&f)?;
    check_character_voice(
        f.voice_id.as_deref(),
        f.tts_provider.as_deref(),
        default_voice,
    )?;
    let blank = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().is_empty();
    if blank(&f.name) || blank(&f.system_prompt) {
        return Err(HistoryError::CharacterIncomplete);
    }
    Ok(db.create_character(&f).await?)
}

/// See [`create_character`] for `default_voice`.
pub async fn update_character(
    db: &Db,
    id: i64,
    f: CharacterFields,
    default_voice: TtsProvider,
) -> Result<Character, HistoryError> {
    check_character_fields(&f)?;
    if f.is_empty() {
        return Err(HistoryError::NoFields);
    }
    let blank = |v: &Option<String>| v.as_deref().is_some_and(|s| s.trim().is_empty());
    if blank(&f.name) || blank(&f.system_prompt) {
        return Err(HistoryError::CharacterEmptied);
    }
    if f.voice_id.is_some() || f.tts_provider.is_some() {
        // The voice and its provider may come one from the body and one from the stored row.
        let stored = get_character(db, id).await?;
        check_character_voice(
            f.voice_id.as_deref().or(stored.voice_id.as_deref()),
            f.tts_provider.as_deref().or(stored.tts_provider.as_deref()),
            default_voice,
        )?;
    }
    db.update_character(id, &f)
        .await?
        .ok_or(HistoryError::CharacterNotFound(id))
}

pub async fn delete_character(db: &Db, id: i64) -> Result<(), HistoryError> {
    if id == characters::DEFAULT_ID {
        return Err(HistoryError::DefaultCharacter);
    }
    if db.delete_character(id).await? {
        Ok(())
    } else {
        Err(HistoryError::CharacterNotFound(id))
    }
}
