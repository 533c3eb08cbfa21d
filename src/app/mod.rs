//! [both] The UI: the page shell, the tab bar and one folder per tab. Components only; the logic
//! they call lives in `api` (server functions) and `shared`.

mod characters;
mod chat;
mod common;
mod setup;
mod system;
mod upload;
mod viewer;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Title};
#[cfg(feature = "ssr")]
use leptos_meta::{HashedStylesheet, MetaTags};
use leptos_router::{
    components::{Route, Router, Routes, A},
    lazy_route, Lazy, LazyRoute, StaticSegment,
};

/// The HTML document around the app, rendered on the server.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    crate::server::security::headers::apply_page_policy(&options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="dark"/>
                <meta name="description" content="A local-first 3D anime companion"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                // Loads the viewer's JS bundle on demand (see `viewer::MODULE_LOADER`), from
                // its content-hashed address.
                <meta name=crate::viewer::BUNDLE_META content=viewer_bundle_url()/>
                <script nonce=leptos::nonce::use_nonce()>{crate::viewer::MODULE_LOADER_SCRIPT}</script>
                <HydrationScripts options=options.clone()/>
                <HashedStylesheet options id="leptos"/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Where the page loads the viewer bundle from: its content-hashed address, which the server
/// worked out at start-up.
#[cfg(feature = "ssr")]
fn viewer_bundle_url() -> String {
    if let Some(state) = use_context::<crate::server::AppState>() {
        return state.site.viewer_bundle_url().to_string();
    }
    crate::viewer::BRIDGE_URL.to_string()
}

/// The app: a tab bar and the current tab. Tabs are links, so reload and the back button work.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser, after hydration: tests wait for this mark.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <Title text="waifu-rt3d"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">
                    <span class="brand-mark" aria-hidden="true">"◆"</span>
                    "waifu-rt3d"
                </a>
                <nav class="tabs" aria-label="Tabs">
                    <A href="/chat">"Chat"</A>
                    <A href="/characters">"Characters"</A>
                    <A href="/viewer">"Viewer"</A>
                    <A href="/setup">"Setup"</A>
                    <A href="/system">"System"</A>
                </nav>
            </header>
            <main id="content" data-hydrated=move || hydrated.get().to_string()>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=chat::ChatTab/>
                    <Route path=StaticSegment("chat") view=chat::ChatTab/>
                    <Route path=StaticSegment("characters") view={Lazy::<CharactersRoute>::new()}/>
                    <Route path=StaticSegment("viewer") view={Lazy::<ViewerRoute>::new()}/>
                    <Route path=StaticSegment("setup") view={Lazy::<SetupRoute>::new()}/>
                    <Route path=StaticSegment("system") view={Lazy::<SystemRoute>::new()}/>
                </Routes>
            </main>
        </Router>
    }
}

/// The tabs besides Chat are separate pieces of the WASM bundle, fetched when first shown, so
/// the first page (Chat) becomes interactive after downloading only what it needs.
macro_rules! lazy_tab {
    ($route:ident, $tab:path) => {
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                view! { <$tab/> }.into_any()
            }
        }
    };
}

lazy_tab!(CharactersRoute, characters::CharactersTab);
lazy_tab!(ViewerRoute, viewer::ViewerTab);
lazy_tab!(SetupRoute, setup::SetupTab);
lazy_tab!(SystemRoute, system::SystemTab);

/// Any other path: a 404 page that leads back.
#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="tab" data-testid="not-found">
            <h1>"Page not found"</h1>
            <p class="muted">"There is nothing at this address. " <a href="/chat">"Go to the chat"</a> "."</p>
        </section>
    }
}
