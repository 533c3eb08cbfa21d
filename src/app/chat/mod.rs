//! The Chat tab: the conversation list with search on the left, the selected conversation on the
//! right. The selection lives in the address (`/chat?session=N&message=M`), so reload and the
//! back button keep it.

mod conversation;
mod listening;
mod live;
mod mic;
mod playlist;
mod request;
mod sidebar;
mod voice;

use crate::{
    api::{
        characters::list_characters,
        get_output_mode, get_voice_input,
        history::{create_session, list_sessions},
        set_input_mode, set_output_mode, warm_up_llm,
    },
    app::common::ErrorBanner,
    shared::{
        config::{InputMode, OutputMode},
        history::Character,
        AppError,
    },
    viewer::ViewerHandle,
};
use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::{
    hooks::{use_navigate, use_query_map},
    NavigateOptions,
};
use live::Spoken;
pub use live::{LiveTurn, Phase};
use mic::{Mic, MicState};
use voice::Voice;

/// Bumped after every change to the list of sessions, so the list reloads.
#[derive(Clone, Copy)]
pub struct SessionsChanged(pub RwSignal<u32>);

/// Every character, for the names and portraits beside conversations bound to one.
#[derive(Clone, Copy)]
pub struct ChatCharacters(Resource<Result<Vec<Character>, AppError>>);

impl ChatCharacters {
    /// The character with this id, once the list has loaded.
    pub fn find(self, id: i64) -> Option<Character> {
        self.0.get()?.ok()?.into_iter().find(|c| c.id == id)
    }
}

/// Who answers in the open conversation, by name: its character, else the default one.
#[derive(Clone, Copy)]
pub struct SpeakerName(pub Signal<String>);

/// The Chat tab.
#[component]
pub fn ChatTab() -> impl IntoView {
    let query = use_query_map();
    let selected = Memo::new(move |_| {
        query
            .read()
            .get("session")
            .and_then(|s| s.parse::<i64>().ok())
    });
    let focus = Memo::new(move |_| {
        query
            .read()
            .get("message")
            .and_then(|s| s.parse::<i64>().ok())
    });
    let changed = SessionsChanged(RwSignal::new(0));
    provide_context(changed);
    let sessions = Resource::new(move || changed.0.get(), |_| list_sessions());
    let characters = ChatCharacters(Resource::new(|| (), |_| list_characters()));
    provide_context(characters);
    // A conversation with a character who has an avatar of their own shows it.
    let character_avatar = Signal::derive(move || {
        let id = selected.get()?;
        let character_id = sessions
            .get()?
            .ok()?
            .into_iter()
            .find(|s| s.id == id)?
            .character_id?;
        characters
            .find(character_id)?
            .avatar_url
            .filter(|url| !url.is_empty())
    });
    provide_context(SpeakerName(Signal::derive(move || {
        let id = selected.get();
        let character_id = id
            .and_then(|id| {
                sessions
                    .get()?
                    .ok()?
                    .into_iter()
                    .find(|s| s.id == id)?
                    .character_id
            })
            .unwrap_or(1);
        characters
            .find(character_id)
            .map(|c| c.name)
            .unwrap_or_else(|| "Companion".into())
    })));
    let avatar = ViewerHandle::new();
    let voice = Voice::new(avatar);
    let live = LiveTurn::new(voice);
    provide_context(live);
    let mic = Mic::new(live);
    provide_context(mic);
    // Whether replies are spoken (`output_mode`) and how the person talks (`input_mode`) are
    // settings; the browser asks once.
    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(mode) = get_output_mode().await {
                voice.enabled.set(mode == OutputMode::TextVoice);
            }
        });
        spawn_local(async move {
            if let Ok(v) = get_voice_input().await {
                mic.barge_in.set(v.barge_in);
                mic.mode.set(v.input_mode);
            }
        });
    });
    on_cleanup(move || mic.stop_listening());
    view! {
        <section class="tab chat" data-testid="tab-chat">
            <h1 class="visually-hidden">"Chat"</h1>
            <div class="chat-layout">
                <sidebar::Sidebar selected sessions/>
                <div class="card conversation">
                    {move || match selected.get() {
                        Some(id) => view! { <conversation::Conversation session=id focus=focus.get()/> }.into_any(),
                        None => view! {
                            <div class="messages empty" data-testid="no-session">
                                <p class="muted">"Pick a conversation on the left, or start a new one."</p>
                            </div>
                        }
                        .into_any(),
                    }}
                    <Composer selected/>
                </div>
                <super::viewer::AvatarPane handle=avatar character_avatar/>
            </div>
        </section>
    }
}

