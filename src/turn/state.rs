//! The rules of a turn, without any I/O: [`TurnState::on`] takes what happened (a model event, a
//! synthesis that finished, a timer, the person leaving, the server shutting down, the answer of
//! a database write) and says what to do next ([`Output`]: send an event, start a synthesis,
//! write the reply's row, finish). The runner (`runner.rs`) does the waiting and the I/O.
//!
//! Time is milliseconds since the request arrived, passed in with each input, so that every
//! rule (the timings, the draft's pace, the time limits) can be tested without a clock.
//!
//! The runner executes the outputs of one input in order. When sending an event fails (the
//! receiver is gone), it drops the outputs that follow and feeds [`Input::Closed`]: the state
//! then ends the turn as stopped from where it was.

use super::{reply::ReplyFilter, segment::Segmenter, TurnError, DRAFT_EVERY, DRAFT_TOKENS};
use crate::{
    llm::{ChatEvent, FinishReason, LlmError},
    metrics::TurnEnd,
    shared::chat::{
        AudioErrorEvent, AudioEvent, ChatStreamEvent, DoneEvent, SentenceEvent, StatusEvent,
        Timings, TokenEvent,
    },
    tts::{ChainError, Spoken},
};
use std::time::Duration;

/// What happened, for the state to decide on.
#[derive(Debug)]
pub enum Input {
    /// The request goes to the model now: the total time limit starts.
    Requested,
    /// The model accepted the request; its events follow.
    Connected,
    /// An event of the model's reply.
    Model(ChatEvent),
    /// The model failed: before its reply (no model, refused, timed out) or during it.
    ModelFailed(LlmError),
    /// The model's stream ended without saying the reply was finished.
    ModelEnded,
    /// One segment's synthesis finished.
    Synthesized(Synthesis),
    /// One segment's synthesis task ended without an answer (it panicked).
    SynthesisLost { index: u32 },
    /// The reply's row was written ([`Output::SaveDraft`]): its id when it was inserted.
    DraftSaved { id: Option<i64> },
    /// The draft is due to be written again ([`TurnState::draft_due`] passed).
    DraftDue,
    /// A time limit on the model ran out ([`TurnState::deadline`] passed).
    TimedOut(TimeLimit),
    /// The reply was stored ([`Output::Store`]): its id, or `None` when its row was deleted
    /// meanwhile.
    Stored(Option<i64>),
    /// Storing the reply failed (logged by the runner).
    StoreFailed,
    /// The receiver of the events went away: the person pressed Stop or left.
    Closed,
    /// The server is shutting down.
    ShuttingDown,
}

/// One segment's answer from the voice chain, with when it started and ended.
#[derive(Debug)]
pub struct Synthesis {
    pub index: u32,
    pub started: u64,
    pub finished: u64,
    pub result: Result<Spoken, ChainError>,
}

/// Which of the model's time limits ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeLimit {
    /// Silence between two events once the first token has come (`llm.idle_timeout_s`).
    Idle,
    /// The whole reply, from the request (`llm.total_timeout_s`).
    Total,
}

/// What the runner is to do, in order.
#[derive(Debug)]
pub enum Output {
    /// Send this event to the receiver.
    Send(ChatStreamEvent),
    /// Start synthesising segment `index`.
    Synthesize { index: u32, text: String },
    /// Drop every synthesis still waiting or running.
    CancelSyntheses,
    /// Drop the model's stream: nothing more is wanted from it (the generation is cancelled).
    CloseModel,
    /// Write the reply so far to its row, flagged partial: insert it when `id` is `None`, else
    /// rewrite row `id`. Answer with [`Input::DraftSaved`], whether or not the write worked.
    SaveDraft { id: Option<i64>, reply: Reply },
    /// Store the reply as the turn ends: rewrite row `id` or insert it. Answer with
    /// [`Input::Stored`] or [`Input::StoreFailed`].
    Store {
        id: Option<i64>,
        reply: Reply,
        partial: bool,
        timings: Timings,
    },
    /// Complete the stored timings of message `id` with the voice stages.
    SaveTimings { id: i64, timings: Timings },
    /// Count the finished turn (`metrics::chat_turn`).
    RecordTurn {
        end: TurnEnd,
        first_token: Option<u64>,
    },
    /// The first audio the browser can play was sent, at this time (`metrics::first_audio`).
    RecordFirstAudio(u64),
    /// The turn is over: give back its place, then send the last event if there is one (none
    /// when the person stopped it: nobody is listening).
    Finish(Option<Last>),
}

/// A turn's last event.
#[derive(Debug)]
pub enum Last {
    Done(DoneEvent),
    /// An `error` event: the failure, and the reply's row when something of it was kept.
    Failed {
        error: TurnError,
        message_id: Option<i64>,
    },
}

/// The reply as it stands, for its row.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub text: String,
    pub reasoning: Option<String>,
    pub emotion: Option<&'static str>,
}

