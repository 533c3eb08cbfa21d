//! Speech: each provider adapter against a mock server that speaks the vendor's wire format and
//! fails the way the vendor does, Piper's CLI contract through a stand-in
//! program, real Piper with the real voice, the fallback chain, and the audio cache.

use crate::common;

use axum::{
    body::{Body, Bytes},
    extract::{Path, Query},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get as route_get, post},
    Json, Router,
};
use common::*;
use serde_json::{json, Value};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};
use waifu_rt3d::tts::{wav, AudioCache};

/// What a mock server saw, and how it should behave next.
#[derive(Clone, Default)]
struct Mock {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    mode: Arc<Mutex<String>>,
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
}

impl Mock {
    fn set(&self, mode: &str) {
        *self.mode.lock().unwrap() = mode.into();
    }
    fn mode(&self) -> String {
        self.mode.lock().unwrap().clone()
    }
    fn record(&self, path: &str, headers: HeaderMap, query: HashMap<String, String>, body: Bytes) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(Seen {
            path: path.into(),
            headers,
            query,
            body,
        });
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no request reached the mock")
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A tone-free but non-silent 16-bit WAV of `ms` milliseconds.
fn wav_bytes(ms: u32, silent: bool) -> Vec<u8> {
    let samples = 22_050 * ms / 1000;
    let pcm: Vec<u8> = (0..samples)
        .flat_map(|i| {
            let v: i16 = if silent {
                0
            } else {
                ((i % 50) as i16 - 25) * 100
            };
            v.to_le_bytes()
        })
        .collect();
    wav::wrap_pcm16_mono(&pcm, 22_050)
}

const FAKE_MP3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00 fake mpeg frames";

/// Audio that never ends, sent without `Content-Length` (chunked), as a broken server might.
fn endless_audio(content_type: &'static str) -> Response {
    let chunk = Bytes::from(vec![0u8; 256 * 1024]);
    let body = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .unwrap()
}

fn json_error(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

/// Fish Audio: `POST /v1/tts`, Bearer key, `model` header, JSON body, raw chunked audio back.
fn fish(mock: Mock) -> Router {
    let tts = move |headers: HeaderMap, body: Bytes| {
        let mock = mock.clone();
        async move {
            mock.record("/v1/tts", headers.clone(), HashMap::new(), body.clone());
            if mock.mode() == "slow" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            if headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap())
                != Some("Bearer fish-key")
            {
                // Some servers echo what they were sent; it must not reach our answers.
                let sent = headers
                    .get(header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                return json_error(
                    401,
                    json!({"status": 401, "message": format!("Invalid api key: {sent}")}),
                );
            }
            if headers.get("model").is_none() || serde_json::from_slice::<Value>(&body).is_err() {
                return json_error(400, json!({"status": 400, "message": "bad request"}));
            }
            match mock.mode().as_str() {
                "402" => json_error(402, json!({"status": 402, "message": "No payment method"})),
                "429" => json_error(429, json!({"status": 429, "message": "Too many requests"})),
                "422" => json_error(
                    422,
                    json!([{"loc": ["body", "format"], "type": "enum", "msg": "Input should be 'wav', 'pcm', 'mp3' or 'opus'", "ctx": {}, "in": "body"}]),
                ),
                "502" => (
                    StatusCode::BAD_GATEWAY,
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html><body>502 Bad Gateway</body></html>",
                )
                    .into_response(),
                "endless" => endless_audio("audio/mpeg"),
                _ => {
                    let fmt = serde_json::from_slice::<Value>(&body).unwrap()["format"].clone();
                    let bytes = if fmt == "wav" {
                        wav_bytes(500, false)
                    } else {
                        FAKE_MP3.to_vec()
                    };
                    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                        bytes.chunks(7).map(|c| Ok(c.to_vec())).collect();
                    Response::builder()
                        .header(
                            header::CONTENT_TYPE,
                            if fmt == "wav" {
                                "audio/wav"
                            } else {
                                "audio/mpeg"
                            },
                        )
                        .body(Body::from_stream(futures::stream::iter(chunks)))
                        .unwrap()
                }
            }
        }
    };
    let credit = |headers: HeaderMap| async move {
        if headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap())
            == Some("Bearer fish-key")
        {
            Json(json!({"_id": "x", "user_id": "u", "credit": "12.50"})).into_response()
        } else {
            json_error(401, json!({"status": 401, "message": "Invalid api key"}))
        }
    };
    Router::new()
        .route("/v1/tts", post(tts))
        .route("/wallet/self/api-credit", route_get(credit))
}

/// ElevenLabs: `/v1/text-to-speech/{voice}[/stream|/with-timestamps]`, `xi-api-key`, 401 quota.
fn elevenlabs(mock: Mock) -> Router {
    let m = mock.clone();
    let with_ts = move |Path(voice): Path<String>,
                        Query(q): Query<HashMap<String, String>>,
                        headers: HeaderMap,
                        body: Bytes| {
        let mock = m.clone();
        async move {
            mock.record(
                &format!("/v1/text-to-speech/{voice}/with-timestamps"),
                headers.clone(),
                q.clone(),
                body.clone(),
            );
            if headers.get("xi-api-key").map(|v| v.to_str().unwrap()) != Some("xi-key") {
                return json_error(
                    401,
                    json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}),
                );
            }
            match mock.mode().as_str() {
                "quota" => {
                    return json_error(
                        401,
                        json!({"detail": {"status": "quota_exceeded", "message": "This request exceeds your quota of 10000. You have 0 credits remaining, while 91 credits are required for this request."}}),
                    )
                }
                "422" => {
                    return json_error(
                        422,
                        json!({"detail": [{"loc": ["body", "text"], "msg": "field required", "type": "value_error.missing"}]}),
                    )
                }
                _ => {}
            }
            let Some(fmt) = q.get("output_format") else {
                return json_error(
                    400,
                    json!({"detail": {"status": "invalid_output_format", "message": "missing"}}),
                );
            };
            let text = serde_json::from_slice::<Value>(&body).unwrap()["text"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let audio = if fmt.starts_with("pcm_") {
                vec![0x10u8; 4800]
            } else {
                FAKE_MP3.to_vec()
            };
            use base64::Engine;
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let starts: Vec<f64> = (0..chars.len()).map(|i| i as f64 * 0.05).collect();
            let ends: Vec<f64> = (0..chars.len()).map(|i| (i + 1) as f64 * 0.05).collect();
            Json(json!({
                "audio_base64": base64::engine::general_purpose::STANDARD.encode(audio),
                "alignment": {"characters": chars, "character_start_times_seconds": starts, "character_end_times_seconds": ends},
                "normalized_alignment": null,
            }))
            .into_response()
        }
    };
    let plain = |headers: HeaderMap| async move {
        if headers.get("xi-api-key").is_none() {
            return json_error(
                401,
                json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}),
            );
        }
        ([(header::CONTENT_TYPE, "audio/mpeg")], FAKE_MP3).into_response()
    };
    let subscription = |headers: HeaderMap| async move {
        if headers.get("xi-api-key").map(|v| v.to_str().unwrap()) != Some("xi-key") {
            return json_error(
                401,
                json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}),
            );
        }
        Json(json!({"tier": "free", "character_count": 9000, "character_limit": 10000}))
            .into_response()
    };
    Router::new()
        .route("/v1/text-to-speech/{voice}/with-timestamps", post(with_ts))
        .route("/v1/text-to-speech/{voice}", post(plain))
        .route("/v1/text-to-speech/{voice}/stream", post(plain))
        .route("/v1/user/subscription", route_get(subscription))
}

