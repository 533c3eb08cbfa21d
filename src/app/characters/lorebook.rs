//! [both] The lorebook editor inside a character's form: the book's settings, its entries (every
//! field, add and remove), and attaching a SillyTavern World Info / lorebook file, whose entries
//! the server merges into the card (`POST /api/characters/{id}/lorebook`).

use super::{
    import::FileAnswer,
    text::{join_list, split_list},
};
use crate::app::upload::{post_file, Upload, UploadStatus};
use crate::{
    api::characters::load_character,
    shared::cards::{CardFields, LoreEntryFields, LorePosition, LorebookFields},
};
use leptos::{ev, html, prelude::*, task::spawn_local};

/// The book's settings and entries; "Add a lorebook" when the card has none.
#[component]
pub fn LorebookEditor(fields: RwSignal<CardFields>, id: Option<i64>) -> impl IntoView {
    let has_book = move || fields.with(|f| f.book.is_some());
    let book = move |read: fn(&LorebookFields) -> String| {
        move || fields.with(|f| f.book.as_ref().map(read).unwrap_or_default())
    };
    let edit = move |change: Box<dyn FnOnce(&mut LorebookFields)>| {
        fields.update(|f| change(f.book.get_or_insert_with(LorebookFields::default)))
    };
    let count = move || fields.with(|f| f.book.as_ref().map_or(0, |b| b.entries.len()));
    view! {
        <fieldset class="card lorebook" data-testid="lorebook">
            <legend>"Lorebook"</legend>
            <p class="hint">"Entries whose keys appear in the latest messages are added to the prompt."</p>
            <div hidden=has_book>
                <button type="button" class="small" data-testid="add-lorebook"
                    on:click=move |_| fields.update(|f| f.book = Some(LorebookFields::default()))>"Add a lorebook"</button>
            </div>
            <div hidden=move || !has_book()>
                <div class="row">
                    <div class="field">
                        <label for="book-name">"Book name"</label>
                        <input id="book-name" type="text" prop:value=book(|b| b.name.clone())
                            on:input=move |e| { let v = event_target_value(&e); edit(Box::new(move |b| b.name = v)) }/>
                    </div>
                    <div class="field">
                        <label for="book-scan-depth">"Scan depth (messages)"</label>
                        <input id="book-scan-depth" type="number" min="0" prop:value=book(|b| b.scan_depth.to_string())
                            on:input=move |e| if let Ok(v) = event_target_value(&e).parse() { edit(Box::new(move |b| b.scan_depth = v)) }/>
                    </div>
                    <div class="field">
                        <label for="book-token-budget">"Token budget"</label>
                        <input id="book-token-budget" type="number" min="0" prop:value=book(|b| b.token_budget.to_string())
                            on:input=move |e| if let Ok(v) = event_target_value(&e).parse() { edit(Box::new(move |b| b.token_budget = v)) }/>
                    </div>
                </div>
                <label class="check">
                    <input type="checkbox" prop:checked=move || fields.with(|f| f.book.as_ref().is_some_and(|b| b.recursive_scanning))
                        on:change=move |e| { let v = event_target_checked(&e); edit(Box::new(move |b| b.recursive_scanning = v)) }/>
                    "Recursive scanning (entries can trigger other entries)"
                </label>
                <ol class="lore-entries" data-testid="lore-entries">
                    <For each=move || 0..count() key=|i| *i let:index>
                        <EntryEditor fields index/>
                    </For>
                </ol>
                <div class="form-actions">
                    <button type="button" class="small" data-testid="add-entry"
                        on:click=move |_| edit(Box::new(|b| b.entries.push(LoreEntryFields::default())))>"Add entry"</button>
                    <button type="button" class="small" data-testid="remove-lorebook"
                        on:click=move |_| fields.update(|f| f.book = None)>"Remove the lorebook"</button>
                </div>
            </div>
            <AttachLorebook fields id/>
        </fieldset>
    }
}

