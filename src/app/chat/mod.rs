//! The Chat tab: the conversation list with search on the left, the selected conversation on the
//! right. The selection lives in the address (`/chat?session=N&message=M`), so reload and the
//! back button keep it.

mod conversation;
mod sidebar;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

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
                    <form class="composer" on:submit=|ev| ev.prevent_default()>
                        <label class="visually-hidden" for="composer-text">"Message"</label>
                        <textarea
                            id="composer-text"
                            rows="2"
                            disabled
                            placeholder="Replies need a language model, which this build does not have yet."
                        ></textarea>
                        <button type="submit" class="primary" disabled>"Send"</button>
                    </form>
                </div>
                <super::viewer::AvatarPane/>
            </div>
        </section>
    }
}