/// What the state needs to know about the turn from the start.
#[derive(Clone, Debug)]
pub struct Rules {
    pub session_id: i64,
    /// Whether the reply is spoken (segments, syntheses, `audio` events).
    pub speak: bool,
    /// Whom to name when a time limit runs out.
    pub provider: &'static str,
    pub idle: Duration,
    pub total: Duration,
}

/// How a reply ended.
#[derive(Debug)]
enum End {
    Complete,
    /// The receiver went away: the person stopped it.
    Stopped,
    Failed(LlmError),
    ShuttingDown,
}

impl End {
    fn metric(&self) -> TurnEnd {
        match self {
            End::Complete => TurnEnd::Complete,
            End::Stopped => TurnEnd::Stopped,
            End::Failed(e) => TurnEnd::Failed(e.code()),
            End::ShuttingDown => TurnEnd::Failed("shutting_down"),
        }
    }
}

#[derive(Debug)]
enum Phase {
    /// Before the model's stream is open.
    Connecting,
    /// The model is writing.
    Streaming,
    /// The reply is being stored ([`Output::Store`] is out).
    Storing(End),
    /// The text is complete and stored (as `stored`); the voice is still speaking.
    Speaking {
        stored: Option<i64>,
    },
    Over,
}

/// The reply's row while the reply streams: inserted (flagged partial) with the first visible
/// text, then rewritten at least every [`DRAFT_EVERY`] or [`DRAFT_TOKENS`] tokens, so that a
/// reply that was streamed survives a crash of the server. The end of the turn rewrites it a
/// last time, as complete or partial.
#[derive(Debug)]
struct Draft {
    id: Option<i64>,
    /// Whether there is text or reasoning the row does not have yet.
    behind: bool,
    /// Visible tokens since the last write.
    tokens: u32,
    /// When the row was last written (or the turn began).
    written: u64,
}

/// The spoken side of the reply: segments and what the voice answered for each.
#[derive(Debug)]
struct Speech {
    segmenter: Segmenter,
    /// Per segment: not answered yet (`None`), has audio (`Some(true)`), failed (`Some(false)`).
    answered: Vec<Option<bool>>,
}

impl Speech {
    /// Records segment `index`'s answer; true when, with it, the browser has its first audio
    /// it can play (every earlier segment answered, and one of them or this one has audio).
    fn answer(&mut self, index: u32, has_audio: bool) -> bool {
        let before = self.playable();
        if let Some(slot) = self.answered.get_mut(index as usize) {
            *slot = Some(has_audio);
        }
        !before && self.playable()
    }

    fn playable(&self) -> bool {
        for a in &self.answered {
            match a {
                None => return false,
                Some(true) => return true,
                Some(false) => {}
            }
        }
        false
    }

    fn pending(&self) -> bool {
        self.answered.iter().any(Option::is_none)
    }
}

/// One turn's state, from the request to the model until its last event.
#[derive(Debug)]
pub struct TurnState {
    rules: Rules,
    phase: Phase,
    timings: Timings,
    filter: ReplyFilter,
    /// `None` when the reply is not spoken, or no longer (stopped, failed).
    speech: Option<Speech>,
    draft: Draft,
    /// When the total time limit runs out, once the request went to the model.
    total_deadline: Option<u64>,
    /// The model's last event, once its first token came: from then on, silence is limited too.
    last_event: Option<u64>,
    /// The model stopped at the token limit: the reply ends at its last complete sentence.
    cut: bool,
}

impl TurnState {
    /// The voice input's stages before the request (`ChatInput::lead`), kept in the trace.
    pub fn with_lead(mut self, (speech_end, asr_done): (Option<i64>, Option<i64>)) -> Self {
        self.timings.speech_end = speech_end;
        self.timings.asr_done = asr_done;
        self
    }

    pub fn new(rules: Rules, now: u64) -> Self {
        let speech = rules.speak.then(|| Speech {
            segmenter: Segmenter::new(),
            answered: Vec::new(),
        });
        Self {
            rules,
            phase: Phase::Connecting,
            timings: Timings::default(),
            filter: ReplyFilter::new(),
            speech,
            draft: Draft {
                id: None,
                behind: false,
                tokens: 0,
                written: now,
            },
            total_deadline: None,
            last_event: None,
            cut: false,
        }
    }

