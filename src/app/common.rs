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
