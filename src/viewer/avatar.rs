//! The `<Avatar>` component: a canvas the bridge draws on, with loading progress, the reason of
//! a failure, and a fallback to the default avatar. The element carries `data-state`
//! (`loading|ready|error`), `data-vrm` (`0|1|gltf`) and, kept by the bridge, `data-mouth` (the visemes)
//! and `data-expression` (the strongest emotion on the face, empty when neutral).

use super::{ViewerCommand, ViewerEvent, ViewerHandle};
use crate::shared::avatars::DEFAULT_AVATAR_URL;
use leptos::prelude::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Loading,
    Ready,
    Error,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Ready => "ready",
            Phase::Error => "error",
        }
    }
}

/// A living 3D avatar. `url` may change: the new model replaces the old one once loaded. Pass a
/// `handle` to drive expressions and the mouth from outside.
#[component]
pub fn Avatar(
    #[prop(into)] url: Signal<String>,
    #[prop(optional)] handle: Option<ViewerHandle>,
    #[prop(optional, into)] class: String,
) -> impl IntoView {
    let handle = handle.unwrap_or_default();
    let root = NodeRef::<leptos::html::Div>::new();
    let phase = RwSignal::new(Phase::Loading);
    let vrm = RwSignal::new(String::new());
    let progress = RwSignal::new(None::<u32>);
    let error = RwSignal::new(None::<String>);
    let running = RwSignal::new(false);
    // The URL whose failure made us show the default instead.
    let fell_back = RwSignal::new(false);

    let on_event = move |event: ViewerEvent| match event {
        ViewerEvent::Progress { loaded, total } => {
            if total > 0.0 {
                progress.set(Some(((loaded / total) * 100.0).clamp(0.0, 100.0) as u32));
            }
        }
        ViewerEvent::Loaded { vrm: version, .. } => {
            vrm.set(version);
            progress.set(None);
            if !fell_back.get_untracked() {
                phase.set(Phase::Ready);
                error.set(None);
            }
        }
        ViewerEvent::Error {
            url: failed,
            message,
        } => {
            progress.set(None);
            phase.set(Phase::Error);
            error.set(Some(message));
            if failed != DEFAULT_AVATAR_URL {
                fell_back.set(true);
                let _ = handle.send(&ViewerCommand::Load {
                    url: DEFAULT_AVATAR_URL.into(),
                });
            }
        }
        ViewerEvent::ContextLost => {
            phase.set(Phase::Error);
            error.set(Some(
                "The browser took the 3D context away; the avatar comes back when it is restored."
                    .into(),
            ));
        }
        ViewerEvent::ContextRestored => {
            error.set(None);
            phase.set(Phase::Loading);
            let _ = handle.send(&ViewerCommand::Load {
                url: url.get_untracked(),
            });
        }
    };

    // Mount once the element exists (effects run only in the browser).
    Effect::new(move |_| {
        let Some(el) = root.get() else { return };
        let el: web_sys::HtmlElement = el.into();
        leptos::task::spawn_local(async move {
            match super::ffi::mount(el, on_event).await {
                Ok(viewer) => {
                    handle.attach(viewer);
                    running.set(true);
                }
                Err(e) => {
                    phase.set(Phase::Error);
                    error.set(Some(e.to_string()));
                }
            }
        });
    });
    // Load whenever the URL changes (and once the viewer runs).
    Effect::new(move |_| {
        let u = url.get();
        if !running.get() {
            return;
        }
        phase.set(Phase::Loading);
        error.set(None);
        fell_back.set(false);
        progress.set(Some(0));
        if let Err(e) = handle.send(&ViewerCommand::Load { url: u }) {
            phase.set(Phase::Error);
            error.set(Some(e.to_string()));
        }
    });
    // Free the WebGL context when the component goes (switching tabs). Only the browser has one.
    #[cfg(feature = "hydrate")]
    on_cleanup(move || handle.dispose());

    view! {
        <div
            class=format!("avatar-view {class}")
            node_ref=root
            data-testid="avatar"
            data-state=move || phase.get().as_str()
            data-vrm=move || vrm.get()
        >
            <canvas class="avatar-canvas" aria-label="3D avatar"></canvas>
            <div class="avatar-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"
                hidden=move || progress.get().is_none() || phase.get() != Phase::Loading
                aria-valuenow=move || progress.get().unwrap_or(0)>
                <div class="avatar-progress-bar" style=move || format!("width: {}%", progress.get().unwrap_or(0))></div>
                <span>"Loading the avatar…"</span>
            </div>
            <p class="avatar-error" role="alert" data-testid="avatar-error" hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
                {move || if fell_back.get() { " Showing the default avatar instead." } else { "" }}
            </p>
        </div>
    }
}
