//! Full-text search over every message (FTS5, bm25 ranking, highlighted snippets).
//!
//! What a person types is never handed to FTS5's query language: each word becomes a quoted
//! phrase, so quotes, `AND`, `-`, `*` in the middle of a word or unbalanced parentheses are just
//! text. A trailing `*` keeps its meaning (prefix search).

use super::StoreError;
use crate::shared::history::{Role, SearchHit};
use sqlx::{FromRow, SqlitePool};

/// Longest search text accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Most words in one search.
pub const MAX_TERMS: usize = 32;
/// How many of the newest matches bm25 ranks (see `search`).
pub const CANDIDATES: i64 = 1_000;

/// Why a search text cannot be searched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryProblem {
    #[error("Type a word to search for.")]
    Empty,
    #[error("The search text is too long: use at most 500 characters and 32 words.")]
    TooLong,
}

/// Turns typed text into an FTS5 query of quoted terms, all of which must match.
pub fn fts_query(input: &str) -> Result<String, QueryProblem> {
    if input.chars().count() > MAX_QUERY_CHARS {
        return Err(QueryProblem::TooLong);
    }
    let mut terms = Vec::new();
    for word in input.split_whitespace() {
        let (word, prefix) = match word.strip_suffix('*') {
            Some(w) => (w.trim_end_matches('*'), true),
            None => (word, false),
        };
        let clean: String = word.chars().filter(|c| !c.is_control()).collect();
        // A word with no letter or digit has no token to find (the tokenizer drops punctuation).
        if !clean.chars().any(char::is_alphanumeric) {
            continue;
        }
        let quoted = format!("\"{}\"", clean.replace('"', "\"\""));
        terms.push(if prefix { format!("{quoted}*") } else { quoted });
    }
    if terms.is_empty() {
        return Err(QueryProblem::Empty);
    }
    if terms.len() > MAX_TERMS {
        return Err(QueryProblem::TooLong);
    }
    Ok(terms.join(" "))
}

// Private-use characters mark the matches inside snippet() output; they are turned into <mark>
// after the text around them is escaped.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// Escapes a snippet for HTML and turns the match markers into balanced `<mark>` elements.
pub fn snippet_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 16);
    let mut open = false;
    for c in raw.chars() {
        match c {
            OPEN if !open => {
                out.push_str("<mark>");
                open = true;
            }
            CLOSE if open => {
                out.push_str("</mark>");
                open = false;
            }
            OPEN | CLOSE => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    if open {
        out.push_str("</mark>");
    }
    out
}

#[derive(FromRow)]
struct HitRow {
    id: i64,
    session_id: i64,
    title: String,
    role: String,
    ts: f64,
    snip: String,
    rank: f64,
}

/// The best matches for `input`, best first (bm25), optionally within one session.
pub async fn search(
    pool: &SqlitePool,
    input: &str,
    session_id: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<SearchHit>, StoreError> {
    let query = fts_query(input).map_err(|p| StoreError::BadQuery(p.to_string()))?;
    // Ranking every match of a very common word costs time in proportion to the matches (about
    // 0.3 s for a word in most of a million messages), so bm25 ranks the newest CANDIDATES
    // matches: FTS5 walks the index newest first and stops there. A word with fewer matches than
    // that is ranked over all of them. Snippets are made for the returned page alone.
    let rows: Vec<HitRow> = sqlx::query_as(
        "WITH candidates AS ( \
             SELECT rowid AS id, bm25(messages_fts) AS score FROM messages_fts \
             WHERE messages_fts MATCH ?1 \
               AND (?2 IS NULL OR rowid IN (SELECT id FROM messages WHERE session_id = ?2)) \
             ORDER BY rowid DESC LIMIT ?5), \
         top AS (SELECT id, score FROM candidates ORDER BY score, id DESC LIMIT ?3 OFFSET ?4) \
         SELECT m.id, m.session_id, s.title, m.role, m.ts, \
                snippet(messages_fts, 0, char(57344), char(57345), '…', 16) AS snip, top.score AS rank \
         FROM top \
         JOIN messages_fts ON messages_fts.rowid = top.id AND messages_fts MATCH ?1 \
         JOIN messages m ON m.id = top.id \
         JOIN sessions s ON s.id = m.session_id \
         ORDER BY top.score, top.id DESC",
    )
    .bind(&query)
    .bind(session_id)
    .bind(limit)
    .bind(offset)
    .bind(CANDIDATES)
    .fetch_all(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.message().contains("fts5") => {
            StoreError::BadQuery(format!("That search could not be run ({}); try plain words.", db.message()))
        }
        _ => StoreError::Db(e),
    })?;
    Ok(rows
        .into_iter()
        .map(|r| SearchHit {
            message_id: r.id,
            session_id: r.session_id,
            session_title: r.title,
            role: Role::from_name(&r.role).unwrap_or(Role::System),
            ts: r.ts,
            snippet: snippet_html(&r.snip),
            rank: r.rank,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_and_operators_are_text() {
        assert_eq!(fts_query("hello world").unwrap(), r#""hello" "world""#);
        assert_eq!(
            fts_query("cats AND dogs").unwrap(),
            r#""cats" "AND" "dogs""#
        );
        assert_eq!(fts_query(r#"say "hi"#).unwrap(), r#""say" """hi""#);
        assert_eq!(fts_query("walk*").unwrap(), r#""walk"*"#);
        assert_eq!(
            fts_query("(unbalanced -minus").unwrap(),
            r#""(unbalanced" "-minus""#
        );
        assert_eq!(fts_query("!!! ?? hi").unwrap(), r#""hi""#);
    }

    #[test]
    fn empty_and_oversized_input_are_refused() {
        assert_eq!(fts_query("   "), Err(QueryProblem::Empty));
        assert_eq!(fts_query("*** --- ()"), Err(QueryProblem::Empty));
        assert_eq!(fts_query(&"a".repeat(10_000)), Err(QueryProblem::TooLong));
        assert_eq!(fts_query(&"ab ".repeat(40)), Err(QueryProblem::TooLong));
    }

    #[test]
    fn snippets_escape_everything_but_the_marks() {
        let raw =
            format!("<script>alert('x')</script> {OPEN}hello{CLOSE} & {CLOSE}stray {OPEN}open");
        assert_eq!(
            snippet_html(&raw),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; <mark>hello</mark> &amp; stray <mark>open</mark>"
        );
    }
}
