//! [both] The Characters tab: a grid of the characters, importing a card (file picker or drop),
//! and the selected character's form. The selection lives in the address
//! (`/characters?id=N`, `/characters?id=new`), so reload and the back button keep it.

mod form;
mod import;
mod lorebook;
mod text;

use crate::{
    api::characters::{list_characters, load_character},
    app::common::{ErrorBanner, Portrait},
    shared::{
        cards::{CardFields, CharacterChoices},
        history::Character,
    },
};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// Bumped after every change to the characters, so the grid reloads.
#[derive(Clone, Copy)]
struct CharactersChanged(RwSignal<u32>);

impl CharactersChanged {
    fn bump(self) {
        self.0.update(|n| *n += 1);
    }
}

/// Which form is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Selection {
    None,
    New,
    Character(i64),
}

impl Selection {
    fn from_query(id: Option<&str>) -> Self {
        match id {
            Some("new") => Self::New,
            Some(id) => id.parse().map_or(Self::None, Self::Character),
            None => Self::None,
        }
    }
}

/// The Characters tab.
#[component]
pub fn CharactersTab() -> impl IntoView {
    let query = use_query_map();
    let selection = Memo::new(move |_| Selection::from_query(query.read().get("id").as_deref()));
    let changed = CharactersChanged(RwSignal::new(0));
    provide_context(changed);
    let list = Resource::new(move || changed.0.get(), |_| list_characters());
    view! {
        <section class="tab characters" data-testid="tab-characters">
            <div class="tab-head">
                <h1>"Characters"</h1>
                <a class="button primary" href="/characters?id=new" data-testid="new-character">"New character"</a>
            </div>
            <div class="characters-layout">
                <div class="characters-side">
                    <import::ImportZone/>
                    <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                        {move || Suspend::new(async move {
                            match list.await {
                                Ok(list) => view! { <Grid list selection/> }.into_any(),
                                Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
                            }
                        })}
                    </Transition>
                </div>
                <div class="characters-main">
                    {move || match selection.get() {
                        Selection::None => view! {
                            <div class="card empty-form" data-testid="no-character">
                                <p class="muted">"Pick a character, import a card, or make a new one."</p>
                            </div>
                        }
                        .into_any(),
                        Selection::New => view! {
                            <form::CharacterForm character=None fields=CardFields::default() choices=CharacterChoices::default()/>
                        }
                        .into_any(),
                        Selection::Character(id) => view! { <LoadedForm id/> }.into_any(),
                    }}
                </div>
            </div>
        </section>
    }
}

/// One tile per character: portrait, name, traits.
#[component]
fn Grid(list: Vec<Character>, selection: Memo<Selection>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="muted" data-testid="no-characters">"No characters yet."</p> }
            .into_any();
    }
    view! {
        <ul class="character-grid" data-testid="character-grid">
            {list
                .into_iter()
                .map(|c| {
                    let id = c.id;
                    let traits = text::short(&c.personality_traits.join(", "), 60);
                    let name = c.name.clone();
                    view! {
                        <li data-character-id=id data-name=name>
                            <a class="character-tile" href=format!("/characters?id={id}")
                                class:active=move || selection.get() == Selection::Character(id)
                                aria-current=move || (selection.get() == Selection::Character(id)).then_some("true")>
                                <Portrait id name=c.name.clone() has_portrait=c.has_portrait version=c.updated_ts/>
                                <span class="character-name">{c.name}</span>
                                <span class="character-traits">{traits}</span>
                            </a>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}

/// The form of a stored character, once its card has loaded.
#[component]
fn LoadedForm(id: i64) -> impl IntoView {
    let card = Resource::new(move || id, load_character);
    view! {
        <Suspense fallback=|| view! { <div class="card empty-form"><p class="muted">"Loading the card…"</p></div> }>
            {move || Suspend::new(async move {
                match card.await {
                    Ok(card) => {
                        let choices = text::choices_of(&card.character);
                        view! { <form::CharacterForm character=Some(card.character) fields=card.fields choices/> }.into_any()
                    }
                    Err(e) => view! { <ErrorBanner error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}
