//! Character cards through the router: importing published cards (PNG V1/V2/V3, JSON, CHARX),
//! exporting and importing again, portraits, bad files, conversations opened by a greeting,
//! and the card and its lorebook in the prompt a mock model receives.

use crate::common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use common::openai_mock::{Flavor, MockLlm};
use common::{get, harness, multipart_file, post_json, put_json, send, Harness, Reply};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/cards/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn upload(h: &Harness, uri: &str, name: &str, bytes: &[u8]) -> Reply {
    let (content_type, body) = multipart_file(name, bytes);
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    send(&h.app, req).await
}

/// Imports a card file; the new character's id.
async fn import(h: &Harness, name: &str, bytes: &[u8]) -> i64 {
    let r = upload(h, "/api/characters/import", name, bytes).await;
    assert_eq!(
        r.status,
        200,
        "{name}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let j = r.json();
    assert_eq!(j["ok"], true);
    j["character"]["id"].as_i64().unwrap()
}

async fn card(h: &Harness, id: i64) -> Value {
    let r = send(&h.app, get(&format!("/api/characters/{id}"))).await;
    assert_eq!(r.status, 200);
    r.json()["card"].clone()
}

async fn character_count(h: &Harness) -> usize {
    let r = send(&h.app, get("/api/characters")).await;
    r.json()["characters"].as_array().unwrap().len()
}

async fn export(h: &Harness, id: i64, format: &str) -> Reply {
    send(
        &h.app,
        get(&format!("/api/characters/{id}/export?format={format}")),
    )
    .await
}

#[tokio::test]
async fn published_cards_import_whole_and_round_trip_through_every_format() {
    let h = harness().await;
    for (file, name, format) in [
        ("seraphina.png", "Seraphina", "png_v2"),
        ("default_chan_v3.png", "Default-chan", "png_v3"),
        ("skynet_v1.png", "Skynet", "png_v1"),
    ] {
        let r = upload(&h, "/api/characters/import", file, &fixture(file)).await;
        assert_eq!(
            r.status,
            200,
            "{file}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["format"], format, "{file}");
        let id = j["character"]["id"].as_i64().unwrap();
        assert!(
            j["character"]["name"].as_str().unwrap().starts_with(name),
            "{file}: {j}"
        );
        assert_eq!(j["character"]["has_portrait"], true, "{file}");
        let stored = card(&h, id).await;
        assert_eq!(stored["spec"], "chara_card_v3");

        // The portrait is the card's image, without the card in it.
        let p = send(&h.app, get(&format!("/api/characters/{id}/portrait"))).await;
        assert_eq!(p.status, 200);
        assert_eq!(p.header(header::CONTENT_TYPE), "image/png");
        assert!(p.body.starts_with(b"\x89PNG"));
        assert!(!p.body.windows(4).any(|w| w == b"ccv3" || w == b"chara"));
        let etag = p.header(header::ETAG).to_string();
        let again = send(
            &h.app,
            Request::get(format!("/api/characters/{id}/portrait"))
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);

        for (format, ext) in [("png", "png"), ("json", "json"), ("charx", "charx")] {
            let out = export(&h, id, format).await;
            assert_eq!(out.status, 200, "{file} as {format}");
            assert!(out
                .header(header::CONTENT_DISPOSITION)
                .ends_with(&format!(".{ext}\"")));
            let back = import(&h, &format!("again.{ext}"), &out.body).await;
            assert_eq!(
                card(&h, back).await,
                stored,
                "{file} through {format} came back different"
            );
        }
    }
}

#[tokio::test]
async fn a_sillytavern_card_keeps_what_the_app_does_not_use() {
    let h = harness().await;
    let id = import(&h, "seraphina.png", &fixture("seraphina.png")).await;
    let c = card(&h, id).await;
    // SillyTavern's V1 copies at the root and the card's extensions stay for the export.
    assert!(c.get("create_date").is_some(), "{c}");
    assert!(c["data"]["extensions"].is_object());
    assert_eq!(
        c["data"]["character_book"]["entries"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let png = export(&h, id, "png").await;
    // Both chunks: V3 for new tools, V2 for older ones.
    assert!(png.body.windows(4).any(|w| w == b"ccv3"));
    assert!(png.body.windows(5).any(|w| w == b"chara"));
}

#[tokio::test]
async fn bad_card_files_are_refused_plainly_and_leave_nothing() {
    let h = harness().await;
    let before = character_count(&h).await;
    // A PNG without a card: the portrait of an exported card has none.
    let id = import(&h, "seraphina.png", &fixture("seraphina.png")).await;
    let plain = send(&h.app, get(&format!("/api/characters/{id}/portrait")))
        .await
        .body;
    let r = upload(&h, "/api/characters/import", "plain.png", &plain).await;
    let msg = r.error_message(StatusCode::BAD_REQUEST, "card_no_card");
    assert_eq!(msg, "This image has no character card.");

    let r = upload(&h, "/api/characters/import", "x.json", b"{\"name\": \"A\",").await;
    let msg = r.error_message(StatusCode::BAD_REQUEST, "card_bad_json");
    assert!(msg.contains("line"), "{msg}");

    let r = upload(
        &h,
        "/api/characters/import",
        "x.json",
        br#"{"spec":"chara_card_v2","spec_version":"2.0","data":{"description":"no name"}}"#,
    )
    .await;
    let msg = r.error_message(StatusCode::BAD_REQUEST, "card_missing_fields");
    assert!(msg.contains("name"), "{msg}");

    for bomb in ["bomb_card_json.charx", "bomb_icon.charx"] {
        let r = upload(&h, "/api/characters/import", bomb, &fixture(bomb)).await;
        r.error_message(StatusCode::PAYLOAD_TOO_LARGE, "charx_too_large");
    }

    let big = vec![b' '; waifu_rt3d::cards::MAX_IMPORT_BYTES + 1];
    let r = upload(&h, "/api/characters/import", "big.json", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    let r = upload(&h, "/api/characters/import", "x.txt", b"hello").await;
    r.error_message(StatusCode::UNSUPPORTED_MEDIA_TYPE, "card_unsupported_type");

    // Only the one good import is there.
    assert_eq!(character_count(&h).await, before + 1);

    let r = export(&h, id, "gif").await;
    r.error_message(StatusCode::BAD_REQUEST, "bad_format");
    let r = export(&h, 999, "png").await;
    r.error_message(StatusCode::NOT_FOUND, "not_found");
    let r = send(&h.app, get("/api/characters/1/portrait")).await;
    r.error_message(StatusCode::NOT_FOUND, "not_found");
}

async fn first_messages(h: &Harness, session: i64) -> Vec<Value> {
    let r = send(&h.app, get(&format!("/api/sessions/{session}/messages"))).await;
    r.json()["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_conversation_with_a_character_opens_with_its_greeting() {
    let h = harness().await;
    let r = send(
        &h.app,
        put_json("/api/config", r#"{"user": {"name": "Mika"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let card = json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": {
        "name": "Mira", "first_mes": "Welcome, {{user}}. I am {{char}}.",
        "alternate_greetings": ["Back again, {{user}}?{{// second}}"]}});
    let id = import(&h, "mira.json", card.to_string().as_bytes()).await;

    let r = send(
        &h.app,
        post_json("/api/sessions", &json!({"character_id": id}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let s = r.json();
    assert_eq!(s["character_id"], id);
    assert_eq!(s["title"], "Chat with Mira");
    let msgs = first_messages(&h, s["id"].as_i64().unwrap()).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["role"], "assistant");
    assert_eq!(msgs[0]["text"], "Welcome, Mika. I am Mira.");

    let r = send(
        &h.app,
        post_json(
            "/api/sessions",
            &json!({"character_id": id, "greeting": 1, "title": "Again"}).to_string(),
        ),
    )
    .await;
    let msgs = first_messages(&h, r.json()["id"].as_i64().unwrap()).await;
    assert_eq!(msgs[0]["text"], "Back again, Mika?");

    let r = send(
        &h.app,
        post_json(
            "/api/sessions",
            &json!({"character_id": id, "greeting": 5}).to_string(),
        ),
    )
    .await;
    r.error_message(StatusCode::BAD_REQUEST, "bad_greeting");
    let r = send(
        &h.app,
        post_json("/api/sessions", r#"{"character_id": 4242}"#),
    )
    .await;
    r.error_message(StatusCode::NOT_FOUND, "not_found");
    // Without a character, as before.
    let r = send(&h.app, post_json("/api/sessions", "{}")).await;
    assert_eq!(r.json()["character_id"], Value::Null);
}

async fn chat_with_mock() -> (Harness, MockLlm) {
    let h = harness().await;
    let mock = MockLlm::start(Flavor::LmStudio).await;
    let body = json!({"llm": {"provider": "lmstudio", "endpoint": mock.base_url, "model": "ok",
        "first_token_timeout_ms": 1000}, "user": {"name": "Mika"}});
    let r = send(&h.app, put_json("/api/config", &body.to_string())).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    (h, mock)
}

/// Sends `text` in `session` and returns the messages the model received.
async fn turn(h: &Harness, mock: &MockLlm, session: i64, text: &str) -> Vec<Value> {
    let r = send(
        &h.app,
        post_json(
            &format!("/api/chat?session_id={session}"),
            &json!({ "text": text }).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    mock.last_request()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn session_with(h: &Harness, character: i64) -> i64 {
    let r = send(
        &h.app,
        post_json(
            "/api/sessions",
            &json!({ "character_id": character }).to_string(),
        ),
    )
    .await;
    r.json()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn seraphinas_lorebook_reaches_the_model_only_when_its_keys_are_said() {
    let (h, mock) = chat_with_mock().await;
    let id = import(&h, "seraphina.png", &fixture("seraphina.png")).await;
    let session = session_with(&h, id).await;

    // The greeting speaks of "the beasts that assailed you": with the first message it is in
    // the scan (the last two messages), so the Shadowfang entry wakes.
    let msgs = turn(&h, &mock, session, "Thank you for saving me.").await;
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.contains("What are Shadowfangs?"), "{system}");
    // The greeting is the first message of the history.
    assert_eq!(msgs[1]["role"], "assistant");
    assert!(msgs[1]["content"]
        .as_str()
        .unwrap()
        .contains("You wake with a start"));

    // Two messages later the greeting is out of the scan, and nothing said wakes an entry.
    let msgs = turn(&h, &mock, session, "I feel better now.").await;
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(!system.contains("What are Shadowfangs?"), "{system}");
    assert!(!system.contains("What is the glade?"), "{system}");

    let msgs = turn(&h, &mock, session, "What was that BEAST that attacked me?").await;
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(
        system.contains("Mika: \"What are Shadowfangs?\""),
        "entry missing or macros unexpanded: {system}"
    );
    assert!(!system.contains("What is the glade?"), "{system}");
    let stored = first_messages(&h, session).await;
    let reply = stored.last().unwrap();
    assert_eq!(reply["role"], "assistant");
    assert_eq!(reply["lore"], json!(["shadowfang"]));
    // The reply before it had no entry; the first one had the greeting's.
    assert_eq!(stored[2]["lore"], json!(["shadowfang"]), "{}", stored[2]);
    assert!(stored[4].get("lore").is_none(), "{}", stored[4]);
}

#[tokio::test]
async fn lorebook_rules_and_card_order_in_the_prompt() {
    let (h, mock) = chat_with_mock().await;
    let card = json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": {
    "name": "Captain Rell", "nickname": "Rell",
    "description": "{{char}} commands the airship Kestrel.",
    "personality": "gruff", "scenario": "{{user}} is a stowaway.",
    "mes_example": "<START>\n{{user}}: Hello\n{{char}}: Get off my deck.",
    "system_prompt": "{{original}} Keep it short.",
    "post_history_instructions": "Stay gruff.",
    "first_mes": "Who are you?",
    "character_book": {"scan_depth": 2, "token_budget": 400, "entries": [
        {"keys": ["/kestrel'?s? engine/i"], "use_regex": true, "content": "The engine burns moonstone.", "name": "Engine", "insertion_order": 2},
        {"keys": ["Sky Guild"], "case_sensitive": true, "content": "The Sky Guild hunts smugglers.", "name": "Guild", "insertion_order": 1},
        {"keys": ["map"], "selective": true, "secondary_keys": ["treasure"], "content": "The map is fake.", "name": "Map", "position": "after_char"},
        {"keys": ["storm"], "enabled": false, "content": "Disabled storm lore.", "name": "Storm"}
    ]}}});
    let id = import(&h, "rell.json", card.to_string().as_bytes()).await;
    let session = session_with(&h, id).await;

    let msgs = turn(
        &h,
        &mock,
        session,
        "How does the Kestrel's engine work? Does the sky guild know? Storm ahead, and a map!",
    )
    .await;
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.contains("The engine burns moonstone."), "{system}");
    // "sky guild" is not "Sky Guild" for a case-sensitive key; "map" lacks "treasure".
    assert!(!system.contains("hunts smugglers"), "{system}");
    assert!(!system.contains("The map is fake."), "{system}");
    assert!(!system.contains("Disabled storm lore."), "{system}");
    let at = |s: &str| {
        system
            .find(s)
            .unwrap_or_else(|| panic!("{s:?} missing: {system}"))
    };
    assert!(
        system.starts_with("Write Rell's next reply in a fictional chat between Rell and Mika.")
    );
    assert!(at("Keep it short.") < at("The engine burns moonstone."));
    assert!(at("moonstone") < at("Rell commands the airship Kestrel."));
    assert!(at("Kestrel.") < at("Rell's personality: gruff"));
    assert!(at("gruff") < at("Scenario: Mika is a stowaway."));
    assert!(at("stowaway") < at("Mika: Hello\nRell: Get off my deck."));
    let last = msgs.last().unwrap();
    assert_eq!(last["role"], "system");
    assert_eq!(last["content"], "Stay gruff.");
    assert_eq!(msgs[msgs.len() - 2]["role"], "user");

    let msgs = turn(&h, &mock, session, "The Sky Guild wants the treasure map.").await;
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(
        system.contains("The Sky Guild hunts smugglers."),
        "{system}"
    );
    assert!(system.contains("The map is fake."), "{system}");
    // After the character's description: its position is after_char.
    assert!(
        system.find("The map is fake.") > system.find("Scenario:"),
        "{system}"
    );
    // The engine was said two messages back (the reply between counts): still in the scan.
    let stored = first_messages(&h, session).await;
    let names = stored.last().unwrap()["lore"].clone();
    assert!(names.as_array().unwrap().contains(&json!("Map")), "{names}");
}

#[tokio::test]
async fn a_lorebook_file_joins_a_characters_book() {
    let (h, mock) = chat_with_mock().await;
    let id = import(&h, "skynet_v1.png", &fixture("skynet_v1.png")).await;
    let r = upload(
        &h,
        &format!("/api/characters/{id}/lorebook"),
        "Eldoria.json",
        &fixture("eldoria_world_info.json"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["entries"], 4);
    let session = session_with(&h, id).await;
    let msgs = turn(&h, &mock, session, "Take me to the glade.").await;
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.contains("What is the glade?"), "{system}");

    let r = upload(
        &h,
        &format!("/api/characters/{id}/lorebook"),
        "notes.json",
        br#"{"hello": "world"}"#,
    )
    .await;
    r.error_message(StatusCode::BAD_REQUEST, "lorebook_unrecognised");
    let r = upload(
        &h,
        "/api/characters/999/lorebook",
        "Eldoria.json",
        &fixture("eldoria_world_info.json"),
    )
    .await;
    r.error_message(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn renaming_a_character_renames_its_card() {
    let h = harness().await;
    let id = import(&h, "seraphina.png", &fixture("seraphina.png")).await;
    let r = send(
        &h.app,
        put_json(
            &format!("/api/characters/{id}"),
            r#"{"name": "Sera", "voice_id": "en_US-lessac-medium"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["character"]["name"], "Sera");
    let c = card(&h, id).await;
    assert_eq!(c["data"]["name"], "Sera");
    // The rest of the card is untouched.
    assert!(c["data"]["first_mes"]
        .as_str()
        .unwrap()
        .contains("You wake with a start"));
}

async fn sfn(h: &Harness, path: &str, body: Value) -> Reply {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(&h.app, req).await
}

/// The Characters tab's form: it loads a card's fields and saves them back into the same JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_saves_into_the_card_and_keeps_what_it_does_not_show() {
    let h = harness().await;
    let id = import(&h, "seraphina.png", &fixture("seraphina.png")).await;
    let before = card(&h, id).await;
    let req = Request::post("/sfn/characters/load")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(format!("id={id}")))
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let loaded = r.json();
    let mut fields = loaded["fields"].clone();
    assert_eq!(fields["name"], "Seraphina");
    assert_eq!(fields["book"]["entries"].as_array().unwrap().len(), 4);

    fields["scenario"] = json!("A <script>alert(1)</script> storm rolls in.");
    fields["alternate_greetings"] = json!(["Hello again, {{user}}."]);
    fields["book"]["entries"][1]["enabled"] = json!(false);
    let choices = json!({"greeting": 1, "tts_provider": "espeak", "voice_id": "",
        "avatar_url": "/files/avatars/default.vrm"});
    let r = sfn(
        &h,
        "/sfn/characters/save",
        json!({"id": id, "fields": fields, "choices": choices}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let saved = r.json();
    assert_eq!(saved["character"]["greeting"], 1);
    assert_eq!(saved["character"]["tts_provider"], "espeak");
    assert_eq!(
        saved["character"]["avatar_url"],
        "/files/avatars/default.vrm"
    );

    let after = card(&h, id).await;
    // Text is stored as typed; only the edited fields changed.
    assert_eq!(
        after["data"]["scenario"],
        "A <script>alert(1)</script> storm rolls in."
    );
    assert_eq!(
        after["data"]["character_book"]["entries"][1]["enabled"],
        false
    );
    assert_eq!(after["data"]["extensions"], before["data"]["extensions"]);
    assert_eq!(after["create_date"], before["create_date"]);
    assert_eq!(
        after["data"]["character_book"]["entries"][0]["extensions"],
        before["data"]["character_book"]["entries"][0]["extensions"]
    );
    // The chosen greeting opens the next conversation.
    let r = send(
        &h.app,
        post_json("/api/sessions", &json!({"character_id": id}).to_string()),
    )
    .await;
    let msgs = first_messages(&h, r.json()["id"].as_i64().unwrap()).await;
    assert_eq!(msgs[0]["text"], "Hello again, You.");

    // Bad saves say which fields, and change nothing.
    let mut bad = fields.clone();
    bad["name"] = json!(" ");
    bad["book"]["entries"][0]["use_regex"] = json!(true);
    bad["book"]["entries"][0]["keys"] = json!(["(unclosed"]);
    let r = sfn(
        &h,
        "/sfn/characters/save",
        json!({"id": id, "fields": bad, "choices": {}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json();
    assert_eq!(e["code"], "invalid_card");
    let paths: Vec<&str> = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["name", "book.entries[0].keys"]);
    for (choices, code) in [
        (json!({"greeting": 9}), "bad_greeting"),
        (
            json!({"avatar_url": "/files/avatars/nope.vrm"}),
            "unknown_avatar",
        ),
        (json!({"tts_provider": "shout"}), "invalid_tts_provider"),
    ] {
        let r = sfn(
            &h,
            "/sfn/characters/save",
            json!({"id": id, "fields": fields, "choices": choices}),
        )
        .await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], code);
    }
    assert_eq!(card(&h, id).await, after);

    // A name in another script downloads under that name.
    let mut jp = fields.clone();
    jp["name"] = json!("セラフィナ");
    let r = sfn(
        &h,
        "/sfn/characters/save",
        json!({"id": id, "fields": jp, "choices": {}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let out = export(&h, id, "json").await;
    assert_eq!(out.status, 200);
    assert!(out
        .header(header::CONTENT_DISPOSITION)
        .ends_with("filename*=UTF-8''%E3%82%BB%E3%83%A9%E3%83%95%E3%82%A3%E3%83%8A.json"));

    // A new character from the form.
    let r = sfn(
        &h,
        "/sfn/characters/save",
        json!({"id": null, "fields": {"name": "Nova", "first_mes": "Hi!"}, "choices": {}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let nova = r.json()["character"]["id"].as_i64().unwrap();
    assert_eq!(card(&h, nova).await["data"]["first_mes"], "Hi!");
}
