//! [both] A character's form: every field of the card, the greeting, voice and avatar choices,
//! save, delete, export, and "New chat with …". Card text is only ever shown as text: a card is
//! someone else's file, and HTML in it must show literally.

use super::{lorebook::LorebookEditor, text, CharactersChanged};
use crate::{
    api::{
        avatars::list_avatars,
        characters::{delete_character, save_character},
        history::create_session,
    },
    app::common::Portrait,
    shared::{
        avatars::AvatarInfo,
        cards::{CardFields, CharacterChoices},
        config::TtsProvider,
        history::Character,
        AppError, FieldError,
    },
};
use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::{hooks::use_navigate, NavigateOptions};

/// The default character, which cannot be deleted.
const DEFAULT_CHARACTER: i64 = 1;

#[derive(Clone, Debug, PartialEq)]
enum Status {
    Idle,
    Saving,
    Saved,
    Failed(AppError),
}

/// A text field of the card: its key (the field's name on the wire, which errors name too),
/// label, height (0 for one line), hint, and how to read and write it.
#[derive(Clone, Copy)]
struct Slot {
    key: &'static str,
    label: &'static str,
    rows: u32,
    hint: &'static str,
    get: fn(&CardFields) -> String,
    set: fn(&mut CardFields, String),
}

macro_rules! slot {
    ($key:ident, $label:expr, $rows:expr, $hint:expr) => {
        Slot {
            key: stringify!($key),
            label: $label,
            rows: $rows,
            hint: $hint,
            get: |f| f.$key.clone(),
            set: |f, v| f.$key = v,
        }
    };
}

/// The form. `character` is `None` for a new one, which saving creates.
#[component]
pub fn CharacterForm(
    character: Option<Character>,
    fields: CardFields,
    choices: CharacterChoices,
) -> impl IntoView {
    let changed = expect_context::<CharactersChanged>();
    let navigate = use_navigate();
    let id = character.as_ref().map(|c| c.id);
    let character = RwSignal::new(character);
    let fields = RwSignal::new(fields);
    let choices = RwSignal::new(choices);
    let status = RwSignal::new(Status::Idle);
    let errors = Memo::new(move |_| match status.get() {
        Status::Failed(e) => e.fields,
        _ => Vec::new(),
    });

    let save = {
        let navigate = navigate.clone();
        move |e: ev::SubmitEvent| {
            e.prevent_default();
            if status.get_untracked() == Status::Saving {
                return;
            }
            status.set(Status::Saving);
            let navigate = navigate.clone();
            let (f, c) = (fields.get_untracked(), choices.get_untracked());
            spawn_local(async move {
                match save_character(id, f, c).await {
                    Ok(card) => {
                        status.set(Status::Saved);
                        changed.bump();
                        if id.is_none() {
                            navigate(
                                &format!("/characters?id={}", card.character.id),
                                NavigateOptions::default(),
                            );
                        } else {
                            choices.set(text::choices_of(&card.character));
                            fields.set(card.fields);
                            character.set(Some(card.character));
                        }
                    }
                    Err(e) => status.set(Status::Failed(e)),
                }
            });
        }
    };

    let identity = [
        slot!(name, "Name", 0, ""),
        slot!(
            nickname,
            "Nickname",
            0,
            "What {{char}} says instead of the name, when set."
        ),
        slot!(creator, "Creator", 0, ""),
        slot!(character_version, "Version", 0, ""),
    ];
    let persona = [
        slot!(description, "Description", 6, ""),
        slot!(personality, "Personality", 3, ""),
        slot!(scenario, "Scenario", 3, ""),
    ];
    let prompting = [
        slot!(
            system_prompt,
            "System prompt",
            4,
            "Empty: the app's main prompt. {{original}} stands for it."
        ),
        slot!(
            post_history_instructions,
            "Post-history instructions",
            3,
            "Sent after the conversation, just before the reply."
        ),
        slot!(
            mes_example,
            "Example dialogue",
            5,
            "Blocks separated by <START>."
        ),
        slot!(
            creator_notes,
            "Creator notes",
            3,
            "For people; not sent to the model."
        ),
    ];
    let first_mes = slot!(first_mes, "First message (greeting)", 4, "");
    let fields_of = move |slots: [Slot; 4]| {
        slots
            .into_iter()
            .map(|slot| view! { <TextField field=slot fields errors/> })
            .collect_view()
    };

    view! {
        <form class="character-form" data-testid="character-form" data-character-id=id.map(|i| i.to_string())
            on:submit=save novalidate>
            <FormHead character choices id/>
            <fieldset class="card">
                <legend>"Identity"</legend>
                <div class="row">{fields_of(identity)}</div>
                <div class="field">
                    <label for="card-tags">"Tags (comma-separated)"</label>
                    <input id="card-tags" type="text" data-field="tags"
                        prop:value=move || fields.with(|f| text::join_list(&f.tags))
                        on:change=move |e| { let v = text::split_list(&event_target_value(&e)); fields.update(|f| f.tags = v) }/>
                </div>
            </fieldset>
            <fieldset class="card">
                <legend>"Character"</legend>
                {persona.into_iter().map(|slot| view! { <TextField field=slot fields errors/> }).collect_view()}
            </fieldset>
            <fieldset class="card">
                <legend>"Greetings"</legend>
                <TextField field=first_mes fields errors/>
                <Greetings fields choices/>
            </fieldset>
            <fieldset class="card">
                <legend>"Prompt"</legend>
                {fields_of(prompting)}
            </fieldset>
            <Voice choices/>
            <LorebookEditor fields id/>
            <div class="form-actions save-actions">
                <button type="submit" class="primary" data-testid="save-character"
                    disabled=move || status.get() == Status::Saving>
                    {if id.is_some() { "Save" } else { "Create" }}
                </button>
                <span class="status" role="status" data-testid="save-status"
                    data-state=move || match status.get() {
                        Status::Idle => "idle",
                        Status::Saving => "saving",
                        Status::Saved => "saved",
                        Status::Failed(_) => "error",
                    }>
                    {move || match status.get() {
                        Status::Saving => "Saving…".to_string(),
                        Status::Saved => "Saved.".to_string(),
                        Status::Failed(e) => e.message,
                        Status::Idle => String::new(),
                    }}
                </span>
                // Every problem, also those of fields further down (a lorebook entry's).
                <ul class="field-errors" role="alert" data-testid="save-errors" hidden=move || errors.with(|e| e.len() < 2)>
                    {move || errors.get().into_iter().map(|e| view! { <li>{format!("{}: {}", e.path, e.message)}</li> }).collect_view()}
                </ul>
            </div>
        </form>
    }
}

