//! The conversation list: new, rename, delete (asked first), and search over every message.

use super::{ChatCharacters, SessionsChanged};
use crate::{
    api::history::{delete_session, rename_session, search_history},
    app::common::ErrorBanner,
    app::common::Portrait,
    shared::{
        history::{format_ts, SearchHit, SessionSummary},
        AppError,
    },
};
use leptos::{ev, html, prelude::*, task::spawn_local};
use leptos_router::{hooks::use_navigate, NavigateOptions};

#[component]
pub fn Sidebar(
    selected: Memo<Option<i64>>,
    sessions: Resource<Result<Vec<SessionSummary>, AppError>>,
) -> impl IntoView {
    let changed = expect_context::<SessionsChanged>().0;
    let query = RwSignal::new(String::new());
    let results = Resource::new(
        move || query.get(),
        |q| async move {
            if q.trim().is_empty() {
                Ok(Vec::new())
            } else {
                search_history(q).await
            }
        },
    );
    let search_box = NodeRef::<html::Input>::new();
    let error = RwSignal::new(None::<AppError>);

    // "/" anywhere outside a text field jumps to the search box.
    let handle = window_event_listener(ev::keydown, move |e| {
        let typing = e
            .target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        if e.key() == "/" && !typing {
            e.prevent_default();
            if let Some(input) = search_box.get() {
                let _ = input.focus();
            }
        }
    });
    on_cleanup(move || handle.remove());

    let navigate = use_navigate();
    let new_session = move |_| {
        let navigate = navigate.clone();
        spawn_local(async move {
            if let Err(e) = super::open_new_session(changed, navigate).await {
                error.set(Some(e));
            }
        });
    };

    view! {
        <aside class="card sessions" aria-label="Conversations">
            <div class="sessions-head">
                <h2>"Conversations"</h2>
                <button type="button" class="primary small" data-testid="new-session" on:click=new_session>
                    "New"
                </button>
            </div>
            <div class="search">
                <label class="visually-hidden" for="history-search">"Search all messages"</label>
                <input
                    id="history-search"
                    type="search"
                    node_ref=search_box
                    placeholder="Search messages  ( / )"
                    autocomplete="off"
                    data-testid="history-search"
                    prop:value=move || query.get()
                    on:input=move |e| query.set(event_target_value(&e))
                    on:keydown=move |e| {
                        if e.key() == "Escape" {
                            query.set(String::new());
                        }
                    }
                />
            </div>
            {move || error.get().map(|e| view! { <ErrorBanner error=e/> })}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    if query.with(|q| q.trim().is_empty()) {
                        Suspend::new(async move {
                            match sessions.await {
                                Ok(list) => view! { <SessionList list selected error/> }.into_any(),
                                Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
                            }
                        })
                        .into_any()
                    } else {
                        Suspend::new(async move {
                            match results.await {
                                Ok(hits) => view! { <SearchResults hits/> }.into_any(),
                                Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
                            }
                        })
                        .into_any()
                    }
                }}
            </Transition>
        </aside>
    }
}

#[component]
fn SessionList(
    list: Vec<SessionSummary>,
    selected: Memo<Option<i64>>,
    error: RwSignal<Option<AppError>>,
) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="muted" data-testid="no-sessions">"No conversations yet."</p> }
            .into_any();
    }
    view! {
        <ul class="session-list" data-testid="session-list">
            {list.into_iter().map(|s| view! { <SessionItem session=s selected error/> }).collect_view()}
        </ul>
    }
    .into_any()
}

