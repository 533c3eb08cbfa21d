//! The turn in progress: sends a message to `/api/chat/stream`, shows the reply as its events
//! arrive, and stops it on request (closing the stream; the server keeps what arrived).
//!
//! Server functions answer once, so the stream is read with `fetch` and a stream reader. Model
//! output is only ever set as text, never as HTML.

use super::{listening::ms_between, request::json_init, voice::Voice};
use crate::shared::{
    chat::{ChatInput, ChatStreamEvent, InputKind, SseSplitter},
    AppError,
};
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Where the turn is.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    Idle,
    /// Sent, nothing back yet.
    Waiting,
    /// The built-in model is loading (percent).
    LoadingModel(u8),
    Streaming,
}

/// A message that was spoken: when its speech ended and when its transcript arrived
/// (`performance.now()`, ms). The chat request says how long before it each happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spoken {
    pub speech_end_at: f64,
    pub asr_done_at: f64,
}

/// The live turn, shared by the composer and the message list.
#[derive(Clone, Copy)]
pub struct LiveTurn {
    pub session: RwSignal<Option<i64>>,
    pub user_text: RwSignal<String>,
    /// The stored id of the message being answered (the stream's `accepted` event). The reply's
    /// row is written while it streams, so a list loaded meanwhile can hold both: the list leaves
    /// out this message and what follows it while the live turn shows them.
    pub user_message_id: RwSignal<Option<i64>>,
    pub reply: RwSignal<String>,
    pub phase: RwSignal<Phase>,
    pub error: RwSignal<Option<AppError>>,
    /// Bumped when a turn ends, so the conversation reloads what was stored.
    pub finished: RwSignal<u32>,
    /// The last turn was stopped: its partial reply stays on screen as it was (the server stores
    /// it as soon as it sees the stream closed, which can be a moment after the click).
    pub stopped: RwSignal<bool>,
    /// Speaks the reply and moves the avatar.
    pub voice: Voice,
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    abort: AbortSlot,
}

// The controller is a browser object: it lives in thread-local storage, which exists only in the
// browser build. On the server a page's reactive owner can be dropped on another thread, where a
// thread-bound value would panic.
#[cfg(feature = "hydrate")]
type AbortSlot = StoredValue<Option<web_sys::AbortController>, LocalStorage>;
#[cfg(not(feature = "hydrate"))]
type AbortSlot = ();

impl LiveTurn {
    pub fn new(voice: Voice) -> Self {
        Self {
            session: RwSignal::new(None),
            user_text: RwSignal::new(String::new()),
            user_message_id: RwSignal::new(None),
            reply: RwSignal::new(String::new()),
            phase: RwSignal::new(Phase::Idle),
            error: RwSignal::new(None),
            finished: RwSignal::new(0),
            stopped: RwSignal::new(false),
            voice,
            #[cfg(feature = "hydrate")]
            abort: StoredValue::new_local(None),
            #[cfg(not(feature = "hydrate"))]
            abort: (),
        }
    }

    pub fn busy(&self) -> bool {
        self.phase.get() != Phase::Idle
    }

    /// Sends `text` to `session` and streams the answer; `spoken` when it came from the
    /// microphone.
    pub fn send(self, session: i64, text: String, spoken: Option<Spoken>) {
        let Ok(controller) = web_sys::AbortController::new() else {
            self.error.set(Some(AppError::new(
                "browser",
                "This browser cannot stream replies (no AbortController).",
            )));
            return;
        };
        #[cfg(feature = "hydrate")]
        self.abort.set_value(Some(controller.clone()));
        self.session.set(Some(session));
        self.user_text.set(text.clone());
        self.user_message_id.set(None);
        self.reply.set(String::new());
        self.error.set(None);
        self.stopped.set(false);
        self.phase.set(Phase::Waiting);
        self.voice.begin();
        let speak = self.voice.enabled.get_untracked();
        spawn_local(async move {
            let result = stream_chat(session, &text, speak, spoken, &controller, |event| {
                self.apply(event)
            })
            .await;
            let stopped = controller.signal().aborted();
            if let Err(e) = result {
                // A stop aborts the fetch: that is not an error to show.
                if !stopped {
                    self.error.set(Some(e));
                }
            }
            self.end(stopped);
        });
    }

    /// Stops the reply and its voice: the server stores what arrived as a partial message.
    pub fn stop(self) {
        self.voice.cut();
        #[cfg(feature = "hydrate")]
        if let Some(controller) = self.abort.get_value() {
            controller.abort();
        }
    }

