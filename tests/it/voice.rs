//! The spoken reply through the router: a mock LLM streaming sentences, mock voice servers in
//! vendor wire formats, and the latency trace (`/api/messages/{id}/timings`, `/api/latency`).

use crate::common;

use common::openai_mock::{story_text, Flavor, MockLlm};
use common::tts_mock::VoiceMock;
use common::{get, harness, post_json, put_json, send, spoken_stream, Harness};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use waifu_rt3d::{server::chat::PARALLEL_SYNTHESES, shared::chat::ChatInput};

/// A harness whose model is the mock (`case` picks the reply) and whose voice chain is `tts`.
async fn voice_harness(case: &str, tts: Value) -> (Harness, MockLlm) {
    let h = harness().await;
    let mock = MockLlm::start(Flavor::LmStudio).await;
    let body = json!({
        "llm": {"provider": "lmstudio", "endpoint": mock.base_url, "model": case,
                "first_token_timeout_ms": 2000},
        "tts": tts,
    });
    let r = send(&h.app, put_json("/api/config", &body.to_string())).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    (h, mock)
}

fn xtts_only(voice: &VoiceMock) -> Value {
    json!({"provider": "xtts_server", "fallback_chain": [],
           "providers": {"xtts_server": voice.xtts_settings()}})
}

fn named<'a>(events: &'a [(String, Value)], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, d)| d)
        .collect()
}

fn position(events: &[(String, Value)], f: impl Fn(&(String, Value)) -> bool) -> usize {
    events.iter().position(f).expect("no such event")
}

#[tokio::test]
async fn every_sentence_is_announced_in_order_and_answered_once_before_done() {
    // The voice is slower than the model writes a sentence, so syntheses overlap.
    let voice = VoiceMock::xtts(300).await;
    let (h, _llm) = voice_harness("story:5:5", xtts_only(&voice)).await;
    let events = spoken_stream(&h, 1).await;

    let sentences = named(&events, "sentence");
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..5)
        .map(|i| format!("Sentence number {i} is here."))
        .collect();
    assert_eq!(texts, want, "{events:?}");
    for (i, s) in sentences.iter().enumerate() {
        assert_eq!(s["index"], json!(i));
        // The tag came first, so every sentence knows the emotion.
        assert_eq!(s["emotion"], json!("happy"));
    }

    // Each index answered exactly once, with audio from the voice, whatever the order.
    let mut answered = BTreeMap::new();
    for a in named(&events, "audio") {
        let index = a["index"].as_u64().unwrap();
        assert!(answered.insert(index, a.clone()).is_none(), "twice: {a}");
        assert_eq!(a["provider"], json!("xtts_server"));
        assert!(a["duration_ms"].as_u64().unwrap() > 0);
        let url = a["url"].as_str().unwrap();
        assert_eq!(send(&h.app, get(url)).await.status, 200, "{url}");
    }
    assert_eq!(
        answered.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(named(&events, "audio_error").is_empty());

    // A sentence is announced before its audio.
    for i in 0..5u64 {
        let s = position(&events, |(n, d)| n == "sentence" && d["index"] == json!(i));
        let a = position(&events, |(n, d)| n == "audio" && d["index"] == json!(i));
        assert!(s < a, "sentence {i} at {s}, its audio at {a}");
    }

    // The voice never heard the tag, and at most PARALLEL_SYNTHESES requests ran at once.
    let heard = voice.texts.lock().unwrap().clone();
    assert_eq!(heard.len(), 5);
    assert!(heard.iter().all(|t| !t.contains('[')), "{heard:?}");
    assert_eq!(voice.max_in_flight(), PARALLEL_SYNTHESES, "{heard:?}");

    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(done["reply"], json!(story_text(5)));
    let t = &done["timings"];
    for stage in [
        "first_token",
        "first_segment",
        "tts_request_started",
        "tts_ready",
        "first_audio_sent",
        "response_complete",
    ] {
        assert!(t[stage].is_u64(), "{stage} missing: {t}");
    }
    let ms = |s: &str| t[s].as_u64().unwrap();
    assert!(ms("first_token") <= ms("first_segment"));
    assert!(ms("first_segment") <= ms("tts_request_started"));
    assert!(ms("tts_request_started") <= ms("tts_ready"));
    assert!(ms("tts_ready") <= ms("first_audio_sent"));

    // The stored trace has the voice stages too.
    let report = send(&h.app, get("/api/latency")).await.json();
    assert_eq!(report["turns"], json!(1), "{report}");
    assert_eq!(report["first_audio"]["count"], json!(1));
    assert_eq!(report["first_audio"]["p50"], t["first_audio_sent"]);
}

