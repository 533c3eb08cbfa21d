//! The Chat tab: the conversation list and the conversation. Until a language model is wired in,
//! it says so instead of pretending to answer.

use leptos::prelude::*;

/// The Chat tab.
#[component]
pub fn ChatTab() -> impl IntoView {
    view! {
        <section class="tab chat" data-testid="tab-chat">
            <h1 class="visually-hidden">"Chat"</h1>
            <div class="chat-layout">
                <aside class="card sessions" aria-label="Conversations">
                    <h2>"Conversations"</h2>
                    <p class="muted">"No conversations yet."</p>
                </aside>
                <div class="card conversation">
                    <div class="messages empty">
                        <p class="muted">"Chat is not available in this build yet: there is no language model to answer."</p>
                    </div>
                    <form class="composer" on:submit=|ev| ev.prevent_default()>
                        <label class="visually-hidden" for="composer-text">"Message"</label>
                        <textarea id="composer-text" rows="2" disabled placeholder="Type a message…"></textarea>
                        <button type="submit" class="primary" disabled>"Send"</button>
                    </form>
                </div>
            </div>
        </section>
    }
}
