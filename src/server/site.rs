//! The built front end (cargo-leptos's site folder: `/pkg`, the files of `public/`, the viewer
//! bundle), and the Leptos page for any other path.
//!
//! `make build` writes a brotli (`.br`) and a gzip (`.gz`) twin beside each script, style sheet,
//! SVG and WebAssembly file (`tools/precompress.mjs`); a browser that takes one gets it, with
//! `Content-Encoding` and `Vary: Accept-Encoding`. Without twins (`make dev`) the plain file goes
//! out, and the router's compression layer compresses it on the fly.
//!
//! The viewer bundle keeps its plain name on disk; it is hashed once at start-up and served
//! under a content-hashed address with immutable caching, which the page names in a `<meta>`
//! (see [`crate::viewer::BUNDLE_META`]).

use super::{health::viewer_bundle, state::AppState};
use crate::{app::shell, viewer::BRIDGE_URL};
use axum::{
    extract::{Request, State},
    handler::Handler,
    http::{header, HeaderValue, StatusCode, Uri},
    middleware::{self, Next},
    response::Response,
    Router,
};
use sha2::{Digest, Sha256};
use std::{path::Path, sync::Arc};
use tower_http::services::ServeDir;

/// What the server knows about the built site, read once at start-up.
#[derive(Debug, Clone)]
pub struct Site {
    /// The address pages give for the viewer bundle.
    viewer_bundle_url: String,
}

impl Site {
    /// Reads the site folder: hashes the viewer bundle, when it is there, into its address.
    pub fn open(site_root: &Path) -> Self {
        let viewer_bundle_url = match std::fs::read(viewer_bundle(site_root)) {
            Ok(bytes) => hashed_url(BRIDGE_URL, &bytes),
            // The health report says the bundle is missing; the plain address still works once
            // it is built.
            Err(_) => BRIDGE_URL.to_string(),
        };
        Self { viewer_bundle_url }
    }

    /// The viewer bundle's address: `/viewer/viewer-bridge.<hash>.js` when it was built.
    pub fn viewer_bundle_url(&self) -> &str {
        &self.viewer_bundle_url
    }

    fn is_hashed_bundle(&self, path: &str) -> bool {
        path == self.viewer_bundle_url && path != BRIDGE_URL
    }
}

/// `/dir/name.ext` with the first 16 hex digits of the content's SHA-256 before the extension.
fn hashed_url(url: &str, content: &[u8]) -> String {
    let hash = hex::encode(&Sha256::digest(content)[..8]);
    match url.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => format!("{stem}.{hash}.{ext}"),
        _ => format!("{url}.{hash}"),
    }
}

/// The site's files, then the Leptos page (a 404 for a path the app does not know) for the rest.
pub fn serve(state: &AppState) -> Router {
    let page = leptos_axum::file_and_error_handler::<AppState, _>(shell).with_state(state.clone());
    let files = ServeDir::new(state.leptos_options.site_root.as_ref())
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(false)
        // Other methods on an unknown path get the page's 404, as before, not a 405.
        .call_fallback_on_method_not_allowed(true)
        .fallback(page);
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn_with_state(state.site.clone(), headers))
}

/// Serves the hashed viewer-bundle address from the plain file, for good; says on every answer
/// that it depends on `Accept-Encoding` (a cache must not give a brotli twin to a browser that
/// cannot read it).
async fn headers(State(site): State<Arc<Site>>, mut req: Request, next: Next) -> Response {
    let hashed = site.is_hashed_bundle(req.uri().path());
    if hashed {
        *req.uri_mut() = Uri::from_static(BRIDGE_URL);
    }
    let mut res = next.run(req).await;
    let status = res.status();
    let headers = res.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    if hashed && (status.is_success() || status == StatusCode::NOT_MODIFIED) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_goes_before_the_extension_and_follows_the_content() {
        let a = hashed_url("/viewer/viewer-bridge.js", b"one");
        let b = hashed_url("/viewer/viewer-bridge.js", b"two");
        assert!(a.starts_with("/viewer/viewer-bridge."), "{a}");
        assert!(a.ends_with(".js"), "{a}");
        assert_eq!(a.len(), "/viewer/viewer-bridge..js".len() + 16, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, hashed_url("/viewer/viewer-bridge.js", b"one"));
    }

    #[test]
    fn a_missing_bundle_keeps_the_plain_address() {
        let dir = tempfile::tempdir().unwrap();
        let site = Site::open(dir.path());
        assert_eq!(site.viewer_bundle_url(), BRIDGE_URL);
        assert!(!site.is_hashed_bundle(BRIDGE_URL));
    }
}
