//! The PostgreSQL store against a throwaway cluster (`cluster::shared`, one per test process, a
//! database per test): what is its own (migrations, identities after explicit ids, SQLSTATEs, the
//! stored fields and traces, cards and portraits) and search parity with SQLite on one corpus
//! and on random messages. The contract both backends share runs on each in `tests/it/store.rs`.
//! Without PostgreSQL installed every test here fails, saying so.

use super::{characters, cluster, messages, search, sessions};
use crate::shared::{
    chat::InputKind,
    history::{Role, SnippetPart},
};
use crate::store::{
    characters::{CardRow, CharacterFields, Portrait, DEFAULT_ID},
    messages::NewMessage,
    StoreError,
};
use sqlx::PgPool;
use std::collections::BTreeSet;

async fn pg() -> PgPool {
    cluster::fresh_pool()
        .await
        .unwrap_or_else(|e| panic!("no PostgreSQL for the tests: {e}"))
}

async fn say(pool: &PgPool, session: i64, role: Role, text: &str) -> i64 {
    messages::add(pool, &NewMessage::new(session, role, text))
        .await
        .unwrap()
        .id
}

/// Messages the index finds for one plain word (what `fts_rows` counts for SQLite).
async fn indexed(pool: &PgPool, word: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE tsv @@ waifu_tsquery($1, '{f}', false, NULL)",
    )
    .bind(vec![word])
    .fetch_one(pool)
    .await
    .unwrap()
}

fn ids(hits: &[crate::shared::history::SearchHit]) -> BTreeSet<i64> {
    hits.iter().map(|h| h.message_id).collect()
}

