//! The microphone of the Chat tab. Push-to-talk records while the button (or Space) is held,
//! with `MediaRecorder`; hands-free imports the voice-activity bundle (`public/vad/`, built from
//! `vad-bridge/`) the first time it is switched on, and each utterance it ends is a WAV. Either
//! way the recording goes to `POST /api/asr`, and what was heard lands in [`Mic::heard`], which
//! the composer shows and sends as a voice turn.
//!
//! Speaking interrupts the avatar as Stop does (barge-in). Hands-free pauses while the avatar
//! speaks unless `asr.barge_in` is on: its voice from the speakers would trigger the detector.
//!
//! What to do is decided in [`super::listening`]; this file does it with the browser's media
//! objects, which exist in the hydrate build only (on the server the methods do nothing).
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use super::LiveTurn;
use crate::shared::{config::InputMode, AppError};
use leptos::prelude::*;

/// Where the microphone is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MicState {
    /// Not recording, not listening.
    Off,
    /// Asking for the microphone, or loading the detector.
    Starting,
    /// Hands-free: waiting for speech.
    Listening,
    /// Hands-free: paused while the avatar speaks (half-duplex).
    Paused,
    /// Recording an utterance.
    Recording,
    /// The recording is with the recogniser.
    Transcribing,
}

impl MicState {
    /// The name in `data-state`, for the page's style and its tests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Starting => "starting",
            Self::Listening => "listening",
            Self::Paused => "paused",
            Self::Recording => "recording",
            Self::Transcribing => "transcribing",
        }
    }
}

/// What the recogniser heard, with when the speech ended and when the transcript arrived
/// (`performance.now()`, ms), for the turn's trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    pub text: String,
    pub speech_end_at: f64,
    pub asr_done_at: f64,
}

/// The microphone, shared by the composer's controls.
#[derive(Clone, Copy)]
pub struct Mic {
    /// The `input_mode` setting.
    pub mode: RwSignal<InputMode>,
    /// The `asr.barge_in` setting: hands-free keeps listening while the avatar speaks.
    pub barge_in: RwSignal<bool>,
    pub state: RwSignal<MicState>,
    /// The level meter's fill, 0..1.
    pub level: RwSignal<f32>,
    /// A problem or hint to show under the composer (`code` says which).
    pub notice: RwSignal<Option<AppError>>,
    /// The last transcript, until the composer sends it.
    pub heard: RwSignal<Option<Utterance>>,
    live: LiveTurn,
    /// The button or Space is held down.
    held: RwSignal<bool>,
    /// The recogniser was asked to warm up (once per page).
    warmed: RwSignal<bool>,
}

impl Mic {
    pub fn new(live: LiveTurn) -> Self {
        Self {
            mode: RwSignal::new(InputMode::Text),
            barge_in: RwSignal::new(false),
            state: RwSignal::new(MicState::Off),
            level: RwSignal::new(0.0),
            notice: RwSignal::new(None),
            heard: RwSignal::new(None),
            live,
            held: RwSignal::new(false),
            warmed: RwSignal::new(false),
        }
    }

    /// Push-to-talk pressed: the avatar stops, recording starts.
    pub fn press(self) {
        #[cfg(feature = "hydrate")]
        engine::press(self);
    }

    /// Push-to-talk released: the recording goes to the recogniser.
    pub fn release(self) {
        #[cfg(feature = "hydrate")]
        engine::release(self);
    }

    /// Starts hands-free listening (loading the detector the first time).
    pub fn listen(self) {
        #[cfg(feature = "hydrate")]
        engine::listen(self);
    }

    /// Ends hands-free listening and frees the microphone.
    pub fn stop_listening(self) {
        #[cfg(feature = "hydrate")]
        engine::stop_listening(self);
    }

    /// Pauses or resumes hands-free listening (half-duplex while the avatar speaks).
    pub fn hold_listening(self, paused: bool) {
        #[cfg(feature = "hydrate")]
        engine::hold_listening(self, paused);
        #[cfg(not(feature = "hydrate"))]
        let _ = paused;
    }

