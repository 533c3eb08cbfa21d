//! Small pieces used by several tabs.

use crate::shared::AppError;
use leptos::prelude::*;

/// A visible error with the action to take.
#[component]
pub fn ErrorBanner(#[prop(into)] error: AppError) -> impl IntoView {
    view! {
        <div class="banner banner-error" role="alert" data-code=error.code.clone()>
            {error.message.clone()}
        </div>
    }
}

/// A character's portrait (`/api/characters/{id}/portrait`), or their initials when the
/// character has none or it fails to load. `version` (the character's `updated_ts`) goes into
/// the address so an edited portrait is fetched again instead of taken from the cache.
#[component]
pub fn Portrait(
    id: i64,
    #[prop(into)] name: String,
    has_portrait: bool,
    version: f64,
    /// A small round one, for lists.
    #[prop(optional)]
    small: bool,
) -> impl IntoView {
    let failed = RwSignal::new(false);
    let initials = initials(&name);
    let src = format!("/api/characters/{id}/portrait?v={}", version_tag(version));
    view! {
        <span class="portrait" class:portrait-small=small data-testid="portrait">
            {move || if has_portrait && !failed.get() {
                view! {
                    <img src=src.clone() alt=format!("Portrait of {name}") loading="lazy"
                        on:error=move |_| failed.set(true)/>
                }
                .into_any()
            } else {
                view! { <span class="initials" aria-hidden="true">{initials.clone()}</span> }.into_any()
            }}
        </span>
    }
}

/// Up to two letters for a portrait placeholder: the first letter of the first two words.
pub fn initials(name: &str) -> String {
    let letters: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    if letters.is_empty() {
        "?".into()
    } else {
        letters
    }
}

/// `updated_ts` as a cache-busting tag: whole milliseconds, so the address has no float noise.
fn version_tag(ts: f64) -> i64 {
    (ts * 1000.0) as i64
}

#[cfg(test)]
mod tests {
    use super::{initials, version_tag};

    #[test]
    fn initials_take_the_first_letters_of_two_words() {
        assert_eq!(initials("Seraphina"), "S");
        assert_eq!(initials("  ayla  de la rosa "), "AD");
        assert_eq!(initials("「ミク」 Hatsune"), "ミH");
        assert_eq!(initials("<b>"), "B");
        assert_eq!(initials("   "), "?");
        assert_eq!(initials("..."), "?");
    }

    #[test]
    fn version_tags_are_whole_milliseconds() {
        assert_eq!(version_tag(1_795_000_000.5), 1_795_000_000_500);
        assert_eq!(version_tag(0.0), 0);
    }
}
