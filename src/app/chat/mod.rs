//! The Chat tab: the conversation list with search on the left, the selected conversation on the
//! right. The selection lives in the address (`/chat?session=N&message=M`), so reload and the
//! back button keep it.

mod conversation;
mod live;
mod playlist;
mod request;
mod sidebar;
mod voice;

use crate::{
    api::{get_output_mode, history::create_session, set_output_mode, warm_up_llm},
    app::common::ErrorBanner,
    shared::config::OutputMode,
    viewer::ViewerHandle,
};
use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::{
    hooks::{use_navigate, use_query_map},
    NavigateOptions,
};
pub use live::{LiveTurn, Phase};
use voice::Voice;

/// Bumped after every change to the list of sessions, so the list reloads.
#[derive(Clone, Copy)]
pub struct SessionsChanged(pub RwSignal<u32>);

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
    provide_context(SessionsChanged(RwSignal::new(0)));
    let avatar = ViewerHandle::new();
    let voice = Voice::new(avatar);
    provide_context(LiveTurn::new(voice));
    // Whether replies are spoken is a setting (`output_mode`); the browser asks once.
    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(mode) = get_output_mode().await {
                voice.enabled.set(mode == OutputMode::TextVoice);
            }
        });
    });
    view! {
        <section class="tab chat" data-testid="tab-chat">
            <h1 class="visually-hidden">"Chat"</h1>
            <div class="chat-layout">
                <sidebar::Sidebar selected/>
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
                <super::viewer::AvatarPane handle=avatar/>
            </div>
        </section>
    }
}

/// Creates a conversation, refreshes the list and opens it; answers its id.
async fn open_new_session(
    changed: RwSignal<u32>,
    navigate: impl Fn(&str, NavigateOptions),
) -> Result<i64, crate::shared::AppError> {
    let s = create_session(None).await?;
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
    let send = move || {
        let message = text.get_untracked().trim().to_string();
        if message.is_empty() || live.phase.get_untracked() != Phase::Idle {
            return;
        }
        // Sending is a user gesture: the moment the browser allows sound to start.
        if voice.enabled.get_untracked() {
            voice.unlock();
        }
        text.set(String::new());
        match selected.get_untracked() {
            Some(session) => live.send(session, message),
            None => {
                // No conversation open: start one, open it, then send.
                let navigate = navigate.clone();
                spawn_local(async move {
                    match open_new_session(changed, navigate).await {
                        Ok(id) => live.send(id, message),
                        Err(e) => live.error.set(Some(e)),
                    }
                });
            }
        }
    };
    let send_on_enter = {
        let send = send.clone();
        move |e: ev::KeyboardEvent| {
            if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
                e.prevent_default();
                send();
            }
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
                on:keydown=send_on_enter
                on:focus=move |_| spawn_local(async { let _ = warm_up_llm().await; })
            ></textarea>
            <div class="composer-actions">
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
        </form>
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
