//! Full-text search in PostgreSQL (see `store::search`): the generated `tsv` column, its GIN
//! index, `ts_rank_cd` ranking and `ts_headline` snippets.
//!
//! The query is built from the very terms the SQLite store hands FTS5 (`fts_query`,
//! `recall_query`), by `waifu_tsquery` in the schema: each term a phrase of its words, a trailing
//! `*` a prefix match, all terms required (recall: any). No user text is ever parsed as tsquery
//! syntax, so a search never fails on what was typed; only an empty or oversized one is refused,
//! with the same `BadQuery` message as SQLite's.

use crate::shared::history::{Role, SearchHit, SnippetPart};
use crate::store::{
    search::{fts_query, recall_query, snippet_html, Memory, CANDIDATES},
    StoreError,
};
use sqlx::{FromRow, PgPool};

/// How many of the newest matching messages recall ranks (as in SQLite).
const RECALL_CANDIDATES: i64 = 200;

/// Where ts_headline marks a match. The text it marks is HTML-escaped first, so a message cannot
/// contain these strings as written: every `<` in it is `&lt;` by then.
const MARK_OPEN: &str = "<mark>";
const MARK_CLOSE: &str = "</mark>";
/// The headline options: about as long an excerpt as SQLite's 16-token snippet (ts_headline counts
/// the spaces and punctuation between words as words too).
const HEADLINE: &str = "StartSel=<mark>, StopSel=</mark>, MaxWords=32, MinWords=16, ShortWord=0";

/// The terms of an FTS5 query made by `fts_query`: each `"…"` (inner quotes doubled), with a
/// trailing `*` for a prefix. Terms never contain a space (they come from whitespace-split
/// words), so the query splits on spaces.
pub(crate) fn query_terms(fts: &str) -> (Vec<String>, Vec<bool>) {
    let mut terms = Vec::new();
    let mut prefixes = Vec::new();
    for term in fts.split(' ').filter(|t| !t.is_empty()) {
        let (term, prefix) = match term.strip_suffix('*') {
            Some(t) => (t, true),
            None => (term, false),
        };
        let inner = term
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(term);
        terms.push(inner.replace("\"\"", "\""));
        prefixes.push(prefix);
    }
    (terms, prefixes)
}

