//! The store's contract, on both backends: every test here runs once on a SQLite file in WAL mode
//! and once on a fresh database of a throwaway PostgreSQL cluster (`store::postgres::cluster`),
//! through the same `Store` calls the app makes. The few that look at one backend's own
//! machinery (WAL, the FTS5 table, the tsvector column) say so.
#![cfg(feature = "ssr")]

use proptest::prelude::*;
use waifu_rt3d::{
    shared::history::Role,
    store::{
        self,
        messages::{Cursor, NewMessage},
        postgres::cluster,
        search, Db, StoreError,
    },
};

/// A store under test, with a way to its own database for what the trait does not show.
struct TestDb {
    db: Db,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl std::ops::Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let pool = store::open(&dir.path().join("app.db")).await.unwrap();
    TestDb {
        db: store::sqlite(pool.clone()),
        raw: Raw::Sqlite(pool),
        _dir: Some(dir),
    }
}

async fn postgres() -> TestDb {
    let pool = cluster::fresh_pool()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    TestDb {
        db: store::postgres_db(pool.clone()),
        raw: Raw::Postgres(pool),
        _dir: None,
    }
}

/// Runs each named test (an `async fn(TestDb)`) on both backends, as `<name>::sqlite` and
/// `<name>::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::postgres().await).await
            }
        }
    )*};
}

on_both_backends!(
    an_edited_message_is_found_by_its_new_words_only,
    deleting_a_session_cascades_and_empties_the_index,
    deleting_one_message_removes_it_from_the_index,
    concurrent_writers_all_land,
    sessions_list_newest_activity_first_with_counts,
    messages_page_backwards_forwards_and_around,
    search_ranks_filters_and_folds_diacritics,
    a_word_in_more_messages_than_the_candidate_window_still_ranks_by_frequency,
    hostile_search_text_is_text,
    a_chat_turn_finds_its_speaker_in_one_read,
);

async fn say(db: &Db, session: i64, role: Role, text: &str) -> i64 {
    db.add_message(&NewMessage::new(session, role, text))
        .await
        .unwrap()
        .id
}

/// Messages the search index itself holds for one plain word: the FTS5 table's rows, or the
/// rows whose tsvector matches. (Search joins the messages, so it would not show stale entries.)
async fn index_rows(t: &TestDb, word: &str) -> i64 {
    match &t.raw {
        Raw::Sqlite(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?")
                .bind(word)
                .fetch_one(pool)
                .await
                .unwrap()
        }
        Raw::Postgres(pool) => sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE tsv @@ waifu_tsquery($1, '{f}', false, NULL)",
        )
        .bind(vec![word])
        .fetch_one(pool)
        .await
        .unwrap(),
    }
}

#[tokio::test]
async fn the_sqlite_database_runs_in_wal_mode() {
    let t = sqlite().await;
    let Raw::Sqlite(pool) = &t.raw else {
        unreachable!()
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

async fn an_edited_message_is_found_by_its_new_words_only(pool: TestDb) {
    let s = pool.create_session(Some("Plans")).await.unwrap();
    let id = say(
        &pool,
        s.id,
        Role::User,
        "let us visit the aquarium on friday",
    )
    .await;
    assert_eq!(pool.search("aquarium", None, 10, 0).await.unwrap().len(), 1);
    assert!(pool
        .edit_message(s.id, id, "let us visit the planetarium on friday")
        .await
        .unwrap());
    assert!(pool
        .search("aquarium", None, 10, 0)
        .await
        .unwrap()
        .is_empty());
    let hits = pool.search("planetarium", None, 10, 0).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message_id, id);
    assert_eq!(hits[0].session_title, "Plans");
    assert!(
        hits[0].snippet.contains("<mark>planetarium</mark>"),
        "{}",
        hits[0].snippet
    );
    assert_eq!(index_rows(&pool, "aquarium").await, 0);
}

async fn deleting_a_session_cascades_and_empties_the_index(pool: TestDb) {
    let keep = pool.create_session(Some("keep")).await.unwrap();
    let gone = pool.create_session(Some("gone")).await.unwrap();
    say(&pool, keep.id, Role::User, "zebra crossing").await;
    for i in 0..5 {
        say(
            &pool,
            gone.id,
            Role::Assistant,
            &format!("zebra number {i}"),
        )
        .await;
    }
    assert_eq!(index_rows(&pool, "zebra").await, 6);
    assert!(pool.delete_session(gone.id).await.unwrap());
    assert!(
        pool.all_messages(gone.id).await.unwrap().is_empty(),
        "messages must cascade"
    );
    assert_eq!(
        index_rows(&pool, "zebra").await,
        1,
        "cascaded rows must leave the index"
    );
    let hits = pool.search("zebra", None, 10, 0).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].session_id, keep.id);
    assert!(!pool.delete_session(gone.id).await.unwrap());
}

