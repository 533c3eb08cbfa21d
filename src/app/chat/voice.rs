//! The spoken reply in the browser. Sentences arrive as `audio` events, possibly out of order;
//! Web Audio plays them back to back in index order (each one scheduled to start exactly where
//! the previous ends). An analyser on the output drives the avatar's mouth, the reply's emotion
//! its face. A new message or Stop cuts everything at once.
//!
//! Browsers only allow sound after a user gesture: until the page had one, the voice is
//! `locked` and the Chat tab shows a button to enable it. Sending a message is such a gesture.
//!
//! What plays next, when the reply is done and how the face changes is decided by
//! [`Playlist`](super::playlist::Playlist) and [`expression_change`]; this file does it with
//! Web Audio and the viewer. Every browser object lives in the hydrate build only; on the server
//! the methods do nothing.

use super::playlist::expression_change;
use crate::{shared::tts::Timings, viewer::ViewerHandle};
use leptos::prelude::*;

/// How strongly, how fast, and for how long after the reply the face keeps its emotion.
const EXPRESSION_WEIGHT: f32 = 0.8;
const EXPRESSION_FADE_IN_MS: u32 = 400;
#[cfg(feature = "hydrate")]
const EXPRESSION_HOLD_MS: u64 = 2500;
#[cfg(feature = "hydrate")]
const EXPRESSION_FADE_OUT_MS: u32 = 1500;

/// The voice of the Chat tab, shared by the composer and the live turn.
#[derive(Clone, Copy)]
pub struct Voice {
    /// Replies are spoken (the `output_mode` setting).
    pub enabled: RwSignal<bool>,
    /// Sound is not allowed yet: one click on the page enables it.
    pub locked: RwSignal<bool>,
    /// A reply is being spoken (or its audio is on the way).
    pub speaking: RwSignal<bool>,
    /// The emotion the face shows now.
    emotion: RwSignal<Option<String>>,
    /// Bumped by every new turn and every cut: late work of an earlier turn is dropped.
    turn: RwSignal<u32>,
    viewer: ViewerHandle,
}

impl Voice {
    pub fn new(viewer: ViewerHandle) -> Self {
        Self {
            enabled: RwSignal::new(true),
            locked: RwSignal::new(false),
            speaking: RwSignal::new(false),
            emotion: RwSignal::new(None),
            turn: RwSignal::new(0),
            viewer,
        }
    }

    /// Creates or resumes the audio output. Call it from a user gesture (a click, a key).
    pub fn unlock(self) {
        #[cfg(feature = "hydrate")]
        engine::unlock(self);
    }

    /// A new turn starts, now: whatever was playing stops. Call it as the message is sent (the
    /// origin of the browser's `playback_started`).
    pub fn begin(self) {
        self.cut();
        #[cfg(feature = "hydrate")]
        engine::begin(self);
    }

    /// Sentence `index` of the reply, with the reply's emotion when known.
    pub fn sentence(self, index: u32, emotion: Option<&str>) {
        if let Some(e) = emotion {
            self.show_emotion(e);
        }
        #[cfg(feature = "hydrate")]
        engine::sentence(index);
        #[cfg(not(feature = "hydrate"))]
        let _ = index;
    }

    /// The voice of sentence `index` is ready at `url`, with the voice's own character timings
    /// when it gave them.
    pub fn audio(self, index: u32, url: String, timings: Option<Timings>) {
        if !self.enabled.get_untracked() {
            return;
        }
        #[cfg(feature = "hydrate")]
        engine::audio(self, index, url, timings);
        #[cfg(not(feature = "hydrate"))]
        let _ = (index, url, timings);
    }

    /// Sentence `index` has no voice: playback goes on with the next one.
    pub fn skip(self, index: u32) {
        #[cfg(feature = "hydrate")]
        engine::skip(self, index);
        #[cfg(not(feature = "hydrate"))]
        let _ = index;
    }

    /// The reply is complete and stored as `message_id`.
    pub fn done(self, message_id: i64, emotion: Option<&str>) {
        if let Some(e) = emotion {
            self.show_emotion(e);
        }
        #[cfg(feature = "hydrate")]
        engine::done(self, message_id);
        #[cfg(not(feature = "hydrate"))]
        let _ = message_id;
        if !self.speaking.get_untracked() {
            self.relax_later();
        }
    }

    /// Stops playback now and drops whatever is still on the way (barge-in).
    pub fn cut(self) {
        #[cfg(feature = "hydrate")]
        engine::cut(self);
        self.turn.update(|t| *t = t.wrapping_add(1));
        self.speaking.set(false);
    }

    /// Fades the face to `emotion` (see [`expression_change`]).
    fn show_emotion(self, emotion: &str) {
        let Some(change) = self
            .emotion
            .with_untracked(|e| expression_change(e.as_deref(), emotion))
        else {
            return;
        };
        if let Some(p) = &change.release {
            let _ = self.viewer.set_expression(p, 0.0, EXPRESSION_FADE_IN_MS);
        }
        if let Some(e) = &change.show {
            let _ = self
                .viewer
                .set_expression(e, EXPRESSION_WEIGHT, EXPRESSION_FADE_IN_MS);
        }
        self.emotion.set(change.show);
    }

