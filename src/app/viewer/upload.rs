//! Uploading an avatar: the file goes to `POST /api/avatars/upload` with XHR, so the page can
//! show real upload progress (a server function would buffer the whole file first).

use super::AvatarsChanged;
use crate::app::upload::{post_file, Upload, UploadStatus};
use leptos::prelude::*;

/// File picker, upload button and progress bar.
#[component]
pub fn UploadForm() -> impl IntoView {
    let changed = expect_context::<AvatarsChanged>();
    let state = RwSignal::new(Upload::Idle);
    let input = NodeRef::<leptos::html::Input>::new();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(input) = input.get() else { return };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            state.set(Upload::Failed(
                "Choose a .vrm, .glb or .gltf file first.".into(),
            ));
            return;
        };
        state.set(Upload::Sending(0));
        post_file(
            "/api/avatars/upload",
            file,
            move |p| state.set(Upload::Sending(p)),
            move |answer| match answer {
                Ok(answer) => {
                    let name = answer["name"].as_str().unwrap_or("the avatar");
                    state.set(Upload::Done(format!("Added {name}.")));
                    changed.0.update(|n| *n += 1);
                }
                Err(msg) => state.set(Upload::Failed(msg)),
            },
        );
    };
    view! {
        <form class="upload" on:submit=on_submit data-testid="upload-form">
            <label for="avatar-file">"Add an avatar (.vrm, .glb, .gltf)"</label>
            <div class="row">
                <input id="avatar-file" type="file" accept=".vrm,.glb,.gltf" node_ref=input data-testid="avatar-file"/>
                <button type="submit" class="primary small" data-testid="upload-avatar"
                    disabled=move || matches!(state.get(), Upload::Sending(_))>"Upload"</button>
            </div>
            <UploadStatus state id="upload"/>
        </form>
    }
}