async fn deleting_one_message_removes_it_from_the_index(pool: TestDb) {
    let s = pool.create_session(None).await.unwrap();
    let id = say(&pool, s.id, Role::User, "ephemeral words").await;
    assert!(pool.delete_message(s.id, id).await.unwrap());
    assert_eq!(index_rows(&pool, "ephemeral").await, 0);
}

/// Eight writers at once: with SQLite none may see "database is locked"; with PostgreSQL every
/// row lands as well.
async fn concurrent_writers_all_land(pool: TestDb) {
    let s = pool.create_session(None).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let db = pool.db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                db.add_message(&NewMessage::new(
                    s.id,
                    Role::User,
                    &format!("writer {w} message {i}"),
                ))
                .await
                .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(pool.all_messages(s.id).await.unwrap().len(), 800);
    assert_eq!(index_rows(&pool, "writer").await, 800);
}

async fn sessions_list_newest_activity_first_with_counts(pool: TestDb) {
    let a = pool.create_session(Some("a")).await.unwrap();
    let b = pool.create_session(Some("b")).await.unwrap();
    say(&pool, a.id, Role::User, "hello").await;
    say(&pool, a.id, Role::Assistant, "hi").await;
    let list = pool.list_sessions(10, 0).await.unwrap();
    assert_eq!(list.iter().map(|s| s.id).collect::<Vec<_>>(), [a.id, b.id]);
    assert_eq!(list[0].message_count, 2);
    assert!(list[0].last_ts >= list[1].last_ts);
    assert!(pool.rename_session(b.id, "  renamed  ").await.unwrap());
    assert_eq!(
        pool.get_session(b.id).await.unwrap().unwrap().title,
        "renamed"
    );
    assert!(!pool.rename_session(9999, "x").await.unwrap());
    // ensure() creates a missing session once.
    let e = pool.ensure_session(42).await.unwrap();
    assert_eq!(e.id, 42);
    assert_eq!(
        pool.ensure_session(42).await.unwrap().created_ts,
        e.created_ts
    );
}

async fn messages_page_backwards_forwards_and_around(pool: TestDb) {
    let s = pool.create_session(None).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(say(&pool, s.id, Role::User, &format!("m{i}")).await);
    }
    let text = |p: &waifu_rt3d::shared::history::MessagePage| {
        p.messages
            .iter()
            .map(|m| m.text.clone())
            .collect::<Vec<_>>()
    };
    let latest = pool.message_page(s.id, Cursor::Latest, 10).await.unwrap();
    assert_eq!(text(&latest).first().unwrap(), "m15");
    assert_eq!(text(&latest).last().unwrap(), "m24");
    assert!(latest.has_more_before && !latest.has_more_after);
    let older = pool
        .message_page(s.id, Cursor::Before(latest.messages[0].id), 10)
        .await
        .unwrap();
    assert_eq!(
        text(&older),
        (5..15).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(older.has_more_before && older.has_more_after);
    let oldest = pool
        .message_page(s.id, Cursor::Before(older.messages[0].id), 10)
        .await
        .unwrap();
    assert_eq!(oldest.messages.len(), 5);
    assert!(!oldest.has_more_before);
    let around = pool
        .message_page(s.id, Cursor::Around(ids[3]), 6)
        .await
        .unwrap();
    assert_eq!(text(&around), ["m1", "m2", "m3", "m4", "m5", "m6"]);
    assert!(around.has_more_before && around.has_more_after);
    let after = pool
        .message_page(s.id, Cursor::After(ids[20]), 10)
        .await
        .unwrap();
    assert_eq!(text(&after), ["m21", "m22", "m23", "m24"]);
    assert!(after.has_more_before && !after.has_more_after);
}