    /// Whether the turn has finished ([`Output::Finish`] was given).
    pub fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Over)
    }

    /// When the model's time runs out, and which limit that is; `None` when no limit runs.
    pub fn deadline(&self) -> Option<(u64, TimeLimit)> {
        let total = self.total_deadline?;
        match self.phase {
            Phase::Connecting => Some((total, TimeLimit::Total)),
            Phase::Streaming => match self.last_event {
                Some(at) if at + millis(self.rules.idle) < total => {
                    Some((at + millis(self.rules.idle), TimeLimit::Idle))
                }
                _ => Some((total, TimeLimit::Total)),
            },
            _ => None,
        }
    }

    /// When the reply's row must next be written; `None` when it is not behind.
    pub fn draft_due(&self) -> Option<u64> {
        let behind = matches!(self.phase, Phase::Streaming)
            && self.draft.behind
            && !self.filter.visible().is_empty();
        behind.then(|| self.draft.written + millis(DRAFT_EVERY))
    }

    /// What to do about `input`, which happened at `now` (ms since the request arrived).
    pub fn on(&mut self, now: u64, input: Input) -> Vec<Output> {
        match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::Connecting => self.connecting(now, input),
            Phase::Streaming => {
                self.phase = Phase::Streaming;
                self.streaming(now, input)
            }
            Phase::Storing(end) => self.storing(now, end, input),
            Phase::Speaking { stored } => {
                self.phase = Phase::Speaking { stored };
                self.speaking(now, stored, input)
            }
            Phase::Over => Vec::new(),
        }
    }

    fn connecting(&mut self, now: u64, input: Input) -> Vec<Output> {
        self.phase = Phase::Connecting;
        match input {
            Input::Requested => {
                self.timings.llm_request_started = Some(now);
                self.total_deadline = Some(now + millis(self.rules.total));
                Vec::new()
            }
            Input::Connected => {
                self.phase = Phase::Streaming;
                Vec::new()
            }
            Input::ModelFailed(e) => self.fail_early(e),
            Input::TimedOut(_) => {
                let e = self.total_timeout();
                self.fail_early(e)
            }
            Input::Closed => self.finish(
                vec![Output::RecordTurn {
                    end: TurnEnd::Stopped,
                    first_token: None,
                }],
                None,
            ),
            Input::ShuttingDown => self.finish(
                vec![Output::RecordTurn {
                    end: TurnEnd::Failed("shutting_down"),
                    first_token: None,
                }],
                Some(Last::Failed {
                    error: TurnError::ShuttingDown,
                    message_id: None,
                }),
            ),
            _ => Vec::new(),
        }
    }

    /// The model failed before its reply began: nothing to store.
    fn fail_early(&mut self, e: LlmError) -> Vec<Output> {
        tracing::warn!(code = e.code(), error = %e, "the language model failed");
        let record = Output::RecordTurn {
            end: TurnEnd::Failed(e.code()),
            first_token: self.timings.first_token,
        };
        self.finish(
            vec![record],
            Some(Last::Failed {
                error: e.into(),
                message_id: None,
            }),
        )
    }

    fn streaming(&mut self, now: u64, input: Input) -> Vec<Output> {
        let event = match input {
            Input::Model(event) => event,
            Input::ModelFailed(e) => return self.end(now, End::Failed(e)),
            Input::ModelEnded => {
                let e = LlmError::Interrupted {
                    provider: "the model",
                };
                return self.end(now, End::Failed(e));
            }
            Input::Synthesized(s) => return self.on_synthesis(now, s),
            Input::SynthesisLost { index } => return self.on_lost_synthesis(now, index),
            Input::DraftDue => return self.save_draft(),
            Input::DraftSaved { id } => {
                self.draft.id = self.draft.id.or(id);
                self.draft.written = now;
                return Vec::new();
            }
            Input::TimedOut(TimeLimit::Total) => {
                let e = self.total_timeout();
                return self.end(now, End::Failed(e));
            }
            Input::TimedOut(TimeLimit::Idle) => {
                let e = LlmError::IdleTimeout {
                    provider: self.rules.provider,
                    after: self.rules.idle,
                };
                return self.end(now, End::Failed(e));
            }
            Input::Closed => return self.end(now, End::Stopped),
            Input::ShuttingDown => return self.end(now, End::ShuttingDown),
            _ => return Vec::new(),
        };
        if self.last_event.is_some() {
            self.last_event = Some(now);
        }
        let visible = match event {
            ChatEvent::Loading(progress) => {
                return vec![Output::Send(ChatStreamEvent::Status(StatusEvent {
                    state: "loading_model".into(),
                    progress,
                }))];
            }
            ChatEvent::Finished { reason, usage } => {
                self.cut = reason == FinishReason::Length;
                if let Some(u) = usage {
                    self.timings.prompt_tokens = Some(u.prompt_tokens);
                    self.timings.prompt_cached = u.cached_tokens;
                }
                return self.end(now, End::Complete);
            }
            ChatEvent::Reasoning(r) => {
                self.timings.first_token.get_or_insert(now);
                self.last_event = Some(now);
                self.filter.add_reasoning(&r);
                self.draft.behind = true;
                return Vec::new();
            }
            ChatEvent::Content(c) => {
                self.timings.first_token.get_or_insert(now);
                self.last_event = Some(now);
                self.filter.push(&c)
            }
        };
        if visible.is_empty() {
            return Vec::new();
        }
        let mut out = vec![Output::Send(ChatStreamEvent::Token(TokenEvent {
            text: visible.clone(),
        }))];
        self.segments(now, &visible, false, &mut out);
        self.draft.behind = true;
        self.draft.tokens += 1;
        if self.draft.id.is_none()
            || self.draft.tokens >= DRAFT_TOKENS
            || now >= self.draft.written + millis(DRAFT_EVERY)
        {
            out.extend(self.save_draft());
        }
        out
    }

    /// Writes the reply so far, when there is any.
    fn save_draft(&mut self) -> Vec<Output> {
        if self.filter.visible().is_empty() {
            return Vec::new();
        }
        self.draft.behind = false;
        self.draft.tokens = 0;
        vec![Output::SaveDraft {
            id: self.draft.id,
            reply: self.reply(),
        }]
    }

    fn reply(&self) -> Reply {
        Reply {
            text: self.filter.visible().to_string(),
            reasoning: self.filter.reasoning().map(str::to_string),
            emotion: self.filter.emotion(),
        }
    }

    /// Feeds visible text to the segmenter (and, on the `last` call, flushes it): each finished
    /// segment goes to the voice at once and is a `sentence` event.
    fn segments(&mut self, now: u64, visible: &str, last: bool, out: &mut Vec<Output>) {
        let Some(sp) = self.speech.as_mut() else {
            return;
        };
        let mut segments = sp.segmenter.push(visible);
        if last {
            segments.extend(sp.segmenter.finish());
        }
        self.say(now, segments, out);
    }

    /// Hands segments to the voice, each also a `sentence` event.
    fn say(&mut self, now: u64, segments: Vec<String>, out: &mut Vec<Output>) {
        let emotion = self.filter.emotion();
        let Some(sp) = self.speech.as_mut() else {
            return;
        };
        for text in segments {
            self.timings.first_segment.get_or_insert(now);
            let index = sp.answered.len() as u32;
            sp.answered.push(None);
            out.push(Output::Synthesize {
                index,
                text: text.clone(),
            });
            out.push(Output::Send(ChatStreamEvent::Sentence(SentenceEvent {
                index,
                text,
                emotion: emotion.map(str::to_string),
            })));
        }
    }

    /// One segment's `audio` or `audio_error` event, and the voice stages it completes.
    fn on_synthesis(&mut self, now: u64, s: Synthesis) -> Vec<Output> {
        let t = &mut self.timings;
        t.tts_request_started = Some(
            t.tts_request_started
                .map_or(s.started, |v| v.min(s.started)),
        );
        let event = match s.result {
            Ok(spoken) => {
                t.tts_ready.get_or_insert(s.finished);
                ChatStreamEvent::Audio(AudioEvent {
                    index: s.index,
                    url: spoken.url,
                    provider: spoken.provider.name().into(),
                    duration_ms: spoken.duration_ms.unwrap_or(0),
                    timings: spoken.timings,
                })
            }
            Err(e) => {
                tracing::warn!(
                    code = e.code(),
                    index = s.index,
                    "a segment has no voice: {e}"
                );
                ChatStreamEvent::AudioError(AudioErrorEvent {
                    index: s.index,
                    code: e.code().into(),
                    message: e.to_string(),
                })
            }
        };
        self.answered(now, s.index, event)
    }

    fn on_lost_synthesis(&mut self, now: u64, index: u32) -> Vec<Output> {
        let event = ChatStreamEvent::AudioError(AudioErrorEvent {
            index,
            code: "tts_failed".into(),
            message: "The voice stopped unexpectedly; see the server log.".into(),
        });
        self.answered(now, index, event)
    }

    /// Sends a segment's voice event; the first playable audio is timed and counted.
    fn answered(&mut self, now: u64, index: u32, event: ChatStreamEvent) -> Vec<Output> {
        let Some(sp) = self.speech.as_mut() else {
            // The voice was cancelled meanwhile: nobody waits for it.
            return Vec::new();
        };
        let first_playable = sp.answer(index, matches!(event, ChatStreamEvent::Audio(_)));
        let mut out = vec![Output::Send(event)];
        if first_playable {
            let at = *self.timings.first_audio_sent.get_or_insert(now);
            out.push(Output::RecordFirstAudio(at));
        }
        out
    }

    fn total_timeout(&self) -> LlmError {
        LlmError::TotalTimeout {
            provider: self.rules.provider,
            after: self.rules.total,
        }
    }

    /// The reply ended: stop the model, say the rest of the text when it completed, store it.
    fn end(&mut self, now: u64, end: End) -> Vec<Output> {
        let mut out = vec![Output::CloseModel];
        let tail = self.filter.finish();
        if matches!(end, End::Complete) {
            if !tail.is_empty() {
                out.push(Output::Send(ChatStreamEvent::Token(TokenEvent {
                    text: tail.clone(),
                })));
            }
            if self.cut {
                self.segments(now, &tail, false, &mut out);
                let any_sentence = self.filter.cut_to_last_sentence();
                if let Some(sp) = self.speech.as_mut() {
                    let rest = sp.segmenter.finish_complete(any_sentence);
                    self.say(now, rest, &mut out);
                }
            } else {
                self.segments(now, &tail, true, &mut out);
            }
        } else {
            // Stopped, failed or shutting down: the syntheses still waiting or running are not
            // wanted.
            self.cancel_speech(&mut out);
        }
        self.timings.response_complete = Some(now);
        self.store(end, out)
    }

    fn cancel_speech(&mut self, out: &mut Vec<Output>) {
        if self.speech.take().is_some() {
            out.push(Output::CancelSyntheses);
        }
    }

    /// Counts the turn and stores the reply (flagged partial unless it completed).
    fn store(&mut self, end: End, mut out: Vec<Output>) -> Vec<Output> {
        out.push(Output::RecordTurn {
            end: end.metric(),
            first_token: self.timings.first_token,
        });
        let partial = !matches!(end, End::Complete);
        if self.filter.visible().is_empty() && partial {
            // Nothing arrived, so nothing is lost; no empty message is stored.
            out.extend(self.stored(end, None));
            return out;
        }
        out.push(Output::Store {
            id: self.draft.id,
            reply: self.reply(),
            partial,
            timings: self.timings.clone(),
        });
        self.phase = Phase::Storing(end);
        out
    }

    fn storing(&mut self, now: u64, end: End, input: Input) -> Vec<Output> {
        match input {
            Input::Stored(stored) => self.stored(end, stored),
            Input::StoreFailed => self.finish(
                Vec::new(),
                Some(Last::Failed {
                    error: TurnError::StoreFailed,
                    message_id: None,
                }),
            ),
            // Sending the rest of a complete reply failed: the person stopped it just then, so
            // it is stored as stopped instead.
            Input::Closed if matches!(end, End::Complete) => {
                let mut out = Vec::new();
                self.cancel_speech(&mut out);
                self.timings.response_complete = Some(now);
                self.store(End::Stopped, out)
            }
            _ => {
                self.phase = Phase::Storing(end);
                Vec::new()
            }
        }
    }

    /// The reply is stored (as `stored`): the last event, or the voice to wait for.
    fn stored(&mut self, end: End, stored: Option<i64>) -> Vec<Output> {
        let session_id = self.rules.session_id;
        match end {
            End::Stopped => {
                tracing::info!(session_id, "the reply was stopped; kept as partial");
                self.finish(Vec::new(), None)
            }
            End::ShuttingDown => {
                tracing::info!(
                    session_id,
                    "the server is shutting down; the reply was kept as partial"
                );
                self.finish(
                    Vec::new(),
                    Some(Last::Failed {
                        error: TurnError::ShuttingDown,
                        message_id: stored,
                    }),
                )
            }
            End::Failed(e) => {
                tracing::warn!(code = e.code(), error = %e, "the language model failed mid-reply");
                self.finish(
                    Vec::new(),
                    Some(Last::Failed {
                        error: e.into(),
                        message_id: stored,
                    }),
                )
            }
            End::Complete => match self.speech.as_ref().map(Speech::pending) {
                None => {
                    let done = self.done(stored);
                    self.finish(Vec::new(), Some(done))
                }
                Some(true) => {
                    self.phase = Phase::Speaking { stored };
                    Vec::new()
                }
                Some(false) => self.spoken(stored),
            },
        }
    }

    fn speaking(&mut self, now: u64, stored: Option<i64>, input: Input) -> Vec<Output> {
        let mut out = match input {
            Input::Synthesized(s) => self.on_synthesis(now, s),
            Input::SynthesisLost { index } => self.on_lost_synthesis(now, index),
            Input::Closed => {
                tracing::info!(
                    session_id = self.rules.session_id,
                    "the voice was stopped after the text completed"
                );
                let mut out = Vec::new();
                self.cancel_speech(&mut out);
                out.extend(self.save_timings(stored));
                return self.finish(out, None);
            }
            Input::ShuttingDown => {
                let mut out = Vec::new();
                self.cancel_speech(&mut out);
                out.extend(self.save_timings(stored));
                let last = Last::Failed {
                    error: TurnError::ShuttingDown,
                    message_id: stored,
                };
                return self.finish(out, Some(last));
            }
            _ => return Vec::new(),
        };
        if self.speech.as_ref().is_some_and(|sp| !sp.pending()) {
            out.extend(self.spoken(stored));
        }
        out
    }

    /// Every segment has its voice: the timings are complete, and so is the turn.
    fn spoken(&mut self, stored: Option<i64>) -> Vec<Output> {
        let out = self.save_timings(stored).into_iter().collect();
        let done = self.done(stored);
        self.finish(out, Some(done))
    }

    fn save_timings(&self, stored: Option<i64>) -> Option<Output> {
        stored.map(|id| Output::SaveTimings {
            id,
            timings: self.timings.clone(),
        })
    }

    fn done(&self, stored: Option<i64>) -> Last {
        Last::Done(DoneEvent {
            message_id: stored.unwrap_or_default(),
            session_id: self.rules.session_id,
            reply: self.filter.visible().to_string(),
            emotion: self.filter.emotion().map(str::to_string),
            timings: self.timings.clone(),
        })
    }

    fn finish(&mut self, mut out: Vec<Output>, last: Option<Last>) -> Vec<Output> {
        self.phase = Phase::Over;
        out.push(Output::Finish(last));
        out
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::config::TtsProvider;

    fn rules(speak: bool) -> Rules {
        Rules {
            session_id: 7,
            speak,
            provider: "test",
            idle: Duration::from_secs(5),
            total: Duration::from_secs(60),
        }
    }

    /// A turn whose model stream opened at 10 ms.
    fn streaming(speak: bool) -> TurnState {
        let mut s = TurnState::new(rules(speak), 0);
        assert!(s.on(5, Input::Requested).is_empty());
        assert!(s.on(10, Input::Connected).is_empty());
        s
    }

    fn content(text: &str) -> Input {
        Input::Model(ChatEvent::Content(text.into()))
    }

    fn finished() -> Input {
        Input::Model(ChatEvent::Finished {
            reason: FinishReason::Stop,
            usage: None,
        })
    }

    fn audio(index: u32, started: u64, finished: u64) -> Input {
        Input::Synthesized(Synthesis {
            index,
            started,
            finished,
            result: Ok(Spoken {
                url: format!("/files/audio/{index}.wav"),
                provider: TtsProvider::PiperLocal,
                cached: false,
                content_type: "audio/wav".into(),
                duration_ms: Some(900),
                sample_rate: None,
                fell_back_from: Vec::new(),
                timings: None,
            }),
        })
    }

    fn no_voice(index: u32, at: u64) -> Input {
        Input::Synthesized(Synthesis {
            index,
            started: at,
            finished: at,
            result: Err(ChainError::NothingToSay),
        })
    }

    /// The outputs in short, to compare whole sequences.
    fn say(out: &[Output]) -> Vec<String> {
        out.iter()
            .map(|o| match o {
                Output::Send(ChatStreamEvent::Token(t)) => format!("token {}", t.text),
                Output::Send(ChatStreamEvent::Sentence(s)) => {
                    format!("sentence {} {}", s.index, s.text)
                }
                Output::Send(ChatStreamEvent::Audio(a)) => format!("audio {}", a.index),
                Output::Send(ChatStreamEvent::AudioError(a)) => {
                    format!("audio_error {} {}", a.index, a.code)
                }
                Output::Send(e) => e.name().to_string(),
                Output::Synthesize { index, text } => format!("synthesize {index} {text}"),
                Output::CancelSyntheses => "cancel".into(),
                Output::CloseModel => "close_model".into(),
                Output::SaveDraft { id, reply } => format!("draft {id:?} {}", reply.text),
                Output::Store {
                    id, reply, partial, ..
                } => {
                    let how = if *partial { "partial" } else { "complete" };
                    format!("store {id:?} {how} {}", reply.text)
                }
                Output::SaveTimings { id, .. } => format!("save_timings {id}"),
                Output::RecordTurn { end, .. } => format!("metric {end:?}"),
                Output::RecordFirstAudio(at) => format!("first_audio {at}"),
                Output::Finish(None) => "finish".into(),
                Output::Finish(Some(Last::Done(d))) => {
                    format!("done {} {}", d.message_id, d.reply)
                }
                Output::Finish(Some(Last::Failed { error, message_id })) => {
                    format!("error {} {message_id:?}", error.code())
                }
            })
            .collect()
    }

    fn done_timings(out: &[Output]) -> &Timings {
        match out.last() {
            Some(Output::Finish(Some(Last::Done(d)))) => &d.timings,
            _ => panic!("no done in {:?}", say(out)),
        }
    }

    #[test]
    fn a_reply_cut_by_the_token_limit_ends_at_its_last_sentence_and_says_no_more() {
        let mut s = streaming(true);
        let out = s.on(20, content("I love tea. It is warm and"));
        assert!(say(&out).contains(&"synthesize 0 I love tea.".to_string()));
        s.on(21, Input::DraftSaved { id: Some(9) });
        let out = s.on(
            30,
            Input::Model(ChatEvent::Finished {
                reason: FinishReason::Length,
                usage: Some(crate::llm::Usage {
                    prompt_tokens: 900,
                    completion_tokens: 160,
                    cached_tokens: Some(850),
                }),
            }),
        );
        let said = say(&out);
        assert!(
            !said.iter().any(|o| o.starts_with("synthesize")),
            "the unfinished sentence is said: {said:?}"
        );
        assert!(
            said.contains(&"store Some(9) complete I love tea.".to_string()),
            "{said:?}"
        );
        s.on(31, Input::Stored(Some(9)));
        let out = s.on(40, audio(0, 25, 35));
        assert_eq!(done_timings(&out).prompt_tokens, Some(900));
        assert_eq!(done_timings(&out).prompt_cached, Some(850));
        assert!(say(&out).last().is_some_and(|d| d == "done 9 I love tea."));

        // A reply that stopped by itself keeps all of its text.
        let mut s = streaming(false);
        s.on(20, content("I love tea. It is warm and"));
        let said = say(&s.on(30, finished()));
        assert!(
            said.contains(&"store None complete I love tea. It is warm and".to_string()),
            "{said:?}"
        );
    }

    #[test]
    fn stop_mid_token_stores_the_partial_and_sends_nothing_more() {
        let mut s = streaming(false);
        assert_eq!(
            say(&s.on(20, content("Hello"))),
            ["token Hello", "draft None Hello"]
        );
        assert!(s.on(21, Input::DraftSaved { id: Some(42) }).is_empty());
        assert_eq!(say(&s.on(30, content(" wor"))), ["token  wor"]);
        let out = s.on(31, Input::Closed);
        assert_eq!(
            say(&out),
            [
                "close_model",
                "metric Stopped",
                "store Some(42) partial Hello wor"
            ]
        );
        assert_eq!(say(&s.on(32, Input::Stored(Some(42)))), ["finish"]);
        assert!(s.is_over());
        assert!(s.on(40, content("late")).is_empty());
    }

    #[test]
    fn a_send_that_fails_while_completing_stores_the_reply_as_stopped() {
        let mut s = streaming(true);
        s.on(20, content("Hi there"));
        let out = s.on(30, finished());
        assert_eq!(
            say(&out),
            [
                "close_model",
                "synthesize 0 Hi there",
                "sentence 0 Hi there",
                "metric Complete",
                "store None complete Hi there",
            ]
        );
        // The sentence could not be sent: the runner drops the rest and says so.
        let out = s.on(31, Input::Closed);
        assert_eq!(
            say(&out),
            ["cancel", "metric Stopped", "store None partial Hi there"]
        );
        assert_eq!(say(&s.on(32, Input::Stored(Some(5)))), ["finish"]);
    }

    #[test]
    fn a_provider_error_after_text_keeps_the_partial_and_names_it() {
        let mut s = streaming(false);
        s.on(20, content("Half a rep"));
        s.on(21, Input::DraftSaved { id: Some(9) });
        let e = LlmError::MidStream {
            provider: "test",
            message: "overloaded".into(),
        };
        let out = s.on(30, Input::ModelFailed(e));
        assert_eq!(
            say(&out),
            [
                "close_model",
                "metric Failed(\"llm_error\")",
                "store Some(9) partial Half a rep"
            ]
        );
        let out = s.on(31, Input::Stored(Some(9)));
        assert_eq!(say(&out), ["error llm_error Some(9)"]);
        let Some(Output::Finish(Some(Last::Failed { error, .. }))) = out.last() else {
            panic!("no error");
        };
        assert!(matches!(error, TurnError::Llm(LlmError::MidStream { .. })));
    }

    #[test]
    fn a_voice_failure_is_an_audio_error_and_the_turn_still_completes() {
        let mut s = streaming(true);
        let out = s.on(20, content("One. Two. "));
        assert_eq!(
            say(&out),
            [
                "token One. Two. ",
                "synthesize 0 One.",
                "sentence 0 One.",
                "synthesize 1 Two.",
                "sentence 1 Two.",
                "draft None One. Two.",
            ]
        );
        assert_eq!(
            say(&s.on(40, no_voice(0, 25))),
            ["audio_error 0 empty_text"]
        );
        assert_eq!(
            say(&s.on(50, audio(1, 30, 45))),
            ["audio 1", "first_audio 50"]
        );
        s.on(60, finished());
        let out = s.on(61, Input::Stored(Some(3)));
        assert_eq!(say(&out), ["save_timings 3", "done 3 One. Two."]);
    }

    #[test]
    fn done_waits_for_the_voice_still_speaking_after_the_text() {
        let mut s = streaming(true);
        s.on(20, content("First part. Second"));
        let out = s.on(30, finished());
        assert_eq!(
            say(&out),
            [
                "close_model",
                "synthesize 1 Second",
                "sentence 1 Second",
                "metric Complete",
                "store None complete First part. Second",
            ]
        );
        // Stored; segments 0 and 1 still speaking: no `done` yet.
        assert!(s.on(31, Input::Stored(Some(8))).is_empty());
        assert!(!s.is_over());
        assert_eq!(
            say(&s.on(40, audio(0, 21, 39))),
            ["audio 0", "first_audio 40"]
        );
        assert!(!s.is_over());
        let out = s.on(50, audio(1, 31, 49));
        assert_eq!(
            say(&out),
            ["audio 1", "save_timings 8", "done 8 First part. Second"]
        );
        let t = done_timings(&out);
        assert_eq!(t.response_complete, Some(30));
        assert_eq!(t.tts_request_started, Some(21));
        assert_eq!(t.tts_ready, Some(39));
        assert!(s.is_over());
    }

    #[test]
    fn out_of_order_audio_counts_as_first_only_once_it_can_play() {
        let mut s = streaming(true);
        s.on(20, content("One. Two. "));
        // Segment 1 first: the browser cannot play it before 0.
        assert_eq!(say(&s.on(30, audio(1, 22, 29))), ["audio 1"]);
        assert_eq!(
            say(&s.on(45, audio(0, 21, 44))),
            ["audio 0", "first_audio 45"]
        );
        s.on(50, finished());
        let out = s.on(51, Input::Stored(Some(2)));
        let t = done_timings(&out);
        assert_eq!(t.first_audio_sent, Some(45));
        assert_eq!(t.tts_ready, Some(29));
        assert_eq!(t.first_segment, Some(20));
    }

    #[test]
    fn shutdown_mid_reply_cancels_the_voice_and_keeps_the_partial() {
        let mut s = streaming(true);
        s.on(20, content("One. Tw"));
        s.on(21, Input::DraftSaved { id: Some(4) });
        let out = s.on(30, Input::ShuttingDown);
        assert_eq!(
            say(&out),
            [
                "close_model",
                "cancel",
                "metric Failed(\"shutting_down\")",
                "store Some(4) partial One. Tw",
            ]
        );
        assert_eq!(
            say(&s.on(31, Input::Stored(Some(4)))),
            ["error shutting_down Some(4)"]
        );
        // A synthesis that was under way no longer speaks.
        assert!(s.on(32, audio(0, 21, 31)).is_empty());
    }

    #[test]
    fn shutdown_before_the_model_answers_stores_nothing() {
        let mut s = TurnState::new(rules(false), 0);
        s.on(1, Input::Requested);
        let out = s.on(2, Input::ShuttingDown);
        assert_eq!(
            say(&out),
            [
                "metric Failed(\"shutting_down\")",
                "error shutting_down None"
            ]
        );
    }

    #[test]
    fn silence_after_text_is_an_idle_timeout() {
        let mut s = streaming(false);
        // Before the first token only the total limit runs (from the request at 5 ms).
        assert_eq!(s.deadline(), Some((60_005, TimeLimit::Total)));
        s.on(100, content("Some text"));
        assert_eq!(s.deadline(), Some((5_100, TimeLimit::Idle)));
        s.on(101, Input::DraftSaved { id: Some(6) });
        let out = s.on(5_100, Input::TimedOut(TimeLimit::Idle));
        assert_eq!(
            say(&out),
            [
                "close_model",
                "metric Failed(\"llm_timeout\")",
                "store Some(6) partial Some text"
            ]
        );
        let out = s.on(5_101, Input::Stored(Some(6)));
        let Some(Output::Finish(Some(Last::Failed { error, message_id }))) = out.last() else {
            panic!("no error in {:?}", say(&out));
        };
        assert!(matches!(
            error,
            TurnError::Llm(LlmError::IdleTimeout { .. })
        ));
        assert_eq!(*message_id, Some(6));
    }

    #[test]
    fn near_the_total_limit_the_total_limit_is_the_deadline() {
        let mut s = streaming(false);
        s.on(58_000, content("late"));
        assert_eq!(s.deadline(), Some((60_005, TimeLimit::Total)));
    }

    #[test]
    fn the_draft_is_written_every_second_or_every_32_tokens() {
        let mut s = streaming(false);
        s.on(20, content("a"));
        s.on(20, Input::DraftSaved { id: Some(1) });
        // 31 more tokens within the second: no write, but one is due a second after the last.
        for i in 0..DRAFT_TOKENS - 1 {
            let out = s.on(21 + u64::from(i), content("b"));
            assert_eq!(say(&out), ["token b"], "token {i}");
        }
        assert_eq!(s.draft_due(), Some(1_020));
        let out = s.on(60, content("c"));
        assert_eq!(say(&out)[1], format!("draft Some(1) a{}c", "b".repeat(31)));
        s.on(60, Input::DraftSaved { id: None });
        assert_eq!(s.draft_due(), None);
        s.on(70, content("d"));
        assert_eq!(s.draft_due(), Some(1_060));
        let out = s.on(1_060, Input::DraftDue);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Output::SaveDraft { id: Some(1), .. }));
    }
}