/// One entry, every field. Rows are keyed by position and read their entry by it, so removing
/// one shifts the rest without rebuilding them.
#[component]
fn EntryEditor(fields: RwSignal<CardFields>, index: usize) -> impl IntoView {
    let read = move |get: fn(&LoreEntryFields) -> String| {
        move || {
            fields.with(|f| {
                f.book
                    .as_ref()
                    .and_then(|b| b.entries.get(index))
                    .map(get)
                    .unwrap_or_default()
            })
        }
    };
    let flag = move |get: fn(&LoreEntryFields) -> bool| {
        move || {
            fields.with(|f| {
                f.book
                    .as_ref()
                    .and_then(|b| b.entries.get(index))
                    .is_some_and(get)
            })
        }
    };
    let edit = move |change: Box<dyn FnOnce(&mut LoreEntryFields)>| {
        fields.update(|f| {
            if let Some(e) = f.book.as_mut().and_then(|b| b.entries.get_mut(index)) {
                change(e);
            }
        })
    };
    let remove = move |_| {
        fields.update(|f| {
            if let Some(b) = f.book.as_mut() {
                if index < b.entries.len() {
                    b.entries.remove(index);
                }
            }
        })
    };
    let id = move |what: &str| format!("lore-{index}-{what}");
    let check = move |what: &'static str,
                      label: &'static str,
                      get: fn(&LoreEntryFields) -> bool,
                      set: fn(&mut LoreEntryFields, bool)| {
        view! {
            <label class="check small">
                <input type="checkbox" data-field=what prop:checked=flag(get)
                    on:change=move |e: ev::Event| { let v = event_target_checked(&e); edit(Box::new(move |x| set(x, v))) }/>
                {label}
            </label>
        }
    };
    view! {
        <li class="lore-entry" data-testid="lore-entry">
            <div class="lore-entry-head">
                <span class="lore-entry-title">{move || {
                    let name = read(|e| e.name.clone())();
                    if name.is_empty() { format!("Entry {}", index + 1) } else { name }
                }}</span>
                <button type="button" class="small" data-testid="remove-entry" on:click=remove>"Remove"</button>
            </div>
            <div class="row">
                <div class="field">
                    <label for=id("name")>"Name"</label>
                    <input id=id("name") type="text" prop:value=read(|e| e.name.clone())
                        on:input=move |e| { let v = event_target_value(&e); edit(Box::new(move |x| x.name = v)) }/>
                </div>
                <div class="field">
                    <label for=id("order")>"Insertion order (lower first)"</label>
                    <input id=id("order") type="number" prop:value=read(|e| e.insertion_order.to_string())
                        on:input=move |e| if let Ok(v) = event_target_value(&e).parse() { edit(Box::new(move |x| x.insertion_order = v)) }/>
                </div>
                <div class="field">
                    <label for=id("position")>"Position"</label>
                    <select id=id("position")
                        prop:value=read(|e| position_name(e.position).to_string())
                        on:change=move |e| {
                            let p = if event_target_value(&e) == "after_char" { LorePosition::AfterChar } else { LorePosition::BeforeChar };
                            edit(Box::new(move |x| x.position = p))
                        }>
                        <option value="before_char" selected=move || read(|e| position_name(e.position).to_string())() == "before_char">"Before the character"</option>
                        <option value="after_char" selected=move || read(|e| position_name(e.position).to_string())() == "after_char">"After the character"</option>
                    </select>
                </div>
            </div>
            <div class="row">
                <div class="field">
                    <label for=id("keys")>"Keys (comma-separated)"</label>
                    <input id=id("keys") type="text" prop:value=read(|e| join_list(&e.keys))
                        on:change=move |e| { let v = split_list(&event_target_value(&e)); edit(Box::new(move |x| x.keys = v)) }/>
                </div>
                <div class="field">
                    <label for=id("secondary")>"Secondary keys (comma-separated)"</label>
                    <input id=id("secondary") type="text" prop:value=read(|e| join_list(&e.secondary_keys))
                        on:change=move |e| { let v = split_list(&event_target_value(&e)); edit(Box::new(move |x| x.secondary_keys = v)) }/>
                </div>
            </div>
            <div class="field">
                <label for=id("content")>"Content"</label>
                <textarea id=id("content") rows="3" prop:value=read(|e| e.content.clone())
                    on:input=move |e| { let v = event_target_value(&e); edit(Box::new(move |x| x.content = v)) }></textarea>
            </div>
            <div class="checks">
                {check("enabled", "Enabled", |e| e.enabled, |e, v| e.enabled = v)}
                {check("constant", "Always included", |e| e.constant, |e, v| e.constant = v)}
                {check("selective", "Needs a secondary key too", |e| e.selective, |e, v| e.selective = v)}
                {check("case_sensitive", "Case-sensitive", |e| e.case_sensitive, |e, v| e.case_sensitive = v)}
                {check("use_regex", "Keys are regular expressions", |e| e.use_regex, |e, v| e.use_regex = v)}
            </div>
        </li>
    }
}

fn position_name(p: LorePosition) -> &'static str {
    match p {
        LorePosition::BeforeChar => "before_char",
        LorePosition::AfterChar => "after_char",
    }
}

/// "Attach lorebook file": sends it, then takes the card's merged lorebook into the form (the
/// other fields keep their unsaved edits).
#[component]
fn AttachLorebook(fields: RwSignal<CardFields>, id: Option<i64>) -> impl IntoView {
    let state = RwSignal::new(Upload::Idle);
    let input = NodeRef::<html::Input>::new();
    let picked = move |_| {
        let (Some(input), Some(id)) = (input.get(), id) else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        input.set_value("");
        state.set(Upload::Sending(0));
        post_file(
            &format!("/api/characters/{id}/lorebook"),
            file,
            move |p| state.set(Upload::Sending(p)),
            move |answer| match answer.map(FileAnswer::of) {
                Ok(FileAnswer { entries, .. }) => {
                    let n = entries.unwrap_or(0);
                    spawn_local(async move {
                        match load_character(id).await {
                            Ok(card) => {
                                fields.update(|f| f.book = card.fields.book);
                                state.set(Upload::Done(format!(
                                    "Added {n} entr{}.",
                                    if n == 1 { "y" } else { "ies" }
                                )));
                            }
                            Err(e) => state.set(Upload::Failed(e.message)),
                        }
                    });
                }
                Err(msg) => state.set(Upload::Failed(msg)),
            },
        );
    };
    view! {
        <div class="attach-lorebook">
            {match id {
                Some(_) => view! {
                    <label class="button small" for="lorebook-file">"Attach lorebook file…"</label>
                    <input id="lorebook-file" class="visually-hidden" type="file" accept=".json"
                        node_ref=input data-testid="lorebook-file" on:change=picked/>
                    <span class="hint">" SillyTavern World Info or lorebook JSON; its entries join this book (edits to the book not yet saved are replaced)."</span>
                }
                .into_any(),
                None => view! { <span class="hint">"Save the character to attach a lorebook file."</span> }.into_any(),
            }}
            <UploadStatus state id="lorebook"/>
        </div>
    }
}
