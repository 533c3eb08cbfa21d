//! waifu-rt3d: a local-first 3D anime companion.
//!
//! One crate, two builds: `ssr` is the axum server binary, `hydrate` the WASM front end.
//! Modules marked `[ssr]` compile only into the server.

// Leptos views are deeply nested types; the Setup form exceeds the default limit.
#![recursion_limit = "256"]

pub(crate) mod api;
pub(crate) mod app;
pub mod shared;
pub(crate) mod viewer;

#[cfg(feature = "ssr")]
pub mod asr;
#[cfg(feature = "ssr")]
pub(crate) mod atomic_file;
#[cfg(feature = "ssr")]
pub mod avatars;
#[cfg(feature = "ssr")]
pub mod blobs;
#[cfg(feature = "ssr")]
pub mod cards;
#[cfg(feature = "ssr")]
pub(crate) mod config;
#[cfg(feature = "ssr")]
pub(crate) mod disk;
#[cfg(feature = "ssr")]
pub(crate) mod limits;
#[cfg(feature = "ssr")]
pub mod llm;
#[cfg(feature = "ssr")]
pub(crate) mod metrics;
#[cfg(feature = "ssr")]
pub(crate) mod outbound;
#[cfg(feature = "ssr")]
pub(crate) mod private_file;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub mod tts;
#[cfg(feature = "ssr")]
pub(crate) mod turn;
#[cfg(feature = "ssr")]
pub(crate) mod warm_worker;

/// Entry points for the `cargo fuzz` targets in `fuzz/`; not an API of the app.
#[cfg(feature = "ssr")]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod testing;

/// Entry point of the WASM build: takes over the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy: some tabs are separate WASM pieces (see `app`), loaded before their part hydrates.
    leptos::mount::hydrate_lazy(app::App);
}