    /// Whether hands-free listening is on (running or paused).
    pub fn hands_free_on(self) -> bool {
        matches!(
            self.state.get(),
            MicState::Listening | MicState::Paused | MicState::Recording | MicState::Transcribing
        ) && self.mode.get() == InputMode::HandsFree
    }
}

#[cfg(feature = "hydrate")]
mod engine {
    //! The browser side: one recording and one hands-free listener per page (thread-local:
    //! browser objects are not `Send`).

    use super::*;
    use crate::app::chat::listening::{
        meter_fill, microphone_error, read_asr_answer, recording_type, Heard,
        HANDS_FREE_SILENCE_HINT, SILENCE_HINT,
    };
    use leptos::{leptos_dom::helpers::IntervalHandle, task::spawn_local};
    use std::{cell::RefCell, time::Duration};
    use wasm_bindgen::{prelude::*, JsCast};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        AnalyserNode, AudioContext, Blob, BlobEvent, MediaRecorder, MediaRecorderOptions,
        MediaStream, MediaStreamConstraints, MediaStreamTrack,
    };

    /// The voice-activity bundle, built by `make` from `vad-bridge/` (its assets sit beside it).
    const VAD_BUNDLE: &str = "/vad/vad-bridge.js";
    /// The silence the detector waits for before it ends an utterance (the bridge's
    /// `redemptionMs`): the speech ended this long before `speechEnd` fires.
    const VAD_REDEMPTION_MS: f64 = 700.0;
    /// How often the level meter follows the sound while recording.
    const METER_TICK: Duration = Duration::from_millis(50);
    /// The speech recogniser's warm-up route: loads its model while the person starts talking.
    const ASR_WARM_URL: &str = "/api/asr/warm";

    /// A push-to-talk recording in progress.
    struct Recording {
        stream: MediaStream,
        recorder: MediaRecorder,
        meter: Option<Meter>,
    }

    /// The level meter's input: an analyser on the microphone, read by a timer.
    struct Meter {
        ctx: AudioContext,
        ticker: IntervalHandle,
    }

    impl Meter {
        fn close(self) {
            self.ticker.clear();
            let _ = self.ctx.close();
        }
    }

    /// Hands-free: the bridge's listener and the callbacks it calls (kept alive with it).
    struct HandsFree {
        listener: JsValue,
        _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
    }

    thread_local! {
        static RECORDING: RefCell<Option<Recording>> = const { RefCell::new(None) };
        static HANDS_FREE: RefCell<Option<HandsFree>> = const { RefCell::new(None) };
    }

    fn now_ms() -> f64 {
        web_sys::window()
            .and_then(|w| w.performance())
            .map(|p| p.now())
            .unwrap_or_default()
    }

    /// Speaking interrupts the avatar, exactly as Stop does.
    fn interrupt(mic: Mic) {
        if mic.live.voice.speaking.get_untracked()
            || mic.live.phase.get_untracked() != crate::app::chat::Phase::Idle
        {
            mic.live.stop();
        }
    }

    /// Asks the server to load the recogniser, once per page, when the microphone is first used.
    fn warm_up(mic: Mic) {
        if mic.warmed.get_untracked() {
            return;
        }
        mic.warmed.set(true);
        spawn_local(async {
            let Some(window) = web_sys::window() else {
                return;
            };
            let init = web_sys::RequestInit::new();
            init.set_method("POST");
            if let Err(e) =
                JsFuture::from(window.fetch_with_str_and_init(ASR_WARM_URL, &init)).await
            {
                leptos::logging::warn!("the speech recogniser did not warm up: {e:?}");
            }
        });
    }

    /// The `name` and message of a rejected browser call.
    fn error_parts(e: &JsValue) -> (String, String) {
        let name = js_sys::Reflect::get(e, &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        let message = js_sys::Reflect::get(e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .or_else(|| e.as_string())
            .unwrap_or_default();
        (name, message)
    }

    fn mic_failure(e: &JsValue) -> AppError {
        let (name, message) = error_parts(e);
        microphone_error(&name, &message)
    }

    async fn open_microphone() -> Result<MediaStream, AppError> {
        let devices = web_sys::window()
            .ok_or_else(|| AppError::new("browser", "No window."))?
            .navigator()
            .media_devices()
            .map_err(|e| mic_failure(&e))?;
        let constraints = MediaStreamConstraints::new();
        constraints.set_audio(&JsValue::TRUE);
        let promise = devices
            .get_user_media_with_constraints(&constraints)
            .map_err(|e| mic_failure(&e))?;
        JsFuture::from(promise)
            .await
            .map_err(|e| mic_failure(&e))?
            .dyn_into()
            .map_err(|e| mic_failure(&e))
    }

    fn stop_tracks(stream: &MediaStream) {
        for track in stream.get_tracks().iter() {
            if let Ok(t) = track.dyn_into::<MediaStreamTrack>() {
                t.stop();
            }
        }
    }

    /// An analyser on `stream` whose loudness a timer writes into the meter.
    fn start_meter(mic: Mic, stream: &MediaStream) -> Result<Meter, JsValue> {
        let ctx = AudioContext::new()?;
        let source = ctx.create_media_stream_source(stream)?;
        let analyser: AnalyserNode = ctx.create_analyser()?;
        analyser.set_fft_size(1024);
        source.connect_with_audio_node(&analyser)?;
        // Pressing the button is the gesture that lets this context run.
        let _ = ctx.resume();
        let samples = RefCell::new(vec![0f32; analyser.fft_size() as usize]);
        let ticker = leptos::prelude::set_interval_with_handle(
            move || {
                let mut samples = samples.borrow_mut();
                analyser.get_float_time_domain_data(&mut samples);
                let power =
                    samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
                mic.level.set(meter_fill(power.sqrt()));
            },
            METER_TICK,
        )
        .map_err(|e| JsValue::from_str(&format!("{e:?}")))?;
        Ok(Meter { ctx, ticker })
    }

    pub fn press(mic: Mic) {
        if matches!(
            mic.state.get_untracked(),
            MicState::Starting | MicState::Recording | MicState::Transcribing
        ) {
            return;
        }
        mic.held.set(true);
        mic.notice.set(None);
        interrupt(mic);
        warm_up(mic);
        mic.state.set(MicState::Starting);
        spawn_local(async move {
            let stream = match open_microphone().await {
                Ok(s) => s,
                Err(e) => {
                    mic.notice.set(Some(e));
                    mic.state.set(MicState::Off);
                    return;
                }
            };
            if !mic.held.get_untracked() {
                // Let go before the microphone was ready: nothing was recorded.
                stop_tracks(&stream);
                mic.notice
                    .set(Some(AppError::new("asr_silence", SILENCE_HINT)));
                mic.state.set(MicState::Off);
                return;
            }
            match start_recording(mic, stream) {
                Ok(()) => mic.state.set(MicState::Recording),
                Err(e) => {
                    let (_, message) = error_parts(&e);
                    mic.notice.set(Some(AppError::new(
                        "mic_failed",
                        format!("This browser could not record ({message})."),
                    )));
                    mic.state.set(MicState::Off);
                }
            }
        });
    }

    fn start_recording(mic: Mic, stream: MediaStream) -> Result<(), JsValue> {
        let options = MediaRecorderOptions::new();
        if let Some(t) = recording_type(MediaRecorder::is_type_supported) {
            options.set_mime_type(t);
        }
        let recorder = match MediaRecorder::new_with_media_stream_and_media_recorder_options(
            &stream, &options,
        ) {
            Ok(r) => r,
            Err(e) => {
                stop_tracks(&stream);
                return Err(e);
            }
        };
        if let Err(e) = recorder.start() {
            stop_tracks(&stream);
            return Err(e);
        }
        let meter = match start_meter(mic, &stream) {
            Ok(m) => Some(m),
            Err(e) => {
                leptos::logging::warn!("no level meter: {e:?}");
                None
            }
        };
        RECORDING.with(|r| {
            *r.borrow_mut() = Some(Recording {
                stream,
                recorder,
                meter,
            })
        });
        Ok(())
    }

    pub fn release(mic: Mic) {
        mic.held.set(false);
        let Some(rec) = RECORDING.with(|r| r.borrow_mut().take()) else {
            return;
        };
        let speech_end_at = now_ms();
        mic.level.set(0.0);
        mic.state.set(MicState::Transcribing);
        spawn_local(async move {
            let blob = stop_recording(&rec).await;
            stop_tracks(&rec.stream);
            if let Some(m) = rec.meter {
                m.close();
            }
            let result = match blob {
                Ok(blob) if blob.size() > 0.0 => {
                    let kind = blob.type_();
                    transcribe(&blob, &kind).await
                }
                Ok(_) => Ok(Heard::Silence),
                Err(e) => Err(AppError::new(
                    "mic_failed",
                    format!("The recording could not be read ({}).", error_parts(&e).1),
                )),
            };
            deliver(mic, result, speech_end_at, SILENCE_HINT);
            mic.state.set(MicState::Off);
        });
    }

    /// Stops the recorder and answers the whole recording: with no time slice, `MediaRecorder`
    /// gives it in one `dataavailable` event, before `stop`.
    async fn stop_recording(rec: &Recording) -> Result<Blob, JsValue> {
        let recorder = rec.recorder.clone();
        let data = js_sys::Promise::new(&mut |resolve, _reject| {
            recorder.set_ondataavailable(Some(&resolve));
        });
        rec.recorder.stop()?;
        let event: BlobEvent = JsFuture::from(data).await?.dyn_into()?;
        rec.recorder.set_ondataavailable(None);
        event.data().ok_or_else(|| JsValue::from_str("no data"))
    }

    /// `POST /api/asr` with the recording as the raw body.
    async fn transcribe(body: &JsValue, content_type: &str) -> Result<Heard, AppError> {
        let failed = |e: JsValue| {
            AppError::new(
                "connection",
                format!(
                    "The recording could not be sent ({}). Check that the server is running.",
                    error_parts(&e).1
                ),
            )
        };
        let window = web_sys::window().ok_or_else(|| AppError::new("browser", "No window."))?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        let headers = web_sys::Headers::new().map_err(failed)?;
        headers.set("content-type", content_type).map_err(failed)?;
        init.set_headers(&headers);
        init.set_body(body);
        let response: web_sys::Response =
            JsFuture::from(window.fetch_with_str_and_init("/api/asr", &init))
                .await
                .and_then(|r| r.dyn_into())
                .map_err(failed)?;
        let text = match response.text() {
            Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
            Err(_) => None,
        };
        read_asr_answer(response.status(), text.as_deref().unwrap_or(""))
    }

    fn deliver(mic: Mic, result: Result<Heard, AppError>, speech_end_at: f64, silence: &str) {
        match result {
            Ok(Heard::Words(text)) => mic.heard.set(Some(Utterance {
                text,
                speech_end_at,
                asr_done_at: now_ms(),
            })),
            Ok(Heard::Silence) => mic.notice.set(Some(AppError::new("asr_silence", silence))),
            Err(e) => mic.notice.set(Some(e)),
        }
    }

    // --------------------------------------------------------------------------- hands-free

    #[wasm_bindgen]
    extern "C" {
        /// The bundle's module namespace.
        type VadModule;
        #[wasm_bindgen(method, js_name = startListening)]
        fn start_listening(this: &VadModule, events: &js_sys::Object) -> js_sys::Promise;
    }

    fn hands_free_running() -> bool {
        HANDS_FREE.with(|h| h.borrow().is_some())
    }

    /// Calls the listener's `pause`, `resume` or `destroy`.
    fn call_listener(listener: &JsValue, method: &str) {
        let f = js_sys::Reflect::get(listener, &method.into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        if let Some(f) = f {
            if let Err(e) = f.call0(listener) {
                leptos::logging::warn!("hands-free {method} failed: {e:?}");
            }
        }
    }

    pub fn listen(mic: Mic) {
        if hands_free_running() || mic.state.get_untracked() == MicState::Starting {
            return;
        }
        mic.notice.set(None);
        warm_up(mic);
        mic.state.set(MicState::Starting);
        spawn_local(async move {
            match start_hands_free(mic).await {
                Ok(hands_free) => {
                    if mic.mode.get_untracked() != InputMode::HandsFree {
                        // Switched off while the detector loaded.
                        call_listener(&hands_free.listener, "destroy");
                        mic.state.set(MicState::Off);
                        return;
                    }
                    HANDS_FREE.with(|h| *h.borrow_mut() = Some(hands_free));
                    mic.state.set(MicState::Listening);
                }
                Err(e) => {
                    mic.notice.set(Some(e));
                    mic.state.set(MicState::Off);
                }
            }
        });
    }

    async fn start_hands_free(mic: Mic) -> Result<HandsFree, AppError> {
        let import = web_sys::window()
            .and_then(|w| {
                js_sys::Reflect::get(&w, &JsValue::from_str(crate::viewer::MODULE_LOADER)).ok()
            })
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(|| AppError::new("vad_missing", "Reload the page to use hands-free."))?;
        let not_loaded = |e: JsValue| {
            AppError::new(
                "vad_missing",
                format!(
                    "Hands-free listening did not load ({}); build the app with `make build`.",
                    error_parts(&e).1
                ),
            )
        };
        let promise = import
            .call1(&JsValue::NULL, &JsValue::from_str(VAD_BUNDLE))
            .map_err(not_loaded)?;
        let module: VadModule = JsFuture::from(js_sys::Promise::from(promise))
            .await
            .map_err(not_loaded)?
            .unchecked_into();

        let speech_start = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            interrupt(mic);
            mic.notice.set(None);
            mic.state.set(MicState::Recording);
        });
        let misfire = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if mic.state.get_untracked() == MicState::Recording {
                mic.state.set(MicState::Listening);
            }
        });
        let level = Closure::<dyn FnMut(JsValue)>::new(move |rms: JsValue| {
            let rms = rms.as_f64().unwrap_or_default() as f32;
            mic.level.set(meter_fill(rms));
        });
        let speech_end = Closure::<dyn FnMut(JsValue)>::new(move |wav: JsValue| {
            let speech_end_at = now_ms() - VAD_REDEMPTION_MS;
            mic.state.set(MicState::Transcribing);
            spawn_local(async move {
                let result = transcribe(&wav, "audio/wav").await;
                deliver(mic, result, speech_end_at, HANDS_FREE_SILENCE_HINT);
                if mic.state.get_untracked() == MicState::Transcribing && hands_free_running() {
                    mic.state.set(MicState::Listening);
                }
            });
        });
        let events = js_sys::Object::new();
        for (name, f) in [
            ("speechStart", &speech_start),
            ("misfire", &misfire),
            ("level", &level),
            ("speechEnd", &speech_end),
        ] {
            js_sys::Reflect::set(&events, &name.into(), f.as_ref()).map_err(not_loaded)?;
        }
        let listener = JsFuture::from(module.start_listening(&events))
            .await
            .map_err(|e| mic_failure(&e))?;
        Ok(HandsFree {
            listener,
            _callbacks: vec![speech_start, misfire, level, speech_end],
        })
    }

    pub fn stop_listening(mic: Mic) {
        if let Some(h) = HANDS_FREE.with(|h| h.borrow_mut().take()) {
            call_listener(&h.listener, "destroy");
            // The callbacks go once the detector has let go of them.
            spawn_local(async move {
                drop(h);
            });
        }
        mic.level.set(0.0);
        if matches!(
            mic.state.get_untracked(),
            MicState::Listening | MicState::Paused | MicState::Recording
        ) {
            mic.state.set(MicState::Off);
        }
    }

    pub fn hold_listening(mic: Mic, paused: bool) {
        let done = HANDS_FREE.with(|h| {
            h.borrow().as_ref().map(|h| {
                call_listener(&h.listener, if paused { "pause" } else { "resume" });
            })
        });
        if done.is_none() {
            return;
        }
        match (paused, mic.state.get_untracked()) {
            (true, MicState::Listening | MicState::Recording) => {
                mic.level.set(0.0);
                mic.state.set(MicState::Paused);
            }
            (false, MicState::Paused) => mic.state.set(MicState::Listening),
            _ => {}
        }
    }
}
