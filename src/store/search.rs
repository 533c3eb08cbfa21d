//! Full-text search over every message (FTS5, bm25 ranking, highlighted snippets).
//!
//! What a person types is never handed to FTS5's query language: each word becomes a quoted
//! phrase, so quotes, `AND`, `-`, `*` in the middle of a word or unbalanced parentheses are just
//! text. A trailing `*` keeps its meaning (prefix search).

use super::StoreError;
use crate::shared::history::{Role, SearchHit, SnippetPart};
use sqlx::{FromRow, SqlitePool};

/// Longest search text accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Most words in one search.
pub const MAX_TERMS: usize = 32;
/// How many of the newest matches bm25 ranks (see `search`).
pub const CANDIDATES: i64 = 500;

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

// Markers FTS5 puts around the matches in snippet() output. A message may hold these very
// characters, so the snippet is taken twice with two different pairs (`SNIPPETS`): FTS5 picks the
// same excerpt both times, so a character the two copies agree on is the message's own text and a
// place where they differ is a marker. Nothing a person writes can forge a match.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';
const OPEN_CHECK: char = '\u{E002}';
const CLOSE_CHECK: char = '\u{E003}';
/// The two snippet() calls of the hit query, with the markers above.
const SNIPPETS: &str = "snippet(messages_fts, 0, char(57344), char(57345), '…', 16) AS snip, \
     snippet(messages_fts, 0, char(57346), char(57347), '…', 16) AS snip_check";

/// The snippet as text pieces, from the two copies FTS5 made of it (`SNIPPETS`). Matches never
/// nest and are always closed; empty pieces are left out. Should the copies ever disagree on the
/// text, the snippet comes back as one piece with no match rather than a guessed one.
pub fn snippet_parts(marked: &str, check: &str) -> Vec<SnippetPart> {
    let mut parts: Vec<SnippetPart> = Vec::new();
    let mut current = SnippetPart {
        text: String::new(),
        mark: false,
    };
    let mut a = marked.chars();
    let mut b = check.chars();
    loop {
        let mark = match (a.next(), b.next()) {
            (None, None) => break,
            (Some(x), Some(y)) if x == y => {
                current.text.push(x);
                continue;
            }
            (Some(OPEN), Some(OPEN_CHECK)) => true,
            (Some(CLOSE), Some(CLOSE_CHECK)) => false,
            _ => return unmarked(marked),
        };
        if mark != current.mark {
            let done = std::mem::replace(
                &mut current,
                SnippetPart {
                    text: String::new(),
                    mark,
                },
            );
            if !done.text.is_empty() {
                parts.push(done);
            }
        }
    }
    if !current.text.is_empty() {
        parts.push(current);
    }
    parts
}

/// The snippet's text with no match, for copies that do not line up (which FTS5 never makes).
fn unmarked(marked: &str) -> Vec<SnippetPart> {
    let text: String = marked
        .chars()
        .filter(|&c| c != OPEN && c != CLOSE)
        .collect();
    if text.is_empty() {
        return Vec::new();
    }
    vec![SnippetPart { text, mark: false }]
}