    fn apply(self, event: ChatStreamEvent) {
        match event {
            // The message is stored; the page shows it already.
            ChatStreamEvent::Accepted(a) => self.user_message_id.set(Some(a.message_id)),
            ChatStreamEvent::Status(s) => self
                .phase
                .set(Phase::LoadingModel((s.progress * 100.0).round() as u8)),
            ChatStreamEvent::Token(t) => {
                self.phase.set(Phase::Streaming);
                self.reply.update(|r| r.push_str(&t.text));
            }
            ChatStreamEvent::Error(e) => self.error.set(Some(AppError::new(&e.code, e.message))),
            ChatStreamEvent::Sentence(s) => self.voice.sentence(s.index, s.emotion.as_deref()),
            ChatStreamEvent::Audio(a) => self.voice.audio(a.index, a.url, a.timings),
            ChatStreamEvent::AudioError(a) => self.voice.skip(a.index),
            ChatStreamEvent::Done(d) => {
                // The stored reply: a reply cut by the token limit ends at its last sentence.
                self.reply.set(d.reply);
                self.voice.done(d.message_id, d.emotion.as_deref())
            }
        }
    }

    fn end(self, stopped: bool) {
        #[cfg(feature = "hydrate")]
        self.abort.set_value(None);
        self.phase.set(Phase::Idle);
        if stopped {
            self.stopped.set(true);
            return;
        }
        self.user_text.set(String::new());
        self.reply.set(String::new());
        self.finished.update(|n| *n += 1);
    }
}

/// The chat request's body; a spoken message says so, and how long before the request its speech
/// ended and its transcript arrived.
fn chat_body(
    text: &str,
    speak: bool,
    spoken: Option<Spoken>,
    now: f64,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&ChatInput {
        text: text.to_string(),
        speak,
        character_id: None,
        input: if spoken.is_some() {
            InputKind::Voice
        } else {
            InputKind::Text
        },
        speech_end_ms_ago: spoken.map(|s| ms_between(s.speech_end_at, now)),
        asr_done_ms_ago: spoken.map(|s| ms_between(s.asr_done_at, now)),
    })
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_default()
}

fn js_error(what: &str, e: JsValue) -> AppError {
    let detail = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_default();
    AppError::new(
        "connection",
        format!("{what}: the connection to the server failed ({detail}). Check that the server is running, then send again."),
    )
}

async fn stream_chat(
    session: i64,
    text: &str,
    speak: bool,
    spoken: Option<Spoken>,
    controller: &web_sys::AbortController,
    mut on_event: impl FnMut(ChatStreamEvent),
) -> Result<(), AppError> {
    let body = chat_body(text, speak, spoken, now_ms())
        .map_err(|e| AppError::new("internal", e.to_string()))?;
    let init = json_init("POST", &body).map_err(|e| js_error("Sending", e))?;
    init.set_signal(Some(&controller.signal()));
    let window = web_sys::window().ok_or_else(|| AppError::new("browser", "No window."))?;
    let url = format!("/api/chat/stream?session_id={session}");
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
        .await
        .and_then(|r| r.dyn_into())
        .map_err(|e| js_error("Sending", e))?;
    if !response.ok() {
        let text = match response.text() {
            Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
            Err(_) => None,
        };
        return Err(error_body(response.status(), text.as_deref().unwrap_or("")));
    }
    let reader: web_sys::ReadableStreamDefaultReader = response
        .body()
        .ok_or_else(|| AppError::new("connection", "The server sent no reply stream."))?
        .get_reader()
        .dyn_into()
        .map_err(|e| js_error("Reading", e.into()))?;
    let decoder = web_sys::TextDecoder::new().map_err(|e| js_error("Reading", e))?;
    let options = web_sys::TextDecodeOptions::new();
    options.set_stream(true);
    let mut sse = SseSplitter::default();
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| js_error("Reading", e))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(());
        }
        let bytes: js_sys::Uint8Array = js_sys::Reflect::get(&chunk, &"value".into())
            .and_then(|v| v.dyn_into())
            .map_err(|e| js_error("Reading", e))?;
        let text = decoder
            .decode_with_js_u8_array_and_options(&bytes, &options)
            .map_err(|e| js_error("Reading", e))?;
        for (name, data) in sse.push(&text) {
            if let Some(Ok(event)) = ChatStreamEvent::decode(&name, &data) {
                on_event(event);
            }
        }
    }
}

/// The REST error body `{"ok": false, "error", "code"}` as an [`AppError`].
fn error_body(status: u16, body: &str) -> AppError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
        code: String,
    }
    match serde_json::from_str::<Body>(body) {
        Ok(b) => AppError::new(&b.code, b.error),
        Err(_) => AppError::new(
            "http",
            format!("The server answered {status}; see its log."),
        ),
    }
}