/// daswer123/xtts-api-server: `POST /tts_to_audio/` JSON; the path without the slash redirects.
fn xtts_api(mock: Mock) -> Router {
    let tts = move |headers: HeaderMap, body: Bytes| {
        let mock = mock.clone();
        async move {
            mock.record("/tts_to_audio/", headers, HashMap::new(), body.clone());
            let req: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => return json_error(422, json!({"detail": [{"msg": "invalid json"}]})),
            };
            if mock.mode() == "hang" {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if !["en", "de", "ja"].contains(&req["language"].as_str().unwrap_or("")) {
                return json_error(
                    400,
                    json!({"detail": "Language code sent is either unsupported or misspelled."}),
                );
            }
            match mock.mode().as_str() {
                "500" => json_error(500, json!({"detail": "Error: CUDA out of memory"})),
                "endless" => endless_audio("audio/wav"),
                "stream" => {
                    ([(header::CONTENT_TYPE, "audio/wav")], wav_bytes(1000, true)).into_response()
                }
                _ => ([(header::CONTENT_TYPE, "audio/wav")], wav_bytes(700, false)).into_response(),
            }
        }
    };
    Router::new()
        .route("/tts_to_audio/", post(tts))
        .route(
            "/tts_to_audio",
            post(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/tts_to_audio/")],
                )
            }),
        )
        .route(
            "/speakers_list",
            route_get(|| async { Json(json!(["female", "male"])) }),
        )
}

/// The Coqui demo server: `/api/tts` reads headers or query parameters; a JSON body is ignored.
fn coqui(mock: Mock) -> Router {
    let tts = move |Query(q): Query<HashMap<String, String>>, headers: HeaderMap, body: Bytes| {
        let mock = mock.clone();
        async move {
            mock.record("/api/tts", headers.clone(), q.clone(), body);
            let text = headers
                .get("text")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| q.get("text").cloned())
                .unwrap_or_default();
            if text.is_empty() {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<title>500 Internal Server Error</title>",
                )
                    .into_response();
            }
            ([(header::CONTENT_TYPE, "audio/wav")], wav_bytes(400, false)).into_response()
        }
    };
    Router::new()
        .route("/api/tts", route_get(tts.clone()).post(tts))
        .route("/", route_get(|| async { "<html>TTS</html>" }))
}

/// A harness whose settings are `patch` merged over the defaults.
async fn with_config(patch: Value) -> Harness {
    let h = harness().await;
    h.state
        .config
        .update(patch)
        .await
        .expect("test settings are valid");
    h
}

async fn tts(h: &Harness, body: Value) -> Reply {
    send(&h.app, post_json("/api/tts", &body.to_string())).await
}

fn only(provider: &str, settings: Value) -> Value {
    json!({"tts": {"provider": provider, "fallback_chain": [], "providers": {provider: settings}}})
}

// ------------------------------------------------------------------ Fish Audio

#[tokio::test]
async fn fish_gets_key_model_and_json_and_its_mp3_is_served() {
    let mock = Mock::default();
    let url = serve(fish(mock.clone())).await;
    let h = with_config(only(
        "fish_audio",
        json!({"endpoint": format!("{url}/v1"), "api_key": "fish-key", "voice_id": "ref-123"}),
    ))
    .await;

    let r = tts(&h, json!({"text": "Hello there."})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["meta"]["provider"], "fish_audio");
    assert_eq!(j["meta"]["content_type"], "audio/mpeg");
    assert_eq!(j["meta"]["cached"], false);
    let seen = mock.last();
    assert_eq!(seen.headers["model"], "s1");
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body["text"], "Hello there.");
    assert_eq!(body["reference_id"], "ref-123");
    assert_eq!(body["format"], "mp3");

    let url = j["url"].as_str().unwrap();
    assert!(
        url.starts_with("/files/audio/") && url.ends_with(".mp3"),
        "{url}"
    );
    let file = send(&h.app, get(url)).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.header(header::CONTENT_TYPE), "audio/mpeg");
    assert!(file.header(header::CACHE_CONTROL).contains("immutable"));
    assert_eq!(file.body, FAKE_MP3);
}

