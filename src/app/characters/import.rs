//! [both] Importing a character card (`POST /api/characters/import`) from a file picker or a
//! drop, with upload progress (`app::upload`), and what the character file routes answer.

use super::CharactersChanged;
use crate::app::upload::{post_file, Upload, UploadStatus};
use crate::shared::history::Character;
use leptos::{ev, html, prelude::*};
use leptos_router::{hooks::use_navigate, NavigateOptions};

/// The card formats the import route reads.
const CARD_EXTENSIONS: [&str; 3] = [".png", ".json", ".charx"];
/// The import route's size cap.
const MAX_CARD_BYTES: f64 = 20.0 * 1024.0 * 1024.0;

/// What the character routes answer to a file: the character it made or changed (and, for a
/// lorebook, how many entries its book now has).
#[derive(serde::Deserialize, Default)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(super) struct FileAnswer {
    pub character: Option<Character>,
    pub entries: Option<u32>,
}

impl FileAnswer {
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub fn of(answer: serde_json::Value) -> Self {
        serde_json::from_value(answer).unwrap_or_default()
    }
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
            "/api/characters/import",
            file,
            move |p| state.set(Upload::Sending(p)),
            move |answer| match answer.map(FileAnswer::of) {
                Ok(FileAnswer {
                    character: Some(c), ..
                }) => {
                    state.set(Upload::Done(format!("Imported {}.", c.name)));
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
            data-state=move || state.get().name()
            on:dragenter=accept
            on:dragover=accept
            on:dragleave=move |_| over.set(false)
            on:drop=dropped>
            <h2>"Import a card"</h2>
            <p class="muted small-text">"Drop a character card here (.png, .json or .charx, up to 20 MB), or"</p>
            <label class="button small" for="card-file">"Choose a file…"</label>
            <input id="card-file" class="visually-hidden" type="file" accept=".png,.json,.charx"
                node_ref=input data-testid="card-file" on:change=picked/>
            <UploadStatus state id="import"/>
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
}