#[tokio::test]
async fn the_first_sentence_is_spoken_while_the_model_still_writes() {
    // 2 sentences a second from the model; the voice answers in 30 ms.
    let voice = VoiceMock::xtts(30).await;
    let (h, _llm) = voice_harness("story:4:100", xtts_only(&voice)).await;
    let events = spoken_stream(&h, 1).await;
    let first_audio = position(&events, |(n, _)| n == "audio");
    let last_token = events.iter().rposition(|(n, _)| n == "token").unwrap();
    assert!(
        first_audio < last_token,
        "the first audio came only after the whole reply: {events:?}"
    );
    let t = &events.last().unwrap().1["timings"];
    assert!(
        t["first_audio_sent"].as_u64() < t["response_complete"].as_u64(),
        "{t}"
    );
}

#[tokio::test]
async fn a_failing_voice_hands_over_to_the_next_and_no_voice_is_audio_error() {
    let fish = VoiceMock::fish(10).await;
    fish.fail_with(500);
    let xtts = VoiceMock::xtts(10).await;
    let chain = json!({"provider": "fish_audio", "fallback_chain": ["xtts_server"],
        "providers": {"fish_audio": fish.fish_settings(), "xtts_server": xtts.xtts_settings()}});
    let (h, _llm) = voice_harness("story:3:5", chain).await;
    let events = spoken_stream(&h, 1).await;
    let audio = named(&events, "audio");
    assert_eq!(audio.len(), 3, "{events:?}");
    assert!(audio.iter().all(|a| a["provider"] == json!("xtts_server")));
    assert_eq!(fish.calls(), 3, "fish was asked first each time");
    assert_eq!(events.last().unwrap().0, "done");

    // Nobody can speak: every sentence gets an audio_error, the reply still completes.
    let chain = json!({"provider": "fish_audio", "fallback_chain": [],
        "providers": {"fish_audio": fish.fish_settings()}});
    let (h, _llm) = voice_harness("story:3:5", chain).await;
    let events = spoken_stream(&h, 2).await;
    let errors = named(&events, "audio_error");
    let mut indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2], "{events:?}");
    assert!(errors.iter().all(|e| e["code"] == json!("tts_failed")));
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("fish_audio"));
    assert!(!String::from_utf8_lossy(&serde_json::to_vec(&events).unwrap()).contains("fish-key"));
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(done["reply"], json!(story_text(3)));
    assert!(done["timings"]["first_audio_sent"].is_null(), "{done}");
    let page = send(&h.app, get("/api/sessions/2/messages")).await.json();
    assert_eq!(page["messages"][1]["text"], json!(story_text(3)));
}