#[tokio::test]
async fn fish_failures_are_classified_and_never_show_the_key() {
    let mock = Mock::default();
    let url = serve(fish(mock.clone())).await;
    for (mode, key, code) in [
        ("ok", "wrong-key", "auth"),
        ("402", "fish-key", "quota"),
        ("429", "fish-key", "quota"),
        ("422", "fish-key", "bad_request"),
        ("502", "fish-key", "server"),
    ] {
        mock.set(mode);
        let h = with_config(only(
            "fish_audio",
            json!({"endpoint": format!("{url}/v1"), "api_key": key}),
        ))
        .await;
        let r = tts(&h, json!({"text": "Hi"})).await;
        assert_eq!(r.status, 502, "{mode}");
        let j = r.json();
        assert_eq!(j["providers"][0]["code"], code, "{mode}: {j}");
        assert_eq!(j["code"], "tts_failed");
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("fish-key") && !text.contains("wrong-key"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn fish_without_a_key_is_misconfigured_and_asks_nothing() {
    let mock = Mock::default();
    let url = serve(fish(mock.clone())).await;
    let h = with_config(only("fish_audio", json!({"endpoint": format!("{url}/v1")}))).await;
    let r = tts(&h, json!({"text": "Hi"})).await;
    assert_eq!(r.json()["providers"][0]["code"], "misconfigured");
    assert_eq!(mock.calls(), 0);
}

// ------------------------------------------------------------------ ElevenLabs

#[tokio::test]
async fn elevenlabs_asks_for_the_format_and_returns_timings() {
    let mock = Mock::default();
    let url = serve(elevenlabs(mock.clone())).await;
    let h = with_config(only(
        "elevenlabs",
        json!({"endpoint": format!("{url}/v1"), "api_key": "xi-key"}),
    ))
    .await;

    let j = tts(&h, json!({"text": "Hi you"})).await.json();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["meta"]["content_type"], "audio/mpeg");
    assert_eq!(j["meta"]["timings"]["chars"][0], "H");
    assert_eq!(j["meta"]["timings"]["end_ms"][5], 300);
    assert_eq!(j["meta"]["duration_ms"], 300);
    let seen = mock.last();
    assert_eq!(seen.query["output_format"], "mp3_44100_128");
    assert!(
        seen.path.contains("/21m00Tcm4TlvDq8ikWAM/"),
        "{}",
        seen.path
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&seen.body).unwrap()["model_id"],
        "eleven_multilingual_v2"
    );

    // Raw PCM comes back wrapped in a WAV header.
    let j = tts(&h, json!({"text": "Hi you", "format": "wav"}))
        .await
        .json();
    assert_eq!(mock.last().query["output_format"], "pcm_24000");
    let file = send(&h.app, get(j["url"].as_str().unwrap())).await;
    let info = wav::parse(&file.body).expect("a WAV file");
    assert_eq!(info.sample_rate, 24_000);
    assert_eq!(info.data_len, 4800);
    assert_eq!(j["meta"]["duration_ms"], 100);
}

#[tokio::test]
async fn elevenlabs_401_is_quota_or_auth_by_its_body() {
    let mock = Mock::default();
    let url = serve(elevenlabs(mock.clone())).await;
    mock.set("quota");
    let h = with_config(only(
        "elevenlabs",
        json!({"endpoint": format!("{url}/v1"), "api_key": "xi-key"}),
    ))
    .await;
    let j = tts(&h, json!({"text": "Hi"})).await.json();
    assert_eq!(j["providers"][0]["code"], "quota", "{j}");
    assert!(j["error"].as_str().unwrap().contains("exceeds your quota"));

    mock.set("ok");
    let h = with_config(only(
        "elevenlabs",
        json!({"endpoint": format!("{url}/v1"), "api_key": "bad"}),
    ))
    .await;
    assert_eq!(
        tts(&h, json!({"text": "Hi"})).await.json()["providers"][0]["code"],
        "auth"
    );

    mock.set("422");
    let h = with_config(only(
        "elevenlabs",
        json!({"endpoint": format!("{url}/v1"), "api_key": "xi-key"}),
    ))
    .await;
    assert_eq!(
        tts(&h, json!({"text": "Hi"})).await.json()["providers"][0]["code"],
        "bad_request"
    );
}

// ------------------------------------------------------------------ keys stay with their origin

/// A server that records every request and answers 200: where a redirect must not lead.
fn recorder(mock: Mock) -> Router {
    Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let mock = mock.clone();
            async move {
                mock.record(uri.path(), headers, HashMap::new(), body);
                "ok"
            }
        },
    )
}

/// A server that redirects every request, path and query kept, to `to`.
fn redirector(to: String) -> Router {
    Router::new().fallback(move |uri: axum::http::Uri| {
        let to = to.clone();
        async move {
            let target = format!(
                "{to}{}",
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            );
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)])
        }
    })
}

#[tokio::test]
async fn a_redirect_to_another_origin_never_carries_the_key() {
    let elsewhere = Mock::default();
    let elsewhere_url = serve(recorder(elsewhere.clone())).await;
    let url = serve(redirector(elsewhere_url)).await;
    let h = with_config(
        json!({"tts": {"provider": "elevenlabs", "fallback_chain": [], "providers": {
        "elevenlabs": {"endpoint": format!("{url}/v1"), "api_key": "xi-key"},
        "fish_audio": {"endpoint": format!("{url}/v1"), "api_key": "fish-key"}}}}),
    )
    .await;
    let r = tts(&h, json!({"text": "Hi"})).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["providers"][0]["code"], "misconfigured", "{j}");
    assert!(j["error"].as_str().unwrap().contains("redirects"), "{j}");
    let r = tts(&h, json!({"text": "Hi", "provider": "fish_audio"})).await;
    assert_eq!(r.status, 502);
    // Nor does the health probe (the subscription).
    send(&h.app, get("/api/healthcheck")).await;
    let seen = elsewhere.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|s| s.headers.get("xi-api-key").is_none()
            && s.headers.get(header::AUTHORIZATION).is_none()),
        "the key reached another server: {seen:?}"
    );
    assert_eq!(
        elsewhere.calls(),
        0,
        "a redirect to another origin was followed"
    );
}

