//! The Chat tab: the conversation list with search on the left, the selected conversation on the
//! right. The selection lives in the address (`/chat?session=N&message=M`), so reload and the
//! back button keep it.

mod conversation;
mod live;
mod sidebar;

use crate::{
    api::{history::create_session, warm_up_llm},
    app::common::ErrorBanner,
};
use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::{
    hooks::{use_navigate, use_query_map},
    NavigateOptions,
};
pub use live::{LiveTurn, Phase};

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
    provide_context(LiveTurn::new());
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
                <super::viewer::AvatarPane/>
            </div>
        </section>
    }
}

/// The message box: Enter sends, Shift+Enter starts a new line, Stop ends the reply early.
#[component]
fn Composer(selected: Memo<Option<i64>>) -> impl IntoView {
    let live = expect_context::<LiveTurn>();
    let changed = expect_context::<SessionsChanged>().0;
    let navigate = use_navigate();
    let text = RwSignal::new(String::new());
    let send = move || {
        let message = text.get_untracked().trim().to_string();
        if message.is_empty() || live.phase.get_untracked() != Phase::Idle {
            return;
        }
        text.set(String::new());
        match selected.get_untracked() {
            Some(session) => live.send(session, message),
            None => {
                // No conversation open: start one, open it, then send.
                let navigate = navigate.clone();
                spawn_local(async move {
                    match create_session(None).await {
                        Ok(s) => {
                            changed.update(|n| *n += 1);
                            navigate(
                                &format!("/chat?session={}", s.id),
                                NavigateOptions::default(),
                            );
                            live.send(s.id, message);
                        }
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
                <span class="muted small-text" data-testid="turn-status" aria-live="polite">{status}</span>
                {move || if live.busy() {
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