/// One conversation: a link, with rename and delete (which asks first).
#[component]
fn SessionItem(
    session: SessionSummary,
    selected: Memo<Option<i64>>,
    error: RwSignal<Option<AppError>>,
) -> impl IntoView {
    let changed = expect_context::<SessionsChanged>().0;
    let navigate = use_navigate();
    let id = session.id;
    let editing = RwSignal::new(false);
    let confirming = RwSignal::new(false);
    let title = RwSignal::new(session.title.clone());

    let save_title = move |e: ev::SubmitEvent| {
        e.prevent_default();
        let new_title = title.get_untracked();
        spawn_local(async move {
            match rename_session(id, new_title).await {
                Ok(()) => {
                    editing.set(false);
                    changed.update(|n| *n += 1);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let really_delete = move |_| {
        let navigate = navigate.clone();
        spawn_local(async move {
            match delete_session(id).await {
                Ok(()) => {
                    if selected.get_untracked() == Some(id) {
                        navigate("/chat", NavigateOptions::default());
                    }
                    changed.update(|n| *n += 1);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let characters = expect_context::<ChatCharacters>();
    let character_id = session.character_id;
    let character = move || character_id.and_then(|c| characters.find(c));
    let meta = format!(
        "{} message{} · {}",
        session.message_count,
        if session.message_count == 1 { "" } else { "s" },
        format_ts(session.last_ts)
    );
    view! {
        <li class="session" class:active=move || selected.get() == Some(id) data-session-id=id>
            {move || {
                if editing.get() {
                    view! {
                        <form class="rename" on:submit=save_title>
                            <label class="visually-hidden" for=format!("rename-{id}")>"New title"</label>
                            <input
                                id=format!("rename-{id}")
                                data-testid="rename-input"
                                prop:value=move || title.get()
                                on:input=move |e| title.set(event_target_value(&e))
                                maxlength="200"
                            />
                            <button type="submit" class="small primary">"Save"</button>
                            <button type="button" class="small" on:click=move |_| editing.set(false)>"Cancel"</button>
                        </form>
                    }
                    .into_any()
                } else if confirming.get() {
                    view! {
                        <div class="confirm" role="alertdialog" aria-label="Delete conversation">
                            <span>"Delete “" {title.get()} "” and all its messages?"</span>
                            <button type="button" class="small danger" data-testid="confirm-delete" on:click=really_delete.clone()>
                                "Delete"
                            </button>
                            <button type="button" class="small" on:click=move |_| confirming.set(false)>"Keep"</button>
                        </div>
                    }
                    .into_any()
                } else {
                    view! {
                        <a class="session-link" href=format!("/chat?session={id}")>
                            <span class="session-title">{move || title.get()}</span>
                            {move || character().map(|c| view! {
                                <span class="session-character" data-testid="session-character" data-character-id=c.id>
                                    <Portrait id=c.id name=c.name.clone() has_portrait=c.has_portrait version=c.updated_ts small=true/>
                                    <span class="session-character-name">{c.name}</span>
                                </span>
                            })}
                            <span class="session-meta">{meta.clone()}</span>
                        </a>
                        <div class="session-actions">
                            <button type="button" class="icon" title="Rename" aria-label="Rename" data-testid="rename" on:click=move |_| editing.set(true)>
                                "✎"
                            </button>
                            <button type="button" class="icon" title="Delete" aria-label="Delete" data-testid="delete" on:click=move |_| confirming.set(true)>
                                "✕"
                            </button>
                        </div>
                    }
                    .into_any()
                }
            }}
        </li>
    }
}

#[component]
fn SearchResults(hits: Vec<SearchHit>) -> impl IntoView {
    if hits.is_empty() {
        return view! { <p class="muted" data-testid="no-results">"Nothing found."</p> }.into_any();
    }
    view! {
        <ul class="search-results" data-testid="search-results">
            {hits
                .into_iter()
                .map(|h| {
                    view! {
                        <li>
                            <a class="hit" href=format!("/chat?session={}&message={}", h.session_id, h.message_id) data-message-id=h.message_id>
                                <span class="session-title">{h.session_title}</span>
                                <span class="session-meta">{format_ts(h.ts)}</span>
                                <span class="snippet">
                                    {h
                                        .snippet_parts
                                        .into_iter()
                                        .map(|p| {
                                            if p.mark {
                                                view! { <mark>{p.text}</mark> }.into_any()
                                            } else {
                                                p.text.into_any()
                                            }
                                        })
                                        .collect_view()}
                                </span>
                            </a>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}