/// A server that answers every request with HTTP 500 and an error body that never ends.
async fn endless_error() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 500 Oops\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = "overloaded ".repeat(372);
                let frame = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                while sock.write_all(frame.as_bytes()).await.is_ok() {}
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_endless_error_body_is_read_to_16_kb_only() {
    let url = endless_error().await;
    let h = with_config(only(
        "fish_audio",
        json!({"endpoint": format!("{url}/v1"), "api_key": "fish-key", "timeout_ms": 5000}),
    ))
    .await;
    let started = Instant::now();
    let r = tts(&h, json!({"text": "Hi"})).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the error body was read to its end (or the timeout)"
    );
    let j = r.json();
    assert_eq!(j["providers"][0]["code"], "server", "{j}");
    assert!(j["error"].as_str().unwrap().contains("overloaded"), "{j}");
}

#[tokio::test]
async fn audio_without_a_length_is_refused_past_the_cap() {
    let fish_mock = Mock::default();
    fish_mock.set("endless");
    let fish_url = serve(fish(fish_mock.clone())).await;
    let xtts_mock = Mock::default();
    xtts_mock.set("endless");
    let xtts_url = serve(xtts_api(xtts_mock.clone())).await;
    // Timeouts far beyond the time the cap takes, so that only the cap can end the read.
    let cases = [
        only(
            "fish_audio",
            json!({"endpoint": format!("{fish_url}/v1"), "api_key": "fish-key", "timeout_ms": 120000}),
        ),
        only(
            "xtts_server",
            json!({"endpoint": xtts_url, "flavor": "xtts_api_server", "language": "en", "timeout_ms": 120000}),
        ),
    ];
    for config in cases {
        let h = with_config(config).await;
        let r = tokio::time::timeout(Duration::from_secs(60), tts(&h, json!({"text": "Hi"})))
            .await
            .expect("the read stops at the cap");
        let j = r.json();
        assert_eq!(j["ok"], json!(false), "{j}");
        assert_eq!(j["providers"][0]["code"], "bad_response", "{j}");
        assert!(
            j["error"].as_str().unwrap().contains("more than 64 MB"),
            "{j}"
        );
    }
    assert_eq!((fish_mock.calls(), xtts_mock.calls()), (1, 1));
}

// ------------------------------------------------------------------ XTTS

#[tokio::test]
async fn xtts_api_server_gets_json_with_language_on_the_slashed_path() {
    let mock = Mock::default();
    let url = serve(xtts_api(mock.clone())).await;
    let settings =
        json!({"endpoint": url, "flavor": "xtts_api_server", "voice_id": "male", "language": "de"});
    let h = with_config(only("xtts_server", settings)).await;
    let j = tts(&h, json!({"text": "Guten Tag"})).await.json();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["meta"]["content_type"], "audio/wav");
    assert_eq!(j["meta"]["duration_ms"], 700);
    let body: Value = serde_json::from_slice(&mock.last().body).unwrap();
    assert_eq!(
        body,
        json!({"text": "Guten Tag", "speaker_wav": "male", "language": "de"})
    );
}

#[tokio::test]
async fn xtts_api_server_failures_are_classified() {
    let mock = Mock::default();
    let url = serve(xtts_api(mock.clone())).await;
    for (mode, code) in [("500", "server"), ("stream", "misconfigured")] {
        mock.set(mode);
        let h = with_config(only(
            "xtts_server",
            json!({"endpoint": url, "language": "en"}),
        ))
        .await;
        let j = tts(&h, json!({"text": "Hello"})).await.json();
        assert_eq!(j["providers"][0]["code"], code, "{mode}: {j}");
    }
    // The mock knows fewer languages than config validation does.
    mock.set("ok");
    let h = with_config(only(
        "xtts_server",
        json!({"endpoint": url, "language": "fr"}),
    ))
    .await;
    let j = tts(&h, json!({"text": "Bonjour"})).await.json();
    assert_eq!(j["providers"][0]["code"], "bad_request");
    assert!(j["error"]
        .as_str()
        .unwrap()
        .contains("unsupported or misspelled"));
}

#[tokio::test]
async fn coqui_server_gets_the_text_as_a_query_parameter() {
    let mock = Mock::default();
    let url = serve(coqui(mock.clone())).await;
    let settings =
        json!({"endpoint": url, "flavor": "coqui_server", "voice_id": "p225", "language": ""});
    let h = with_config(only("xtts_server", settings)).await;
    let j = tts(&h, json!({"text": "Grüße, friend"})).await.json();
    assert_eq!(j["ok"], true, "{j}");
    let seen = mock.last();
    assert_eq!(seen.query["text"], "Grüße, friend");
    assert_eq!(seen.query["speaker_id"], "p225");
    assert!(seen.body.is_empty());
}

// ------------------------------------------------------------------ fallback chain

