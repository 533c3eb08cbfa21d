//! Voice input's decisions, free of browser objects so they are tested natively: what a
//! microphone failure tells the person, what `POST /api/asr` answered, which recording format
//! to ask `MediaRecorder` for, when Space means "talk", when hands-free listening pauses, and
//! how loud the level meter shows a sound. `mic.rs` does what this decides.
//!
//! Compiled into both builds; only the browser build records, so on the server it is used by its
//! tests alone.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use crate::shared::AppError;

/// The recording formats to ask `MediaRecorder` for, best first: Opus in WebM is what Chromium
/// and Firefox record, Opus in Ogg what some Firefox builds prefer, MP4 what Safari records.
pub const RECORDING_TYPES: [&str; 4] = [
    "audio/webm;codecs=opus",
    "audio/ogg;codecs=opus",
    "audio/webm",
    "audio/mp4",
];

/// The first format of [`RECORDING_TYPES`] the browser can record, or `None` to let it choose.
pub fn recording_type(supported: impl Fn(&str) -> bool) -> Option<&'static str> {
    RECORDING_TYPES.into_iter().find(|t| supported(t))
}

/// What went wrong with the microphone, in the person's words, from the `name` of the
/// `DOMException` that `getUserMedia` (or the detector starting it) failed with.
pub fn microphone_error(name: &str, detail: &str) -> AppError {
    match name {
        "NotAllowedError" | "PermissionDeniedError" | "SecurityError" => AppError::new(
            "mic_denied",
            "The microphone is blocked for this page. Allow it in the browser's address bar, then try again.",
        ),
        "NotFoundError" | "DevicesNotFoundError" | "OverconstrainedError" => AppError::new(
            "mic_missing",
            "No microphone was found. Connect one, then try again.",
        ),
        "NotReadableError" | "TrackStartError" | "AbortError" => AppError::new(
            "mic_busy",
            "The microphone could not be started: another program may be using it.",
        ),
        "TypeError" if detail.contains("mediaDevices") || detail.contains("getUserMedia") => {
            AppError::new(
                "mic_unavailable",
                "This page cannot use a microphone here: open it as http://localhost or over https.",
            )
        }
        _ => AppError::new(
            "mic_failed",
            if detail.is_empty() {
                "The microphone could not be started.".to_string()
            } else {
                format!("The microphone could not be started ({detail}).")
            },
        ),
    }
}

/// What the recogniser heard.
#[derive(Clone, Debug, PartialEq)]
pub enum Heard {
    /// Words: the transcript, trimmed.
    Words(String),
    /// Nothing but silence or noise: nothing is sent.
    Silence,
}

/// Reads `POST /api/asr`'s answer: `{"ok":true,"text",...}`, or the app's error body
/// `{"ok":false,"error","code"}`, whose message is the server's own.
pub fn read_asr_answer(status: u16, body: &str) -> Result<Heard, AppError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        text: String,
    }
    #[derive(serde::Deserialize)]
    struct Failure {
        error: String,
        code: String,
    }
    if (200..300).contains(&status) {
        return match serde_json::from_str::<Answer>(body) {
            Ok(a) if a.text.trim().is_empty() => Ok(Heard::Silence),
            Ok(a) => Ok(Heard::Words(a.text.trim().to_string())),
            Err(_) => Err(AppError::new(
                "asr_answer",
                "The speech recogniser's answer could not be read; see the server's log.",
            )),
        };
    }
    match serde_json::from_str::<Failure>(body) {
        Ok(f) => Err(AppError::new(f.code, f.error)),
        Err(_) => Err(AppError::new(
            "asr_failed",
            format!("Speech recognition failed (the server answered {status}); see its log."),
        )),
    }
}

/// The hint shown when a recording held no words.
pub const SILENCE_HINT: &str = "I heard nothing there. Speak while you hold the button (or Space).";

/// The hint shown when hands-free heard noise but no words.
pub const HANDS_FREE_SILENCE_HINT: &str = "I heard a sound but no words.";

/// Whether this key press starts push-to-talk: Space, not a repeat, not while an input method
/// composes, and only while the message box is empty (otherwise Space types a space).
pub fn space_talks(key: &str, repeat: bool, composing: bool, composer_empty: bool) -> bool {
    key == " " && !repeat && !composing && composer_empty
}

/// Whether hands-free listening runs now. Half-duplex by default: while the avatar speaks, the
/// detector would hear its voice through the speakers, so it pauses unless barge-in is on (for
/// people with headphones).
pub fn hands_free_listens(avatar_speaking: bool, barge_in: bool) -> bool {
    !avatar_speaking || barge_in
}