#[tokio::test]
async fn opens_migrated_with_the_default_character_and_reopens() {
    let cluster = cluster::shared().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database().await.unwrap();
    let pool = super::open(&url).await.unwrap();
    let health = super::db_health(&pool).await;
    assert!(health.ok);
    assert_eq!(health.journal_mode, "postgres");
    assert_eq!(health.messages, 0);
    // The same default character as SQLite's migration makes.
    let dir = tempfile::tempdir().unwrap();
    let lite = crate::store::open(&dir.path().join("t.db")).await.unwrap();
    let want = crate::store::characters::get(&lite, DEFAULT_ID)
        .await
        .unwrap()
        .unwrap();
    let got = characters::get(&pool, DEFAULT_ID).await.unwrap().unwrap();
    assert_eq!(
        (&got.name, &got.system_prompt, &got.personality_traits),
        (&want.name, &want.system_prompt, &want.personality_traits)
    );
    assert!(!got.has_portrait && got.greeting == 0);
    // The identity goes on after the explicit id 1.
    let mira = characters::create(
        &pool,
        &CharacterFields {
            name: Some("Mira".into()),
            system_prompt: Some("You are Mira.".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(mira.id, 2);
    // Opening again runs no migration twice.
    drop(pool);
    let pool = super::open(&url).await.unwrap();
    assert!(super::db_health(&pool).await.ok);
    assert_eq!(characters::list(&pool).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_full_disk_is_recognised_by_its_sqlstate() {
    let pool = pg().await;
    let raise = |code: &'static str| {
        let pool = pool.clone();
        async move {
            let e = sqlx::raw_sql(&format!(
                "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{code}'; END $$"
            ))
            .execute(&pool)
            .await
            .unwrap_err();
            StoreError::Db(e)
        }
    };
    assert!(raise("53100").await.is_disk_full());
    assert!(!raise("22012").await.is_disk_full());
    assert!(!raise("53200").await.is_disk_full());
}

#[tokio::test]
async fn sessions_list_newest_activity_first_with_counts() {
    let pool = pg().await;
    let a = sessions::create(&pool, Some("a")).await.unwrap();
    let b = sessions::create(&pool, Some("  ")).await.unwrap();
    assert_eq!(b.title, sessions_default_title());
    say(&pool, a.id, Role::User, "hello").await;
    say(&pool, a.id, Role::Assistant, "hi").await;
    let list = sessions::list(&pool, 10, 0).await.unwrap();
    assert_eq!(list.iter().map(|s| s.id).collect::<Vec<_>>(), [a.id, b.id]);
    assert_eq!(list[0].message_count, 2);
    assert!(list[0].last_ts >= list[1].last_ts);
    assert_eq!(sessions::list(&pool, 1, 1).await.unwrap()[0].id, b.id);
    // SQLite reads a negative limit as none.
    assert_eq!(sessions::list(&pool, -1, 0).await.unwrap().len(), 2);
    assert!(sessions::rename(&pool, b.id, "  renamed  ").await.unwrap());
    assert_eq!(
        sessions::get(&pool, b.id).await.unwrap().unwrap().title,
        "renamed"
    );
    assert!(!sessions::rename(&pool, 9999, "x").await.unwrap());
    assert!(sessions::get(&pool, 9999).await.unwrap().is_none());
    // ensure() creates a missing session once.
    let e = sessions::ensure(&pool, 42).await.unwrap();
    assert_eq!((e.id, e.message_count), (42, 0));
    assert_eq!(
        sessions::ensure(&pool, 42).await.unwrap().created_ts,
        e.created_ts
    );
    // The next new session does not collide with the explicit id.
    let next = sessions::create(&pool, None).await.unwrap();
    assert!(next.id > 42, "{}", next.id);
    // An explicit id below the identity's position leaves it alone.
    sessions::create_with_id(&pool, 7).await.unwrap();
    let after = sessions::create(&pool, None).await.unwrap();
    assert_eq!(after.id, next.id + 1);
}

fn sessions_default_title() -> &'static str {
    crate::store::sessions::DEFAULT_TITLE
}

#[tokio::test]
async fn a_character_session_opens_with_its_greeting() {
    let pool = pg().await;
    let s = sessions::create_for_character(&pool, Some("Hi"), DEFAULT_ID, Some("Hello there!"))
        .await
        .unwrap();
    assert_eq!((s.message_count, s.character_id), (1, Some(DEFAULT_ID)));
    let all = messages::all(&pool, s.id).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].role, all[0].text.as_str()),
        (Role::Assistant, "Hello there!")
    );
    let quiet = sessions::create_for_character(&pool, None, DEFAULT_ID, Some("  "))
        .await
        .unwrap();
    assert_eq!(quiet.message_count, 0);
    assert_eq!(
        sessions::get(&pool, quiet.id)
            .await
            .unwrap()
            .unwrap()
            .message_count,
        0
    );
    // A character that does not exist is refused, and nothing is left behind.
    assert!(sessions::create_for_character(&pool, None, 999, Some("hi"))
        .await
        .is_err());
    assert_eq!(sessions::list(&pool, 100, 0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_window_stored_fields_and_timings_match_sqlite() {
    let pool = pg().await;
    let dir = tempfile::tempdir().unwrap();
    let lite = crate::store::open(&dir.path().join("t.db")).await.unwrap();
    let s = sessions::create(&pool, None).await.unwrap();
    let ls = crate::store::sessions::create(&lite, None).await.unwrap();
    for i in 0..19 {
        say(&pool, s.id, Role::User, &format!("w{i}")).await;
        crate::store::messages::add(&lite, &NewMessage::new(ls.id, Role::User, &format!("w{i}")))
            .await
            .unwrap();
    }
    for max in [0, 1, 5, 12, 30] {
        let got: Vec<String> = messages::window(&pool, s.id, max)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        let want: Vec<String> = crate::store::messages::window(&lite, ls.id, max)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(got, want, "max {max}");
    }
    // Every field round-trips.
    let reply = NewMessage {
        reasoning: Some("thinking"),
        emotion: Some("happy"),
        partial: true,
        timings: Some(r#"{"input_received":0,"llm_first_token":120}"#),
        input: InputKind::Voice,
        lore: Some(r#"["Mochi"]"#),
        ..NewMessage::new(s.id, Role::Assistant, "so far")
    };
    let m = messages::add(&pool, &reply).await.unwrap();
    assert_eq!(
        (
            m.reasoning.as_deref(),
            m.emotion.as_deref(),
            m.partial,
            m.input,
            m.lore.clone()
        ),
        (
            Some("thinking"),
            Some("happy"),
            true,
            InputKind::Voice,
            vec!["Mochi".to_string()]
        )
    );
    assert!(m.ts >= s.created_ts);
    assert!(sessions::get(&pool, s.id).await.unwrap().unwrap().last_ts >= m.ts);
    // The reply finishes: timings and lore are kept when not given.
    let done = NewMessage {
        partial: false,
        ..NewMessage::new(s.id, Role::Assistant, "so far, and done")
    };
    assert!(messages::update_reply(&pool, m.id, &done).await.unwrap());
    assert!(!messages::update_reply(&pool, m.id + 100, &done)
        .await
        .unwrap());
    let m = messages::get(&pool, m.id).await.unwrap().unwrap();
    assert_eq!(
        (m.text.as_str(), m.partial, m.reasoning),
        ("so far, and done", false, None)
    );
    assert_eq!(m.lore, vec!["Mochi".to_string()]);
    // Timings merge as SQLite's json_patch merges them.
    assert!(messages::merge_timings(
        &pool,
        m.id,
        r#"{"tts_first_audio":300,"llm_first_token":null}"#
    )
    .await
    .unwrap());
    assert!(!messages::merge_timings(&pool, m.id + 100, "{}")
        .await
        .unwrap());
    let bare = say(&pool, s.id, Role::Assistant, "no timings yet").await;
    assert!(messages::merge_timings(&pool, bare, r#"{"played":5}"#)
        .await
        .unwrap());
    let recent = messages::recent_timings(&pool, 10).await.unwrap();
    let parsed: Vec<serde_json::Value> = recent
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert_eq!(
        parsed,
        vec![
            serde_json::json!({"input_received": 0, "played": 5}),
            serde_json::json!({"input_received": 0, "tts_first_audio": 300}),
        ]
    );
    assert_eq!(messages::recent_timings(&pool, 1).await.unwrap().len(), 1);
    // Invalid JSON is the database's refusal, as in SQLite.
    assert!(matches!(
        messages::merge_timings(&pool, m.id, "not json").await,
        Err(StoreError::Db(_))
    ));
}

#[tokio::test]
async fn add_many_stores_every_row_and_moves_the_sessions() {
    let pool = pg().await;
    let a = sessions::create(&pool, None).await.unwrap();
    let b = sessions::create(&pool, None).await.unwrap();
    let texts: Vec<String> = (0..2500).map(|i| format!("bulk row {i}")).collect();
    let batch: Vec<NewMessage> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| NewMessage::new(if i % 2 == 0 { a.id } else { b.id }, Role::User, t))
        .collect();
    assert_eq!(messages::add_many(&pool, &batch).await.unwrap(), 2500);
    assert_eq!(messages::add_many(&pool, &[]).await.unwrap(), 0);
    let a2 = sessions::get(&pool, a.id).await.unwrap().unwrap();
    assert_eq!(a2.message_count, 1250);
    assert!(a2.last_ts >= a.last_ts);
    assert_eq!(indexed(&pool, "bulk").await, 2500);
    // A row for a session that does not exist rolls the whole batch back.
    let bad = [
        NewMessage::new(a.id, Role::User, "x"),
        NewMessage::new(999, Role::User, "y"),
    ];
    assert!(messages::add_many(&pool, &bad).await.is_err());
    assert_eq!(
        sessions::get(&pool, a.id)
            .await
            .unwrap()
            .unwrap()
            .message_count,
        1250
    );
}

/// Whatever a person types, search answers with results or a clear refusal, never a database
/// error. Each case is two searches (a few ms), so this runs one case in fifty: 200 by default.
#[test]
fn arbitrary_search_text_never_fails_in_the_database() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(pg());
    let session = rt.block_on(async {
        let s = sessions::create(&pool, None).await.unwrap();
        say(
            &pool,
            s.id,
            Role::User,
            "some words to find, with punctuation: yes! café 日本語",
        )
        .await;
        s.id
    });
    proptest!(crate::testing::config_divided(50), |(
        q in any::<String>(),
        words in crate::testing::re("[ a-zA-Z\"*()^:.+&|!<>'\\\\-]{0,40}"),
        text in crate::testing::any_text(),
    )| {
        for input in [q.as_str(), words.as_str(), text.as_str()] {
            let r = rt.block_on(search::search(&pool, input, None, 10, 0));
            prop_assert!(matches!(&r, Ok(_) | Err(StoreError::BadQuery(_))), "{:?}: {:?}", input, r);
            match crate::store::search::fts_query(input) {
                Ok(_) => prop_assert!(r.is_ok()),
                Err(p) => prop_assert!(matches!(&r, Err(StoreError::BadQuery(m)) if *m == p.to_string())),
            }
            let r = rt.block_on(search::recall(&pool, input, session, 0, 3));
            prop_assert!(r.is_ok(), "{:?}: {:?}", input, r);
        }
    });
}

#[tokio::test]
async fn recall_leaves_out_what_the_prompt_has_and_ranks_the_closest_first() {
    let pool = pg().await;
    for (session, text) in [
        (2, "my cat Mochi sleeps all day"),
        (2, "the weather is grey"),
        (2, "cat food is expensive"),
        (3, "Mochi the cat chased a bird"),
        (3, "Mochi again"),
    ] {
        sessions::ensure(&pool, session).await.unwrap();
        say(&pool, session, Role::User, text).await;
    }
    sessions::ensure(&pool, 4).await.unwrap();
    say(&pool, 4, Role::System, "system words about Mochi").await;
    let texts =
        |m: Vec<crate::store::search::Memory>| m.into_iter().map(|m| m.text).collect::<Vec<_>>();
    let got = texts(
        search::recall(&pool, "how is my cat Mochi", 3, 1, 5)
            .await
            .unwrap(),
    );
    assert!(!got.contains(&"Mochi again".to_string()), "{got:?}");
    assert!(
        got.contains(&"Mochi the cat chased a bird".to_string()),
        "{got:?}"
    );
    assert!(
        got.iter()
            .position(|t| t.contains("Mochi") && t.contains("cat"))
            < got.iter().position(|t| t == "cat food is expensive"),
        "{got:?}"
    );
    assert!(!got.contains(&"the weather is grey".to_string()));
    assert!(!got.iter().any(|t| t.starts_with("system")), "{got:?}");
    let got = texts(search::recall(&pool, "cat Mochi", 3, 10, 1).await.unwrap());
    assert_eq!(got.len(), 1);
    assert!(
        !got[0].contains("chased") && !got[0].contains("again"),
        "{got:?}"
    );
    let got = texts(search::recall(&pool, "Mochi", 3, 0, 5).await.unwrap());
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(search::recall(&pool, "is it ok?", 3, 0, 5)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn characters_cards_and_portraits() {
    let pool = pg().await;
    // The default cannot be deleted; unknown ids say so.
    assert!(!characters::delete(&pool, DEFAULT_ID).await.unwrap());
    assert!(!characters::delete(&pool, 999).await.unwrap());
    assert!(characters::get(&pool, 999).await.unwrap().is_none());
    assert!(characters::update(&pool, 999, &CharacterFields::default())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        characters::card_json(&pool, DEFAULT_ID).await.unwrap(),
        Some(None)
    );
    assert_eq!(characters::card_json(&pool, 999).await.unwrap(), None);
    assert!(characters::portrait(&pool, 999).await.unwrap().is_none());
    assert!(characters::portrait(&pool, DEFAULT_ID)
        .await
        .unwrap()
        .unwrap()
        .is_none());

    let card = r#"{"spec":"chara_card_v2","data":{"name":"Rell","system_prompt":"Old","extensions":{"x":1}}}"#;
    let row = CardRow {
        name: "Rell",
        system_prompt: "Old",
        card_json: card,
        greeting: 2,
        avatar_url: Some("/avatars/rell.vrm"),
        voice_id: None,
        tts_provider: None,
    };
    let png = Portrait {
        bytes: vec![0x89, b'P', b'N', b'G', 0, 255],
        media_type: "image/png".into(),
    };
    let rell = characters::insert_card(&pool, &row, Some(&png))
        .await
        .unwrap();
    assert!(rell.has_portrait);
    assert_eq!(
        (rell.greeting, rell.avatar_url.as_deref()),
        (2, Some("/avatars/rell.vrm"))
    );
    let p = characters::portrait(&pool, rell.id)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.bytes, p.media_type.as_str()),
        (png.bytes.clone(), "image/png")
    );
    // A portrait type outside the list is refused by the schema.
    let bad = Portrait {
        bytes: vec![1],
        media_type: "text/html".into(),
    };
    assert!(matches!(
        characters::insert_card(&pool, &row, Some(&bad)).await,
        Err(StoreError::Db(_))
    ));
    // A new name goes into the card too; other fields of the card survive.
    let renamed = characters::update(
        &pool,
        rell.id,
        &CharacterFields {
            name: Some("Captain Rell".into()),
            voice_id: Some("v1".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.voice_id.as_deref()),
        ("Captain Rell", Some("v1"))
    );
    assert_eq!(renamed.system_prompt, "Old");
    let stored: serde_json::Value = serde_json::from_str(
        &characters::card_json(&pool, rell.id)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["data"]["name"], "Captain Rell");
    assert_eq!(stored["data"]["system_prompt"], "Old");
    assert_eq!(stored["data"]["extensions"]["x"], 1);
    // A card with no `data` gets one, as SQLite's json_set makes it.
    sqlx::query("UPDATE characters SET card_json = '{\"spec\":\"x\"}' WHERE id = $1")
        .bind(rell.id)
        .execute(&pool)
        .await
        .unwrap();
    characters::update(
        &pool,
        rell.id,
        &CharacterFields {
            system_prompt: Some("New".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let stored: serde_json::Value = serde_json::from_str(
        &characters::card_json(&pool, rell.id)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    // The name was not given, and the card had none: "" (as SQLite's coalesce gives).
    assert_eq!(
        stored,
        serde_json::json!({"spec": "x", "data": {"name": "", "system_prompt": "New"}})
    );
    // update_card rewrites the card; set_card_json only when nobody changed it meanwhile.
    let rewritten = characters::update_card(&pool, rell.id, &CardRow { greeting: 0, ..row })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rewritten.name.as_str(), rewritten.greeting), ("Rell", 0));
    assert!(characters::update_card(&pool, 999, &row)
        .await
        .unwrap()
        .is_none());
    let stale = rewritten.updated_ts - 1.0;
    assert!(characters::set_card_json(&pool, rell.id, "{}", stale)
        .await
        .unwrap()
        .is_none());
    let fresh = characters::set_card_json(&pool, rell.id, r#"{"a":1}"#, rewritten.updated_ts)
        .await
        .unwrap()
        .unwrap();
    assert!(fresh.updated_ts >= rewritten.updated_ts);
    assert_eq!(
        characters::card_json(&pool, rell.id).await.unwrap(),
        Some(Some(r#"{"a":1}"#.into()))
    );
    // The list is in id order.
    let list: Vec<i64> = characters::list(&pool)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(list, [DEFAULT_ID, rell.id]);
}

/// One corpus in both backends; every query finds the same set of messages in each, and every
/// PostgreSQL snippet marks a hit and escapes what it shows.
#[tokio::test]
async fn search_finds_the_same_messages_as_sqlite() {
    const CORPUS: &[(i64, &str)] = &[
        (1, "We met at the café near the station."),
        (1, "cafe cafe cafe: the best cafe in town"),
        (1, "Naïve ÉCOLE Straße İstanbul"),
        (1, "日本語のテキスト and 中文 text"),
        (
            1,
            "write to bob@example.com or visit https://example.org/path?q=1",
        ),
        (1, "version v1.2.3 is well-known; don't panic"),
        (2, "we walked, walking and walks: a walker"),
        (2, "the -minus sign and a+b and x^y"),
        (2, "he said \"hello world\" to me"),
        (2, "hello there, wide world"),
        (2, "<b>bold</b> & <script>alert(1)</script> tag soup"),
        (2, "AND OR NOT NEAR are just words"),
        (2, "C++ #tag @you 100% e.g."),
        (3, "3.14 and 1,000 and 42nd"),
        (3, "mochi the cat, Mochi the cat; MOCHI!"),
        (3, "a quote ' and a backslash \\ and a colon:here"),
        (3, "Ⅻ o'clock"),
    ];
    const QUERIES: &[&str] = &[
        "cafe",
        "café",
        "CAFE station",
        "naive",
        "ecole",
        "strasse",
        "straße",
        "istanbul",
        "日本語のテキスト",
        "日本語*",
        "中文",
        "bob",
        "example",
        "example.com",
        "bob@example.com",
        "https",
        "path",
        "v1",
        "1.2.3",
        "well-known",
        "known",
        "don't",
        "don",
        "walk*",
        "walking",
        "walk",
        "wal* wor*",
        "-minus",
        "minus",
        "a+b",
        "\"hello world\"",
        "hello world",
        "hello OR world",
        "world hello",
        "<b>",
        "bold",
        "script",
        "AND",
        "NEAR",
        "OR",
        "C++",
        "tag",
        "100%",
        "3.14",
        "14",
        "1,000",
        "42nd",
        "mochi",
        "Mochi cat",
        "colon",
        "colon:here",
        "\\",
        "o'clock",
        "clock",
        "e.g.",
        "the",
        "t*",
        "(unbalanced -minus",
        "NEAR(",
        "a & b | !c",
    ];
    let pool = pg().await;
    let dir = tempfile::tempdir().unwrap();
    let lite = crate::store::open(&dir.path().join("t.db")).await.unwrap();
    let mut pairs = std::collections::HashMap::new();
    for &(session, text) in CORPUS {
        sessions::ensure(&pool, session).await.unwrap();
        crate::store::sessions::ensure(&lite, session)
            .await
            .unwrap();
        let p = say(&pool, session, Role::User, text).await;
        let l = crate::store::messages::add(&lite, &NewMessage::new(session, Role::User, text))
            .await
            .unwrap()
            .id;
        // Same ids in both (the same inserts in the same order), checked rather than assumed.
        assert_eq!(p, l);
        pairs.insert(p, text);
    }
    let mut differ = Vec::new();
    let mut found_any = 0;
    for q in QUERIES {
        for session in [None, Some(2)] {
            let want = crate::store::search::search(&lite, q, session, 100, 0).await;
            let got = search::search(&pool, q, session, 100, 0).await;
            let (want, got) = match (want, got) {
                (Ok(w), Ok(g)) => (w, g),
                (Err(StoreError::BadQuery(w)), Err(StoreError::BadQuery(g))) => {
                    assert_eq!(w, g, "{q:?}");
                    continue;
                }
                (w, g) => panic!("{q:?}: SQLite {w:?}, PostgreSQL {g:?}"),
            };
            if ids(&want) != ids(&got) {
                let names = |s: BTreeSet<i64>| s.iter().map(|i| pairs[i]).collect::<Vec<_>>();
                differ.push(format!(
                    "{q:?} in {session:?}: SQLite {:?}, PostgreSQL {:?}",
                    names(ids(&want)),
                    names(ids(&got))
                ));
            }
            for hit in &got {
                found_any += 1;
                assert!(
                    !hit.snippet.contains("<script>") && !hit.snippet.contains("<b>"),
                    "{}",
                    hit.snippet
                );
                assert_eq!(
                    hit.snippet,
                    crate::store::search::snippet_html(&hit.snippet_parts)
                );
                let text: String = hit.snippet_parts.iter().map(|p| p.text.as_str()).collect();
                assert!(!text.is_empty(), "{q:?}: empty snippet");
            }
        }
        // Recall, too, finds what SQLite's finds.
        let want: BTreeSet<i64> = crate::store::search::recall(&lite, q, 0, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        let got: BTreeSet<i64> = search::recall(&pool, q, 0, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        if want != got {
            differ.push(format!("recall {q:?}: SQLite {want:?}, PostgreSQL {got:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} differences:\n{}",
        differ.len(),
        differ.join("\n")
    );
    assert!(found_any > 50, "{found_any}");
    // A plain word in plain text is marked in the snippet.
    for (q, word) in [
        ("cafe", "caf"),
        ("walking", "walking"),
        ("mochi", "mochi"),
        ("bold", "bold"),
    ] {
        for hit in search::search(&pool, q, None, 100, 0).await.unwrap() {
            assert!(
                hit.snippet_parts
                    .iter()
                    .any(|p| p.mark && p.text.to_lowercase().contains(word)),
                "{q:?}: {:?}",
                hit.snippet_parts
            );
        }
    }
}

#[test]
fn query_terms_undo_fts_query() {
    use crate::store::search::fts_query;
    let terms = |q: &str| search::query_terms(&fts_query(q).unwrap());
    assert_eq!(
        terms("hello world"),
        (vec!["hello".into(), "world".into()], vec![false, false])
    );
    assert_eq!(
        terms(r#"say "hi"#),
        (vec!["say".into(), "\"hi".into()], vec![false, false])
    );
    assert_eq!(
        terms("walk* a\"\"b"),
        (vec!["walk".into(), "a\"\"b".into()], vec![true, false])
    );
    assert_eq!(
        terms("x** -minus"),
        (vec!["x".into(), "-minus".into()], vec![true, false])
    );
    assert_eq!(
        search::recall_terms(&crate::store::search::recall_query("my cat Mochi").unwrap()),
        ["cat", "mochi"]
    );
}

fn part(text: &str, mark: bool) -> SnippetPart {
    SnippetPart {
        text: text.to_string(),
        mark,
    }
}

#[test]
fn headlines_become_snippet_parts() {
    let text = "<b>x</b> & the quick fox";
    assert_eq!(
        search::headline_parts(
            "&lt;b&gt;x&lt;/b&gt; &amp; the quick <mark>fox</mark>",
            text
        ),
        vec![part("<b>x</b> & the quick ", false), part("fox", true)]
    );
    // An excerpt from the middle says so at both ends.
    assert_eq!(
        search::headline_parts("quick <mark>fox</mark> jumps", "the quick fox jumps over"),
        vec![
            part("…quick ", false),
            part("fox", true),
            part(" jumps…", false)
        ]
    );
    // Entities that are not ours stay as written; an unclosed mark runs to the end.
    assert_eq!(
        search::headline_parts("&amp;copy; &copy <mark>a", "&copy; &copy a"),
        vec![part("&copy; &copy ", false), part("a", true)]
    );
    assert_eq!(search::headline_parts("", ""), vec![]);
}

/// Messages of random words (the scripts and punctuation of SQLite's own search property) go
/// into both backends; a search by some of a message's words, or their starts with `*`, finds
/// the same messages in each, among all stored so far. Each case is two inserts and two
/// searches, so this runs one case in fifty of the others: 200 by default.
#[test]
fn random_messages_are_found_alike_in_both_backends() {
    use proptest::prelude::*;
    use proptest::sample::Index;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(pg());
    let dir = tempfile::tempdir().unwrap();
    let lite = rt
        .block_on(crate::store::open(&dir.path().join("t.db")))
        .unwrap();
    rt.block_on(async {
        sessions::ensure(&pool, 1).await.unwrap();
        crate::store::sessions::ensure(&lite, 1).await.unwrap();
    });
    let word = prop_oneof![
        3 => crate::testing::re("[a-zA-Z0-9À-ÖØ-öø-ÿĀ-žΑ-ΡΣ-ωА-яぁ-んァ-ン一-龥가-힣א-תء-ي]{1,8}"),
        2 => prop::sample::select(vec![
            "hello", "don't", "3.14", "1,000", "well-known", "\"quoted\"", "(paren)", "a*b",
            "x^y", "col:on", "naïve", "ÉCOLE", "Straße", "İstanbul", "日本語", "cat🐱", "--",
            "e.g.", "AND", "OR", "NOT", "NEAR", "a\"b\"c", "end*", "C++", "#tag", "@you",
            "100%", "bob@example.com", "v1.2.3", "<b>x</b>", "&amp;", "-minus",
        ])
        .prop_map(str::to_string),
    ];
    let stored = std::cell::RefCell::new(std::collections::HashMap::new());
    proptest!(crate::testing::config_divided(50), |(
        words in prop::collection::vec(word, 1..10),
        picks in prop::collection::vec((any::<Index>(), prop::option::of(any::<Index>())), 1..4),
    )| {
        let text = words.join(" ");
        let (p, l) = rt.block_on(async {
            let p = say(&pool, 1, Role::User, &text).await;
            let l = crate::store::messages::add(&lite, &NewMessage::new(1, Role::User, &text))
                .await
                .unwrap()
                .id;
            (p, l)
        });
        prop_assert_eq!(p, l);
        stored.borrow_mut().insert(p, text.clone());
        let searchable: Vec<&String> =
            words.iter().filter(|w| w.chars().any(char::is_alphanumeric)).collect();
        if searchable.is_empty() {
            return Ok(());
        }
        let mut query = Vec::new();
        for (pick, prefix) in &picks {
            let word = searchable[pick.index(searchable.len())];
            let chars: Vec<char> = word.chars().collect();
            query.push(match prefix {
                Some(cut) => {
                    let first = chars.iter().position(|c| c.is_alphanumeric()).unwrap_or(0);
                    let cut = first + 1 + cut.index(chars.len() - first);
                    format!("{}*", chars[..cut].iter().collect::<String>())
                }
                None => word.clone(),
            });
        }
        let query = query.join(" ");
        let (want, got) = rt.block_on(async {
            (
                crate::store::search::search(&lite, &query, None, 500, 0).await,
                search::search(&pool, &query, None, 500, 0).await,
            )
        });
        let (want, got) = (ids(&want.unwrap()), ids(&got.unwrap()));
        prop_assert!(got.contains(&p), "{:?} did not find {:?}", query, text);
        let stored = stored.borrow();
        let only = |a: &BTreeSet<i64>, b: &BTreeSet<i64>| {
            a.difference(b).map(|i| stored[i].clone()).collect::<Vec<_>>()
        };
        prop_assert!(
            want == got,
            "{:?}: only SQLite found {:?}, only PostgreSQL {:?}",
            query,
            only(&want, &got),
            only(&got, &want)
        );
    });
}