    /// A moment after the reply (spoken or not), the face goes back to neutral, unless a new
    /// turn started meanwhile.
    fn relax_later(self) {
        #[cfg(feature = "hydrate")]
        {
            let turn = self.turn.get_untracked();
            leptos::prelude::set_timeout(
                move || {
                    if self.turn.get_untracked() != turn || self.speaking.get_untracked() {
                        return;
                    }
                    if let Some(name) = self.emotion.get_untracked() {
                        let _ = self
                            .viewer
                            .set_expression(&name, 0.0, EXPRESSION_FADE_OUT_MS);
                        self.emotion.set(None);
                    }
                },
                std::time::Duration::from_millis(EXPRESSION_HOLD_MS),
            );
        }
    }
}

#[cfg(feature = "hydrate")]
mod engine {
    //! The Web Audio side, one per page (thread-local: browser objects are not `Send`).

    use super::*;
    use crate::{
        app::chat::{playlist::Playlist, request::json_init},
        viewer::{
            lipsync::{from_timings, visemes, Smoother},
            Mouth,
        },
    };
    use leptos::leptos_dom::helpers::IntervalHandle;
    use std::{cell::RefCell, time::Duration};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        AnalyserNode, AudioBuffer, AudioBufferSourceNode, AudioContext, AudioContextState,
    };

    /// How often the mouth follows the sound (the viewer draws at 20–30 frames a second).
    const LIPSYNC_TICK: Duration = Duration::from_millis(33);

    struct Engine {
        ctx: AudioContext,
        analyser: AnalyserNode,
        bins: Vec<u8>,
        playlist: Playlist<AudioBuffer, AudioBufferSourceNode>,
        smoother: Smoother,
        ticker: Option<IntervalHandle>,
    }

    thread_local! {
        static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    }

    fn with<R>(f: impl FnOnce(&mut Engine) -> R) -> Option<R> {
        ENGINE.with(|e| e.borrow_mut().as_mut().map(f))
    }

    fn now_ms() -> f64 {
        web_sys::window()
            .and_then(|w| w.performance())
            .map(|p| p.now())
            .unwrap_or_default()
    }

    fn create() -> Result<Engine, JsValue> {
        let ctx = AudioContext::new()?;
        let analyser = ctx.create_analyser()?;
        analyser.set_fft_size(1024);
        analyser.set_smoothing_time_constant(0.5);
        analyser.connect_with_audio_node(&ctx.destination())?;
        let bins = vec![0; analyser.frequency_bin_count() as usize];
        Ok(Engine {
            ctx,
            analyser,
            bins,
            playlist: Playlist::default(),
            smoother: Smoother::default(),
            ticker: None,
        })
    }

    /// Makes sure the engine exists; reports whether sound is allowed.
    fn ensure(voice: Voice) -> bool {
        let exists = ENGINE.with(|e| e.borrow().is_some());
        if !exists {
            match create() {
                Ok(engine) => ENGINE.with(|e| *e.borrow_mut() = Some(engine)),
                Err(e) => {
                    leptos::logging::warn!("no audio output: {e:?}");
                    voice.locked.set(true);
                    return false;
                }
            }
        }
        let running = with(|e| e.ctx.state() == AudioContextState::Running).unwrap_or(false);
        voice.locked.set(!running);
        running
    }

    pub fn unlock(voice: Voice) {
        ensure(voice);
        let Some(resume) = with(|e| e.ctx.resume()) else {
            return;
        };
        let Ok(promise) = resume else { return };
        leptos::task::spawn_local(async move {
            let _ = JsFuture::from(promise).await;
            if ensure(voice) {
                pump(voice);
            }
        });
    }

    pub fn begin(voice: Voice) {
        let sent_at = now_ms();
        if !voice.enabled.get_untracked() {
            return;
        }
        ensure(voice);
        with(|e| e.playlist.begin(sent_at));
    }

    pub fn sentence(index: u32) {
        with(|e| e.playlist.sentence(index));
    }

    pub fn audio(voice: Voice, index: u32, url: String, timings: Option<Timings>) {
        let Some(turn) = with(|e| e.playlist.turn()) else {
            return;
        };
        voice.speaking.set(true);
        leptos::task::spawn_local(async move {
            let buffer = match fetch_and_decode(&url).await {
                Ok(b) => Some(b),
                Err(e) => {
                    leptos::logging::warn!("sentence {index} could not be played: {e:?}");
                    None
                }
            };
            let kept = with(|e| e.playlist.arrive(turn, index, buffer.map(|b| (b, timings))));
            if kept == Some(true) {
                pump(voice);
            }
        });
    }

    pub fn skip(voice: Voice, index: u32) {
        with(|e| e.playlist.skip(index));
        pump(voice);
    }

    pub fn done(voice: Voice, message_id: i64) {
        with(|e| e.playlist.done(message_id));
        report();
        pump(voice);
    }

    pub fn cut(voice: Voice) {
        with(|e| {
            for source in e.playlist.cut() {
                #[allow(deprecated)]
                let _ = source.stop();
                let _ = source.disconnect();
            }
            e.smoother = Smoother::default();
        });
        rest(voice);
    }

    /// Stops the lip sync and closes the mouth.
    fn rest(voice: Voice) {
        if let Some(Some(t)) = with(|e| e.ticker.take()) {
            t.clear();
        }
        let _ = voice.viewer.set_mouth(Mouth::default());
    }

    /// Schedules every sentence that can play now, in order.
    fn pump(voice: Voice) {
        let started = with(|e| {
            if e.ctx.state() != AudioContextState::Running {
                return false;
            }
            let mut started = false;
            while let Some((buffer, timings)) = e.playlist.next_ready() {
                match schedule(e, &buffer, timings) {
                    Ok(()) => started = true,
                    Err(err) => leptos::logging::warn!("playback failed: {err:?}"),
                }
            }
            started
        });
        match started {
            Some(true) => {
                voice.speaking.set(true);
                report();
                ensure_ticker(voice);
            }
            Some(false) if finished() => finish(voice),
            _ => {}
        }
    }

    fn schedule(
        e: &mut Engine,
        buffer: &AudioBuffer,
        timings: Option<Timings>,
    ) -> Result<(), JsValue> {
        let src = e.ctx.create_buffer_source()?;
        src.set_buffer(Some(buffer));
        src.connect_with_audio_node(&e.analyser)?;
        let now = e.ctx.current_time();
        let start = e.playlist.start_at(now);
        src.start_with_when(start)?;
        e.playlist
            .scheduled(src, start, buffer.duration(), timings, now, now_ms());
        Ok(())
    }

    /// The reply has finished speaking (see [`Playlist::finished`]).
    fn finished() -> bool {
        with(|e| e.playlist.finished(e.ctx.current_time())).unwrap_or(true)
    }

    fn finish(voice: Voice) {
        rest(voice);
        if voice.speaking.get_untracked() {
            voice.speaking.set(false);
            voice.relax_later();
        }
    }

    fn ensure_ticker(voice: Voice) {
        if with(|e| e.ticker.is_some()).unwrap_or(true) {
            return;
        }
        let last = std::cell::Cell::new(now_ms());
        let handle = leptos::prelude::set_interval_with_handle(
            move || {
                let now = now_ms();
                let dt = ((now - last.replace(now)) / 1000.0) as f32;
                let mouth = with(|e| {
                    // The voice's own timings when it gave them, else the sound itself.
                    let target = match e.playlist.timed_at(e.ctx.current_time()) {
                        Some((t, ms)) => from_timings(t, ms),
                        None => {
                            e.analyser.get_byte_frequency_data(&mut e.bins);
                            let bin_hz = e.ctx.sample_rate() / e.analyser.fft_size() as f32;
                            visemes(&e.bins, bin_hz)
                        }
                    };
                    e.smoother.step(target, dt)
                });
                if let Some(m) = mouth {
                    let _ = voice.viewer.set_mouth(m);
                }
                if finished() {
                    finish(voice);
                }
            },
            LIPSYNC_TICK,
        );
        match handle {
            Ok(h) => {
                with(|e| e.ticker = Some(h));
            }
            Err(e) => leptos::logging::warn!("no lip sync timer: {e:?}"),
        }
    }

    /// Tells the server when the first sound played, once the message id is known.
    fn report() {
        let Some(Some((id, ms))) = with(|e| e.playlist.report()) else {
            return;
        };
        leptos::task::spawn_local(async move {
            if let Err(e) = put_playback(id, ms).await {
                leptos::logging::warn!("playback time not recorded: {e:?}");
            }
        });
    }

    async fn put_playback(id: i64, ms: u64) -> Result<(), JsValue> {
        let body = serde_json::to_string(&crate::shared::chat::PlaybackReport {
            playback_started: ms,
        })
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
        let init = json_init("PUT", &body)?;
        let window = web_sys::window().ok_or("no window")?;
        JsFuture::from(
            window.fetch_with_str_and_init(&format!("/api/messages/{id}/timings"), &init),
        )
        .await?;
        Ok(())
    }

    async fn fetch_and_decode(url: &str) -> Result<AudioBuffer, JsValue> {
        let window = web_sys::window().ok_or("no window")?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
            .await?
            .dyn_into()?;
        if !response.ok() {
            return Err(JsValue::from_str(&format!(
                "{url}: HTTP {}",
                response.status()
            )));
        }
        let bytes: js_sys::ArrayBuffer =
            JsFuture::from(response.array_buffer()?).await?.dyn_into()?;
        let decode = with(|e| e.ctx.decode_audio_data(&bytes)).ok_or("no audio output")??;
        JsFuture::from(decode).await?.dyn_into()
    }
}