async fn search_ranks_filters_and_folds_diacritics(pool: TestDb) {
    let a = pool.create_session(Some("Café talk")).await.unwrap();
    let b = pool.create_session(Some("Other")).await.unwrap();
    say(
        &pool,
        a.id,
        Role::User,
        "We met at the café near the station.",
    )
    .await;
    say(
        &pool,
        b.id,
        Role::User,
        "cafe cafe cafe: the best cafe in town",
    )
    .await;
    let hits = pool.search("cafe", None, 10, 0).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].session_id, b.id, "more matches rank first");
    assert!(hits[0].rank <= hits[1].rank);
    assert!(
        hits[1].snippet.contains("<mark>café</mark>"),
        "{}",
        hits[1].snippet
    );
    let only_a = pool.search("cafe", Some(a.id), 10, 0).await.unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].session_id, a.id);
    // Prefix search keeps working.
    assert_eq!(pool.search("stat*", None, 10, 0).await.unwrap().len(), 1);
    // Paging past the end, and a page of none.
    assert!(pool.search("cafe", None, 10, 2).await.unwrap().is_empty());
    assert!(pool.search("cafe", None, 0, 0).await.unwrap().is_empty());
    // Snippets are escaped, and a message cannot forge a match. (Where the excerpt starts is the
    // backend's choice: FTS5 and ts_headline pick different windows around the hit.)
    say(
        &pool,
        a.id,
        Role::User,
        "<b>bold</b> & <script>x</script> <mark>fake</mark> unique-marker",
    )
    .await;
    let hit = &pool.search("unique", None, 10, 0).await.unwrap()[0];
    for escaped in [
        "&amp; &lt;script&gt;x&lt;/script&gt;",
        "&lt;mark&gt;fake&lt;/mark&gt;",
    ] {
        assert!(hit.snippet.contains(escaped), "{}", hit.snippet);
    }
    let marked: Vec<&str> = hit
        .snippet_parts
        .iter()
        .filter(|p| p.mark)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, ["unique"]);
    assert_eq!(hit.snippet, search::snippet_html(&hit.snippet_parts));
}

async fn a_word_in_more_messages_than_the_candidate_window_still_ranks_by_frequency(pool: TestDb) {
    let s = pool.create_session(Some("busy")).await.unwrap();
    let filler: Vec<String> = (0..search::CANDIDATES + 200)
        .map(|i| format!("common word number {i} with padding text"))
        .collect();
    let batch: Vec<NewMessage> = filler
        .iter()
        .map(|t| NewMessage::new(s.id, Role::User, t))
        .collect();
    pool.add_messages(&batch).await.unwrap();
    let best = say(&pool, s.id, Role::User, "common common common").await;
    say(
        &pool,
        s.id,
        Role::User,
        "common again, the newest one, with some more padding words",
    )
    .await;
    let hits = pool.search("common", None, 20, 0).await.unwrap();
    assert_eq!(hits.len(), 20);
    assert_eq!(
        hits[0].message_id, best,
        "most occurrences in the shortest text ranks first"
    );
    assert!(hits.windows(2).all(|w| w[0].rank <= w[1].rank));
    assert!(hits
        .iter()
        .all(|h| h.snippet.contains("<mark>common</mark>")));
    // The page after: no repeats.
    let next = pool.search("common", None, 20, 20).await.unwrap();
    assert!(next
        .iter()
        .all(|h| hits.iter().all(|p| p.message_id != h.message_id)));
}