/// The portrait and name, and what can be done with a saved character: a new chat, export,
/// delete.
#[component]
fn FormHead(
    character: RwSignal<Option<Character>>,
    choices: RwSignal<CharacterChoices>,
    id: Option<i64>,
) -> impl IntoView {
    let changed = expect_context::<CharactersChanged>();
    let navigate = use_navigate();
    let problem = RwSignal::new(None::<String>);
    let name = move || character.with(|c| c.as_ref().map(|c| c.name.clone()));
    let new_chat = {
        let navigate = navigate.clone();
        move |_| {
            let Some(id) = id else { return };
            let greeting = choices.get_untracked().greeting;
            let navigate = navigate.clone();
            spawn_local(async move {
                match create_session(None, Some(id), Some(greeting)).await {
                    Ok(s) => navigate(
                        &format!("/chat?session={}", s.id),
                        NavigateOptions::default(),
                    ),
                    Err(e) => problem.set(Some(e.message)),
                }
            });
        }
    };
    let delete = move |_| {
        let Some(id) = id else { return };
        let who = name().unwrap_or_default();
        let sure = window()
            .confirm_with_message(&format!(
                "Delete {who}? Their conversations stay, without the character. This cannot be undone."
            ))
            .unwrap_or(false);
        if !sure {
            return;
        }
        let navigate = navigate.clone();
        spawn_local(async move {
            match delete_character(id).await {
                Ok(()) => {
                    changed.bump();
                    navigate("/characters", NavigateOptions::default());
                }
                Err(e) => problem.set(Some(e.message)),
            }
        });
    };
    view! {
        <div class="card form-head">
            {move || character.get().map(|c| view! {
                <Portrait id=c.id name=c.name.clone() has_portrait=c.has_portrait version=c.updated_ts/>
            })}
            <div class="form-head-text">
                <h2 data-testid="character-title">{move || name().unwrap_or_else(|| "New character".into())}</h2>
                {match id {
                    Some(id) => view! {
                        <div class="form-head-actions">
                            <button type="button" class="primary small" data-testid="new-chat" on:click=new_chat>
                                {move || format!("New chat with {}", name().unwrap_or_default())}
                            </button>
                            <span class="export" role="group" aria-label="Export">
                                <span class="muted small-text">"Export:"</span>
                                {["png", "json", "charx"].map(|format| view! {
                                    <a class="button small" rel="external" download=""
                                        href=format!("/api/characters/{id}/export?format={format}")
                                        data-testid=format!("export-{format}")>{format.to_uppercase()}</a>
                                })}
                            </span>
                            {(id != DEFAULT_CHARACTER).then(|| view! {
                                <button type="button" class="small danger" data-testid="delete-character" on:click=delete>"Delete"</button>
                            })}
                        </div>
                    }
                    .into_any(),
                    None => view! { <p class="muted small-text">"Fill in the card and create it."</p> }.into_any(),
                }}
                <p class="error" role="alert" hidden=move || problem.with(Option::is_none)>
                    {move || problem.get().unwrap_or_default()}
                </p>
            </div>
        </div>
    }
}

