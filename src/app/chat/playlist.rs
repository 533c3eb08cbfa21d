//! The spoken reply's bookkeeping, free of browser objects so it is tested natively: which
//! sentence plays next when the voices arrive out of order or not at all, where on the audio
//! clock each one starts, which one is sounding (for lip sync from its timings), when the reply
//! has finished speaking, when the first-sound time is reported, and how the face moves from one
//! emotion to the next. `voice.rs` holds the Web Audio side and does what this decides.
//!
//! Compiled into both builds; only the browser build plays sound, so on the server it is used by
//! its tests alone.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use crate::shared::tts::Timings;
use std::collections::BTreeMap;

/// The avatar's expressions a reply may carry (the default character asks for one of these).
pub const EXPRESSIONS: [&str; 5] = ["happy", "angry", "sad", "relaxed", "surprised"];

/// Scheduling slack, in seconds: a source started "now" would clip its first milliseconds.
pub const START_AHEAD_S: f64 = 0.03;

/// A sentence scheduled on the audio clock: it sounds from `start` to `end` (seconds). `S` is
/// whatever plays it (a Web Audio source node in the browser).
#[derive(Debug)]
struct Scheduled<S> {
    source: S,
    start: f64,
    end: f64,
    timings: Option<Timings>,
}

/// One turn's sentences on their way to the speaker. `A` is a sentence's decoded audio, `S` what
/// plays it.
#[derive(Debug)]
pub struct Playlist<A, S> {
    /// Bumped by every cut: audio that finishes decoding for an earlier turn is dropped.
    turn: u32,
    /// The next sentence index to schedule, and what has arrived for later ones (`None`: that
    /// sentence has no voice).
    next: u32,
    arrived: BTreeMap<u32, Option<(A, Option<Timings>)>>,
    /// Sentences announced so far, and whether the reply is complete.
    sentences: u32,
    complete: bool,
    /// Audio-clock time at which the scheduled audio ends.
    cursor: f64,
    playing: Vec<Scheduled<S>>,
    /// When the message was sent (page clock, ms), and the first sound's time after that.
    sent_at_ms: f64,
    playback_started: Option<u64>,
    message_id: Option<i64>,
    reported: bool,
}

impl<A, S> Default for Playlist<A, S> {
    fn default() -> Self {
        Self {
            turn: 0,
            next: 0,
            arrived: BTreeMap::new(),
            sentences: 0,
            complete: false,
            cursor: 0.0,
            playing: Vec::new(),
            sent_at_ms: 0.0,
            playback_started: None,
            message_id: None,
            reported: false,
        }
    }
}

impl<A, S> Playlist<A, S> {
    /// The current turn, to hand back with audio that arrives later ([`Playlist::arrive`]).
    pub fn turn(&self) -> u32 {
        self.turn
    }

    /// The message was sent at `sent_at_ms` (page clock): the first-sound time is measured from
    /// there and reported once more.
    pub fn begin(&mut self, sent_at_ms: f64) {
        self.sent_at_ms = sent_at_ms;
        self.playback_started = None;
        self.message_id = None;
        self.reported = false;
    }

    /// Sentence `index` was announced.
    pub fn sentence(&mut self, index: u32) {
        self.sentences = self.sentences.max(index.saturating_add(1));
    }

    /// The audio of sentence `index` of turn `turn` is here (`None`: it could not be decoded).
    /// Audio of a turn that was cut since is dropped: answers whether it was kept.
    pub fn arrive(&mut self, turn: u32, index: u32, audio: Option<(A, Option<Timings>)>) -> bool {
        if turn != self.turn {
            return false;
        }
        self.arrived.insert(index, audio);
        true
    }

    /// Sentence `index` has no voice (`audio_error`): playback goes on with the next one.
    pub fn skip(&mut self, index: u32) {
        self.arrived.insert(index, None);
    }

    /// The reply is complete and stored as `message_id`.
    pub fn done(&mut self, message_id: i64) {
        self.complete = true;
        self.message_id = Some(message_id);
    }

    /// Stops everything (a new turn, Stop, barge-in): answers the sources still scheduled, to be
    /// silenced. Whatever is still on the way for this turn will be dropped.
    pub fn cut(&mut self) -> Vec<S> {
        self.turn = self.turn.wrapping_add(1);
        self.arrived.clear();
        self.next = 0;
        self.sentences = 0;
        self.complete = false;
        self.cursor = 0.0;
        self.playing.drain(..).map(|p| p.source).collect()
    }

    /// The next sentence to schedule, in index order, passing over the ones with no voice;
    /// `None` while the next one has not arrived.
    pub fn next_ready(&mut self) -> Option<(A, Option<Timings>)> {
        while let Some(slot) = self.arrived.remove(&self.next) {
            self.next += 1;
            if slot.is_some() {
                return slot;
            }
        }
        None
    }