#[tokio::test]
async fn stop_mid_reply_cancels_waiting_syntheses_and_keeps_the_partial() {
    // Slow voice, many sentences: syntheses queue up behind the two running ones.
    let voice = VoiceMock::xtts(600).await;
    let (h, _llm) = voice_harness("story:40:10", xtts_only(&voice)).await;
    let mut turn = waifu_rt3d::server::chat::start(
        &h.state,
        3,
        ChatInput {
            text: "a long story please".into(),
            speak: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut sentences = 0;
    while let Some(e) = turn.events.recv().await {
        if e.name() == "sentence" {
            sentences += 1;
            if sentences == 6 {
                break;
            }
        }
    }
    drop(turn); // Stop
                // The running syntheses end and the partial reply is stored. Had the queued ones not
                // been cancelled, each would take a freed place at once: the voice would stay busy
                // through the 40 sentences and be asked for each.
    common::eventually(
        "the voice to go quiet and the partial reply to be stored",
        || async {
            h.state.tts.syntheses_running() == 0
                && send(&h.app, get("/api/sessions/3/messages")).await.json()["messages"][1]
                    ["partial"]
                    == json!(true)
        },
    )
    .await;
    let asked = voice.calls();
    assert!(
        asked <= PARALLEL_SYNTHESES + 1 && asked < sentences,
        "{asked} syntheses for {sentences} sentences after Stop"
    );
    let page = send(&h.app, get("/api/sessions/3/messages")).await.json();
    let stored = &page["messages"][1];
    assert_eq!(stored["partial"], json!(true), "{page}");
    let text = stored["text"].as_str().unwrap();
    assert!(text.starts_with("Sentence number 0 is here."), "{text}");
    assert!(
        !text.contains("number 39"),
        "the model was not stopped: {text}"
    );
}

#[tokio::test]
async fn api_chat_with_speak_says_the_whole_reply_once() {
    let voice = VoiceMock::xtts(20).await;
    let (h, _llm) = voice_harness("story:3:1", xtts_only(&voice)).await;
    let r = send(
        &h.app,
        post_json("/api/chat?session_id=4", r#"{"text":"hi","speak":true}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["reply"], json!(story_text(3)));
    let url = j["audio"].as_str().expect("an audio URL");
    assert!(
        url.starts_with("/files/audio/") && url.ends_with(".wav"),
        "{url}"
    );
    assert_eq!(send(&h.app, get(url)).await.status, 200);
    assert_eq!(*voice.texts.lock().unwrap(), [story_text(3)]);

    // Without speak: no voice asked, audio null.
    let j = send(
        &h.app,
        post_json("/api/chat?session_id=4", r#"{"text":"hi"}"#),
    )
    .await
    .json();
    assert_eq!(j["audio"], Value::Null);
    assert_eq!(voice.calls(), 1);

    // Every voice failing loses nothing but the audio (a new reply: the last one is cached).
    voice.fail_with(500);
    let patch = json!({"llm": {"model": "story:4:1"}}).to_string();
    assert_eq!(
        send(&h.app, put_json("/api/config", &patch)).await.status,
        200
    );
    let r = send(
        &h.app,
        post_json("/api/chat?session_id=4", r#"{"text":"again","speak":true}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["ok"], json!(true));
    assert_eq!(j["reply"], json!(story_text(4)));
    assert_eq!(j["audio"], Value::Null);
    assert_eq!(voice.calls(), 2);
}

#[tokio::test]
async fn the_browser_reports_playback_and_the_latency_report_uses_it() {
    let voice = VoiceMock::xtts(20).await;
    let (h, _llm) = voice_harness("story:2:2", xtts_only(&voice)).await;

    // No turns yet: an empty report, not an error.
    let empty = send(&h.app, get("/api/latency")).await;
    assert_eq!(empty.status, 200);
    let j = empty.json();
    assert_eq!(j["turns"], json!(0));
    assert_eq!(j["first_audio"]["p50"], Value::Null);
    assert_eq!(j["stages"].as_array().unwrap().len(), 8);

    let events = spoken_stream(&h, 5).await;
    let id = events.last().unwrap().1["message_id"].as_i64().unwrap();
    let r = send(
        &h.app,
        put_json(
            &format!("/api/messages/{id}/timings"),
            r#"{"playback_started": 4321}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = send(&h.app, get("/api/latency?limit=50")).await.json();
    assert_eq!(j["first_audio"]["p50"], json!(4321), "{j}");
    let playback = j["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "playback_started")
        .unwrap();
    assert_eq!(playback["count"], json!(1));
    // The other stages are still there after the merge.
    let complete = &j["stages"][7];
    assert_eq!(complete["stage"], json!("response_complete"));
    assert_eq!(complete["count"], json!(1));

    // Bad input.
    let user_id = id - 1;
    for (uri, body, status) in [
        (format!("/api/messages/{id}/timings"), "{}", 400),
        (format!("/api/messages/{id}/timings"), "not json", 400),
        (
            format!("/api/messages/{id}/timings"),
            r#"{"playback_started": -5}"#,
            400,
        ),
        (
            format!("/api/messages/{id}/timings"),
            r#"{"playback_started": "soon"}"#,
            400,
        ),
        (
            "/api/messages/abc/timings".to_string(),
            r#"{"playback_started": 1}"#,
            400,
        ),
        (
            "/api/messages/99999/timings".to_string(),
            r#"{"playback_started": 1}"#,
            404,
        ),
        (
            format!("/api/messages/{user_id}/timings"),
            r#"{"playback_started": 1}"#,
            400,
        ),
    ] {
        let r = send(&h.app, put_json(&uri, body)).await;
        assert_eq!(
            r.status,
            status,
            "{uri} {body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["ok"], json!(false));
    }
    for q in ["limit=0", "limit=abc", "limit=100000"] {
        let r = send(&h.app, get(&format!("/api/latency?{q}"))).await;
        assert_eq!(r.status, 400, "{q}");
    }
    // The failed reports changed nothing.
    let j = send(&h.app, get("/api/latency")).await.json();
    assert_eq!(j["first_audio"]["p50"], json!(4321));
}

fn sfn(path: &str, form: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(axum::body::Body::from(form.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_cards_remember_the_last_error_and_success_and_test_one_voice_alone() {
    let fish = VoiceMock::fish(5).await;
    fish.fail_with(503);
    let xtts = VoiceMock::xtts(5).await;
    let chain = json!({"provider": "fish_audio", "fallback_chain": ["xtts_server"],
        "providers": {"fish_audio": fish.fish_settings(), "xtts_server": xtts.xtts_settings()}});
    let (h, _llm) = voice_harness("ok", chain).await;
    let r = send(&h.app, post_json("/api/tts", r#"{"text":"Good morning."}"#)).await;
    assert_eq!(r.json()["meta"]["provider"], json!("xtts_server"));

    let health = send(&h.app, get("/api/healthcheck")).await;
    let body = String::from_utf8_lossy(&health.body).to_string();
    assert!(!body.contains("fish-key"), "{body}");
    let cards = health.json()["tts"].as_array().cloned().unwrap();
    let card = |p: &str| cards.iter().find(|c| c["provider"] == p).cloned().unwrap();
    let fish_card = card("fish_audio");
    assert_eq!(
        fish_card["last_error"]["code"],
        json!("server"),
        "{fish_card}"
    );
    assert!(fish_card["last_error"]["ts"].as_f64().unwrap() > 1.0e9);
    assert!(fish_card["last_success"].is_null());
    let xtts_card = card("xtts_server");
    assert!(
        xtts_card["last_success"]["latency_ms"].is_u64(),
        "{xtts_card}"
    );
    assert!(xtts_card["last_error"].is_null());

    // "Test" asks that voice alone, and really asks it (not the cache).
    let before = (fish.calls(), xtts.calls());
    let r = send(&h.app, sfn("/sfn/tts/test", "provider=fish_audio")).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!((fish.calls(), xtts.calls()), (before.0 + 1, before.1));
    for n in 1..=2 {
        let r = send(&h.app, sfn("/sfn/tts/test", "provider=xtts_server")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        assert_eq!(j["meta"]["provider"], json!("xtts_server"));
        assert_eq!(j["meta"]["cached"], json!(false));
        assert!(j["latency_ms"].is_u64());
        assert_eq!(xtts.calls(), before.1 + n);
    }
    let r = send(&h.app, sfn("/sfn/tts/test", "provider=nobody")).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));

    let r = send(&h.app, sfn("/sfn/latency", "limit=50")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["turns"], json!(0));
}

/// The emotions the avatar can show, the filter turns into `emotion`, and the default character
/// is asked to choose from: one set.
#[tokio::test]
async fn the_default_character_asks_for_tags_the_filter_and_the_avatar_know() {
    use waifu_rt3d::server::chat::reply::emotion_of;
    let h = harness().await;
    let c = send(&h.app, get("/api/characters/1")).await.json();
    let prompt = c["character"]["system_prompt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(prompt.contains("exactly one emotion tag"), "{prompt}");
    let tags: Vec<&str> = prompt
        .split('[')
        .skip(1)
        .filter_map(|rest| rest.split_once(']').map(|(tag, _)| tag))
        .collect();
    let mut sorted = tags.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["angry", "happy", "neutral", "relaxed", "sad", "surprised"]
    );
    let avatar = std::fs::read(h.state.paths.avatars.join("default.vrm")).unwrap();
    let avatar = String::from_utf8_lossy(&avatar);
    for tag in tags {
        assert_eq!(
            emotion_of(tag),
            Some(tag),
            "the filter does not keep [{tag}]"
        );
        assert!(
            avatar.contains(&format!("\"{tag}\"")),
            "the default avatar has no {tag} expression"
        );
    }
}
