//! History store tests on a real SQLite file in WAL mode.
#![cfg(feature = "ssr")]

use proptest::prelude::*;
use sqlx::SqlitePool;
use waifu_rt3d::{
    shared::history::Role,
    store::{
        self,
        messages::{self, Cursor, NewMessage},
        search, sessions, StoreError,
    },
};

async fn db() -> (SqlitePool, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pool = store::open(&dir.path().join("app.db")).await.unwrap();
    (pool, dir)
}

async fn say(pool: &SqlitePool, session: i64, role: Role, text: &str) -> i64 {
    messages::add(pool, &NewMessage::new(session, role, text))
        .await
        .unwrap()
        .id
}

async fn fts_rows(pool: &SqlitePool, word: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?")
        .bind(word)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_database_runs_in_wal_mode() {
    let (pool, _dir) = db().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn an_edited_message_is_found_by_its_new_words_only() {
    let (pool, _dir) = db().await;
    let s = sessions::create(&pool, Some("Plans")).await.unwrap();
    let id = say(
        &pool,
        s.id,
        Role::User,
        "let us visit the aquarium on friday",
    )
    .await;
    assert_eq!(
        search::search(&pool, "aquarium", None, 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        messages::edit(&pool, s.id, id, "let us visit the planetarium on friday")
            .await
            .unwrap()
    );
    assert!(search::search(&pool, "aquarium", None, 10, 0)
        .await
        .unwrap()
        .is_empty());
    let hits = search::search(&pool, "planetarium", None, 10, 0)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message_id, id);
    assert_eq!(hits[0].session_title, "Plans");
    assert!(
        hits[0].snippet.contains("<mark>planetarium</mark>"),
        "{}",
        hits[0].snippet
    );
    assert_eq!(fts_rows(&pool, "aquarium").await, 0);
}

#[tokio::test]
async fn deleting_a_session_cascades_and_empties_the_index() {
    let (pool, _dir) = db().await;
    let keep = sessions::create(&pool, Some("keep")).await.unwrap();
    let gone = sessions::create(&pool, Some("gone")).await.unwrap();
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
    assert_eq!(fts_rows(&pool, "zebra").await, 6);
    assert!(sessions::delete(&pool, gone.id).await.unwrap());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE session_id = ?")
        .bind(gone.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "messages must cascade");
    assert_eq!(
        fts_rows(&pool, "zebra").await,
        1,
        "cascaded rows must leave the index"
    );
    let hits = search::search(&pool, "zebra", None, 10, 0).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].session_id, keep.id);
    assert!(!sessions::delete(&pool, gone.id).await.unwrap());
}

#[tokio::test]
async fn deleting_one_message_removes_it_from_the_index() {
    let (pool, _dir) = db().await;
    let s = sessions::create(&pool, None).await.unwrap();
    let id = say(&pool, s.id, Role::User, "ephemeral words").await;
    assert!(messages::delete(&pool, s.id, id).await.unwrap());
    assert_eq!(fts_rows(&pool, "ephemeral").await, 0);
}

#[tokio::test]
async fn concurrent_writers_never_see_database_is_locked() {
    let (pool, _dir) = db().await;
    let s = sessions::create(&pool, None).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                messages::add(
                    &pool,
                    &NewMessage::new(s.id, Role::User, &format!("writer {w} message {i}")),
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 800);
    assert_eq!(fts_rows(&pool, "writer").await, 800);
}

#[tokio::test]
async fn sessions_list_newest_activity_first_with_counts() {
    let (pool, _dir) = db().await;
    let a = sessions::create(&pool, Some("a")).await.unwrap();
    let b = sessions::create(&pool, Some("b")).await.unwrap();
    say(&pool, a.id, Role::User, "hello").await;
    say(&pool, a.id, Role::Assistant, "hi").await;
    let list = sessions::list(&pool, 10, 0).await.unwrap();
    assert_eq!(list.iter().map(|s| s.id).collect::<Vec<_>>(), [a.id, b.id]);
    assert_eq!(list[0].message_count, 2);
    assert!(list[0].last_ts >= list[1].last_ts);
    assert!(sessions::rename(&pool, b.id, "  renamed  ").await.unwrap());
    assert_eq!(
        sessions::get(&pool, b.id).await.unwrap().unwrap().title,
        "renamed"
    );
    assert!(!sessions::rename(&pool, 9999, "x").await.unwrap());
    // ensure() creates a missing session once.
    let e = sessions::ensure(&pool, 42).await.unwrap();
    assert_eq!(e.id, 42);
    assert_eq!(
        sessions::ensure(&pool, 42).await.unwrap().created_ts,
        e.created_ts
    );
}

