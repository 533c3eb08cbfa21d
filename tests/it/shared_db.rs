//! Instances sharing one PostgreSQL database (`DATABASE_URL=postgres://…`): the same HTTP answers
//! as with SQLite, one history seen by every instance, and settings saved on one instance in
//! effect on the others. The database is a throwaway cluster the test starts itself.
#![cfg(feature = "ssr")]

use crate::common::{self, get, post_json, put_json, send, Harness};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::{
    path::Path,
    time::{Duration, Instant},
};
use waifu_rt3d::{
    server::preflight::Backends,
    store::{postgres::cluster, DatabaseUrl},
};

/// A fresh database on the test cluster, and one shared sealing key in `dir`.
async fn backends(dir: &Path) -> Backends {
    let cluster = cluster::shared().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database().await.expect("a test database");
    let key = dir.join("secret.key");
    std::fs::write(&key, [42u8; 32]).unwrap();
    Backends {
        database: Some(DatabaseUrl::parse(&url).unwrap()),
        secret_key_file: Some(key),
        storage: None,
    }
}

/// An instance: its own data folder in `dir`, the shared database.
async fn instance(dir: &Path, name: &str, backends: &Backends) -> Harness {
    common::harness_on(&dir.join(name), backends, |s| s).await
}

fn ok(r: &common::Reply) -> Value {
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_postgres_database_share_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let backends = backends(dir.path()).await;
    let a = instance(dir.path(), "a", &backends).await;
    let b = instance(dir.path(), "b", &backends).await;
    let c = instance(dir.path(), "c", &backends).await;

    let health = ok(&send(&a.app, get("/api/healthcheck")).await);
    assert_eq!(health["db"]["ok"], true, "{health}");
    assert_eq!(health["db"]["journal_mode"], "postgres", "{health}");

    // Begun on A, continued on B, found by search on C.
    let sid = ok(&send(
        &a.app,
        post_json("/api/sessions", r#"{"title": "Café talk"}"#),
    )
    .await)["id"]
        .as_i64()
        .unwrap();
    for (h, role, text) in [
        (
            &a,
            "user",
            "Shall we meet at the café near the <b>station</b>?",
        ),
        (
            &b,
            "assistant",
            "Yes! The naïve little café with the blue door.",
        ),
    ] {
        ok(&send(
            &h.app,
            post_json(
                &format!("/api/sessions/{sid}/messages"),
                &json!({"role": role, "text": text}).to_string(),
            ),
        )
        .await);
    }
    let page = ok(&send(&c.app, get(&format!("/api/sessions/{sid}/messages"))).await);
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 2, "{page}");
    assert!(texts[1].contains("blue door"), "{page}");

    let hits = ok(&send(&c.app, get("/api/search?q=cafe")).await);
    let results = hits["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "accents fold: {hits}");
    let snippets: Vec<&str> = results
        .iter()
        .map(|r| r["snippet"].as_str().unwrap())
        .collect();
    assert!(
        snippets.iter().all(|s| s.contains("<mark>café</mark>")),
        "{snippets:?}"
    );
    // The message's own markup is text in the snippet, never markup.
    assert!(
        snippets
            .iter()
            .any(|s| s.contains("&lt;b&gt;station&lt;/b&gt;")),
        "{snippets:?}"
    );
    // Search syntax a person may type never fails.
    for q in ["(unbalanced -minus", "\"", "NEAR(", "a & b | !c"] {
        let r = send(&b.app, get(&format!("/api/search?q={}", urlencode(q)))).await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
            "{q}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }

    // The session list is the same everywhere, and a rename on C shows on A.
    ok(&send(
        &c.app,
        put_json(
            &format!("/api/sessions/{sid}"),
            r#"{"title": "Coffee plans"}"#,
        ),
    )
    .await);
    let sessions = ok(&send(&a.app, get("/api/sessions")).await);
    assert_eq!(
        sessions["sessions"][0]["title"], "Coffee plans",
        "{sessions}"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Waits (up to 10 s) until `h`'s settings satisfy `check`; returns how long that took.
async fn settle(h: &Harness, check: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let cfg = ok(&send(&h.app, get("/api/config")).await);
        if check(&cfg) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the change never arrived: {cfg}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_saved_on_one_instance_are_in_effect_on_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let backends = backends(dir.path()).await;
    let a = instance(dir.path(), "a", &backends).await;
    let b = instance(dir.path(), "b", &backends).await;

    // A key saved on A is sealed under the shared key, so B can open it; neither shows it.
    let saved = ok(&send(
        &a.app,
        put_json(
            "/api/config",
            r#"{"llm": {"provider": "ollama", "endpoint": "http://127.0.0.1:11434/v1", "api_key": "sk-shared-secret"}}"#,
        ),
    )
    .await);
    assert_eq!(saved["config"]["llm"]["api_key_set"], true);
    let took = settle(&b, |cfg| cfg["llm"]["provider"] == "ollama").await;
    println!("instance B saw A's change after {} ms", took.as_millis());
    let on_b = ok(&send(&b.app, get("/api/config")).await);
    assert_eq!(on_b["llm"]["api_key_set"], true, "{on_b}");
    assert!(!on_b.to_string().contains("sk-shared-secret"));
    assert_eq!(
        b.state.config.get().llm.api_key.expose(),
        "sk-shared-secret"
    );
    // Nothing of it went into B's own settings file: B's data folder holds no shared state.
    let b_file = std::fs::read_to_string(dir.path().join("b/config/app.json")).unwrap();
    assert!(!b_file.contains("ollama"), "{b_file}");

    // Saves on both at once, of different fields: neither is lost.
    let (ra, rb) = tokio::join!(
        send(
            &a.app,
            put_json("/api/config", r#"{"user": {"name": "Ren"}}"#)
        ),
        send(
            &b.app,
            put_json("/api/config", r#"{"memory": {"recall": 7}}"#)
        ),
    );
    ok(&ra);
    ok(&rb);
    for h in [&a, &b] {
        settle(h, |cfg| {
            cfg["user"]["name"] == "Ren" && cfg["memory"]["recall"] == 7
        })
        .await;
    }

    // A third instance started later begins with the shared settings, not its defaults.
    let c = instance(dir.path(), "c", &backends).await;
    let on_c = ok(&send(&c.app, get("/api/config")).await);
    assert_eq!(on_c["user"]["name"], "Ren", "{on_c}");
    assert_eq!(on_c["llm"]["provider"], "ollama", "{on_c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_server_stops_the_start_with_the_address_but_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backends = Backends {
        database: Some(
            DatabaseUrl::parse(&format!("postgres://waifu:hunter2@127.0.0.1:{port}/waifu"))
                .unwrap(),
        ),
        secret_key_file: None,
        storage: None,
    };
    let err = match waifu_rt3d::server::preflight::run_with(&dir.path().join("d"), &backends).await
    {
        Ok(_) => panic!("started without its database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("could not open the database"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