/// Creates a conversation, refreshes the list and opens it; answers its id.
async fn open_new_session(
    changed: RwSignal<u32>,
    navigate: impl Fn(&str, NavigateOptions),
) -> Result<i64, crate::shared::AppError> {
    let s = create_session(None, None, None).await?;
    changed.update(|n| *n += 1);
    navigate(
        &format!("/chat?session={}", s.id),
        NavigateOptions::default(),
    );
    Ok(s.id)
}

/// The message box: Enter sends, Shift+Enter starts a new line, Stop ends the reply early.
#[component]
fn Composer(selected: Memo<Option<i64>>) -> impl IntoView {
    let live = expect_context::<LiveTurn>();
    let changed = expect_context::<SessionsChanged>().0;
    let navigate = use_navigate();
    let text = RwSignal::new(String::new());
    let voice = live.voice;
    let mic = expect_context::<Mic>();
    // The transcript a voice turn was sent with: it stays in the box while the reply comes, and
    // goes when the turn ends unless the person has typed over it.
    let spoken_text = RwSignal::new(None::<String>);
    let send_as = move |message: String, spoken: Option<Spoken>| {
        if message.is_empty() || live.phase.get_untracked() != Phase::Idle {
            return;
        }
        // Sending is a user gesture: the moment the browser allows sound to start.
        if voice.enabled.get_untracked() {
            voice.unlock();
        }
        if spoken.is_some() {
            text.set(message.clone());
            spoken_text.set(Some(message.clone()));
        } else {
            text.set(String::new());
            spoken_text.set(None);
        }
        match selected.get_untracked() {
            Some(session) => live.send(session, message, spoken),
            None => {
                // No conversation open: start one, open it, then send.
                let navigate = navigate.clone();
                spawn_local(async move {
                    match open_new_session(changed, navigate).await {
                        Ok(id) => live.send(id, message, spoken),
                        Err(e) => live.error.set(Some(e)),
                    }
                });
            }
        }
    };
    let send = {
        let send_as = send_as.clone();
        move || send_as(text.get_untracked().trim().to_string(), None)
    };
    // What the microphone heard is sent as soon as no turn is in progress (a barge-in ends the
    // one that was).
    Effect::new(move |_| {
        if mic.heard.with(Option::is_none) || live.phase.get() != Phase::Idle {
            return;
        }
        if let Some(u) = mic.heard.try_update(Option::take).flatten() {
            send_as(
                u.text,
                Some(Spoken {
                    speech_end_at: u.speech_end_at,
                    asr_done_at: u.asr_done_at,
                }),
            );
        }
    });
    Effect::new(move |was_idle: Option<bool>| {
        let idle = live.phase.get() == Phase::Idle;
        // Only when a turn ends: a new conversation is created before its first turn starts.
        if idle && was_idle == Some(false) {
            if let Some(t) = spoken_text.get_untracked() {
                spoken_text.set(None);
                if text.get_untracked() == t {
                    text.set(String::new());
                }
            }
        }
        idle
    });
    let talking_by_space = RwSignal::new(false);
    let send_on_enter = {
        let send = send.clone();
        move |e: ev::KeyboardEvent| {
            if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
                e.prevent_default();
                send();
            } else if mic.mode.get_untracked() == InputMode::PushToTalk
                && listening::space_talks(
                    &e.key(),
                    e.repeat(),
                    e.is_composing(),
                    text.with_untracked(|t| t.is_empty()),
                )
            {
                e.prevent_default();
                talking_by_space.set(true);
                mic.press();
            } else if e.key() == " " && talking_by_space.get_untracked() {
                // Held Space repeats: no spaces while talking.
                e.prevent_default();
            }
        }
    };
    let release_space = move |e: ev::KeyboardEvent| {
        if e.key() == " " && talking_by_space.get_untracked() {
            e.prevent_default();
            talking_by_space.set(false);
            mic.release();
        }
    };
    // Each finished turn changes the message count and order of the sessions list.
    Effect::new(move |prev: Option<u32>| {
        let n = live.finished.get();
        if prev.is_some_and(|p| p != n) {
            changed.update(|c| *c += 1);
        }
        n
    });
    let status = move || match live.phase.get() {
        Phase::Idle | Phase::Streaming if voice.speaking.get() => Some("Speaking…".to_string()),
        Phase::Idle => None,
        Phase::Waiting => Some("Thinking…".to_string()),
        Phase::LoadingModel(p) => Some(format!("Loading the built-in model… {p}%")),
        Phase::Streaming => Some("Replying…".to_string()),
    };
    view! {
        {move || live.error.get().map(|e| view! { <ErrorBanner error=e/> })}
        <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
            <label class="visually-hidden" for="composer-text">"Message"</label>
            <textarea
                id="composer-text"
                data-testid="composer"
                rows="2"
                placeholder="Say something… (Enter sends, Shift+Enter for a new line)"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                class:from-voice=move || spoken_text.with(Option::is_some)
                on:keydown=send_on_enter
                on:keyup=release_space
                on:focus=move |_| spawn_local(async { let _ = warm_up_llm().await; })
            ></textarea>
            <div class="composer-actions">
                <MicButton mic/>
                <InputModeSwitch mic/>
                <VoiceToggle voice/>
                <button type="button" class="voice-unlock" data-testid="voice-unlock"
                    hidden=move || !(voice.enabled.get() && voice.locked.get())
                    on:click=move |_| voice.unlock()>"Click to enable voice"</button>
                <span class="muted small-text" data-testid="turn-status" aria-live="polite">{status}</span>
                {move || if live.busy() || voice.speaking.get() {
                    view! {
                        <button type="button" class="danger" data-testid="stop" on:click=move |_| live.stop()>"Stop"</button>
                    }.into_any()
                } else {
                    view! {
                        <button type="submit" class="primary" data-testid="send" disabled=move || text.with(|t| t.trim().is_empty())>"Send"</button>
                    }.into_any()
                }}
            </div>
            <MicNotice mic/>
        </form>
    }
}