/// The level meter's fill, 0..1, for a sound of `rms` (0..1): decibels from -60 dBFS (empty) to
/// 0 dBFS (full), so quiet speech still moves it visibly.
pub fn meter_fill(rms: f32) -> f32 {
    if !rms.is_finite() || rms <= 0.0 {
        return 0.0;
    }
    let db = 20.0 * rms.log10();
    ((db + 60.0) / 60.0).clamp(0.0, 1.0)
}

/// Whole milliseconds from `then` to `now` (both `performance.now()`), for the chat request's
/// `speech_end_ms_ago` and `asr_done_ms_ago`: never negative, at most `u32::MAX`.
pub fn ms_between(then: f64, now: f64) -> u32 {
    let ms = (now - then).round();
    if ms.is_nan() || ms <= 0.0 {
        0
    } else if ms >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        ms as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_supported_recording_type_is_asked_for() {
        assert_eq!(
            recording_type(|t| t.starts_with("audio/webm")),
            Some("audio/webm;codecs=opus")
        );
        assert_eq!(recording_type(|t| t == "audio/mp4"), Some("audio/mp4"));
        assert_eq!(recording_type(|_| false), None);
    }

    #[test]
    fn microphone_failures_are_told_plainly() {
        assert_eq!(microphone_error("NotAllowedError", "").code, "mic_denied");
        assert_eq!(microphone_error("SecurityError", "").code, "mic_denied");
        assert_eq!(microphone_error("NotFoundError", "").code, "mic_missing");
        assert_eq!(microphone_error("NotReadableError", "").code, "mic_busy");
        assert_eq!(
            microphone_error("TypeError", "navigator.mediaDevices is undefined").code,
            "mic_unavailable"
        );
        let other = microphone_error("WeirdError", "it broke");
        assert_eq!(other.code, "mic_failed");
        assert!(other.message.contains("it broke"), "{}", other.message);
    }

    #[test]
    fn the_transcript_silence_and_server_errors_are_told_apart() {
        assert_eq!(
            read_asr_answer(
                200,
                r#"{"ok":true,"text":"  Hello there. ","language":"en"}"#
            ),
            Ok(Heard::Words("Hello there.".into()))
        );
        assert_eq!(
            read_asr_answer(200, r#"{"ok":true,"text":"   ","duration_ms":900}"#),
            Ok(Heard::Silence)
        );
        let down = read_asr_answer(
            502,
            r#"{"ok":false,"error":"The speech recogniser is not installed: run make setup.","code":"asr_unavailable"}"#,
        )
        .unwrap_err();
        assert_eq!(down.code, "asr_unavailable");
        assert_eq!(
            down.message,
            "The speech recogniser is not installed: run make setup."
        );
        let html = read_asr_answer(500, "<html>oops</html>").unwrap_err();
        assert_eq!(html.code, "asr_failed");
        assert!(html.message.contains("500"), "{}", html.message);
        assert_eq!(read_asr_answer(200, "nope").unwrap_err().code, "asr_answer");
    }

    #[test]
    fn space_talks_only_into_an_empty_box() {
        assert!(space_talks(" ", false, false, true));
        assert!(
            !space_talks(" ", false, false, false),
            "Space types a space"
        );
        assert!(!space_talks(" ", true, false, true), "a held key repeats");
        assert!(
            !space_talks(" ", false, true, true),
            "an input method composes"
        );
        assert!(!space_talks("Enter", false, false, true));
    }

    #[test]
    fn hands_free_pauses_while_the_avatar_speaks_unless_barge_in_is_on() {
        assert!(hands_free_listens(false, false));
        assert!(!hands_free_listens(true, false));
        assert!(hands_free_listens(true, true));
        assert!(hands_free_listens(false, true));
    }

    #[test]
    fn the_meter_spans_sixty_decibels() {
        assert_eq!(meter_fill(0.0), 0.0);
        assert_eq!(meter_fill(f32::NAN), 0.0);
        assert_eq!(meter_fill(0.0005), 0.0, "below -60 dBFS is empty");
        assert!((meter_fill(1.0) - 1.0).abs() < 1e-6);
        assert!((meter_fill(0.001) - 0.0).abs() < 1e-3);
        // -20 dBFS, ordinary speech, fills two thirds.
        assert!((meter_fill(0.1) - 2.0 / 3.0).abs() < 1e-3);
        assert_eq!(meter_fill(4.0), 1.0);
    }

    #[test]
    fn milliseconds_between_are_whole_and_never_negative() {
        assert_eq!(ms_between(1000.0, 1250.4), 250);
        assert_eq!(ms_between(1000.0, 999.0), 0);
        assert_eq!(ms_between(f64::NAN, 1.0), 0);
        assert_eq!(ms_between(0.0, 1e12), u32::MAX);
    }
}