#[tokio::test]
async fn a_failing_primary_falls_back_and_each_gets_text_cleaned_for_it() {
    let fish_mock = Mock::default();
    fish_mock.set("502");
    let coqui_mock = Mock::default();
    let fish_url = serve(fish(fish_mock.clone())).await;
    let coqui_url = serve(coqui(coqui_mock.clone())).await;
    let h = with_config(json!({"tts": {
        "provider": "fish_audio",
        "fallback_chain": ["xtts_server"],
        "providers": {
            "fish_audio": {"endpoint": format!("{fish_url}/v1"), "api_key": "fish-key"},
            "xtts_server": {"endpoint": coqui_url, "flavor": "coqui_server"},
        },
    }}))
    .await;
    let raw = "<think>the user wants a greeting</think>[happy] **Hello** there 😀";
    let j = tts(&h, json!({"text": raw})).await.json();
    assert_eq!(j["meta"]["provider"], "xtts_server", "{j}");
    assert_eq!(j["meta"]["fell_back_from"][0]["provider"], "fish_audio");
    assert_eq!(j["meta"]["fell_back_from"][0]["code"], "server");
    let fish_text =
        serde_json::from_slice::<Value>(&fish_mock.last().body).unwrap()["text"].clone();
    assert_eq!(fish_text, "(happy) Hello there");
    assert_eq!(coqui_mock.last().query["text"], "Hello there");
}

#[tokio::test]
async fn quota_takes_a_provider_out_for_the_next_sentences() {
    let el = Mock::default();
    el.set("quota");
    let coqui_mock = Mock::default();
    let el_url = serve(elevenlabs(el.clone())).await;
    let coqui_url = serve(coqui(coqui_mock.clone())).await;
    let h = with_config(json!({"tts": {
        "provider": "elevenlabs",
        "fallback_chain": ["xtts_server"],
        "providers": {
            "elevenlabs": {"endpoint": format!("{el_url}/v1"), "api_key": "xi-key"},
            "xtts_server": {"endpoint": coqui_url, "flavor": "coqui_server"},
        },
    }}))
    .await;
    let j = tts(&h, json!({"text": "First sentence."})).await.json();
    assert_eq!(j["meta"]["provider"], "xtts_server");
    assert_eq!(j["meta"]["fell_back_from"][0]["code"], "quota");
    assert_eq!(el.calls(), 1);

    let j = tts(&h, json!({"text": "Second sentence."})).await.json();
    assert_eq!(j["meta"]["provider"], "xtts_server");
    assert_eq!(el.calls(), 1, "the provider out of quota was asked again");
    let why = j["meta"]["fell_back_from"][0]["error"].as_str().unwrap();
    assert!(why.starts_with("skipped for another"), "{why}");

    // A new key ends the cool-down at once.
    el.set("ok");
    h.state
        .config
        .update(json!({"tts": {"providers": {"elevenlabs": {"api_key": "xi-key-2"}}}}))
        .await
        .unwrap();
    let _ = tts(&h, json!({"text": "Third sentence."})).await;
    assert_eq!(el.calls(), 2);
}

#[tokio::test]
async fn when_every_provider_fails_the_answer_lists_each_error() {
    let fish_mock = Mock::default();
    fish_mock.set("402");
    let fish_url = serve(fish(fish_mock)).await;
    let h = with_config(json!({"tts": {
        "provider": "fish_audio",
        "fallback_chain": ["xtts_server", "piper_local"],
        "providers": {
            "fish_audio": {"endpoint": format!("{fish_url}/v1"), "api_key": "fish-key"},
            "xtts_server": {"endpoint": "http://127.0.0.1:9"},
            "piper_local": {"binary": "/nonexistent/piper"},
        },
    }}))
    .await;
    let r = tts(&h, json!({"text": "Hello"})).await;
    assert_eq!(r.status, 502);
    let j = r.json();
    assert_eq!(j["ok"], false);
    let codes: Vec<_> = j["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["provider"].as_str().unwrap().to_string(),
                p["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("fish_audio".to_string(), "quota".to_string()),
            ("xtts_server".into(), "unreachable".into()),
            ("piper_local".into(), "missing_binary".into())
        ]
    );
    let error = j["error"].as_str().unwrap();
    for name in ["fish_audio", "xtts_server", "piper_local"] {
        assert!(error.contains(name), "{error}");
    }
}

#[tokio::test]
async fn when_every_provider_times_out_the_answer_is_504() {
    let mock = Mock::default();
    mock.set("hang");
    let url = serve(xtts_api(mock)).await;
    let h = with_config(only(
        "xtts_server",
        json!({"endpoint": url, "language": "en", "timeout_ms": 200}),
    ))
    .await;
    let started = Instant::now();
    let r = tts(&h, json!({"text": "Hello"})).await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["providers"][0]["code"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn bad_requests_are_400() {
    let h = harness().await;
    for body in [
        r#"{"text": ""}"#,
        r#"{"text": "   "}"#,
        r#"{}"#,
        r#"{"text": "hi""#,
        r#"{"text": "hi", "provider": "nope"}"#,
        r#"{"text": "hi", "format": "flac"}"#,
        r#"{"text": "🎉🎉 <think>only thoughts</think>"}"#,
    ] {
        let r = send(&h.app, post_json("/api/tts", body)).await;
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["ok"], false);
    }
}

/// A voice id that the provider it would reach cannot take is refused before anything runs. The
/// eSpeak program is a stand-in that writes down every call, and the audio folder stays empty.
#[tokio::test]
async fn a_voice_id_the_provider_cannot_take_is_400_and_runs_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("fixture.wav");
    std::fs::write(&fixture, wav_bytes(200, false)).unwrap();
    let calls = dir.path().join("calls");
    let program = dir.path().join("espeak-ng");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\ncat >/dev/null\ncat '{}'\n",
            calls.display(),
            fixture.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let h = with_config(only(
        "espeak",
        json!({"binary": program.display().to_string(), "timeout_ms": 2000}),
    ))
    .await;

    let long = "a".repeat(129);
    for (provider, voice) in [
        (Some("espeak"), "/dev/stdin"),
        (Some("espeak"), "--stdout"),
        (Some("espeak"), "-w/tmp/out.wav"),
        (Some("espeak"), "../../etc/passwd"),
        (Some("espeak"), long.as_str()),
        // No provider named: the configured one (eSpeak) gets the voice.
        (None, "/dev/stdin"),
        (Some("elevenlabs"), "../user/subscription"),
        (Some("elevenlabs"), "abc?x=1"),
        (Some("fish_audio"), "a/b"),
        (Some("xtts_server"), "../../secret.wav"),
        (Some("piper_local"), "0\n1"),
    ] {
        let mut body = json!({"voice_id": voice, "text": "hi"});
        if let Some(p) = provider {
            body["provider"] = p.into();
        }
        let r = tts(&h, body).await;
        assert_eq!(
            r.status,
            400,
            "{provider:?} {voice:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["code"], "invalid_voice_id", "{j}");
        assert_eq!(j["fields"][0]["path"], "voice_id", "{j}");
        let message = j["error"].as_str().unwrap();
        assert!(message.starts_with("voice_id must be"), "{message}");
        assert!(message.contains("128"), "{message}");
    }
    let r = tts(
        &h,
        json!({"provider": "espeak", "voice_id": "/dev/stdin", "text": "hi"}),
    )
    .await;
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("eSpeak NG voice name"),
        "{}",
        r.json()
    );
    assert!(!calls.exists(), "eSpeak was run");
    let audio: Vec<_> = std::fs::read_dir(&h.state.paths.audio)
        .unwrap()
        .flatten()
        .collect();
    assert!(audio.is_empty(), "something was synthesised: {audio:?}");

    // A voice name reaches the program, as its -v argument.
    let j = tts(
        &h,
        json!({"provider": "espeak", "voice_id": "en-us+f3", "text": "hi"}),
    )
    .await
    .json();
    assert_eq!(j["meta"]["provider"], "espeak", "{j}");
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "-v en-us+f3 --stdout\n"
    );
}