/// One text field of the card, with its error from the last save.
#[component]
fn TextField(
    field: Slot,
    fields: RwSignal<CardFields>,
    errors: Memo<Vec<FieldError>>,
) -> impl IntoView {
    let Slot {
        key,
        label,
        rows,
        hint,
        get,
        set,
    } = field;
    let id = format!("card-{key}");
    let error = move || errors.with(|e| error_for(e, key));
    let value = move || fields.with(get);
    let input = move |e: ev::Event| {
        let v = event_target_value(&e);
        fields.update(|f| set(f, v));
    };
    let control = if rows == 0 {
        view! { <input id=id.clone() type="text" data-field=key prop:value=value on:input=input/> }
            .into_any()
    } else {
        view! { <textarea id=id.clone() rows=rows data-field=key prop:value=value on:input=input></textarea> }
            .into_any()
    };
    view! {
        <div class="field" class:invalid=move || error().is_some()>
            <label for=id>{label}</label>
            {control}
            {(!hint.is_empty()).then(|| view! { <span class="hint">{hint}</span> })}
            <p class="field-error" hidden=move || error().is_none()>{move || error().unwrap_or_default()}</p>
        </div>
    }
}

/// The message of the error about field `key` (`name`, or a path ending in `.name`).
fn error_for(errors: &[FieldError], key: &str) -> Option<String> {
    errors
        .iter()
        .find(|e| e.path == key || e.path.rsplit('.').next() == Some(key))
        .map(|e| e.message.clone())
}

/// The alternate greetings (add, edit, remove) and which greeting new conversations start with.
#[component]
fn Greetings(fields: RwSignal<CardFields>, choices: RwSignal<CharacterChoices>) -> impl IntoView {
    let count = move || fields.with(|f| f.alternate_greetings.len());
    let labels = move || {
        fields.with(|f| {
            std::iter::once(&f.first_mes)
                .chain(&f.alternate_greetings)
                .enumerate()
                .map(|(i, t)| (i as u32, text::greeting_label(i, t)))
                .collect::<Vec<_>>()
        })
    };
    view! {
        <h3 class="subhead">"Alternate greetings"</h3>
        <ol class="greetings" data-testid="alternate-greetings">
            <For each=move || 0..count() key=|i| *i let:index>
                <li class="greeting">
                    <label class="visually-hidden" for=format!("greeting-{index}")>{format!("Alternate greeting {}", index + 1)}</label>
                    <textarea id=format!("greeting-{index}") rows="3"
                        prop:value=move || fields.with(|f| f.alternate_greetings.get(index).cloned().unwrap_or_default())
                        on:input=move |e| {
                            let v = event_target_value(&e);
                            fields.update(|f| if let Some(g) = f.alternate_greetings.get_mut(index) { *g = v });
                        }></textarea>
                    <button type="button" class="small" data-testid="remove-greeting" on:click=move |_| {
                        fields.update(|f| if index < f.alternate_greetings.len() { f.alternate_greetings.remove(index); });
                        choices.update(|c| c.greeting = text::greeting_after_removal(c.greeting, index as u32 + 1));
                    }>"Remove"</button>
                </li>
            </For>
        </ol>
        <button type="button" class="small" data-testid="add-greeting"
            on:click=move |_| fields.update(|f| f.alternate_greetings.push(String::new()))>"Add a greeting"</button>
        <div class="field">
            <label for="greeting-choice">"New conversations start with"</label>
            <select id="greeting-choice" data-testid="greeting-choice"
                prop:value=move || choices.with(|c| c.greeting.to_string())
                on:change=move |e| if let Ok(v) = event_target_value(&e).parse() { choices.update(|c| c.greeting = v) }>
                {move || labels().into_iter().map(|(i, label)| view! {
                    <option value=i.to_string() selected=move || choices.with(|c| c.greeting == i)>{label}</option>
                }).collect_view()}
            </select>
        </div>
    }
}

