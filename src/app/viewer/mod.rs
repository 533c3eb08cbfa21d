//! The Viewer tab: where the avatar is shown and managed.

use leptos::prelude::*;

/// The Viewer tab.
#[component]
pub fn ViewerTab() -> impl IntoView {
    view! {
        <section class="tab viewer" data-testid="tab-viewer">
            <h1>"Viewer"</h1>
            <div class="viewer-frame card" data-state="empty">
                <p class="muted">"No avatar is loaded: the 3D viewer is not part of this build yet."</p>
            </div>
        </section>
    }
}