// ------------------------------------------------------------------ cache

#[tokio::test]
async fn a_repeated_request_is_a_cache_hit_that_asks_no_provider() {
    let mock = Mock::default();
    let url = serve(fish(mock.clone())).await;
    let h = with_config(only(
        "fish_audio",
        json!({"endpoint": format!("{url}/v1"), "api_key": "fish-key"}),
    ))
    .await;
    let first = tts(&h, json!({"text": "Same words."})).await.json();
    let second = tts(&h, json!({"text": "Same words."})).await.json();
    assert_eq!(mock.calls(), 1);
    assert_eq!(first["url"], second["url"]);
    assert_eq!(second["meta"]["cached"], true);
    assert_eq!(second["meta"]["provider"], "fish_audio");
    assert_eq!(second["meta"]["content_type"], "audio/mpeg");
    // Markup that cleans away does not change the file either.
    let third = tts(&h, json!({"text": "**Same** words."})).await.json();
    assert_eq!(third["url"], first["url"]);
    assert_eq!(mock.calls(), 1);
    // Another format is another file.
    let wav = tts(&h, json!({"text": "Same words.", "format": "wav"}))
        .await
        .json();
    assert_ne!(wav["url"], first["url"]);
    assert!(wav["url"].as_str().unwrap().ends_with(".wav"));
    assert_eq!(mock.calls(), 2);
}

#[tokio::test]
async fn a_repeated_request_on_s3_is_a_cache_hit_served_from_the_bucket() {
    let mock = Mock::default();
    let url = serve(fish(mock.clone())).await;
    let storage = common::moto::moto().bucket("cache");
    let dir = tempfile::tempdir().unwrap();
    let h = harness_on_storage(&dir.path().join("data"), Some(&storage), |s| s).await;
    h.state
        .config
        .update(only(
            "fish_audio",
            json!({"endpoint": format!("{url}/v1"), "api_key": "fish-key"}),
        ))
        .await
        .unwrap();
    let first = tts(&h, json!({"text": "Same words."})).await.json();
    let second = tts(&h, json!({"text": "Same words."})).await.json();
    assert_eq!(mock.calls(), 1, "{second}");
    assert_eq!(first["url"], second["url"]);
    assert_eq!(second["meta"]["cached"], true);
    assert_eq!(second["meta"]["content_type"], "audio/mpeg");
    let file = first["url"].as_str().unwrap();
    let r = send(&h.app, get(file)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.is_empty());
    assert_eq!(r.header(header::CONTENT_TYPE), "audio/mpeg");
    // The audio is in the bucket, not in the data folder.
    let name = file.rsplit('/').next().unwrap();
    assert!(h
        .state
        .blobs
        .head(&format!("audio/{name}"))
        .await
        .unwrap()
        .is_some());
    assert_eq!(std::fs::read_dir(&h.state.paths.audio).unwrap().count(), 0);
}

#[tokio::test]
async fn concurrent_identical_requests_synthesise_once() {
    let mock = Mock::default();
    mock.set("slow");
    let url = serve(fish(mock.clone())).await;
    let h = with_config(only(
        "fish_audio",
        json!({"endpoint": format!("{url}/v1"), "api_key": "fish-key"}),
    ))
    .await;
    let calls = (0..6).map(|_| tts(&h, json!({"text": "All at once."})));
    let replies = futures::future::join_all(calls).await;
    assert_eq!(mock.calls(), 1);
    let urls: Vec<_> = replies.iter().map(|r| r.json()["url"].clone()).collect();
    assert!(
        urls.iter().all(|u| *u == urls[0] && u.is_string()),
        "{urls:?}"
    );
    assert_eq!(h.state.tts.synthesis_count(), 1);
}