    /// Where on the audio clock a sentence scheduled at `now` starts: right after the audio
    /// already scheduled, or a moment from now.
    pub fn start_at(&self, now: f64) -> f64 {
        self.cursor.max(now + START_AHEAD_S)
    }

    /// `source` was started at `start` (from [`Playlist::start_at`]) and lasts `duration`
    /// seconds; `now` is the audio clock and `now_ms` the page clock at that moment.
    pub fn scheduled(
        &mut self,
        source: S,
        start: f64,
        duration: f64,
        timings: Option<Timings>,
        now: f64,
        now_ms: f64,
    ) {
        self.cursor = start + duration;
        self.playing.retain(|p| p.end > now);
        self.playing.push(Scheduled {
            source,
            start,
            end: self.cursor,
            timings,
        });
        if self.playback_started.is_none() {
            let at = now_ms + (start - now) * 1000.0 - self.sent_at_ms;
            self.playback_started = Some(at.max(0.0) as u64);
        }
    }

    /// The voice's own timings of the sentence sounding at `at` (audio clock), with how far into
    /// it that is (ms). `None` when nothing sounds or the sentence came without timings: the
    /// mouth then follows the sound itself.
    pub fn timed_at(&self, at: f64) -> Option<(&Timings, f64)> {
        let p = self.playing.iter().find(|p| p.start <= at && at < p.end)?;
        Some((p.timings.as_ref()?, (at - p.start) * 1000.0))
    }

    /// The reply is complete, every sentence was handled, and the last sound has ended by `now`
    /// (audio clock).
    pub fn finished(&self, now: f64) -> bool {
        self.complete
            && self.next >= self.sentences
            && self.arrived.is_empty()
            && now >= self.cursor
    }

    /// The message id and the first sound's time (ms after sending), once both are known and not
    /// yet reported; each turn reports once.
    pub fn report(&mut self) -> Option<(i64, u64)> {
        match (self.message_id, self.playback_started, self.reported) {
            (Some(id), Some(ms), false) => {
                self.reported = true;
                Some((id, ms))
            }
            _ => None,
        }
    }
}

/// How the face goes from the emotion it shows to the one a reply asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct ExpressionChange {
    /// The expression to fade out.
    pub release: Option<String>,
    /// The expression to fade in, and the one shown after (`None`: a neutral face).
    pub show: Option<String>,
}