/// The pieces as HTML, for the `snippet` string: every piece escaped, the matches in `<mark>`.
pub fn snippet_html(parts: &[SnippetPart]) -> String {
    let mut out = String::new();
    for part in parts {
        if part.mark {
            out.push_str("<mark>");
        }
        for c in part.text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
        if part.mark {
            out.push_str("</mark>");
        }
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
    snip_check: String,
}

/// The best matches for `input`, best first, optionally within one session.
///
/// Ranking looks at the newest [`CANDIDATES`] matches (FTS5 walks its index newest first and
/// stops there, well under a millisecond). When every word of the search is rarer than that, all
/// matches are ranked with bm25. A common word would make bm25 first count every document that
/// contains it (about 20 ms for a word in most of a million messages, 120 ms with the rest of the
/// query), so then the candidates are ranked by the same formula without the inverse document
/// frequency: every candidate contains every word, so it weighs the words against each other but
/// not the candidates. That leaves term frequency, saturated, against message length (Okapi
/// k1 = 1.2, b = 0.75).
pub async fn search(
    pool: &SqlitePool,
    input: &str,
    session_id: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<SearchHit>, StoreError> {
    let query = fts_query(input).map_err(|p| StoreError::BadQuery(p.to_string()))?;
    const MATCHES: &str = "FROM messages_fts WHERE messages_fts MATCH ?1 \
         AND (?2 IS NULL OR rowid IN (SELECT id FROM messages WHERE session_id = ?2)) \
         ORDER BY rowid DESC LIMIT ?3";
    let count_sql = format!("SELECT count(*) FROM (SELECT rowid {MATCHES})");
    let count = |q: String| {
        sqlx::query_scalar::<_, i64>(&count_sql)
            .bind(q)
            .bind(session_id)
            .bind(CANDIDATES)
            .fetch_one(pool)
    };
    let matches = count(query.clone()).await.map_err(fts_error)?;
    if matches == 0 {
        return Ok(Vec::new());
    }
    // bm25's document-frequency count is cheap only when every word is rare. A one-word search
    // was counted above already.
    let mut every_word_rare = matches < CANDIDATES;
    if query.contains(' ') {
        for term in query.split(' ') {
            if !every_word_rare {
                break;
            }
            every_word_rare = count(term.to_string()).await.map_err(fts_error)? < CANDIDATES;
        }
    }
    // Lower is better, as with bm25().
    let ranking = if every_word_rare {
        format!("SELECT rowid, bm25(messages_fts) {MATCHES}")
    } else {
        format!(
            "WITH scored AS ( \
                 SELECT id, length(h) - length(replace(h, char(57344), '')) AS tf, max(length(h), 1) AS len \
                 FROM (SELECT rowid AS id, highlight(messages_fts, 0, char(57344), '') AS h {MATCHES})) \
             SELECT id, -(tf * 2.2) / (tf + 1.2 * (0.25 + 0.75 * len / (SELECT avg(len) FROM scored))) \
             FROM scored"
        )
    };
    let mut ranked: Vec<(i64, f64)> = sqlx::query_as(&ranking)
        .bind(&query)
        .bind(session_id)
        .bind(CANDIDATES)
        .fetch_all(pool)
        .await
        .map_err(fts_error)?;
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
    let page: Vec<(i64, f64)> = ranked
        .into_iter()
        .skip(offset.max(0) as usize)
        .take(limit.max(0) as usize)
        .collect();
    let (Some(lo), Some(hi)) = (
        page.iter().map(|p| p.0).min(),
        page.iter().map(|p| p.0).max(),
    ) else {
        return Ok(Vec::new());
    };
    // Snippets for the page alone; the rowid range keeps FTS5 from walking every match again.
    let ids =
        serde_json::to_string(&page.iter().map(|p| p.0).collect::<Vec<_>>()).unwrap_or_default();
    let rows: Vec<HitRow> = sqlx::query_as(&format!(
        "SELECT m.id, m.session_id, s.title, m.role, m.ts, {SNIPPETS} \
         FROM messages_fts \
         JOIN messages m ON m.id = messages_fts.rowid \
         JOIN sessions s ON s.id = m.session_id \
         WHERE messages_fts MATCH ?1 AND messages_fts.rowid BETWEEN ?2 AND ?3 \
           AND messages_fts.rowid IN (SELECT value FROM json_each(?4))"
    ))
    .bind(&query)
    .bind(lo)
    .bind(hi)
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(fts_error)?;
    let mut hits: Vec<SearchHit> = rows
        .into_iter()
        .filter_map(|r| {
            let rank = page.iter().find(|p| p.0 == r.id)?.1;
            let parts = snippet_parts(&r.snip, &r.snip_check);
            Some(SearchHit {
                message_id: r.id,
                session_id: r.session_id,
                session_title: r.title,
                role: Role::from_name(&r.role).unwrap_or(Role::System),
                ts: r.ts,
                snippet: snippet_html(&parts),
                snippet_parts: parts,
                rank,
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        a.rank
            .total_cmp(&b.rank)
            .then(b.message_id.cmp(&a.message_id))
    });
    Ok(hits)
}

/// An error FTS5 raises about the query is the input's fault (400), anything else the database's.
fn fts_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.message().contains("fts5") => {
            StoreError::BadQuery(format!(
                "That search could not be run ({}); try plain words.",
                db.message()
            ))
        }
        _ => StoreError::Db(e),
    }
}

/// A message recalled for the prompt because it shares words with what was just said.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Memory {
    pub id: i64,
    pub session_id: i64,
    pub role: String,
    pub text: String,
    pub ts: f64,
}

/// Words too common to say anything about what a message is about.
const STOPWORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "all", "any", "can", "had", "her",
    "was", "one", "our", "out", "has", "him", "his", "how", "man", "new", "now", "old", "see",
    "two", "way", "who", "did", "its", "let", "say", "she", "too", "use", "that", "this", "with",
    "have", "from", "they", "will", "would", "there", "their", "what", "about", "which", "when",
    "make", "like", "time", "just", "know", "take", "into", "year", "good", "some", "could",
    "them", "than", "then", "look", "only", "come", "over", "think", "also", "back", "after",
    "work", "well", "want", "because", "these", "give", "most", "were", "been", "does", "doing",
    "really", "very", "much", "more", "here", "where", "why", "yes", "okay", "hello", "thanks",
];