#[tokio::test]
async fn a_caller_that_gives_up_leaves_no_temp_file_and_no_stuck_entry() {
    let mock = Mock::default();
    mock.set("slow");
    let url = serve(fish(mock.clone())).await;
    let h = with_config(only(
        "fish_audio",
        json!({"endpoint": format!("{url}/v1"), "api_key": "fish-key"}),
    ))
    .await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        h.state.tts.speak("Dropped halfway.", Default::default()),
    )
    .await;
    assert!(gave_up.is_err());
    // The shared synthesis finishes on its own and lands in the cache (the audio file is written
    // after its metadata, so once it is there a lookup finds the entry).
    let audio = h.state.paths.audio.clone();
    common::eventually("the synthesis to land in the cache", || {
        let audio = audio.clone();
        async move {
            std::fs::read_dir(&audio).unwrap().flatten().any(|e| {
                e.file_type().is_ok_and(|t| t.is_file())
                    && !e.file_name().to_string_lossy().starts_with(".tmp-")
            })
        }
    })
    .await;
    let j = tts(&h, json!({"text": "Dropped halfway."})).await.json();
    assert_eq!(j["meta"]["cached"], true, "{j}");
    assert_eq!(mock.calls(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(&h.state.paths.audio)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test]
async fn the_cache_evicts_least_recently_used_files_over_its_cap() {
    use waifu_rt3d::tts::{Audio, OutputKind};
    let dir = tempfile::tempdir().unwrap();
    let blobs = waifu_rt3d::blobs::Blobs::folder(dir.path()).unwrap();
    let cache = Arc::new(AudioCache::new(blobs, ""));
    let make = |n: u8| async move {
        Ok(Audio {
            bytes: vec![n; 10_000].into(),
            kind: OutputKind::MP3,
            sample_rate: None,
            duration_ms: None,
            timings: None,
        })
    };
    let cap = 35_000;
    let mut names = Vec::new();
    for n in 0..3u8 {
        let (e, _) = cache
            .get_or_create(
                &format!("{n:064}"),
                OutputKind::MP3,
                "fish_audio",
                cap,
                make(n),
            )
            .await
            .unwrap();
        // The next file must be newer: eviction goes by modification time.
        let path = dir.path().join(&e.name);
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        names.push(path);
        common::eventually("the clock to pass the last write", || async move {
            std::time::SystemTime::now() > written
        })
        .await;
    }
    // Use the oldest, so the second is now the least recently used.
    assert!(cache
        .lookup(&format!("{:064}", 0), OutputKind::MP3)
        .await
        .is_some());
    // A hit marks its file as used from a task of its own.
    let modified = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    common::eventually("the hit to mark the oldest file as used", || async {
        modified(&names[0]) > modified(&names[2])
    })
    .await;
    let (e, _) = cache
        .get_or_create(
            &format!("{:064}", 3),
            OutputKind::MP3,
            "fish_audio",
            cap,
            make(3),
        )
        .await
        .unwrap();
    assert!(dir.path().join(&e.name).exists());
    assert!(names[0].exists(), "a recently used file was evicted");
    assert!(
        !names[1].exists(),
        "the least recently used file is still there"
    );
    let total: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert!(total <= cap, "{total}");
}

// ------------------------------------------------------------------ Piper, by its CLI contract

/// A stand-in for the Piper program: records its arguments and stdin, then behaves as `script` says.
fn stand_in(dir: &std::path::Path, behaviour: &str, with_config: bool) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let fixture = dir.join("fixture.wav");
    std::fs::write(&fixture, wav_bytes(300, false)).unwrap();
    let voice = dir.join("voice.onnx");
    std::fs::write(&voice, b"onnx").unwrap();
    if with_config {
        std::fs::write(dir.join("voice.onnx.json"), b"{}").unwrap();
    }
    let script = dir.join("piper");
    let body = format!(
        r#"#!/bin/sh
printf '%s\n' "$@" > "{d}/argv"
while [ $# -gt 0 ]; do case "$1" in -f) out="$2"; shift;; esac; shift; done
{behaviour}
"#,
        d = dir.display(),
    )
    .replace("FIXTURE", &fixture.display().to_string());
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    json!({"binary": script.display().to_string(), "voice_path": voice.display().to_string(), "timeout_ms": 1000})
}

#[tokio::test]
async fn piper_cli_gets_the_text_on_stdin_never_as_an_argument() {
    let dir = tempfile::tempdir().unwrap();
    let stdin_file = dir.path().join("stdin");
    let settings = stand_in(
        dir.path(),
        &format!("cat > '{}'; cp FIXTURE \"$out\"", stdin_file.display()),
        true,
    );
    let h = with_config(only("piper_local", settings)).await;
    let j = tts(&h, json!({"text": "-t Hello from stdin"})).await.json();
    assert_eq!(j["meta"]["provider"], "piper_local", "{j}");
    assert_eq!(j["meta"]["duration_ms"], 300);
    assert_eq!(
        std::fs::read_to_string(&stdin_file).unwrap(),
        "-t Hello from stdin\n"
    );
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert!(!argv.contains("Hello"), "{argv}");
    let args: Vec<&str> = argv.lines().collect();
    assert_eq!(args[0], "-m");
    assert!(args[1].ends_with("voice.onnx") && args[1].starts_with('/'));
    assert_eq!(args[2], "-f");
}

#[tokio::test]
async fn piper_cli_failures_are_classified() {
    for (behaviour, code, needle) in [
        (
            "cat >/dev/null; echo 'Unable to load voice: broken model' >&2; exit 3",
            "server",
            "broken model",
        ),
        (
            "cat >/dev/null; : > \"$out\"; exit 0",
            "bad_response",
            "without writing",
        ),
        ("sleep 30", "timeout", "1000 ms"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let h = with_config(only("piper_local", stand_in(dir.path(), behaviour, true))).await;
        let started = Instant::now();
        let j = tts(&h, json!({"text": "Hello"})).await.json();
        assert_eq!(j["providers"][0]["code"], code, "{behaviour}: {j}");
        assert!(j["error"].as_str().unwrap().contains(needle), "{j}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{behaviour} was not stopped in time"
        );
    }
}

/// The one-shot call's output file is in a folder only this user can enter, under a random name,
/// and the folder is gone once the audio is read.
#[tokio::test]
async fn piper_cli_writes_into_a_private_folder_that_is_removed_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let settings = stand_in(
        dir.path(),
        &format!(
            "cat >/dev/null; d=$(dirname \"$out\"); echo \"$d $(stat -c %a \"$d\")\" >> '{}'; cp FIXTURE \"$out\"",
            seen.display()
        ),
        true,
    );
    let h = with_config(only("piper_local", settings)).await;
    for text in ["First sentence.", "Second sentence."] {
        let j = tts(&h, json!({"text": text})).await.json();
        assert_eq!(j["meta"]["provider"], "piper_local", "{j}");
    }
    let seen = std::fs::read_to_string(&seen).unwrap();
    let folders: Vec<(&str, &str)> = seen.lines().map(|l| l.rsplit_once(' ').unwrap()).collect();
    assert_eq!(folders.len(), 2, "{seen}");
    for (folder, mode) in &folders {
        assert_eq!(*mode, "700", "{folder} is open to others");
        let folder = std::path::Path::new(folder);
        assert_ne!(
            folder,
            std::env::temp_dir(),
            "written straight into the temp folder"
        );
        assert!(
            folder.starts_with(std::env::temp_dir()),
            "{}",
            folder.display()
        );
        assert!(!folder.exists(), "{} was left behind", folder.display());
    }
    assert_ne!(folders[0].0, folders[1].0, "the folder name is reused");
}

#[tokio::test]
async fn piper_voice_without_its_json_is_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let h = with_config(only(
        "piper_local",
        stand_in(dir.path(), "cp FIXTURE \"$out\"", false),
    ))
    .await;
    let j = tts(&h, json!({"text": "Hello"})).await.json();
    assert_eq!(j["providers"][0]["code"], "missing_voice", "{j}");
    assert!(j["error"].as_str().unwrap().contains(".onnx.json"));
    assert!(!dir.path().join("argv").exists(), "Piper was run");
}