/// The change from `shown` to `wanted` (any case; anything not in [`EXPRESSIONS`], `neutral`
/// included, just lets the previous one go), or `None` when the face shows it already.
pub fn expression_change(shown: Option<&str>, wanted: &str) -> Option<ExpressionChange> {
    let wanted = wanted.to_ascii_lowercase();
    if shown == Some(wanted.as_str()) {
        return None;
    }
    Some(ExpressionChange {
        release: shown.map(str::to_string),
        show: EXPRESSIONS.contains(&wanted.as_str()).then_some(wanted),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Audio is its length in seconds; a source is the sentence's index.
    type Test = Playlist<f64, u32>;

    fn clip(seconds: f64) -> Option<(f64, Option<Timings>)> {
        Some((seconds, None))
    }

    fn timings() -> Timings {
        Timings {
            chars: vec!["h".into(), "i".into()],
            start_ms: vec![0, 100],
            end_ms: vec![100, 200],
        }
    }

    /// Schedules everything ready at audio time `now` (page clock = audio clock × 1000), as the
    /// browser does; answers the lengths scheduled, in order.
    fn pump(p: &mut Test, now: f64) -> Vec<f64> {
        let mut out = Vec::new();
        while let Some((len, t)) = p.next_ready() {
            let start = p.start_at(now);
            p.scheduled(out.len() as u32, start, len, t, now, now * 1000.0);
            out.push(len);
        }
        out
    }

    #[test]
    fn sentences_play_in_index_order_whatever_order_they_arrive_in() {
        let mut p = Test::default();
        let turn = p.turn();
        for i in 0..3 {
            p.sentence(i);
        }
        assert!(p.arrive(turn, 2, clip(3.0)));
        assert!(p.arrive(turn, 1, clip(2.0)));
        assert_eq!(pump(&mut p, 0.0), Vec::<f64>::new(), "0 is not here yet");
        assert!(p.arrive(turn, 0, clip(1.0)));
        assert_eq!(pump(&mut p, 0.0), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn each_sentence_starts_where_the_previous_ends() {
        let mut p = Test::default();
        let turn = p.turn();
        p.arrive(turn, 0, clip(1.0));
        pump(&mut p, 10.0);
        assert_eq!(p.start_at(10.2), 10.0 + START_AHEAD_S + 1.0);
        // Long after the last sound: a moment from now.
        assert_eq!(p.start_at(50.0), 50.0 + START_AHEAD_S);
    }

    #[test]
    fn a_sentence_with_no_voice_is_passed_over() {
        let mut p = Test::default();
        let turn = p.turn();
        p.sentence(2);
        p.arrive(turn, 2, clip(3.0));
        p.skip(1);
        // Decoding failed: the same as no voice.
        p.arrive(turn, 0, None);
        assert_eq!(pump(&mut p, 0.0), vec![3.0]);
        p.done(7);
        assert!(p.finished(4.0));
    }

    #[test]
    fn the_reply_is_done_speaking_only_when_complete_handled_and_heard() {
        let mut p = Test::default();
        let turn = p.turn();
        p.sentence(0);
        p.sentence(1);
        p.arrive(turn, 0, clip(1.0));
        pump(&mut p, 0.0);
        assert!(!p.finished(5.0), "the reply is not complete");
        p.done(1);
        assert!(
            !p.finished(5.0),
            "sentence 1 was announced and is on its way"
        );
        p.arrive(turn, 1, clip(1.0));
        pump(&mut p, 0.5);
        assert!(!p.finished(1.5), "still sounding");
        assert!(p.finished(2.1));
        // A reply with no sentence at all is done once complete.
        let mut p = Test::default();
        assert!(!p.finished(0.0));
        p.done(2);
        assert!(p.finished(0.0));
    }

    #[test]
    fn a_cut_silences_what_plays_and_drops_what_is_on_the_way() {
        let mut p = Test::default();
        let old = p.turn();
        p.sentence(1);
        p.arrive(old, 0, clip(1.0));
        pump(&mut p, 0.0);
        p.arrive(old, 2, clip(1.0));
        assert_eq!(
            p.cut(),
            vec![0],
            "the scheduled source is handed back to stop"
        );
        assert!(!p.arrive(old, 1, clip(1.0)), "late audio of the old turn");
        assert_eq!(pump(&mut p, 0.0), Vec::<f64>::new());
        // The next turn starts from sentence 0, right away.
        assert!(p.arrive(p.turn(), 0, clip(2.0)));
        assert_eq!(p.start_at(0.1), 0.1 + START_AHEAD_S);
        assert_eq!(pump(&mut p, 0.1), vec![2.0]);
        p.done(3);
        assert!(!p.finished(0.5));
        assert!(p.finished(2.2));
    }

    #[test]
    fn the_first_sound_is_reported_once_when_the_message_id_is_known() {
        let mut p = Test::default();
        p.begin(1_000.0);
        // At 2000 ms on the page clock (2.0 s on the audio clock) the first sentence is set to
        // start half a second later: 1500 ms after sending.
        p.scheduled(0, 2.5, 1.0, None, 2.0, 2_000.0);
        p.scheduled(1, 3.5, 1.0, None, 2.0, 2_000.0);
        assert_eq!(p.report(), None, "no message id yet");
        p.done(42);
        assert_eq!(p.report(), Some((42, 1_500)));
        assert_eq!(p.report(), None);
        // A new turn measures and reports again.
        p.cut();
        p.begin(5_000.0);
        p.done(43);
        assert_eq!(p.report(), None, "nothing has sounded yet");
        p.scheduled(0, 6.25, 1.0, None, 6.0, 6_000.0);
        assert_eq!(p.report(), Some((43, 1_250)));
    }

    #[test]
    fn lip_sync_follows_the_timings_of_the_sentence_sounding() {
        let mut p = Test::default();
        let turn = p.turn();
        p.arrive(turn, 0, clip(1.0));
        p.arrive(turn, 1, Some((1.0, Some(timings()))));
        pump(&mut p, 0.0);
        let second = 1.0 + START_AHEAD_S;
        assert!(p.timed_at(0.5).is_none(), "sentence 0 has no timings");
        let (t, ms) = p.timed_at(second + 0.25).expect("sentence 1 sounds");
        assert_eq!(t, &timings());
        assert!((ms - 250.0).abs() < 1e-6, "{ms}");
        assert!(p.timed_at(second + 1.5).is_none(), "nothing sounds");
    }

    #[test]
    fn the_face_changes_only_for_a_new_emotion() {
        assert_eq!(expression_change(Some("happy"), "Happy"), None);
        assert_eq!(
            expression_change(Some("happy"), "sad"),
            Some(ExpressionChange {
                release: Some("happy".into()),
                show: Some("sad".into()),
            })
        );
        assert_eq!(
            expression_change(Some("sad"), "neutral"),
            Some(ExpressionChange {
                release: Some("sad".into()),
                show: None,
            })
        );
        assert_eq!(
            expression_change(None, "SURPRISED"),
            Some(ExpressionChange {
                release: None,
                show: Some("surprised".into()),
            })
        );
    }
}