async fn hostile_search_text_is_text(pool: TestDb) {
    let s = pool.create_session(None).await.unwrap();
    // A NUL (pasted binary) is stored, not refused: PostgreSQL keeps U+FFFD in its place.
    let nul = say(&pool, s.id, Role::User, "pasted\0binary").await;
    let stored = pool.get_message(nul).await.unwrap().unwrap().text;
    assert!(
        ["pasted\0binary", "pasted\u{FFFD}binary"].contains(&stored.as_str()),
        "{stored:?}"
    );
    assert!(pool.edit_message(s.id, nul, "edited\0again").await.unwrap());
    assert!(pool.rename_session(s.id, "title\0with nul").await.unwrap());
    say(
        &pool,
        s.id,
        Role::User,
        "AND OR NOT NEAR quoted \"words\" here 🙂",
    )
    .await;
    for q in [
        "AND",
        "\"words",
        "NEAR(",
        "(((",
        "-here",
        "OR OR",
        "🙂 here",
        "col:here",
        "here^",
        "a\u{0}b here",
    ] {
        let r = pool.search(q, None, 10, 0).await;
        assert!(!matches!(r, Err(StoreError::Db(_))), "{q:?}: {r:?}");
    }
    assert_eq!(pool.search("NEAR(", None, 10, 0).await.unwrap().len(), 1);
    assert!(matches!(
        pool.search("", None, 10, 0).await,
        Err(StoreError::BadQuery(_))
    ));
    let long = "x".repeat(10_000);
    assert!(matches!(
        pool.search(&long, None, 10, 0).await,
        Err(StoreError::BadQuery(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Whatever a person types, search answers with results or a clear refusal, never a
    /// database error.
    #[test]
    fn arbitrary_search_text_never_fails_in_the_database(q in any::<String>(), words in "[ a-zA-Z\"*()^:.+-]{0,40}") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let pool = sqlite().await;
            let s = pool.create_session(None).await.unwrap();
            say(&pool, s.id, Role::User, "some words to find, with punctuation: yes!").await;
            for input in [q.as_str(), words.as_str()] {
                let r = pool.search(input, None, 10, 0).await;
                prop_assert!(!matches!(r, Err(StoreError::Db(_))), "{:?}: {:?}", input, r);
            }
            Ok(())
        })?;
    }
}

async fn a_chat_turn_finds_its_speaker_in_one_read(pool: TestDb) {
    use waifu_rt3d::store::characters::{self, CharacterFields};
    // No such session yet: the caller creates it.
    assert!(pool.character_for_session(5, None).await.unwrap().is_none());
    pool.create_session_with_id(5).await.unwrap();
    let speaker = |requested| pool.character_for_session(5, requested);
    let default = speaker(None).await.unwrap().unwrap().unwrap();
    assert_eq!(default.id, characters::DEFAULT_ID);

    let mira = pool
        .create_character(&CharacterFields {
            name: Some("Mira".into()),
            system_prompt: Some("You are Mira.".into()),
            personality_traits: Some(vec!["calm".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    // Asked for by the turn, then as the session's own character.
    let asked = speaker(Some(mira.id)).await.unwrap().unwrap().unwrap();
    assert_eq!(
        (asked.name.as_str(), asked.personality_traits.as_slice()),
        ("Mira", &["calm".to_string()][..])
    );
    // The session's own character, as a session opened for a character has it.
    let own = pool
        .create_session_for_character(None, mira.id, None)
        .await
        .unwrap();
    let speaker = |requested| pool.character_for_session(own.id, requested);
    assert_eq!(
        speaker(None).await.unwrap().unwrap().unwrap().system_prompt,
        "You are Mira."
    );
    // A request overrides the session; an unknown character is reported, not replaced.
    assert_eq!(
        speaker(Some(characters::DEFAULT_ID))
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .id,
        characters::DEFAULT_ID
    );
    assert!(speaker(Some(999)).await.unwrap().unwrap().is_none());
}
