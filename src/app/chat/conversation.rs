//! One conversation's messages. Older messages page in as you scroll up; a search hit opens the
//! conversation around that message, highlighted.

use super::{LiveTurn, Phase, SpeakerName};
use crate::{
    api::history::load_messages,
    app::common::ErrorBanner,
    shared::{
        history::{format_ts, Message, MessagePage, Role},
        AppError,
    },
};
use leptos::{html, prelude::*, task::spawn_local};

#[component]
pub fn Conversation(session: i64, focus: Option<i64>) -> impl IntoView {
    let live = expect_context::<LiveTurn>();
    // Reloads after each turn, to show the reply as stored (partial ones included).
    let first_page = Resource::new(
        move || (session, focus, live.finished.get()),
        |(s, f, _)| load_messages(s, None, None, f),
    );
    view! {
        <Suspense fallback=|| view! { <div class="messages empty"><p class="muted">"Loading messages…"</p></div> }>
            {move || Suspend::new(async move {
                match first_page.await {
                    Ok(page) => view! { <MessageList session page focus/> }.into_any(),
                    Err(e) => view! { <div class="messages empty"><ErrorBanner error=e/></div> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn MessageList(session: i64, page: MessagePage, focus: Option<i64>) -> impl IntoView {
    let messages = RwSignal::new(page.messages);
    let more_before = RwSignal::new(page.has_more_before);
    let more_after = RwSignal::new(page.has_more_after);
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<AppError>);
    let scroller = NodeRef::<html::Div>::new();
    let live = expect_context::<LiveTurn>();
    let speaker = expect_context::<SpeakerName>();
    let live_here = move || {
        live.session.get() == Some(session)
            && (live.phase.get() != Phase::Idle || live.stopped.get())
    };

    // Follow the reply as it grows, unless the reader has scrolled up to read something else.
    Effect::new(move |_| {
        live.reply.track();
        live.user_text.track();
        if let Some(el) = scroller.get_untracked() {
            let from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
            if from_bottom < 160 {
                el.set_scroll_top(el.scroll_height());
            }
        }
    });

    // Once shown: bring the searched-for message into view, or else the newest one.
    Effect::new(move |_| {
        let Some(el) = scroller.get() else { return };
        match focus.and_then(|id| document().get_element_by_id(&format!("msg-{id}"))) {
            Some(target) => target.scroll_into_view(),
            None => el.set_scroll_top(el.scroll_height()),
        }
    });

    let load_older = move || {
        if loading.get_untracked() || !more_before.get_untracked() {
            return;
        }
        let Some(first) = messages.with_untracked(|m| m.first().map(|m| m.id)) else {
            return;
        };
        loading.set(true);
        spawn_local(async move {
            let height_before = scroller.get_untracked().map(|el| el.scroll_height());
            match load_messages(session, Some(first), None, None).await {
                Ok(p) => {
                    more_before.set(p.has_more_before);
                    messages.update(|m| {
                        let mut older = p.messages;
                        older.append(m);
                        *m = older;
                    });
                    // Keep what the reader was looking at in place.
                    request_animation_frame(move || {
                        if let (Some(el), Some(before)) = (scroller.get_untracked(), height_before)
                        {
                            el.set_scroll_top(el.scroll_top() + el.scroll_height() - before);
                        }
                    });
                }
                Err(e) => error.set(Some(e)),
            }
            loading.set(false);
        });
    };
    let load_newer = move |_| {
        let Some(last) = messages.with_untracked(|m| m.last().map(|m| m.id)) else {
            return;
        };
        spawn_local(async move {
            match load_messages(session, None, Some(last), None).await {
                Ok(p) => {
                    more_after.set(p.has_more_after);
                    messages.update(|m| m.extend(p.messages));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let on_scroll = move |_| {
        if scroller
            .get_untracked()
            .is_some_and(|el| el.scroll_top() < 60)
        {
            load_older();
        }
    };

    view! {
        <div class="messages" node_ref=scroller on:scroll=on_scroll data-testid="messages" data-session-id=session>
            {move || more_before.get().then(|| view! {
                <button type="button" class="small load-more" data-testid="load-older" on:click=move |_| load_older()>
                    {move || if loading.get() { "Loading…" } else { "Older messages" }}
                </button>
            })}
            {move || messages.with(Vec::is_empty).then(|| view! {
                <p class="muted empty-note">"No messages in this conversation yet."</p>
            })}
            <For each=move || {
                // What the live turn shows (its message and the reply's row) is not listed twice.
                let shown_live = live_here().then(|| live.user_message_id.get()).flatten();
                messages.get().into_iter().filter(|m| shown_live.is_none_or(|id| m.id < id)).collect::<Vec<_>>()
            } key=|m| m.id let:m>
                <MessageRow message=m focused=focus/>
            </For>
            {move || live_here().then(|| view! {
                // Before the stream says the message is stored, a list loaded meanwhile may
                // already show it; once it says so, the list leaves it to this one.
                <article class="msg msg-user" data-role="user" data-testid="live-user" hidden=move || {
                    if live.user_message_id.get().is_some() {
                        return false;
                    }
                    let sent = live.user_text.get();
                    messages.with(|m| m.last().is_some_and(|l| l.role == Role::User && l.text == sent))
                }>
                    <header><span class="who">"You"</span></header>
                    <p class="text">{move || live.user_text.get()}</p>
                </article>
                <article class="msg msg-live" data-role="assistant" data-testid="live-reply"
                    data-phase=move || format!("{:?}", live.phase.get())>
                    <header>
                        <span class="who">{move || speaker.0.get()}</span>
                        {move || if live.stopped.get() {
                            view! { <span class="badge">"cut short"</span> }.into_any()
                        } else {
                            view! { <span class="typing" aria-hidden="true">"●●●"</span> }.into_any()
                        }}
                    </header>
                    <p class="text">{move || live.reply.get()}</p>
                </article>
            })}
            {move || more_after.get().then(|| view! {
                <button type="button" class="small load-more" on:click=load_newer>"Newer messages"</button>
            })}
            {move || error.get().map(|e| view! { <ErrorBanner error=e/> })}
        </div>
    }
}

#[component]
fn MessageRow(message: Message, focused: Option<i64>) -> impl IntoView {
    let speaker = expect_context::<SpeakerName>();
    let role = message.role;
    let who = move || match role {
        Role::User => "You".to_string(),
        Role::Assistant => speaker.0.get(),
        Role::System => "System".to_string(),
    };
    view! {
        <article
            id=format!("msg-{}", message.id)
            class="msg"
            class:msg-user=message.role == Role::User
            class:msg-highlight=focused == Some(message.id)
            data-role=message.role.name()
            data-message-id=message.id
        >
            <header>
                <span class="who">{who}</span>
                {message.partial.then(|| view! { <span class="badge">"cut short"</span> })}
                <time>{format_ts(message.ts)}</time>
            </header>
            // Text only: a message is never parsed as HTML.
            <p class="text">{message.text}</p>
            {(message.role == Role::Assistant && !message.lore.is_empty()).then(|| view! {
                <details class="lore-used" data-testid="lore-used">
                    <summary>{format!("Lorebook: {}", message.lore.join(", "))}</summary>
                    <p class="muted small-text">"These lorebook entries were in the prompt of this reply."</p>
                </details>
            })}
        </article>
    }
}