/// The character's voice (a provider or the configured one, and a voice id) and avatar (one of
/// the avatars folder, or the configured one).
#[component]
fn Voice(choices: RwSignal<CharacterChoices>) -> impl IntoView {
    // Fetched once the page is live: the list is not needed to render the form.
    let avatars = RwSignal::new(Vec::<AvatarInfo>::new());
    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(list) = list_avatars().await {
                avatars.set(list.avatars);
            }
        });
    });
    let provider = move || choices.with(|c| c.tts_provider.clone());
    let avatar = move || choices.with(|c| c.avatar_url.clone());
    let avatar_options = move || {
        let chosen = avatar();
        let mut options: Vec<(String, String)> = avatars.with(|list| {
            list.iter()
                .map(|a| (a.url.clone(), a.name.clone()))
                .collect()
        });
        // An avatar the list no longer has stays chosen, and says so.
        if !chosen.is_empty() && !options.iter().any(|(url, _)| *url == chosen) {
            options.push((
                chosen.clone(),
                format!("{chosen} (not in the avatars folder)"),
            ));
        }
        options
    };
    view! {
        <fieldset class="card">
            <legend>"Voice and avatar"</legend>
            <div class="row">
                <div class="field">
                    <label for="card-tts-provider">"Voice provider"</label>
                    <select id="card-tts-provider" data-testid="tts-provider" prop:value=provider
                        on:change=move |e| { let v = event_target_value(&e); choices.update(|c| c.tts_provider = v) }>
                        <option value="" selected=move || provider().is_empty()>"Configured default"</option>
                        {TtsProvider::ALL.map(|p| view! {
                            <option value=p.name() selected=move || provider() == p.name()>{p.label()}</option>
                        })}
                    </select>
                </div>
                <div class="field">
                    <label for="card-voice-id">"Voice id"</label>
                    <input id="card-voice-id" type="text" data-testid="voice-id"
                        placeholder="The provider's default voice"
                        prop:value=move || choices.with(|c| c.voice_id.clone())
                        on:input=move |e| { let v = event_target_value(&e); choices.update(|c| c.voice_id = v) }/>
                </div>
            </div>
            <div class="field">
                <label for="card-avatar">"Avatar"</label>
                <select id="card-avatar" data-testid="avatar-choice" prop:value=avatar
                    on:change=move |e| { let v = event_target_value(&e); choices.update(|c| c.avatar_url = v) }>
                    <option value="" selected=move || avatar().is_empty()>"Configured default"</option>
                    {move || avatar_options().into_iter().map(|(url, label)| {
                        let selected = url.clone();
                        view! { <option value=url selected=move || avatar() == selected>{label}</option> }
                    }).collect_view()}
                </select>
                <span class="hint">"The Chat tab shows this avatar in conversations with the character."</span>
            </div>
        </fieldset>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_match_by_name_or_last_path_segment() {
        let errors = vec![
            FieldError {
                path: "data.name".into(),
                message: "A character needs a name.".into(),
            },
            FieldError {
                path: "first_mes".into(),
                message: "Too long.".into(),
            },
        ];
        assert_eq!(
            error_for(&errors, "name").as_deref(),
            Some("A character needs a name.")
        );
        assert_eq!(
            error_for(&errors, "first_mes").as_deref(),
            Some("Too long.")
        );
        assert_eq!(error_for(&errors, "nickname"), None);
        // `mes_example` is not `first_mes`'s suffix match.
        assert_eq!(error_for(&errors, "mes"), None);
    }
}
