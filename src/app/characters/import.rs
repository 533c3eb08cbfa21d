//! [both] Importing a character card (`POST /api/characters/import`) from a file picker or a
//! drop, and the one XHR helper the tab sends files with: XHR, not a server function, so the
//! page shows real upload progress (as the avatar upload does).

use super::CharactersChanged;
use crate::shared::history::Character;
use leptos::{ev, html, prelude::*};
use leptos_router::{hooks::use_navigate, NavigateOptions};

/// The card formats the import route reads.
const CARD_EXTENSIONS: [&str; 3] = [".png", ".json", ".charx"];
/// The import route's size cap.
const MAX_CARD_BYTES: f64 = 20.0 * 1024.0 * 1024.0;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(super) enum Upload {
    Idle,
    Sending(u32),
    Done(String),
    Failed(String),
}

impl Upload {
    pub fn sending(&self) -> bool {
        matches!(self, Self::Sending(_))
    }
}

/// What the character routes answer to a file: the character it made or changed (and, for a
/// lorebook, how many entries it read), or a plain-words error.
#[derive(serde::Deserialize, Default)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(super) struct FileAnswer {
    pub character: Option<Character>,
    pub entries: Option<u32>,
    pub error: Option<String>,
}

/// A drop zone with a file picker inside, the upload's progress, and what came of it.
#[component]
pub fn ImportZone() -> impl IntoView {
    let changed = expect_context::<CharactersChanged>();
    let navigate = use_navigate();
    let state = RwSignal::new(Upload::Idle);
    let over = RwSignal::new(false);
    let input = NodeRef::<html::Input>::new();
    let start = move |file: web_sys::File| {
        if state.get_untracked().sending() {
            return;
        }
        if let Some(problem) = check_card_file(&file.name(), file.size()) {
            state.set(Upload::Failed(problem));
            return;
        }
        state.set(Upload::Sending(0));
        let navigate = navigate.clone();
        post_file(
            "/api/characters/import".into(),
            file,
            move |p| state.set(Upload::Sending(p)),
            move |answer| match answer {
                Ok(FileAnswer {
                    character: Some(c), ..
                }) => {
                    state.set(Upload::Done(c.name.clone()));
                    changed.bump();
                    navigate(
                        &format!("/characters?id={}", c.id),
                        NavigateOptions::default(),
                    );
                }
                Ok(_) => state.set(Upload::Failed(
                    "The server did not say which character it made.".into(),
                )),
                Err(msg) => state.set(Upload::Failed(msg)),
            },
        );
    };
    let dropped = {
        let start = start.clone();
        move |e: ev::DragEvent| {
            e.prevent_default();
            over.set(false);
            if let Some(file) = e
                .data_transfer()
                .and_then(|d| d.files())
                .and_then(|f| f.get(0))
            {
                start(file);
            }
        }
    };
    let picked = move |_| {
        let Some(input) = input.get() else { return };
        if let Some(file) = input.files().and_then(|f| f.get(0)) {
            start(file);
        }
        // The same file can be picked again after a fix.
        input.set_value("");
    };
    // Dragging over the zone must be accepted on each event, or the browser opens the file.
    let accept = move |e: ev::DragEvent| {
        e.prevent_default();
        over.set(true);
    };
    view! {
        <div class="card card-drop" class:drag-over=move || over.get() data-testid="card-drop"
            data-state=move || match state.get() {
                Upload::Idle => "idle",
                Upload::Sending(_) => "sending",
                Upload::Done(_) => "done",
                Upload::Failed(_) => "error",
            }
            on:dragenter=accept
            on:dragover=accept
            on:dragleave=move |_| over.set(false)
            on:drop=dropped>
            <h2>"Import a card"</h2>
            <p class="muted small-text">"Drop a character card here (.png, .json or .charx, up to 20 MB), or"</p>
            <label class="button small" for="card-file">"Choose a file…"</label>
            <input id="card-file" class="visually-hidden" type="file" accept=".png,.json,.charx"
                node_ref=input data-testid="card-file" on:change=picked/>
            <progress max="100" data-testid="import-progress"
                hidden=move || !state.get().sending()
                value=move || match state.get() { Upload::Sending(p) => p, _ => 0 }></progress>
            <p class="ok" role="status" data-testid="import-done"
                hidden=move || !matches!(state.get(), Upload::Done(_))>
                {move || match state.get() { Upload::Done(name) => format!("Imported {name}."), _ => String::new() }}
            </p>
            <p class="error" role="alert" data-testid="import-error"
                hidden=move || !matches!(state.get(), Upload::Failed(_))>
                {move || match state.get() { Upload::Failed(msg) => msg, _ => String::new() }}
            </p>
        </div>
    }
}

