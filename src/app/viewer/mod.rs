//! The Viewer tab: the avatar, and the avatars folder (list, upload with progress, delete,
//! choose the active one). `/viewer?url=<avatar url>` shows just that avatar, with the same
//! fallback to the default when it cannot be loaded.

mod upload;

use crate::api::avatars::{active_avatar_url, delete_avatar, list_avatars, set_active_avatar};
use crate::shared::avatars::{AvatarInfo, AvatarList, DEFAULT_AVATAR_URL};
use crate::viewer::{Avatar, ViewerHandle};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// Reloads the list of avatars when bumped.
#[derive(Clone, Copy)]
struct AvatarsChanged(RwSignal<u32>);

/// The Viewer tab.
#[component]
pub fn ViewerTab() -> impl IntoView {
    let query = use_query_map();
    let standalone = Memo::new(move |_| query.read().get("url").filter(|u| !u.is_empty()));
    view! {
        {move || match standalone.get() {
            Some(url) => {
                let shown = url.clone();
                view! {
                <section class="tab viewer standalone" data-testid="tab-viewer">
                    <h1 class="visually-hidden">"Avatar"</h1>
                    <Avatar url=url class="viewer-stage"/>
                    <p class="muted small">"Showing " <code>{shown}</code> ". " <a href="/viewer">"Manage avatars"</a></p>
                </section>
                }
                .into_any()
            }
            None => view! { <ManagedViewer/> }.into_any(),
        }}
    }
}

/// The active avatar beside the list of avatars.
#[component]
fn ManagedViewer() -> impl IntoView {
    let changed = AvatarsChanged(RwSignal::new(0));
    provide_context(changed);
    let list = Resource::new(move || changed.0.get(), |_| list_avatars());
    let active_url = Memo::new(move |_| {
        list.get()
            .and_then(Result::ok)
            .map(|l| l.active_url())
            .unwrap_or_else(|| DEFAULT_AVATAR_URL.to_string())
    });
    view! {
        <section class="tab viewer" data-testid="tab-viewer">
            <h1>"Viewer"</h1>
            <div class="viewer-layout">
                <Avatar url=active_url class="viewer-stage card"/>
                <div class="card avatars">
                    <h2>"Avatars"</h2>
                    <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                        {move || list.get().map(|r| match r {
                            Ok(l) => view! { <AvatarTable list=l/> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.message}</p> }.into_any(),
                        })}
                    </Transition>
                    <upload::UploadForm/>
                </div>
            </div>
        </section>
    }
}

/// One row per avatar: name, kind, size, use, delete.
#[component]
fn AvatarTable(list: AvatarList) -> impl IntoView {
    let changed = expect_context::<AvatarsChanged>();
    let problem = RwSignal::new(None::<String>);
    let rows = list
        .avatars
        .into_iter()
        .map(|a| {
            let active = a.name == list.active;
            view! { <AvatarRow avatar=a active problem changed/> }
        })
        .collect_view();
    view! {
        <ul class="avatar-list" data-testid="avatar-list">{rows}</ul>
        <Show when=move || problem.get().is_some()>
            <p class="error" role="alert">{move || problem.get().unwrap_or_default()}</p>
        </Show>
    }
}

#[component]
fn AvatarRow(
    avatar: AvatarInfo,
    active: bool,
    problem: RwSignal<Option<String>>,
    changed: AvatarsChanged,
) -> impl IntoView {
    let AvatarInfo {
        name,
        size,
        kind,
        default,
        ..
    } = avatar;
    let use_name = name.clone();
    let choose = move |_| {
        let name = use_name.clone();
        leptos::task::spawn_local(async move {
            match set_active_avatar(name).await {
                Ok(()) => changed.0.update(|n| *n += 1),
                Err(e) => problem.set(Some(e.message)),
            }
        });
    };
    let delete_name = name.clone();
    let remove = move |_| {
        let name = delete_name.clone();
        let sure = window()
            .confirm_with_message(&format!("Delete the avatar {name}? This cannot be undone."))
            .unwrap_or(false);
        if !sure {
            return;
        }
        leptos::task::spawn_local(async move {
            match delete_avatar(name).await {
                Ok(()) => changed.0.update(|n| *n += 1),
                Err(e) => problem.set(Some(e.message)),
            }
        });
    };
    view! {
        <li class:active=active data-name=name.clone() data-kind=kind.as_str()>
            <span class="avatar-name">{name.clone()}</span>
            <span class="badge">{kind.label()}</span>
            <span class="muted small">{format_size(size)}</span>
            <span class="avatar-actions">
                <span class="badge ok" hidden=!active>"shown"</span>
                <button type="button" class="small" data-testid="use-avatar" hidden=active on:click=choose>"Use"</button>
                {(!default).then(|| view! {
                    <button type="button" class="small danger" data-testid="delete-avatar" on:click=remove>"Delete"</button>
                })}
            </span>
        </li>
    }
}

/// `12.3 MB` / `45 KB`, with integer arithmetic (float formatting is large in WASM).
fn format_size(bytes: u64) -> String {
    let tenths_mb = (bytes * 10).div_ceil(1024 * 1024);
    if tenths_mb >= 10 {
        format!("{}.{} MB", tenths_mb / 10, tenths_mb % 10)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// The avatar beside the conversation on the Chat tab: the conversation's character's own, else
/// the configured one. Pass a handle to drive its expressions and mouth (lip sync).
#[component]
pub fn AvatarPane(
    #[prop(optional)] handle: Option<ViewerHandle>,
    /// The avatar of the conversation's character, which wins over the configured one.
    #[prop(optional, into)]
    character_avatar: Option<Signal<Option<String>>>,
) -> impl IntoView {
    let active = Resource::new(|| (), |_| active_avatar_url());
    let url = Memo::new(move |_| {
        character_avatar
            .and_then(|a| a.get())
            .or_else(|| active.get().and_then(Result::ok))
            .unwrap_or_else(|| DEFAULT_AVATAR_URL.to_string())
    });
    let handle = handle.unwrap_or_default();
    view! {
        <aside class="card chat-avatar" aria-label="Avatar">
            <Avatar url handle/>
        </aside>
    }
}