/// The microphone: held to talk (pointer, touch or Space), or hands-free's on/off switch. A
/// level meter shows what it hears.
#[component]
fn MicButton(mic: Mic) -> impl IntoView {
    let hands_free = move || mic.mode.get() == InputMode::HandsFree;
    let pressed = RwSignal::new(false);
    let down = move |e: ev::PointerEvent| {
        if hands_free() || e.button() != 0 {
            return;
        }
        e.prevent_default();
        // Keeps the release coming here even when the pointer slides off the button.
        if let Some(el) = e
            .current_target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
        {
            let _ = el.set_pointer_capture(e.pointer_id());
        }
        pressed.set(true);
        mic.press();
    };
    let up = move |_| {
        if pressed.get_untracked() {
            pressed.set(false);
            mic.release();
        }
    };
    let click = move |_| {
        if !hands_free() {
            return;
        }
        if mic.hands_free_on() || mic.state.get_untracked() == MicState::Starting {
            mic.stop_listening();
        } else {
            mic.listen();
        }
    };
    let label = move || match (hands_free(), mic.state.get()) {
        (_, MicState::Starting) => "Starting the microphone…",
        (_, MicState::Transcribing) => "Listening to what you said…",
        (true, MicState::Off) => "Start listening",
        (true, MicState::Paused) => "Paused while the avatar speaks",
        (true, MicState::Recording) => "Hearing you…",
        (true, _) => "Listening: just talk (click to stop)",
        (false, MicState::Recording) => "Recording: release to send",
        (false, _) => "Hold to talk (or hold Space in the empty box)",
    };
    let metered = move || matches!(mic.state.get(), MicState::Recording | MicState::Listening);
    view! {
        <button
            type="button"
            class="mic"
            data-testid="mic"
            hidden=move || mic.mode.get() == InputMode::Text
            data-state=move || mic.state.get().name()
            aria-pressed=move || (mic.state.get() == MicState::Recording || mic.hands_free_on()).to_string()
            aria-label=label
            title=label
            on:pointerdown=down
            on:pointerup=up
            on:pointercancel=up
            on:click=click
            on:contextmenu=|e| e.prevent_default()
        >
            <svg class="mic-icon" viewBox="0 0 24 24" aria-hidden="true">
                <rect x="9" y="3" width="6" height="11" rx="3"></rect>
                <path d="M6 11a6 6 0 0 0 12 0M12 17v4M9 21h6"></path>
            </svg>
            <span class="mic-level" data-testid="mic-level" hidden=move || !metered() aria-hidden="true">
                <span class="mic-level-fill" style:width=move || format!("{:.0}%", mic.level.get() * 100.0)></span>
            </span>
        </button>
    }
}