/// The words of a `recall_query` (`"a" OR "b"`).
pub(crate) fn recall_terms(query: &str) -> Vec<String> {
    query
        .split(" OR ")
        .map(|w| w.trim_matches('"').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

#[derive(FromRow)]
struct HitRow {
    id: i64,
    session_id: i64,
    title: String,
    role: String,
    ts: f64,
    text: String,
    headline: String,
}

/// The best matches for `input`, best first, optionally within one session. Ranking looks at the
/// newest [`CANDIDATES`] matches, as SQLite's does (there with bm25), by `ts_rank_cd`, negated so
/// that lower is better as with bm25. Ties go to the newer message.
pub async fn search(
    pool: &PgPool,
    input: &str,
    session_id: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<SearchHit>, StoreError> {
    let query = fts_query(input).map_err(|p| StoreError::BadQuery(p.to_string()))?;
    let (terms, prefixes) = query_terms(&query);
    // Length-normalised (1: divided by 1 + log of the message's length), as bm25 weighs a
    // word in a short message above the same word in a long one.
    let mut ranked: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT c.id, -ts_rank_cd(c.tsv, q.q, 1)::float8 \
         FROM (SELECT waifu_tsquery($1, $2, false, NULL) AS q) q \
         CROSS JOIN LATERAL ( \
             SELECT id, tsv FROM messages \
             WHERE tsv @@ q.q AND ($3::bigint IS NULL OR session_id = $3) \
             ORDER BY id DESC LIMIT $4) c",
    )
    .bind(&terms)
    .bind(&prefixes)
    .bind(session_id)
    .bind(CANDIDATES)
    .fetch_all(pool)
    .await?;
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
    let page: Vec<(i64, f64)> = ranked
        .into_iter()
        .skip(offset.max(0) as usize)
        .take(limit.max(0) as usize)
        .collect();
    if page.is_empty() {
        return Ok(Vec::new());
    }
    // Headlines for the page alone: ts_headline reparses each message.
    let ids: Vec<i64> = page.iter().map(|p| p.0).collect();
    let rows: Vec<HitRow> = sqlx::query_as(&format!(
        "SELECT m.id, m.session_id, s.title, m.role, m.ts, m.text, \
                ts_headline('waifu', waifu_html_escape(m.text), waifu_tsquery($1, $2, false, 'waifu'), \
                            '{HEADLINE}') AS headline \
         FROM messages m JOIN sessions s ON s.id = m.session_id \
         WHERE m.id = ANY($3)"
    ))
    .bind(&terms)
    .bind(&prefixes)
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut hits: Vec<SearchHit> = rows
        .into_iter()
        .filter_map(|r| {
            let rank = page.iter().find(|p| p.0 == r.id)?.1;
            let parts = headline_parts(&r.headline, &r.text);
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

/// A ts_headline of the HTML-escaped text as the snippet pieces SQLite's snippets give: the text
/// unescaped, the matches marked, and `…` where the excerpt starts after the message's start or
/// ends before its end (as FTS5's snippet() shows it).
pub(crate) fn headline_parts(headline: &str, text: &str) -> Vec<SnippetPart> {
    let mut parts: Vec<SnippetPart> = Vec::new();
    let mut push = |piece: &str, mark: bool| {
        let piece = unescape(piece);
        if piece.is_empty() {
            return;
        }
        match parts.last_mut() {
            Some(last) if last.mark == mark => last.text.push_str(&piece),
            _ => parts.push(SnippetPart { text: piece, mark }),
        }
    };
    let mut rest = headline;
    while let Some(start) = rest.find(MARK_OPEN) {
        push(&rest[..start], false);
        let after = &rest[start + MARK_OPEN.len()..];
        let (marked, next) = match after.find(MARK_CLOSE) {
            Some(end) => (&after[..end], &after[end + MARK_CLOSE.len()..]),
            None => (after, ""),
        };
        push(marked, true);
        rest = next;
    }
    push(rest, false);
    let shown: String = parts.iter().map(|p| p.text.as_str()).collect();
    if shown.trim().is_empty() {
        return parts;
    }
    // ts_headline keeps the separators between the words it shows but may drop those at either
    // end, so the excerpt's edges are compared word by word.
    let edge = |from_end: bool| {
        let (mut a, mut b) = (text.split_whitespace(), shown.split_whitespace());
        if from_end {
            a.next_back() == b.next_back()
        } else {
            a.next() == b.next()
        }
    };
    if !edge(false) {
        parts.insert(
            0,
            SnippetPart {
                text: "…".into(),
                mark: false,
            },
        );
    }
    if !edge(true) {
        parts.push(SnippetPart {
            text: "…".into(),
            mark: false,
        });
    }
    merge_plain(parts)
}

/// Neighbouring unmarked pieces as one.
fn merge_plain(parts: Vec<SnippetPart>) -> Vec<SnippetPart> {
    let mut out: Vec<SnippetPart> = Vec::with_capacity(parts.len());
    for part in parts {
        match out.last_mut() {
            Some(last) if last.mark == part.mark => last.text.push_str(&part.text),
            _ => out.push(part),
        }
    }
    out
}

/// The text `waifu_html_escape` escaped, as it was.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (c, len) = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&#39;", '\''),
        ]
        .iter()
        .find(|(entity, _)| tail.starts_with(entity))
        .map_or(('&', 1), |(entity, c)| (*c, entity.len()));
        out.push(c);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// Up to `limit` messages that share words with `text`, leaving out the newest `in_prompt`
/// messages of `session_id` (see `store::search::recall`). Among the newest matches, the best by
/// `ts_rank_cd` come first, then the newer.
pub async fn recall(
    pool: &PgPool,
    text: &str,
    session_id: i64,
    in_prompt: i64,
    limit: i64,
) -> Result<Vec<Memory>, StoreError> {
    let Some(query) = recall_query(text) else {
        return Ok(Vec::new());
    };
    let words = recall_terms(&query);
    let prefixes = vec![false; words.len()];
    Ok(sqlx::query_as(
        "SELECT m.id, m.session_id, m.role, m.text, m.ts \
         FROM (SELECT c.id, -ts_rank_cd(c.tsv, q.q, 1) AS score \
               FROM (SELECT waifu_tsquery($1, $2, true, NULL) AS q) q \
               CROSS JOIN LATERAL (SELECT id, tsv FROM messages WHERE tsv @@ q.q \
                                   ORDER BY id DESC LIMIT $5) c) c \
         JOIN messages m ON m.id = c.id \
         WHERE m.role <> 'system' AND NOT ($4 > 0 AND m.session_id = $3 AND m.id >= COALESCE( \
               (SELECT id FROM messages WHERE session_id = $3 ORDER BY id DESC LIMIT 1 OFFSET $4 - 1), 0)) \
         ORDER BY c.score, m.id DESC LIMIT $6",
    )
    .bind(&words)
    .bind(&prefixes)
    .bind(session_id)
    .bind(in_prompt.max(0))
    .bind(RECALL_CANDIDATES)
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?)
}
