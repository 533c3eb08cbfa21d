//! The I/O of a turn: waits for whatever comes first (the model's next event, a synthesis that
//! finished, the draft's or the model's timer, the receiver leaving, the server shutting down),
//! feeds it to the [`TurnState`] and carries out what it answers. Every decision is the state's.

use super::{
    ms_since,
    state::{Input, Last, Output, Reply, Synthesis, TimeLimit, TurnState},
    Place, TurnError, PARALLEL_SYNTHESES,
};
use crate::{
    llm::{ChatModel, ChatRequest, ChatStream, LlmError},
    metrics,
    shared::{
        chat::{ChatStreamEvent, ErrorEvent, Timings},
        history::Role,
    },
    store::messages::NewMessage,
    tts::{SpeakOptions, TtsService},
};
use futures::StreamExt;
use std::{collections::HashMap, collections::VecDeque, sync::Arc, time::Duration};
use tokio::{
    sync::{mpsc, oneshot, Semaphore},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

pub(super) struct Runner {
    pub(super) state: TurnState,
    /// The turn's place among the turns under way, given back just before the last event (so a
    /// client that sends its next message on `done` finds it free) or when the runner ends.
    pub(super) place: Option<Place>,
    pub(super) db: crate::store::Db,
    pub(super) session_id: i64,
    /// When the request arrived: the origin of every time the state sees.
    pub(super) received: Instant,
    pub(super) tx: mpsc::Sender<ChatStreamEvent>,
    /// Where the typed failure behind the `error` event goes.
    pub(super) failure: Option<oneshot::Sender<TurnError>>,
    pub(super) voice: Voice,
    /// Cancelled when the server shuts down: the turn keeps what arrived and says so.
    pub(super) shutdown: CancellationToken,
    /// The lorebook entries in this turn's prompt (a JSON list of names), kept with the reply.
    pub(super) lore: Option<String>,
}

/// The syntheses of a spoken reply, at most [`PARALLEL_SYNTHESES`] at a time.
pub(super) struct Voice {
    tts: Arc<TtsService>,
    options: SpeakOptions,
    permits: Arc<Semaphore>,
    /// Dropping the set aborts every synthesis still waiting or running (Stop).
    tasks: JoinSet<Synthesis>,
    /// Which segment each task speaks, for a task that ends without an answer.
    ids: HashMap<tokio::task::Id, u32>,
}

impl Voice {
    pub(super) fn new(tts: Arc<TtsService>, options: SpeakOptions) -> Self {
        Self {
            tts,
            options,
            permits: Arc::new(Semaphore::new(PARALLEL_SYNTHESES)),
            tasks: JoinSet::new(),
            ids: HashMap::new(),
        }
    }

    /// Starts synthesising segment `index`. The semaphore is fair, so segments reach the voice
    /// in order.
    fn start(&mut self, index: u32, text: String, received: Instant) {
        let (tts, options, permits) =
            (self.tts.clone(), self.options.clone(), self.permits.clone());
        let task = self.tasks.spawn(async move {
            // The semaphore is never closed; without a permit the synthesis runs anyway.
            let _permit = permits.acquire_owned().await.ok();
            let started = ms_since(received);
            let result = tts.speak(&text, options).await;
            Synthesis {
                index,
                started,
                finished: ms_since(received),
                result,
            }
        });
        self.ids.insert(task.id(), index);
    }

    fn cancel(&mut self) {
        // Dropping the set aborts its tasks.
        self.tasks = JoinSet::new();
        self.ids.clear();
    }

    /// The next finished synthesis; never resolves when none is under way.
    async fn next(&mut self) -> Input {
        loop {
            let joined = match self.tasks.join_next_with_id().await {
                Some(joined) => joined,
                None => std::future::pending().await,
            };
            match joined {
                Ok((id, synthesis)) => {
                    self.ids.remove(&id);
                    return Input::Synthesized(synthesis);
                }
                Err(e) => {
                    tracing::error!(error = %e, "a synthesis task failed");
                    if let Some(index) = self.ids.remove(&e.id()) {
                        return Input::SynthesisLost { index };
                    }
                }
            }
        }
    }
}

/// Never resolves for `None`.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next event of the model; never resolves once its stream is closed.
async fn next_event(stream: &mut Option<ChatStream>) -> Input {
    let Some(s) = stream.as_mut() else {
        return std::future::pending().await;
    };
    match s.next().await {
        Some(Ok(event)) => Input::Model(event),
        Some(Err(e)) => Input::ModelFailed(e),
        None => Input::ModelEnded,
    }
}

impl Runner {
    fn now(&self) -> u64 {
        ms_since(self.received)
    }

    fn at(&self, ms: u64) -> Instant {
        self.received + Duration::from_millis(ms)
    }

    /// Runs the turn to its last event. `model` is `Err` when there is no model to ask.
    pub(super) async fn run(mut self, model: Result<(Arc<dyn ChatModel>, ChatRequest), LlmError>) {
        let mut stream = None;
        let (model, request) = match model {
            Ok(model) => model,
            Err(e) => return self.feed(Input::ModelFailed(e), &mut stream).await,
        };
        self.feed(Input::Requested, &mut stream).await;
        let deadline = self.state.deadline().map(|(ms, _)| self.at(ms));
        let opened = tokio::select! {
            s = model.chat(request) => match s {
                Ok(s) => {
                    stream = Some(s);
                    Input::Connected
                }
                Err(e) => Input::ModelFailed(e),
            },
            () = self.tx.closed() => Input::Closed,
            () = until(deadline) => Input::TimedOut(TimeLimit::Total),
            () = self.shutdown.cancelled() => Input::ShuttingDown,
        };
        self.feed(opened, &mut stream).await;
        while !self.state.is_over() {
            let deadline = self.state.deadline();
            let limit = deadline.map_or(TimeLimit::Total, |(_, limit)| limit);
            let deadline = deadline.map(|(ms, _)| self.at(ms));
            let draft_due = self.state.draft_due().map(|ms| self.at(ms));
            let input = tokio::select! {
                input = next_event(&mut stream) => input,
                input = self.voice.next() => input,
                () = until(draft_due) => Input::DraftDue,
                () = until(deadline) => Input::TimedOut(limit),
                () = self.tx.closed() => Input::Closed,
                () = self.shutdown.cancelled() => Input::ShuttingDown,
            };
            self.feed(input, &mut stream).await;
        }
    }

    /// Gives `input` to the state and carries out its answer, in order.
    async fn feed(&mut self, input: Input, stream: &mut Option<ChatStream>) {
        let mut outputs = VecDeque::from(self.state.on(self.now(), input));
        while let Some(output) = outputs.pop_front() {
            match output {
                Output::Send(event) => {
                    if self.tx.send(event).await.is_err() {
                        // Nobody listens any more: what was to follow is not wanted.
                        outputs = self.state.on(self.now(), Input::Closed).into();
                    }
                }
                Output::Synthesize { index, text } => self.voice.start(index, text, self.received),
                Output::CancelSyntheses => self.voice.cancel(),
                Output::CloseModel => *stream = None,
                Output::SaveDraft { id, reply } => {
                    let id = self.save_draft(id, &reply).await;
                    outputs.extend(self.state.on(self.now(), Input::DraftSaved { id }));
                }
                Output::Store {
                    id,
                    reply,
                    partial,
                    timings,
                } => {
                    let input = self.store(id, &reply, partial, &timings).await;
                    outputs.extend(self.state.on(self.now(), input));
                }
                Output::SaveTimings { id, timings } => self.save_timings(id, &timings).await,
                Output::RecordTurn { end, first_token } => metrics::chat_turn(end, first_token),
                Output::RecordFirstAudio(at) => metrics::first_audio(at),
                Output::Finish(last) => {
                    self.place = None;
                    let event = match last {
                        None => continue,
                        Some(Last::Done(done)) => ChatStreamEvent::Done(done),
                        Some(Last::Failed { error, message_id }) => {
                            let event = ChatStreamEvent::Error(ErrorEvent {
                                code: error.code().into(),
                                message: error.to_string(),
                                message_id,
                            });
                            if let Some(failure) = self.failure.take() {
                                let _ = failure.send(error);
                            }
                            event
                        }
                    };
                    let _ = self.tx.send(event).await;
                }
            }
        }
    }

    /// Writes the reply so far to its row (inserting it when `id` is `None`); the id of an
    /// inserted row. A failure is logged and the reply goes on: the end of the turn tries
    /// again, and says so when that fails too.
    async fn save_draft(&self, id: Option<i64>, reply: &Reply) -> Option<i64> {
        let message = NewMessage {
            reasoning: reply.reasoning.as_deref(),
            emotion: reply.emotion,
            partial: true,
            lore: self.lore.as_deref(),
            ..NewMessage::new(self.session_id, Role::Assistant, &reply.text)
        };
        let written = match id {
            None => self.db.add_message(&message).await.map(|m| Some(m.id)),
            Some(id) => self.db.update_reply(id, &message).await.map(|_| None),
        };
        written.unwrap_or_else(|e| {
            tracing::warn!(error = %e, session_id = self.session_id, "saving the reply in progress failed");
            None
        })
    }

    /// Stores the reply: rewrites its row when it was written while streaming, else adds it.
    /// A failure is logged; the state says it to the receiver.
    async fn store(
        &self,
        id: Option<i64>,
        reply: &Reply,
        partial: bool,
        timings: &Timings,
    ) -> Input {
        let timings = serde_json::to_string(timings).ok();
        let message = NewMessage {
            reasoning: reply.reasoning.as_deref(),
            emotion: reply.emotion,
            partial,
            timings: timings.as_deref(),
            lore: self.lore.as_deref(),
            ..NewMessage::new(self.session_id, Role::Assistant, &reply.text)
        };
        let stored = match id {
            Some(id) => match self.db.update_reply(id, &message).await {
                Ok(true) => Ok(Some(id)),
                // Deleted while it was streaming: as the person wished, it stays deleted.
                Ok(false) => Ok(None),
                Err(e) => Err(e),
            },
            None => self.db.add_message(&message).await.map(|m| Some(m.id)),
        };
        match stored {
            Ok(stored) => Input::Stored(stored),
            Err(e) => {
                tracing::error!(error = %e, session_id = self.session_id, "storing the reply failed");
                Input::StoreFailed
            }
        }
    }

    /// Completes the stored timings with the voice stages.
    async fn save_timings(&self, id: i64, timings: &Timings) {
        let Ok(json) = serde_json::to_string(timings) else {
            return;
        };
        if let Err(e) = self.db.merge_timings(id, &json).await {
            tracing::warn!(error = %e, message_id = id, "saving the voice timings failed");
        }
    }
}