/// How the person talks: typing, push-to-talk or hands-free; saved as the `input_mode` setting.
#[component]
fn InputModeSwitch(mic: Mic) -> impl IntoView {
    let saving = RwSignal::new(false);
    let change = move |ev: ev::Event| {
        let mode = match event_target_value(&ev).as_str() {
            "push_to_talk" => InputMode::PushToTalk,
            "hands_free" => InputMode::HandsFree,
            _ => InputMode::Text,
        };
        let before = mic.mode.get_untracked();
        mic.mode.set(mode);
        mic.notice.set(None);
        // Choosing hands-free is the gesture that lets the detector's audio start.
        if mode == InputMode::HandsFree {
            mic.listen();
        } else if before == InputMode::HandsFree {
            mic.stop_listening();
        }
        saving.set(true);
        spawn_local(async move {
            if let Ok(saved) = set_input_mode(mode).await {
                mic.mode.set(saved);
            }
            saving.set(false);
        });
    };
    let option = move |mode: InputMode, value: &'static str, label: &'static str| {
        view! { <option value=value selected=move || mic.mode.get() == mode>{label}</option> }
    };
    view! {
        <label class="visually-hidden" for="input-mode">"How you talk"</label>
        <select id="input-mode" class="input-mode" data-testid="input-mode"
            disabled=move || saving.get()
            prop:value=move || match mic.mode.get() {
                InputMode::Text => "text",
                InputMode::PushToTalk => "push_to_talk",
                InputMode::HandsFree => "hands_free",
            }
            on:change=change>
            {option(InputMode::Text, "text", "Type")}
            {option(InputMode::PushToTalk, "push_to_talk", "Hold to talk")}
            {option(InputMode::HandsFree, "hands_free", "Hands-free")}
        </select>
    }
}

/// The microphone's last problem or hint, in plain words; empty most of the time.
#[component]
fn MicNotice(mic: Mic) -> impl IntoView {
    // Half-duplex: hands-free listening pauses while the avatar speaks, unless barge-in is on.
    let live = expect_context::<LiveTurn>();
    Effect::new(move |_| {
        let listens = listening::hands_free_listens(live.voice.speaking.get(), mic.barge_in.get());
        mic.hold_listening(!listens);
    });
    view! {
        {move || mic.notice.get().map(|n| {
            let hint = n.code == "asr_silence";
            view! {
                <p class="mic-notice" class:mic-hint=hint class:mic-error=!hint
                    role=if hint { "status" } else { "alert" }
                    data-testid="mic-notice" data-code=n.code.clone()>
                    {n.message.clone()}
                </p>
            }
        })}
    }
}

/// Speaks replies or not; saved as the `output_mode` setting.
#[component]
fn VoiceToggle(voice: Voice) -> impl IntoView {
    let saving = RwSignal::new(false);
    let toggle = move |_| {
        let on = !voice.enabled.get_untracked();
        voice.enabled.set(on);
        if on {
            voice.unlock();
        } else {
            voice.cut();
        }
        saving.set(true);
        let mode = if on {
            OutputMode::TextVoice
        } else {
            OutputMode::Text
        };
        spawn_local(async move {
            // The switch shows what is saved: a refused save puts it back.
            match set_output_mode(mode).await {
                Ok(saved) => voice.enabled.set(saved == OutputMode::TextVoice),
                Err(_) => voice.enabled.set(!on),
            }
            saving.set(false);
        });
    };
    view! {
        <button type="button" class="voice-toggle" data-testid="voice-toggle"
            aria-pressed=move || voice.enabled.get().to_string()
            disabled=move || saving.get()
            title="Speak replies aloud"
            on:click=toggle>
            <span class="voice-dot" aria-hidden="true"></span>
            {move || if voice.enabled.get() { "Voice on" } else { "Voice off" }}
        </button>
    }
}
