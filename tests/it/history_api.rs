//! Router tests for the history endpoints: every route and status code of docs/api.md.
#![cfg(feature = "ssr")]

use crate::common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use common::{delete, get, harness, post_json, put_json, send, Harness, Reply};
use serde_json::{json, Value};

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["code"], code, "{j}");
}

async fn new_session(h: &Harness, title: &str) -> i64 {
    let r = send(
        &h.app,
        post_json("/api/sessions", &json!({"title": title}).to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()["id"].as_i64().unwrap()
}

async fn add(h: &Harness, sid: i64, role: &str, text: &str) -> i64 {
    let r = send(
        &h.app,
        post_json(
            &format!("/api/sessions/{sid}/messages"),
            &json!({"role": role, "text": text}).to_string(),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["message_id"].as_i64().unwrap()
}

#[tokio::test]
async fn sessions_crud_with_the_documented_codes() {
    let h = harness().await;
    // Create: with a title, and with no body at all.
    let r = send(&h.app, post_json("/api/sessions", r#"{"title": "Trip"}"#)).await;
    let j = r.json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["title"], "Trip");
    assert_eq!(j["id"], j["session_id"]);
    assert!(j["created_ts"].as_f64().unwrap() > 1.0e9);
    let r = send(
        &h.app,
        Request::post("/api/sessions").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.json()["title"], "New conversation");
    let trip = j["id"].as_i64().unwrap();

    let list = send(&h.app, get("/api/sessions")).await.json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2);
    add(&h, trip, "user", "hello").await;
    let list = send(&h.app, get("/api/sessions")).await.json();
    assert_eq!(list["sessions"][0]["id"], trip, "last activity first");
    assert_eq!(list["sessions"][0]["message_count"], 1);
    for key in ["id", "title", "created_ts", "message_count", "last_ts"] {
        assert!(list["sessions"][0].get(key).is_some(), "{key}");
    }
    let paged = send(&h.app, get("/api/sessions?limit=1&offset=1"))
        .await
        .json();
    assert_eq!(paged["sessions"].as_array().unwrap().len(), 1);
    assert_ne!(paged["sessions"][0]["id"], trip);

    // Rename: 400 for a missing or empty title (even for an unknown id), 404 for an unknown id.
    let r = send(
        &h.app,
        put_json(
            &format!("/api/sessions/{trip}"),
            r#"{"title": "Road trip"}"#,
        ),
    )
    .await;
    assert_eq!(r.json(), json!({"ok": true}));
    assert_error(
        &send(
            &h.app,
            put_json(&format!("/api/sessions/{trip}"), r#"{"title": "  "}"#),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "missing_title",
    );
    assert_error(
        &send(&h.app, put_json(&format!("/api/sessions/{trip}"), "{}")).await,
        StatusCode::BAD_REQUEST,
        "missing_title",
    );
    assert_error(
        &send(&h.app, put_json("/api/sessions/999", "{}")).await,
        StatusCode::BAD_REQUEST,
        "missing_title",
    );
    assert_error(
        &send(&h.app, put_json("/api/sessions/999", r#"{"title": "x"}"#)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(&h.app, put_json("/api/sessions/abc", r#"{"title": "x"}"#)).await,
        StatusCode::BAD_REQUEST,
        "bad_id",
    );
    assert_error(
        &send(&h.app, put_json(&format!("/api/sessions/{trip}"), "{oops")).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    let one = send(&h.app, get(&format!("/api/sessions/{trip}")))
        .await
        .json();
    assert_eq!(one["session"]["title"], "Road trip");

    // Delete: its messages go with it and leave the search index.
    assert_eq!(
        send(&h.app, get("/api/search?q=hello")).await.json()["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        send(&h.app, delete(&format!("/api/sessions/{trip}")))
            .await
            .json(),
        json!({"ok": true})
    );
    assert_error(
        &send(&h.app, delete(&format!("/api/sessions/{trip}"))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(&h.app, get(&format!("/api/sessions/{trip}/messages"))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        send(&h.app, get("/api/search?q=hello")).await.json()["results"],
        json!([])
    );
}

#[tokio::test]
async fn messages_are_paged_oldest_first_and_editable() {
    let h = harness().await;
    let sid = new_session(&h, "Long").await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            add(
                &h,
                sid,
                if i % 2 == 0 { "user" } else { "assistant" },
                &format!("line {i}"),
            )
            .await,
        );
    }
    let page = send(
        &h.app,
        get(&format!("/api/sessions/{sid}/messages?limit=10")),
    )
    .await
    .json();
    let texts: Vec<_> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.first().unwrap(), "line 20");
    assert_eq!(texts.last().unwrap(), "line 29");
    assert_eq!(page["has_more_before"], true);
    for key in ["id", "role", "text", "ts"] {
        assert!(page["messages"][0].get(key).is_some());
    }
    let before = page["messages"][0]["id"].as_i64().unwrap();
    let older = send(
        &h.app,
        get(&format!(
            "/api/sessions/{sid}/messages?limit=10&before={before}"
        )),
    )
    .await
    .json();
    assert_eq!(older["messages"][0]["text"], "line 10");
    let around = send(
        &h.app,
        get(&format!(
            "/api/sessions/{sid}/messages?limit=4&around={}",
            ids[5]
        )),
    )
    .await
    .json();
    assert!(around["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == ids[5]));
    assert_error(
        &send(
            &h.app,
            get(&format!("/api/sessions/{sid}/messages?before=1&after=2")),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_cursor",
    );
    assert_error(
        &send(
            &h.app,
            get(&format!("/api/sessions/{sid}/messages?limit=lots")),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_query_string",
    );

    // Edit and delete one message.
    let uri = format!("/api/sessions/{sid}/messages/{}", ids[0]);
    let r = send(&h.app, put_json(&uri, r#"{"text": "line zero, edited"}"#)).await;
    assert_eq!(r.json()["message"]["text"], "line zero, edited");
    assert_eq!(
        send(&h.app, get("/api/search?q=edited")).await.json()["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_error(
        &send(&h.app, put_json(&uri, r#"{"text": ""}"#)).await,
        StatusCode::BAD_REQUEST,
        "missing_text",
    );
    assert_eq!(send(&h.app, delete(&uri)).await.json(), json!({"ok": true}));
    assert_error(
        &send(&h.app, delete(&uri)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(
            &h.app,
            post_json(
                &format!("/api/sessions/{sid}/messages"),
                r#"{"role": "robot", "text": "x"}"#,
            ),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_role",
    );
    assert_error(
        &send(
            &h.app,
            post_json("/api/sessions/999/messages", r#"{"text": "x"}"#),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn search_answers_results_or_400_never_500() {
    let h = harness().await;
    let sid = new_session(&h, "Notes <b>").await;
    add(
        &h,
        sid,
        "user",
        "The quick brown fox jumps over the lazy dog",
    )
    .await;
    let r = send(&h.app, get("/api/search?q=quick%20fox")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let hit = &r.json()["results"][0];
    for key in [
        "message_id",
        "session_id",
        "session_title",
        "role",
        "ts",
        "snippet",
        "rank",
    ] {
        assert!(hit.get(key).is_some(), "{key}");
    }
    assert_eq!(hit["session_title"], "Notes <b>");
    assert!(hit["snippet"]
        .as_str()
        .unwrap()
        .contains("<mark>quick</mark>"));
    // The same snippet as pieces of plain text, the matched words flagged.
    let parts = hit["snippet_parts"].as_array().unwrap();
    let marked: Vec<&str> = parts
        .iter()
        .filter(|p| p["mark"] == true)
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(marked, ["quick", "fox"]);
    let whole: String = parts.iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(whole, "The quick brown fox jumps over the lazy dog");

    assert_error(
        &send(&h.app, get("/api/search")).await,
        StatusCode::BAD_REQUEST,
        "bad_query",
    );
    assert_error(
        &send(&h.app, get("/api/search?q=%20%20")).await,
        StatusCode::BAD_REQUEST,
        "bad_query",
    );
    let long = "a%20".repeat(3_000);
    assert_error(
        &send(&h.app, get(&format!("/api/search?q={long}"))).await,
        StatusCode::BAD_REQUEST,
        "bad_query",
    );
    for q in [
        "%22",
        "AND",
        "*",
        "-",
        "(((",
        "NOT%20fox",
        "%F0%9F%99%82",
        "fox%22%20OR%20%22dog",
        "NEAR(fox%20dog)",
    ] {
        let r = send(&h.app, get(&format!("/api/search?q={q}"))).await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
            "{q}: {}",
            r.status
        );
    }
    assert_error(
        &send(&h.app, get("/api/search?q=fox&session_id=abc")).await,
        StatusCode::BAD_REQUEST,
        "bad_query_string",
    );
    let scoped = send(
        &h.app,
        get(&format!("/api/search?q=fox&session_id={}", sid + 1)),
    )
    .await
    .json();
    assert_eq!(scoped["results"], json!([]));
}

#[tokio::test]
async fn a_session_exports_as_markdown_or_json() {
    let h = harness().await;
    let sid = new_session(&h, "Movie night").await;
    add(&h, sid, "user", "What should we watch?").await;
    add(&h, sid, "assistant", "Something with robots!").await;
    let r = send(
        &h.app,
        get(&format!("/api/sessions/{sid}/export?format=md")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header(header::CONTENT_TYPE).starts_with("text/markdown"));
    assert!(r
        .header(header::CONTENT_DISPOSITION)
        .contains("Movie-night.md"));
    let md = String::from_utf8(r.body.clone()).unwrap();
    assert!(md.starts_with("# Movie night\n"), "{md}");
    assert!(md.find("What should we watch?").unwrap() < md.find("Something with robots!").unwrap());
    let r = send(
        &h.app,
        get(&format!("/api/sessions/{sid}/export?format=json")),
    )
    .await;
    let j: Value = r.json();
    assert_eq!(j["session"]["title"], "Movie night");
    assert_eq!(j["messages"].as_array().unwrap().len(), 2);
    assert_error(
        &send(
            &h.app,
            get(&format!("/api/sessions/{sid}/export?format=pdf")),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_format",
    );
    assert_error(
        &send(&h.app, get("/api/sessions/999/export")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // A title in another script still downloads (a header value must be ASCII).
    let sid = new_session(&h, "映画の夜").await;
    let r = send(
        &h.app,
        get(&format!("/api/sessions/{sid}/export?format=md")),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r
        .header(header::CONTENT_DISPOSITION)
        .ends_with("filename*=UTF-8''%E6%98%A0%E7%94%BB%E3%81%AE%E5%A4%9C.md"));
}

#[tokio::test]
async fn characters_crud_with_the_documented_codes() {
    let h = harness().await;
    let list = send(&h.app, get("/api/characters")).await.json();
    assert_eq!(list["characters"][0]["id"], 1);
    assert!(list["characters"][0]["system_prompt"]
        .as_str()
        .unwrap()
        .contains("[happy]"));

    assert_error(
        &send(&h.app, post_json("/api/characters", r#"{"name": "Rei"}"#)).await,
        StatusCode::BAD_REQUEST,
        "missing_fields",
    );
    assert_error(
        &send(
            &h.app,
            post_json("/api/characters", r#"{"system_prompt": "x"}"#),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "missing_fields",
    );
    let r = send(
        &h.app,
        post_json("/api/characters", r#"{"name": "Rei", "system_prompt": "You are Rei.", "personality_traits": ["calm", "dry"], "voice_id": "v1"}"#),
    )
    .await;
    let c = r.json();
    assert_eq!(c["ok"], true);
    let id = c["id"].as_i64().unwrap();
    assert_eq!(c["character"]["personality_traits"], json!(["calm", "dry"]));

    let uri = format!("/api/characters/{id}");
    assert_error(
        &send(&h.app, put_json(&uri, r#"{"unknown": 1}"#)).await,
        StatusCode::BAD_REQUEST,
        "no_fields",
    );
    let r = send(&h.app, put_json(&uri, r#"{"name": "Rei Ayanami"}"#)).await;
    assert_eq!(r.json()["character"]["name"], "Rei Ayanami");
    assert_eq!(r.json()["character"]["voice_id"], "v1", "other fields stay");
    assert_error(
        &send(&h.app, put_json("/api/characters/999", r#"{"name": "x"}"#)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        send(&h.app, get(&uri)).await.json()["character"]["name"],
        "Rei Ayanami"
    );

    assert_error(
        &send(&h.app, delete("/api/characters/1")).await,
        StatusCode::BAD_REQUEST,
        "default_character",
    );
    assert_eq!(send(&h.app, delete(&uri)).await.json(), json!({"ok": true}));
    assert_error(
        &send(&h.app, delete(&uri)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(&h.app, get(&uri)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// Every character field has a cap, and a refusal names the field.
#[tokio::test]
async fn character_fields_have_length_caps_named_in_the_error() {
    let h = harness().await;
    let base = json!({"name": "Rei", "system_prompt": "You are Rei."});
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b.to_string()
    };
    let long = |n: usize| "x".repeat(n);
    let traits = |n: usize| json!(vec!["calm"; n]);
    for (body, code, field) in [
        (with("name", json!(long(101))), "field_too_long", "name"),
        (
            with("system_prompt", json!(long(32_001))),
            "field_too_long",
            "system_prompt",
        ),
        (
            with("avatar_url", json!(long(2_049))),
            "field_too_long",
            "avatar_url",
        ),
        (
            with("voice_id", json!(long(129))),
            "field_too_long",
            "voice_id",
        ),
        (
            with("tts_provider", json!("festival")),
            "invalid_tts_provider",
            "tts_provider",
        ),
        (
            with("tts_provider", json!(long(5_000))),
            "invalid_tts_provider",
            "tts_provider",
        ),
        (
            with("personality_traits", traits(33)),
            "too_many_traits",
            "personality_traits",
        ),
        (
            with("personality_traits", json!(["calm", long(101)])),
            "field_too_long",
            "personality_traits[1]",
        ),
    ] {
        let r = send(&h.app, post_json("/api/characters", &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, code);
        let j = r.json();
        assert_eq!(j["fields"][0]["path"], field, "{j}");
        assert!(
            j["error"].as_str().unwrap().starts_with(field),
            "the message does not name {field}: {j}"
        );
        // The same cap holds for an update of the default character.
        let r = send(&h.app, put_json("/api/characters/1", &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, code);
    }
    assert_eq!(
        send(&h.app, get("/api/characters")).await.json()["characters"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "a refused character was stored"
    );

    // Right at each cap is fine.
    let body = json!({
        "name": long(100),
        "system_prompt": long(32_000),
        "avatar_url": long(2_048),
        "voice_id": long(128),
        "tts_provider": "",
        "personality_traits": vec![long(100); 32],
    });
    let r = send(&h.app, post_json("/api/characters", &body.to_string())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
}

/// A character's voice id is checked for the provider that will get it: its own `tts_provider`,
/// stored or sent, else the configured voice.
#[tokio::test]
async fn a_character_voice_id_is_checked_for_its_provider() {
    let h = harness().await;
    let create = |body: Value| post_json("/api/characters", &body.to_string());
    let r = send(
        &h.app,
        create(json!({"name": "Rei", "system_prompt": "x", "tts_provider": "espeak", "voice_id": "/dev/stdin"})),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_voice_id");
    let j = r.json();
    assert_eq!(j["fields"][0]["path"], "voice_id");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("eSpeak NG voice name"),
        "{j}"
    );

    let r = send(
        &h.app,
        create(json!({"name": "Rei", "system_prompt": "x", "tts_provider": "espeak", "voice_id": "en-us"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let uri = format!("/api/characters/{}", r.json()["id"]);
    // The stored provider checks a new voice…
    assert_error(
        &send(&h.app, put_json(&uri, r#"{"voice_id": "-w/tmp/x"}"#)).await,
        StatusCode::BAD_REQUEST,
        "invalid_voice_id",
    );
    // …and the stored voice is checked against a new provider (ElevenLabs takes no `-`).
    assert_error(
        &send(&h.app, put_json(&uri, r#"{"tts_provider": "elevenlabs"}"#)).await,
        StatusCode::BAD_REQUEST,
        "invalid_voice_id",
    );
    let r = send(
        &h.app,
        put_json(
            &uri,
            r#"{"tts_provider": "elevenlabs", "voice_id": "21m00Tcm4TlvDq8ikWAM"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(
        send(&h.app, get(&uri)).await.json()["character"]["voice_id"],
        "21m00Tcm4TlvDq8ikWAM"
    );

    // Without its own provider, the configured one gets the voice.
    h.state
        .config
        .update(json!({"tts": {"provider": "espeak"}}))
        .await
        .unwrap();
    assert_error(
        &send(
            &h.app,
            create(json!({"name": "Asuka", "system_prompt": "x", "voice_id": "/dev/stdin"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_voice_id",
    );
}