/// The words of `text` worth searching for, as an FTS5 query where any of them may match.
pub fn recall_query(text: &str) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() < 3 || STOPWORDS.contains(&word.as_str()) || words.contains(&word) {
            continue;
        }
        words.push(word);
        if words.len() == 8 {
            break;
        }
    }
    (!words.is_empty()).then(|| {
        words
            .iter()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join(" OR ")
    })
}

/// How many of the newest matching messages recall looks at. Ranking every match by bm25 costs
/// time in proportion to the matches (tens of ms for a common word in a big history); the newest
/// few hundred keep a turn's prompt building well under a millisecond.
const RECALL_CANDIDATES: i64 = 200;

/// Up to `limit` messages that share words with `text`, leaving out the newest `in_prompt`
/// messages of `session_id` (the prompt has them already; a message stored after this query
/// started is newer still, so it is left out too). Among the newest matches, the best
/// by bm25 come first (more of the words, rarer words), then the newer. Ranking happens in SQLite,
/// so only the `limit` winners are read out.
pub async fn recall(
    pool: &SqlitePool,
    text: &str,
    session_id: i64,
    in_prompt: i64,
    limit: i64,
) -> Result<Vec<Memory>, StoreError> {
    let Some(query) = recall_query(text) else {
        return Ok(Vec::new());
    };
    sqlx::query_as(
        "SELECT m.id, m.session_id, m.role, m.text, m.ts \
         FROM (SELECT rowid AS id, bm25(messages_fts) AS score FROM messages_fts \
               WHERE messages_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?4) c \
         JOIN messages m ON m.id = c.id \
         WHERE m.role != 'system' AND NOT (?3 > 0 AND m.session_id = ?2 AND m.id >= COALESCE( \
               (SELECT id FROM messages WHERE session_id = ?2 ORDER BY id DESC LIMIT 1 OFFSET ?3 - 1), 0)) \
         ORDER BY c.score, m.id DESC LIMIT ?5",
    )
    .bind(&query)
    .bind(session_id)
    .bind(in_prompt.max(0))
    .bind(RECALL_CANDIDATES)
    .bind(limit.max(0))
    .fetch_all(pool)
    .await
    .map_err(fts_error)
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
    fn recall_keeps_the_telling_words_once() {
        assert_eq!(
            recall_query("What about my cat Mochi? The cat!").as_deref(),
            Some(r#""cat" OR "mochi""#)
        );
        assert_eq!(recall_query("is it ok?"), None);
    }

    #[test]
    fn empty_and_oversized_input_are_refused() {
        assert_eq!(fts_query("   "), Err(QueryProblem::Empty));
        assert_eq!(fts_query("*** --- ()"), Err(QueryProblem::Empty));
        assert_eq!(fts_query(&"a".repeat(10_000)), Err(QueryProblem::TooLong));
        assert_eq!(fts_query(&"ab ".repeat(40)), Err(QueryProblem::TooLong));
    }

    fn part(text: &str, mark: bool) -> SnippetPart {
        SnippetPart {
            text: text.to_string(),
            mark,
        }
    }

    /// What FTS5 would make of `text` with `[` and `]` around the matches, in both copies.
    fn copies(text: &str) -> (String, String) {
        let with = |open: &str, close: &str| text.replace('[', open).replace(']', close);
        (
            with(&OPEN.to_string(), &CLOSE.to_string()),
            with(&OPEN_CHECK.to_string(), &CLOSE_CHECK.to_string()),
        )
    }

    #[test]
    fn the_two_copies_give_the_matches() {
        let (a, b) = copies("…the quick [fox] jumps [over]…");
        assert_eq!(
            snippet_parts(&a, &b),
            vec![
                part("…the quick ", false),
                part("fox", true),
                part(" jumps ", false),
                part("over", true),
                part("…", false),
            ]
        );
        assert_eq!(snippet_parts("", ""), vec![]);
        let (a, b) = copies("[all]");
        assert_eq!(snippet_parts(&a, &b), vec![part("all", true)]);
    }

    #[test]
    fn markup_and_marker_characters_in_a_message_are_text() {
        // The message itself holds <mark>, <script> and every marker character FTS5 is given.
        let own = format!(
            "<mark>x</mark> <script>alert('x')</script> {OPEN}a{CLOSE}{OPEN_CHECK}b{CLOSE_CHECK}"
        );
        let (a, b) = copies(&format!("{own} [hit] {CLOSE}"));
        let parts = snippet_parts(&a, &b);
        assert_eq!(
            parts,
            vec![
                part(&format!("{own} "), false),
                part("hit", true),
                part(&format!(" {CLOSE}"), false)
            ]
        );
        assert_eq!(parts.iter().filter(|p| p.mark).count(), 1);
        assert_eq!(
            snippet_html(&parts),
            format!(
                "&lt;mark&gt;x&lt;/mark&gt; &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; \
                 {OPEN}a{CLOSE}{OPEN_CHECK}b{CLOSE_CHECK} <mark>hit</mark> {CLOSE}"
            )
        );
    }

    #[test]
    fn copies_that_disagree_give_no_match() {
        // A marker in one copy where the other has the message's text: nothing is guessed.
        let forged = format!("{OPEN}x{CLOSE}");
        assert_eq!(snippet_parts(&forged, "axb"), vec![part("x", false)]);
        assert_eq!(snippet_parts("ab", "abc"), vec![part("ab", false)]);
        assert_eq!(snippet_parts(&forged, &forged), vec![part(&forged, false)]);
    }

    /// Through real FTS5: a message full of markup and marker characters comes back with its
    /// text intact and only the searched word marked.
    #[tokio::test]
    async fn hostile_text_in_a_real_index_cannot_forge_a_match() {
        use crate::store::messages::{add, NewMessage};
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&dir.path().join("t.db")).await.unwrap();
        crate::store::sessions::ensure(&pool, 1).await.unwrap();
        let text = format!(
            "<mark>fake</mark> {OPEN} forged {CLOSE}{OPEN_CHECK}also{CLOSE_CHECK} <script>x</script> needle"
        );
        add(&pool, &NewMessage::new(1, Role::User, &text))
            .await
            .unwrap();
        let hits = search(&pool, "needle", None, 10, 0).await.unwrap();
        assert_eq!(hits.len(), 1);
        let marked: Vec<&str> = hits[0]
            .snippet_parts
            .iter()
            .filter(|p| p.mark)
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(marked, vec!["needle"]);
        let text_back: String = hits[0]
            .snippet_parts
            .iter()
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(text_back, text);
        assert_eq!(hits[0].snippet.matches("<mark>").count(), 1);
        assert!(!hits[0].snippet.contains("<script>"));
        // The word between markers (the tokenizer counts private-use characters as letters, so
        // they stand apart here) is found, and only it is marked.
        let hits = search(&pool, "forged", None, 10, 0).await.unwrap();
        let marked: Vec<&str> = hits[0]
            .snippet_parts
            .iter()
            .filter(|p| p.mark)
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(marked, vec!["forged"]);
    }

    mod props {
        use super::*;
        use crate::store::{
            messages::{add, NewMessage},
            sessions,
        };
        use crate::testing::re;
        use proptest::prelude::*;
        use proptest::sample::Index;

        /// What a person may type into the search box, FTS5's own syntax included.
        fn typed() -> impl Strategy<Value = String> {
            prop_oneof![
                crate::testing::any_text(),
                prop::collection::vec(
                    prop::sample::select(vec![
                        "hello",
                        "café",
                        "\"",
                        "\"\"",
                        "*",
                        "**",
                        "AND",
                        "OR",
                        "NOT",
                        "NEAR",
                        "NEAR(",
                        "(",
                        ")",
                        "-",
                        "+",
                        "^",
                        ":",
                        "{",
                        "}",
                        "text:",
                        "col:",
                        "日本語",
                        "🙂",
                        "\0",
                        "\u{7}",
                        "\u{1b}[0m",
                        " ",
                        "\t",
                        "\n",
                        "\u{3000}",
                        "\u{a0}",
                        "x*",
                        "*x",
                        "a*b",
                        "a\"b",
                        "'",
                        "--",
                        "%",
                        "_",
                        "é",
                        "e\u{301}",
                        "\u{345}",
                        "ǅ",
                        "²",
                        "Ⅻ",
                        "İ",
                        "ß",
                        "\u{200b}",
                        "\u{feff}",
                        "\u{85}",
                        "\u{2028}",
                        ",",
                        ".",
                        ";",
                        "[",
                        "]",
                        "$",
                        "#",
                        "@",
                        "NEAR/3",
                        "^x",
                        "x:",
                    ]),
                    0..40,
                )
                .prop_map(|parts| parts.concat()),
                // Around the limits: 500 characters, 32 words.
                re("[a-z ]{480,520}"),
                prop::collection::vec(re("[a-z]{1,3}\\*?"), 28..40).prop_map(|w| w.join(" ")),
            ]
        }

        /// Words of the scripts people write in (letters SQLite's Unicode 6.1 tables know) with
        /// the punctuation and symbols that come with them. No character unassigned in Unicode 6.1
        /// (such as most emoji, or U+03A2) glued to a word: see
        /// `a_word_glued_to_a_newer_emoji_is_found`.
        fn word() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => re("[a-zA-Z0-9À-ÖØ-öø-ÿĀ-žΑ-ΡΣ-ωА-яぁ-んァ-ン一-龥가-힣א-תء-ي]{1,8}"),
                2 => prop::sample::select(vec![
                    "hello", "don't", "3.14", "1,000", "well-known", "\"quoted\"", "(paren)",
                    "a*b", "x^y", "col:on", "naïve", "ÉCOLE", "Straße", "İstanbul", "日本語",
                    "cat🐱", "🙂", "--", "e.g.", "AND", "OR", "NOT", "NEAR", "a\"b\"c",
                    "end*", "C++", "#tag", "@you", "100%",
                ])
                .prop_map(str::to_string),
            ]
        }

        fn runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
        }

        proptest! {
            #![proptest_config(crate::testing::config())]

            /// Any typed text: no panic, and an accepted query is at most 32 quoted terms, each
            /// with a letter or digit, no control character, every inner quote doubled, and only
            /// a trailing `*` outside the quotes.
            #[test]
            fn fts_query_quotes_every_word(input in typed()) {
                let Ok(query) = fts_query(&input) else {
                    return Ok(());
                };
                prop_assert!(input.chars().count() <= MAX_QUERY_CHARS);
                let terms: Vec<&str> = query.split(' ').collect();
                prop_assert!(!terms.is_empty() && terms.len() <= MAX_TERMS, "{query}");
                for term in terms {
                    let inner = term
                        .strip_suffix('*')
                        .unwrap_or(term)
                        .strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'));
                    prop_assert!(inner.is_some(), "unquoted term {term:?} in {query:?}");
                    let inner = inner.unwrap_or_default();
                    prop_assert!(!inner.replace("\"\"", "").contains('"'), "{term:?}");
                    prop_assert!(inner.chars().any(char::is_alphanumeric), "{term:?}");
                    prop_assert!(!inner.chars().any(char::is_control), "{term:?}");
                    prop_assert!(!inner.chars().any(char::is_whitespace), "{term:?}");
                }
            }

            /// Recall's query is up to eight distinct lower-case words of three or more letters
            /// or digits, quoted, joined by OR.
            #[test]
            fn recall_query_is_quoted_words_joined_by_or(text in typed()) {
                let Some(query) = recall_query(&text) else {
                    return Ok(());
                };
                let words: Vec<&str> = query.split(" OR ").collect();
                prop_assert!(!words.is_empty() && words.len() <= 8, "{query}");
                for (i, w) in words.iter().enumerate() {
                    let inner = w.strip_prefix('"').and_then(|w| w.strip_suffix('"'));
                    prop_assert!(inner.is_some(), "{w:?}");
                    let inner = inner.unwrap_or_default();
                    prop_assert!(!inner.contains('"') && inner.chars().count() >= 3, "{w:?}");
                    prop_assert_eq!(inner.to_lowercase(), inner);
                    prop_assert!(!words[..i].contains(w), "{w:?} twice");
                }
            }
        }

        /// Every query `fts_query` and `recall_query` build is one FTS5 accepts: run through
        /// the real `search` and `recall` on a real database (the app's schema, WAL), each
        /// search is answered or refused for the reason `fts_query` gave, never by an FTS5
        /// syntax error. Each case is several SQLite statements (about a millisecond), so this
        /// runs one case in five of the others: 2,000 by default.
        #[test]
        fn sqlite_accepts_every_query_built() {
            let rt = runtime();
            let dir = tempfile::tempdir().expect("a temporary folder");
            let pool = rt
                .block_on(crate::store::open(&dir.path().join("t.db")))
                .expect("the database");
            rt.block_on(async {
                sessions::ensure(&pool, 1).await.expect("a session");
                for text in [
                    "hello café world",
                    "\"quoted\" AND (paren) NEAR x*",
                    "日本語のテキスト",
                    "naïve ÉCOLE Straße İstanbul",
                    "a*b x^y col:on 100%",
                    "don't stop",
                ] {
                    add(&pool, &NewMessage::new(1, Role::User, text))
                        .await
                        .expect("a message");
                }
            });
            proptest!(crate::testing::config_divided(5), |(input in typed())| {
                let found = rt.block_on(search(&pool, &input, None, 10, 0));
                match fts_query(&input) {
                    Ok(_) => prop_assert!(found.is_ok(), "{input:?}: {:?}", found.err()),
                    Err(problem) => prop_assert!(
                        matches!(&found, Err(StoreError::BadQuery(m)) if *m == problem.to_string()),
                        "{input:?}: {found:?}"
                    ),
                }
                let recalled = rt.block_on(recall(&pool, &input, 1, 0, 3));
                prop_assert!(recalled.is_ok(), "{input:?}: {:?}", recalled.err());
            });
        }

        /// A message is found by any of its words, and by the start of a word followed by `*`;
        /// recall finds it by what it says. Each case stores a message and runs two or three
        /// searches (about 6 ms), so this runs one case in twenty of the others: 500 by default.
        #[test]
        fn a_message_is_found_by_its_own_words() {
            let rt = runtime();
            let dir = tempfile::tempdir().expect("a temporary folder");
            let pool = rt
                .block_on(crate::store::open(&dir.path().join("t.db")))
                .expect("the database");
            let last_session = std::cell::Cell::new(0);
            proptest!(crate::testing::config_divided(20), |(
                words in prop::collection::vec(word(), 1..12),
                picks in prop::collection::vec((any::<Index>(), prop::option::of(any::<Index>())), 1..4),
            )| {
                let session = last_session.get() + 1;
                last_session.set(session);
                let text = words.join(" ");
                let id = rt.block_on(async {
                    sessions::ensure(&pool, session).await?;
                    add(&pool, &NewMessage::new(session, Role::User, &text)).await
                });
                let id = id.map_err(|e| TestCaseError::fail(e.to_string()))?.id;
                let searchable: Vec<&String> = words
                    .iter()
                    .filter(|w| w.chars().any(char::is_alphanumeric))
                    .collect();
                if searchable.is_empty() {
                    return Ok(());
                }
                let mut query = Vec::new();
                for (pick, prefix) in &picks {
                    let word = searchable[pick.index(searchable.len())];
                    let chars: Vec<char> = word.chars().collect();
                    query.push(match prefix {
                        // The word's start, up to a letter or digit, as a prefix search.
                        Some(cut) => {
                            let first = chars.iter().position(|c| c.is_alphanumeric()).unwrap_or(0);
                            let cut = first + 1 + cut.index(chars.len() - first);
                            format!("{}*", chars[..cut].iter().collect::<String>())
                        }
                        None => word.clone(),
                    });
                }
                let query = query.join(" ");
                let hits = rt.block_on(search(&pool, &query, Some(session), 100, 0));
                let hits = hits.map_err(|e| TestCaseError::fail(format!("{query:?}: {e}")))?;
                prop_assert!(
                    hits.iter().any(|h| h.message_id == id),
                    "{query:?} did not find {text:?}: {hits:?}"
                );
                if recall_query(&text).is_some() {
                    let memories = rt.block_on(recall(&pool, &text, 0, 0, 1_000));
                    let memories = memories.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(memories.iter().any(|m| m.id == id), "recall missed {text:?}");
                }
            });
        }
    }

    /// Known gap: FTS5's unicode61 tokenizer knows Unicode 6.1, where most of today's emoji
    /// (🙂 is from 7.0) are unassigned and so count as letters: `smile🙂` is one token, and
    /// neither search nor recall finds that message by `smile`. (`cat🐱`, from 6.0, is fine.)
    #[tokio::test]
    #[ignore = "known gap: the FTS5 tokenizer glues emoji newer than Unicode 6.1 to words"]
    async fn a_word_glued_to_a_newer_emoji_is_found() {
        use crate::store::messages::{add, NewMessage};
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&dir.path().join("t.db")).await.unwrap();
        crate::store::sessions::ensure(&pool, 1).await.unwrap();
        add(&pool, &NewMessage::new(1, Role::User, "what a smile🙂"))
            .await
            .unwrap();
        assert_eq!(search(&pool, "smile", None, 10, 0).await.unwrap().len(), 1);
        assert_eq!(recall(&pool, "smile", 0, 0, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn recall_leaves_out_what_the_prompt_has_and_ranks_the_closest_first() {
        use crate::{
            shared::history::Role,
            store::messages::{add, NewMessage},
        };
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(&dir.path().join("t.db")).await.unwrap();
        for (session, text) in [
            (2, "my cat Mochi sleeps all day"),
            (2, "the weather is grey"),
            (2, "cat food is expensive"),
            (3, "Mochi the cat chased a bird"),
            (3, "Mochi again"),
        ] {
            crate::store::sessions::ensure(&pool, session)
                .await
                .unwrap();
            add(&pool, &NewMessage::new(session, Role::User, text))
                .await
                .unwrap();
        }
        let texts = |m: Vec<Memory>| m.into_iter().map(|m| m.text).collect::<Vec<_>>();
        // Session 3's newest message is in the prompt: it is not recalled.
        let got = texts(recall(&pool, "how is my cat Mochi", 3, 1, 5).await.unwrap());
        assert!(!got.contains(&"Mochi again".to_string()), "{got:?}");
        assert!(
            got.contains(&"Mochi the cat chased a bird".to_string()),
            "{got:?}"
        );
        // Both words beat one word.
        assert!(
            got.iter()
                .position(|t| t.contains("Mochi") && t.contains("cat"))
                < got.iter().position(|t| t == "cat food is expensive"),
            "{got:?}"
        );
        assert!(!got.contains(&"the weather is grey".to_string()));
        // With the whole of session 3 in the prompt, none of it comes back; limit holds.
        let got = texts(recall(&pool, "cat Mochi", 3, 10, 1).await.unwrap());
        assert_eq!(got.len(), 1);
        assert!(
            !got[0].contains("chased") && !got[0].contains("again"),
            "{got:?}"
        );
        // No history in the prompt: everything may be recalled.
        let got = texts(recall(&pool, "Mochi", 3, 0, 5).await.unwrap());
        assert_eq!(got.len(), 3, "{got:?}");
    }
}