/// Why a file cannot be a card, in plain words, before sending it.
fn check_card_file(name: &str, size: f64) -> Option<String> {
    let lower = name.to_lowercase();
    if !CARD_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
        return Some(format!(
            "{name} is not a character card: choose a .png, .json or .charx file."
        ));
    }
    (size > MAX_CARD_BYTES).then(|| format!("{name} is larger than 20 MB, the most a card can be."))
}

/// Sends `file` as the multipart field `file` to `url`, reporting upload progress in percent,
/// then the route's answer or a plain-words error.
#[cfg(feature = "hydrate")]
pub(super) fn post_file(
    url: String,
    file: web_sys::File,
    progress: impl Fn(u32) + 'static,
    done: impl FnOnce(Result<FileAnswer, String>) + 'static,
) {
    use wasm_bindgen::{prelude::*, JsCast};
    let (Ok(xhr), Ok(form)) = (web_sys::XmlHttpRequest::new(), web_sys::FormData::new()) else {
        done(Err("This browser cannot upload files.".into()));
        return;
    };
    if form
        .append_with_blob_and_filename("file", &file, &file.name())
        .is_err()
        || xhr.open("POST", &url).is_err()
    {
        done(Err("The upload could not be started.".into()));
        return;
    }
    // The progress callback lives as long as the request: it is dropped with the last event.
    let progress =
        Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
            if e.length_computable() && e.total() > 0.0 {
                progress((e.loaded() / e.total() * 100.0) as u32);
            }
        });
    if let Ok(upload) = xhr.upload() {
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }
    // `send` can fail after the end handler is set; whichever comes first answers.
    let done = std::rc::Rc::new(std::cell::Cell::new(Some(done)));
    let finish = done.clone();
    let request = xhr.clone();
    let end = Closure::once_into_js(move || {
        drop(progress);
        let Some(done) = finish.take() else { return };
        let status = request.status().unwrap_or(0);
        let body = request.response_text().ok().flatten().unwrap_or_default();
        let answer: FileAnswer = serde_json::from_str(&body).unwrap_or_default();
        done(answer_of(status, answer));
    });
    xhr.set_onloadend(Some(end.unchecked_ref()));
    if xhr.send_with_opt_form_data(Some(&form)).is_err() {
        if let Some(done) = done.take() {
            done(Err("The upload could not be sent.".into()));
        }
    }
}

#[cfg(not(feature = "hydrate"))]
pub(super) fn post_file(
    _url: String,
    _file: web_sys::File,
    _progress: impl Fn(u32) + 'static,
    _done: impl FnOnce(Result<FileAnswer, String>) + 'static,
) {
}

/// The route's answer, or the error to show for it.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn answer_of(status: u16, answer: FileAnswer) -> Result<FileAnswer, String> {
    match status {
        200..=299 => Ok(answer),
        0 => Err("The upload did not reach the server; is it running?".into()),
        _ => Err(answer.error.unwrap_or_else(|| match status {
            413 => "The file is too large for the server.".into(),
            _ => format!("The server answered {status}."),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_card_files_under_the_cap_are_sent() {
        assert_eq!(check_card_file("Seraphina.PNG", 1000.0), None);
        assert_eq!(check_card_file("card.charx", MAX_CARD_BYTES), None);
        assert!(
            check_card_file("notes.txt", 10.0).is_some_and(|m| m.contains(".png, .json or .charx"))
        );
        assert!(
            check_card_file("big.png", MAX_CARD_BYTES + 1.0).is_some_and(|m| m.contains("20 MB"))
        );
    }

    #[test]
    fn errors_come_from_the_body_else_the_status() {
        let body = |e: &str| FileAnswer {
            error: Some(e.into()),
            ..FileAnswer::default()
        };
        assert_eq!(
            answer_of(400, body("This image has no character card.")).err(),
            Some("This image has no character card.".into())
        );
        assert_eq!(
            answer_of(413, FileAnswer::default()).err(),
            Some("The file is too large for the server.".into())
        );
        assert!(answer_of(0, FileAnswer::default()).is_err_and(|m| m.contains("did not reach")));
        assert!(answer_of(200, FileAnswer::default()).is_ok());
    }
}
