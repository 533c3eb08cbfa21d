//! Uploading an avatar: the file goes to `POST /api/avatars/upload` with XHR, so the page can
//! show real upload progress (a server function would buffer the whole file first).

use super::AvatarsChanged;
use leptos::prelude::*;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Upload {
    Idle,
    Sending(u32),
    Done(String),
    Failed(String),
}

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
        send(file, state, changed);
    };
    view! {
        <form class="upload" on:submit=on_submit data-testid="upload-form">
            <label for="avatar-file">"Add an avatar (.vrm, .glb, .gltf)"</label>
            <div class="row">
                <input id="avatar-file" type="file" accept=".vrm,.glb,.gltf" node_ref=input data-testid="avatar-file"/>
                <button type="submit" class="primary small" data-testid="upload-avatar"
                    disabled=move || matches!(state.get(), Upload::Sending(_))>"Upload"</button>
            </div>
            // One fixed structure with reactive attributes: cheaper in the WASM than a view per state.
            <progress max="100" data-testid="upload-progress"
                hidden=move || !matches!(state.get(), Upload::Sending(_))
                value=move || match state.get() { Upload::Sending(p) => p, _ => 0 }></progress>
            <p class="ok" role="status" data-testid="upload-done"
                hidden=move || !matches!(state.get(), Upload::Done(_))>
                {move || match state.get() { Upload::Done(name) => format!("Added {name}."), _ => String::new() }}
            </p>
            <p class="error" role="alert" data-testid="upload-error"
                hidden=move || !matches!(state.get(), Upload::Failed(_))>
                {move || match state.get() { Upload::Failed(msg) => msg, _ => String::new() }}
            </p>
        </form>
    }
}

/// The fields of the upload route's answer the form shows.
#[cfg(feature = "hydrate")]
#[derive(serde::Deserialize, Default)]
struct UploadAnswer {
    name: Option<String>,
    error: Option<String>,
}

#[cfg(feature = "hydrate")]
fn send(file: web_sys::File, state: RwSignal<Upload>, changed: AvatarsChanged) {
    use wasm_bindgen::{prelude::*, JsCast};
    let fail = move |msg: String| state.set(Upload::Failed(msg));
    let (Ok(xhr), Ok(form)) = (web_sys::XmlHttpRequest::new(), web_sys::FormData::new()) else {
        fail("This browser cannot upload files.".into());
        return;
    };
    if form
        .append_with_blob_and_filename("file", &file, &file.name())
        .is_err()
        || xhr.open("POST", "/api/avatars/upload").is_err()
    {
        fail("The upload could not be started.".into());
        return;
    }
    // The progress callback lives as long as the request: it is dropped with the last event.
    let progress =
        Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
            if e.length_computable() && e.total() > 0.0 {
                state.set(Upload::Sending((e.loaded() / e.total() * 100.0) as u32));
            }
        });
    if let Ok(upload) = xhr.upload() {
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }
    let request = xhr.clone();
    let done = Closure::once_into_js(move || {
        drop(progress);
        let status = request.status().unwrap_or(0);
        let body = request.response_text().ok().flatten().unwrap_or_default();
        let answer: UploadAnswer = serde_json::from_str(&body).unwrap_or_default();
        if (200..300).contains(&status) {
            let name = answer.name.unwrap_or_else(|| "the avatar".into());
            state.set(Upload::Done(name));
            changed.0.update(|n| *n += 1);
        } else if status == 0 {
            fail("The upload did not reach the server; is it running?".into());
        } else {
            let msg = answer
                .error
                .unwrap_or_else(|| format!("The server answered {status}."));
            fail(msg);
        }
    });
    xhr.set_onloadend(Some(done.unchecked_ref()));
    if xhr.send_with_opt_form_data(Some(&form)).is_err() {
        fail("The upload could not be sent.".into());
    }
}

#[cfg(not(feature = "hydrate"))]
fn send(_file: web_sys::File, _state: RwSignal<Upload>, _changed: AvatarsChanged) {}
