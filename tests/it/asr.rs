//! Speech recognition: `POST /api/asr` with recordings spoken by eSpeak NG at test time and heard
//! by the real offline Whisper, the checks every recording passes before any engine runs, the
//! OpenAI-compatible adapter against a mock in OpenAI's wire format, and voice input on the chat
//! routes (stored with the message, traced before the request).
//!
//! The tests of the real Whisper need `make setup`'s virtualenv and model (`make test` installs
//! them first); without them they say so and skip.

use crate::common::{
    asr_mock::{AsrMock, Mode, ASR_KEY},
    get,
    openai_mock::{Flavor, MockLlm},
    post_json, put_json, send, Harness, Reply,
};
use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

async fn with_config(patch: Value) -> Harness {
    let h = crate::common::harness().await;
    let r = send(&h.app, put_json("/api/config", &patch.to_string())).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    h
}

fn checkout(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Whether `make setup` installed faster-whisper and the model; says why not when it did not.
fn whisper_installed() -> bool {
    let needed = [
        "data/tools/whisper/venv/bin/python3",
        "data/models/whisper-tiny.en/model.bin",
    ];
    match needed.iter().find(|p| !checkout(p).is_file()) {
        None => true,
        Some(missing) => {
            eprintln!(
                "skipped: offline speech recognition is not installed ({} is missing); run `make setup`",
                checkout(missing).display()
            );
            false
        }
    }
}

/// `text` spoken by eSpeak NG, as a WAV.
fn spoken(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("speech.wav");
    let status = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&out)
        .arg(text)
        .status()
        .expect("espeak-ng runs (make setup installs it)");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// `wav` re-encoded as Opus in `format` (webm, ogg), as a browser's MediaRecorder sends it; made
/// with the PyAV of Whisper's virtualenv.
fn opus(wav: &[u8], format: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in.wav"), dir.path().join("out"));
    std::fs::write(&src, wav).unwrap();
    let script = "import sys, av\nwith av.open(sys.argv[1]) as i, av.open(sys.argv[2], 'w', format=sys.argv[3]) as o:\n    s = o.add_stream('libopus', rate=48000)\n    for f in i.decode(audio=0):\n        f.pts = None\n        for p in s.encode(f): o.mux(p)\n    for p in s.encode(None): o.mux(p)\n";
    let status = std::process::Command::new(checkout("data/tools/whisper/venv/bin/python3"))
        .args(["-c", script])
        .arg(&src)
        .arg(&dst)
        .arg(format)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(dst).unwrap()
}

/// `seconds` of digital silence, 16 kHz mono.
fn silence(seconds: usize) -> Vec<u8> {
    waifu_rt3d::tts::wav::wrap_pcm16_mono(&vec![0u8; 16_000 * 2 * seconds], 16_000)
}

fn raw(body: Vec<u8>, content_type: &str) -> Request<Body> {
    Request::post("/api/asr")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

/// A multipart body with the recording in `file`, its part typed `part_type`.
fn form(bytes: &[u8], part_type: &str) -> Request<Body> {
    let (content_type, body) = crate::common::multipart_typed("speech", part_type, bytes);
    Request::post("/api/asr")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

fn heard(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["ok"], true, "{j}");
    j
}

/// The words the test listens for: what tiny.en hears reliably in eSpeak's voice.
const QUESTION: &str = "What is the weather like today?";

fn hears_the_question(j: &Value) {
    let text = j["text"].as_str().unwrap().to_lowercase();
    assert!(
        text.contains("weather") && text.contains("today"),
        "heard {text:?}"
    );
}

// ------------------------------------------------------------------ the real Whisper

#[tokio::test]
async fn real_whisper_hears_spoken_words_raw_and_multipart_in_every_container() {
    if !whisper_installed() {
        return;
    }
    let h = crate::common::harness().await;
    let warm = send(&h.app, post_json("/api/asr/warm", "")).await;
    assert_eq!(warm.status, 200, "{}", String::from_utf8_lossy(&warm.body));
    assert_eq!(warm.json()["provider"], "whisper_local");

    let wav = spoken(QUESTION);
    let j = heard(&send(&h.app, raw(wav.clone(), "audio/wav")).await);
    hears_the_question(&j);
    assert_eq!(j["language"], "en");
    assert_eq!(j["meta"]["provider"], "whisper_local");
    let duration = j["duration_ms"].as_u64().unwrap();
    assert!((1_000..4_000).contains(&duration), "{j}");
    let timings = &j["meta"]["timings"];
    for stage in ["receive_ms", "decode_ms", "transcribe_ms", "total_ms"] {
        assert!(timings[stage].as_f64().is_some(), "{stage}: {j}");
    }

    hears_the_question(&heard(&send(&h.app, form(&wav, "audio/wav")).await));
    // A form that does not say what the file is: its bytes do.
    hears_the_question(&heard(
        &send(&h.app, form(&wav, "application/octet-stream")).await,
    ));
    // What browsers record: Opus in WebM (reported as audio/webm or video/webm) or in OGG.
    let webm = opus(&wav, "webm");
    hears_the_question(&heard(
        &send(&h.app, raw(webm.clone(), "audio/webm;codecs=opus")).await,
    ));
    hears_the_question(&heard(&send(&h.app, raw(webm, "video/webm")).await));
    hears_the_question(&heard(
        &send(&h.app, raw(opus(&wav, "ogg"), "audio/ogg")).await,
    ));

    let health = send(&h.app, get("/api/healthcheck")).await.json();
    assert_eq!(health["asr"]["provider"], "whisper_local", "{health}");
    assert_eq!(health["asr"]["state"], "ok", "{health}");
    assert!(
        health["asr"]["detail"].as_str().unwrap().contains("warm"),
        "{health}"
    );
}

#[tokio::test]
async fn real_whisper_gives_silence_as_empty_text_and_refuses_what_it_cannot_hear() {
    if !whisper_installed() {
        return;
    }
    let h = with_config(json!({"asr": {"max_seconds": 2}})).await;
    let j = heard(&send(&h.app, raw(silence(2), "audio/wav")).await);
    assert_eq!(j["text"], "", "{j}");
    assert_eq!(j["duration_ms"], 2_000);

    // Not audio at all, though it says it is.
    let r = send(
        &h.app,
        raw(b"just some text, not a recording".to_vec(), "audio/wav"),
    )
    .await;
    let message = r.error_message(StatusCode::BAD_REQUEST, "asr_bad_audio");
    assert!(message.contains("could not be read as audio"), "{message}");
    let r = send(&h.app, form(&[0x55; 4096], "audio/webm")).await;
    r.error_message(StatusCode::BAD_REQUEST, "asr_bad_audio");

    // Longer than asr.max_seconds: refused before anything is recognised.
    let long =
        spoken("This sentence is spoken slowly enough to last for more than two seconds, surely.");
    let r = send(&h.app, raw(long, "audio/wav")).await;
    let message = r.error_message(StatusCode::PAYLOAD_TOO_LARGE, "asr_too_long");
    assert!(message.contains("2 s"), "{message}");

    // The worker is still there for the next recording.
    let j = heard(&send(&h.app, raw(silence(1), "audio/wav")).await);
    assert_eq!(j["text"], "");
}

// ------------------------------------------------------------------ checks before any engine

#[tokio::test]
async fn recordings_are_checked_before_any_engine_runs() {
    let mock = AsrMock::start().await;
    let h = with_config(mock.settings(ASR_KEY, 5_000)).await;

    for (body_type, why) in [
        ("application/octet-stream", "application/octet-stream"),
        ("text/plain", "text/plain"),
        ("application/json", "application/json"),
    ] {
        let r = send(&h.app, raw(b"RIFF....WAVE".to_vec(), body_type)).await;
        let message = r.error_message(StatusCode::UNSUPPORTED_MEDIA_TYPE, "asr_unsupported_type");
        assert!(
            message.contains(why) && message.contains("audio/"),
            "{message}"
        );
    }
    let no_type = Request::post("/api/asr").body(Body::from("x")).unwrap();
    send(&h.app, no_type)
        .await
        .error_message(StatusCode::UNSUPPORTED_MEDIA_TYPE, "asr_unsupported_type");
    send(&h.app, form(b"hello", "text/plain"))
        .await
        .error_message(StatusCode::UNSUPPORTED_MEDIA_TYPE, "asr_unsupported_type");

    // Over 25 MB, said or not.
    let big = vec![0u8; 25 * 1024 * 1024 + 1];
    send(&h.app, raw(big.clone(), "audio/wav"))
        .await
        .error_message(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    send(&h.app, form(&big, "audio/wav"))
        .await
        .error_message(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let said = Request::post("/api/asr")
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(header::CONTENT_LENGTH, "900000000")
        .body(Body::from("RIFF"))
        .unwrap();
    send(&h.app, said)
        .await
        .error_message(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Empty, a form without `file`, and a remote server asked about bytes of no known kind.
    send(&h.app, raw(Vec::new(), "audio/wav"))
        .await
        .error_message(StatusCode::BAD_REQUEST, "asr_bad_audio");
    let no_file = Request::post("/api/asr")
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=b")
        .body(Body::from(
            "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n",
        ))
        .unwrap();
    send(&h.app, no_file)
        .await
        .error_message(StatusCode::BAD_REQUEST, "asr_missing_file");
    send(&h.app, raw(b"not audio at all".to_vec(), "audio/x-unknown"))
        .await
        .error_message(StatusCode::BAD_REQUEST, "asr_bad_audio");
    // A WAV over asr.max_seconds is refused without sending it.
    let r = send(
        &h.app,
        put_json("/api/config", r#"{"asr": {"max_seconds": 1}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    send(&h.app, raw(silence(2), "audio/wav"))
        .await
        .error_message(StatusCode::PAYLOAD_TOO_LARGE, "asr_too_long");
    assert!(mock.received().is_empty(), "nothing reached the server");

    // Off: refused, and the warm-up says so too.
    let r = send(
        &h.app,
        put_json("/api/config", r#"{"asr": {"provider": "disabled"}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    send(&h.app, raw(silence(1), "audio/wav"))
        .await
        .error_message(StatusCode::CONFLICT, "asr_disabled");
    send(&h.app, post_json("/api/asr/warm", ""))
        .await
        .error_message(StatusCode::CONFLICT, "asr_disabled");
    let health = send(&h.app, get("/api/healthcheck")).await.json();
    assert_eq!(health["asr"]["provider"], "disabled");
    assert_eq!(health["asr"]["state"], "misconfigured");
}

#[tokio::test]
async fn recordings_pass_the_same_access_rules_as_every_api_route() {
    let post = |headers: &[(&str, &str)]| {
        let mut b = Request::post("/api/asr").header(header::CONTENT_TYPE, "audio/wav");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::from(silence(1))).unwrap()
    };
    let own = ("host", "127.0.0.1:3000");
    let h = crate::common::harness().await;
    send(&h.app, post(&[own, ("origin", "http://evil.example")]))
        .await
        .error_message(StatusCode::FORBIDDEN, "cross_origin");
    send(&h.app, post(&[("host", "evil.example")]))
        .await
        .error_message(StatusCode::FORBIDDEN, "host_not_allowed");

    let h = crate::common::harness_with_token("a-test-token-of-some-length").await;
    send(&h.app, post(&[own]))
        .await
        .error_message(StatusCode::UNAUTHORIZED, "unauthorized");
}

// ------------------------------------------------------------------ the OpenAI-compatible adapter

#[tokio::test]
async fn openai_compatible_sends_the_real_wire_format_and_never_echoes_the_key() {
    let mock = AsrMock::start().await;
    let h = with_config(mock.settings(ASR_KEY, 5_000)).await;
    let wav = silence(1);
    let r = send(&h.app, raw(wav.clone(), "audio/wav")).await;
    let j = heard(&r);
    assert_eq!(j["text"], "Hello from the mock server.", "{j}");
    assert_eq!(j["meta"]["provider"], "openai_compatible");
    assert_eq!(j["language"], "en");
    assert_eq!(j["duration_ms"], 1_000, "a WAV's own length: {j}");
    assert!(j["meta"]["timings"]["transcribe_ms"].as_f64().is_some());
    assert!(!String::from_utf8_lossy(&r.body).contains(ASR_KEY));

    let sent = &mock.received()[0];
    assert_eq!(sent.authorization, format!("Bearer {ASR_KEY}"));
    assert_eq!(sent.field("model"), Some("whisper-1"));
    assert_eq!(sent.field("response_format"), Some("json"));
    assert_eq!(sent.field("language"), Some("en"));
    assert_eq!(sent.file_name, "speech.wav");
    assert_eq!(sent.file_type, "audio/wav");
    assert_eq!(sent.file_len, wav.len());

    // A WebM recording (its bytes say so) is named for what it is; an empty language is left out.
    let r = send(
        &h.app,
        put_json("/api/config", r#"{"asr": {"language": ""}}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let webm = [&[0x1A, 0x45, 0xDF, 0xA3][..], &[0u8; 64]].concat();
    let j = heard(&send(&h.app, form(&webm, "application/octet-stream")).await);
    assert_eq!(j["duration_ms"], 2_500, "the server's usage.seconds: {j}");
    let sent = &mock.received()[1];
    assert_eq!(sent.file_name, "speech.webm");
    assert_eq!(sent.file_type, "audio/webm");
    assert_eq!(sent.field("language"), None);

    // The settings the browser sees carry no key.
    let cfg = send(&h.app, get("/api/config")).await;
    assert!(!String::from_utf8_lossy(&cfg.body).contains(ASR_KEY));
    assert_eq!(
        cfg.json()["asr"]["providers"]["openai_compatible"]["api_key_set"],
        true
    );
}

#[tokio::test]
async fn openai_compatible_failures_are_classified() {
    let mock = AsrMock::start().await;
    // A wrong key, which the mock names in full in its complaint.
    let wrong = "sk-wrong-key-4567";
    let h = with_config(mock.settings(wrong, 1_000)).await;
    let r = send(&h.app, raw(silence(1), "audio/wav")).await;
    let message = r.error_message(StatusCode::BAD_GATEWAY, "asr_auth");
    assert!(message.contains("401"), "{message}");
    assert!(
        !String::from_utf8_lossy(&r.body).contains(wrong),
        "{message}"
    );

    let r = send(
        &h.app,
        put_json("/api/config", &mock.settings(ASR_KEY, 1_000).to_string()),
    )
    .await;
    assert_eq!(r.status, 200);
    for (mode, code, says) in [
        (Mode::RateLimited, "asr_rate_limited", "429"),
        (Mode::Broken, "asr_error", "500"),
        (Mode::Slow, "asr_timeout", "1000 ms"),
    ] {
        mock.set_mode(mode);
        let r = send(&h.app, raw(silence(1), "audio/wav")).await;
        let message = r.error_message(StatusCode::BAD_GATEWAY, code);
        assert!(message.contains(says), "{mode:?}: {message}");
    }

    // Nobody listening.
    let gone = json!({"asr": {"providers": {"openai_compatible": {
        "endpoint": "http://127.0.0.1:9/v1", "api_key": ASR_KEY}}}});
    let r = send(&h.app, put_json("/api/config", &gone.to_string())).await;
    assert_eq!(r.status, 200);
    send(&h.app, raw(silence(1), "audio/wav"))
        .await
        .error_message(StatusCode::BAD_GATEWAY, "asr_unavailable");
}

// ------------------------------------------------------------------ voice input on the chat routes

#[tokio::test]
async fn a_voice_message_is_stored_as_voice_and_its_trace_starts_at_the_end_of_speech() {
    let h = crate::common::harness().await;
    let llm = MockLlm::start(Flavor::LmStudio).await;
    let cfg = json!({"llm": {"provider": "lmstudio", "endpoint": llm.base_url, "model": "ok"}});
    let r = send(&h.app, put_json("/api/config", &cfg.to_string())).await;
    assert_eq!(r.status, 200);

    let body = json!({"text": "what is the weather like", "input": "voice",
                      "speech_end_ms_ago": 900, "asr_done_ms_ago": 40});
    let j = send(
        &h.app,
        post_json("/api/chat?session_id=7", &body.to_string()),
    )
    .await
    .json();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["timings"]["speech_end"], -900, "{j}");
    assert_eq!(j["timings"]["asr_done"], -40, "{j}");

    // Typed (the default): no voice stages, even when sent.
    let typed = json!({"text": "and typed", "speech_end_ms_ago": 900});
    let t = send(
        &h.app,
        post_json("/api/chat?session_id=7", &typed.to_string()),
    )
    .await
    .json();
    assert!(t["timings"].get("speech_end").is_none(), "{t}");

    let page = send(&h.app, get("/api/sessions/7/messages")).await.json();
    let inputs: Vec<(&str, &str)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["input"].as_str().unwrap()))
        .collect();
    assert_eq!(
        inputs,
        [
            ("user", "voice"),
            ("assistant", "text"),
            ("user", "text"),
            ("assistant", "text")
        ]
    );

    // The stream takes the same fields.
    let r = send(
        &h.app,
        post_json("/api/chat/stream?session_id=8", &body.to_string()),
    )
    .await;
    assert_eq!(r.status, 200);
    let events = crate::common::sse_events(&r.body);
    let done = &events.iter().find(|(n, _)| n == "done").unwrap().1;
    assert_eq!(done["timings"]["speech_end"], -900, "{done}");

    let bad = json!({"text": "x", "input": "telepathy"});
    let r = send(
        &h.app,
        post_json("/api/chat?session_id=7", &bad.to_string()),
    )
    .await;
    r.error_message(StatusCode::BAD_REQUEST, "invalid_json");
}
