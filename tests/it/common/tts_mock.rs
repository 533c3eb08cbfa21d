//! Mock voice servers on loopback ports, in the vendors' wire formats (docs/providers.md): the XTTS
//! API server (`POST /tts_to_audio/` with a JSON body, WAV back) and Fish Audio (`POST /v1/tts`
//! with a Bearer key and a `model` header, audio back). Each answers after a set delay, can be
//! told to fail, and counts what it was asked, including how many requests ran at once.

use axum::{
    body::Bytes,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde_json::{json, Value};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// The key the Fish mock accepts.
pub const FISH_KEY: &str = "fish-key";

#[derive(Clone, Default)]
pub struct VoiceMock {
    pub base_url: String,
    /// Texts asked for, in arrival order.
    pub texts: Arc<Mutex<Vec<String>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicUsize>,
    fail: Arc<Mutex<Option<u16>>>,
}

impl VoiceMock {
    /// An XTTS API server (daswer123/xtts-api-server) answering after `delay_ms`.
    pub async fn xtts(delay_ms: u64) -> VoiceMock {
        let mut mock = VoiceMock::default();
        mock.delay_ms.store(delay_ms as usize, Ordering::SeqCst);
        let m = mock.clone();
        let router = Router::new().route(
            "/tts_to_audio/",
            post(move |body: Bytes| {
                let m = m.clone();
                async move { m.xtts_answer(body).await }
            }),
        );
        mock.base_url = serve(router).await;
        mock
    }

    /// A Fish Audio server answering after `delay_ms`.
    pub async fn fish(delay_ms: u64) -> VoiceMock {
        let mut mock = VoiceMock::default();
        mock.delay_ms.store(delay_ms as usize, Ordering::SeqCst);
        let m = mock.clone();
        let router = Router::new().route(
            "/v1/tts",
            post(move |headers: HeaderMap, body: Bytes| {
                let m = m.clone();
                async move { m.fish_answer(headers, body).await }
            }),
        );
        mock.base_url = serve(router).await;
        mock
    }

    /// Answer every request with this HTTP status (and the vendor's error body) from now on.
    pub fn fail_with(&self, status: u16) {
        *self.fail.lock().unwrap() = Some(status);
    }

    pub fn calls(&self) -> usize {
        self.texts.lock().unwrap().len()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Settings for `tts.providers.xtts_server`.
    pub fn xtts_settings(&self) -> Value {
        json!({"endpoint": self.base_url, "flavor": "xtts_api_server", "language": "en", "timeout_ms": 5000})
    }

    /// Settings for `tts.providers.fish_audio`.
    pub fn fish_settings(&self) -> Value {
        json!({"endpoint": format!("{}/v1", self.base_url), "api_key": FISH_KEY, "timeout_ms": 5000})
    }

    /// Counts the request as running until the returned guard drops, then waits the delay.
    async fn begin(&self, text: String) -> InFlight {
        self.texts.lock().unwrap().push(text);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let guard = InFlight(self.in_flight.clone());
        let delay = self.delay_ms.load(Ordering::SeqCst) as u64;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        guard
    }

    async fn xtts_answer(&self, body: Bytes) -> Response {
        let Ok(req) = serde_json::from_slice::<Value>(&body) else {
            return error(422, json!({"detail": [{"msg": "invalid json"}]}));
        };
        let text = req["text"].as_str().unwrap_or_default().to_string();
        let _running = self.begin(text.clone()).await;
        if let Some(status) = *self.fail.lock().unwrap() {
            return error(status, json!({"detail": "Error: CUDA out of memory"}));
        }
        if req["language"].as_str().unwrap_or_default().is_empty() {
            return error(
                400,
                json!({"detail": "Language code sent is either unsupported or misspelled."}),
            );
        }
        ([(header::CONTENT_TYPE, "audio/wav")], speech_wav(&text)).into_response()
    }

    async fn fish_answer(&self, headers: HeaderMap, body: Bytes) -> Response {
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = req["text"].as_str().unwrap_or_default().to_string();
        let _running = self.begin(text.clone()).await;
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {FISH_KEY}")) {
            return error(401, json!({"status": 401, "message": "Invalid api key"}));
        }
        if let Some(status) = *self.fail.lock().unwrap() {
            return error(
                status,
                json!({"status": status, "message": "Internal server error"}),
            );
        }
        if headers.get("model").is_none() || text.is_empty() {
            return error(400, json!({"status": 400, "message": "bad request"}));
        }
        if req["format"] == "wav" {
            ([(header::CONTENT_TYPE, "audio/wav")], speech_wav(&text)).into_response()
        } else {
            // An ID3 header and a frame sync: enough MP3 for the app, which does not decode it.
            let mut mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00".to_vec();
            mp3.extend(text.bytes());
            ([(header::CONTENT_TYPE, "audio/mpeg")], mp3).into_response()
        }
    }
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn error(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

/// A non-silent 16-bit mono WAV, 60 ms per character: about the length speech would have.
fn speech_wav(text: &str) -> Vec<u8> {
    let ms = 60 * text.chars().count().max(1) as u32;
    let samples = 22_050 * ms / 1000;
    let pcm: Vec<u8> = (0..samples)
        .flat_map(|i| (((i % 50) as i16 - 25) * 100).to_le_bytes())
        .collect();
    waifu_rt3d::tts::wav::wrap_pcm16_mono(&pcm, 22_050)
}

pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}