// ------------------------------------------------------------------ the real local voices

fn piper_installed() {
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tools/piper/venv/bin/piper");
    assert!(
        venv.is_file(),
        "Piper is not installed at {}: run `make setup` (make test does it first)",
        venv.display()
    );
}

#[tokio::test]
async fn real_piper_speaks_with_the_bundled_voice_from_a_warm_worker() {
    piper_installed();
    let h = with_config(json!({"tts": {"provider": "piper_local", "fallback_chain": []}})).await;
    let j = tts(
        &h,
        json!({"text": "Hello, I am your companion. Nice to meet you!"}),
    )
    .await
    .json();
    assert_eq!(j["meta"]["provider"], "piper_local", "{j}");
    assert_eq!(j["meta"]["sample_rate"], 22_050);
    assert!(j["meta"]["duration_ms"].as_u64().unwrap() > 1000, "{j}");
    let file = send(&h.app, get(j["url"].as_str().unwrap())).await;
    assert_eq!(file.header(header::CONTENT_TYPE), "audio/wav");
    assert!(!wav::is_silent(&file.body));

    let health = send(&h.app, get("/api/healthcheck")).await.json();
    let piper = &health["tts"][0];
    assert_eq!(piper["state"], "ok", "{piper}");
    assert!(
        piper["detail"].as_str().unwrap().contains("warm"),
        "{piper}"
    );

    // A second sentence goes to the same worker.
    let j = tts(&h, json!({"text": "And this is a second sentence."}))
        .await
        .json();
    assert_eq!(j["meta"]["provider"], "piper_local");
}

#[tokio::test]
async fn real_espeak_speaks_and_is_probed() {
    let h = with_config(json!({"tts": {"provider": "espeak", "fallback_chain": []}})).await;
    let j = tts(&h, json!({"text": "Last resort voice 😀"}))
        .await
        .json();
    assert_eq!(j["meta"]["provider"], "espeak", "{j}");
    let file = send(&h.app, get(j["url"].as_str().unwrap())).await;
    let info = wav::parse(&file.body).expect("espeak wrote a WAV");
    assert_eq!(info.data_offset + info.data_len, file.body.len());
    let health = send(&h.app, get("/api/healthcheck")).await.json();
    assert_eq!(health["tts"][0]["state"], "ok", "{health}");
}

#[tokio::test]
async fn health_probes_every_voice_in_parallel_without_paid_synthesis() {
    let el = Mock::default();
    let el_url = serve(elevenlabs(el.clone())).await;
    let fish_mock = Mock::default();
    let fish_url = serve(fish(fish_mock.clone())).await;
    let h = with_config(json!({"tts": {
        "provider": "elevenlabs",
        "fallback_chain": ["fish_audio", "xtts_server", "piper_local"],
        "providers": {
            "elevenlabs": {"endpoint": format!("{el_url}/v1"), "api_key": "xi-key"},
            "fish_audio": {"endpoint": format!("{fish_url}/v1"), "api_key": "wrong"},
            "xtts_server": {"endpoint": "http://127.0.0.1:9"},
            "piper_local": {"binary": "/nonexistent/piper"},
        },
    }}))
    .await;
    let started = Instant::now();
    let j = send(&h.app, get("/api/healthcheck")).await.json();
    assert!(started.elapsed() < Duration::from_secs(3));
    let states: Vec<(String, String)> = j["tts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["provider"].as_str().unwrap().into(),
                t["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("elevenlabs".to_string(), "ok".to_string()),
            ("fish_audio".into(), "auth".into()),
            ("xtts_server".into(), "unreachable".into()),
            ("piper_local".into(), "misconfigured".into()),
        ]
    );
    assert!(j["tts"][0]["detail"].as_str().unwrap().contains("1000"));
    assert_eq!(el.calls(), 0, "a probe paid for synthesis");
    assert_eq!(fish_mock.calls(), 0, "a probe paid for synthesis");
    assert!(!j.to_string().contains("xi-key"));
}