#[tokio::test]
async fn messages_page_backwards_forwards_and_around() {
    let (pool, _dir) = db().await;
    let s = sessions::create(&pool, None).await.unwrap();
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
    let latest = messages::page(&pool, s.id, Cursor::Latest, 10)
        .await
        .unwrap();
    assert_eq!(text(&latest).first().unwrap(), "m15");
    assert_eq!(text(&latest).last().unwrap(), "m24");
    assert!(latest.has_more_before && !latest.has_more_after);
    let older = messages::page(&pool, s.id, Cursor::Before(latest.messages[0].id), 10)
        .await
        .unwrap();
    assert_eq!(
        text(&older),
        (5..15).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(older.has_more_before && older.has_more_after);
    let oldest = messages::page(&pool, s.id, Cursor::Before(older.messages[0].id), 10)
        .await
        .unwrap();
    assert_eq!(oldest.messages.len(), 5);
    assert!(!oldest.has_more_before);
    let around = messages::page(&pool, s.id, Cursor::Around(ids[3]), 6)
        .await
        .unwrap();
    assert_eq!(text(&around), ["m1", "m2", "m3", "m4", "m5", "m6"]);
    assert!(around.has_more_before && around.has_more_after);
    let after = messages::page(&pool, s.id, Cursor::After(ids[20]), 10)
        .await
        .unwrap();
    assert_eq!(text(&after), ["m21", "m22", "m23", "m24"]);
    assert!(after.has_more_before && !after.has_more_after);
}

#[tokio::test]
async fn search_ranks_filters_and_folds_diacritics() {
    let (pool, _dir) = db().await;
    let a = sessions::create(&pool, Some("Café talk")).await.unwrap();
    let b = sessions::create(&pool, Some("Other")).await.unwrap();
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
    let hits = search::search(&pool, "cafe", None, 10, 0).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].session_id, b.id, "more matches rank first");
    assert!(hits[0].rank <= hits[1].rank);
    assert!(
        hits[1].snippet.contains("<mark>café</mark>"),
        "{}",
        hits[1].snippet
    );
    let only_a = search::search(&pool, "cafe", Some(a.id), 10, 0)
        .await
        .unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].session_id, a.id);
    // Prefix search keeps working.
    assert_eq!(
        search::search(&pool, "stat*", None, 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    // Snippets are escaped.
    say(
        &pool,
        a.id,
        Role::User,
        "<b>bold</b> & <script>x</script> unique-marker",
    )
    .await;
    let hit = &search::search(&pool, "unique", None, 10, 0).await.unwrap()[0];
    assert!(
        hit.snippet
            .contains("&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;"),
        "{}",
        hit.snippet
    );
}

#[tokio::test]
async fn a_word_in_more_messages_than_the_candidate_window_still_ranks_by_frequency() {
    let (pool, _dir) = db().await;
    let s = sessions::create(&pool, Some("busy")).await.unwrap();
    let filler: Vec<String> = (0..search::CANDIDATES + 200)
        .map(|i| format!("common word number {i} with padding text"))
        .collect();
    let batch: Vec<NewMessage> = filler
        .iter()
        .map(|t| NewMessage::new(s.id, Role::User, t))
        .collect();
    messages::add_many(&pool, &batch).await.unwrap();
    let best = say(&pool, s.id, Role::User, "common common common").await;
    say(
        &pool,
        s.id,
        Role::User,
        "common again, the newest one, with some more padding words",
    )
    .await;
    let hits = search::search(&pool, "common", None, 20, 0).await.unwrap();
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
    let next = search::search(&pool, "common", None, 20, 20).await.unwrap();
    assert!(next
        .iter()
        .all(|h| hits.iter().all(|p| p.message_id != h.message_id)));
}

#[tokio::test]
async fn hostile_search_text_is_text() {
    let (pool, _dir) = db().await;
    let s = sessions::create(&pool, None).await.unwrap();
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
        let r = search::search(&pool, q, None, 10, 0).await;
        assert!(!matches!(r, Err(StoreError::Db(_))), "{q:?}: {r:?}");
    }
    assert_eq!(
        search::search(&pool, "NEAR(", None, 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        search::search(&pool, "", None, 10, 0).await,
        Err(StoreError::BadQuery(_))
    ));
    let long = "x".repeat(10_000);
    assert!(matches!(
        search::search(&pool, &long, None, 10, 0).await,
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
            let (pool, _dir) = db().await;
            let s = sessions::create(&pool, None).await.unwrap();
            say(&pool, s.id, Role::User, "some words to find, with punctuation: yes!").await;
            for input in [q.as_str(), words.as_str()] {
                let r = search::search(&pool, input, None, 10, 0).await;
                prop_assert!(!matches!(r, Err(StoreError::Db(_))), "{:?}: {:?}", input, r);
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_chat_turn_finds_its_speaker_in_one_read() {
    use waifu_rt3d::store::characters::{self, CharacterFields};
    let (pool, _dir) = db().await;
    // No such session yet: the caller creates it.
    assert!(characters::for_session(&pool, 5, None)
        .await
        .unwrap()
        .is_none());
    sessions::create_with_id(&pool, 5).await.unwrap();
    let speaker = |requested| characters::for_session(&pool, 5, requested);
    let default = speaker(None).await.unwrap().unwrap().unwrap();
    assert_eq!(default.id, characters::DEFAULT_ID);

    let mira = characters::create(
        &pool,
        &CharacterFields {
            name: Some("Mira".into()),
            system_prompt: Some("You are Mira.".into()),
            personality_traits: Some(vec!["calm".into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Asked for by the turn, then as the session's own character.
    let asked = speaker(Some(mira.id)).await.unwrap().unwrap().unwrap();
    assert_eq!(
        (asked.name.as_str(), asked.personality_traits.as_slice()),
        ("Mira", &["calm".to_string()][..])
    );
    sqlx::query("UPDATE sessions SET character_id = ? WHERE id = 5")
        .bind(mira.id)
        .execute(&pool)
        .await
        .unwrap();
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
