//! Security headers. Every answer says `nosniff`, sends no referrer, keeps its window to itself
//! and may not be framed. Pages carry a Content-Security-Policy whose only inline scripts are the
//! ones Leptos marks with this response's nonce; everything else gets a policy that allows
//! nothing at all.

use axum::{
    extract::Request,
    http::{header, HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

/// The policy of every answer that sets none of its own (JSON, files, errors).
const LOCKED_DOWN: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The page policy. The app needs, besides its own files:
/// - `'wasm-unsafe-eval'`: compiling its WebAssembly (the split pieces too);
/// - `blob:` and `data:` images and fetches: three.js hands textures out of a GLB as blob URLs;
/// - `blob:` media: decoded speech; inline `style` attributes (set by the views, never scripts).
pub fn page_csp(nonce: &str, live_reload: Option<(&str, u32)>) -> String {
    let reload = live_reload
        .map(|(host, port)| format!(" ws://{host}:{port}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; \
         script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; \
         media-src 'self' data: blob:; \
         connect-src 'self' data: blob:{reload}; \
         font-src 'self' data:; \
         worker-src 'self' blob:; \
         object-src 'none'; \
         base-uri 'none'; \
         form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// A fresh nonce: 16 random bytes, base64.
pub fn new_nonce() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    // Without the system's random numbers nothing below is safe; a failing getrandom on Linux
    // means no entropy at all, and then a fixed nonce with a loud log is still better than none.
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!("no random numbers for a page nonce: {e}");
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Called while a page renders: puts the page policy, with the nonce Leptos gives this render's
/// inline scripts, on the response.
pub fn apply_page_policy(options: &leptos::config::LeptosOptions) {
    use leptos::prelude::use_context;
    let Some(res) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let Some(nonce) = leptos::nonce::use_nonce() else {
        tracing::error!("a page rendered without a nonce; it is sent with the locked-down policy");
        return;
    };
    // `cargo leptos watch` serves pages that reload themselves over a websocket.
    let live_reload = (options.env == leptos::config::Env::DEV).then_some(options.reload_port);
    let host = use_context::<axum::http::request::Parts>()
        .and_then(|p| {
            p.headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(super::host::split_host)
                .map(|(name, _)| name)
        })
        .unwrap_or_else(|| "127.0.0.1".into());
    let policy = page_csp(&nonce, live_reload.map(|port| (host.as_str(), port)));
    if let Ok(v) = HeaderValue::from_str(&policy) {
        res.insert_header(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// The middleware: adds the headers to every answer, and the locked-down policy to those without
/// one.
pub async fn add(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let fixed: [(HeaderName, &str); 4] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(LOCKED_DOWN),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_policy_allows_only_nonced_inline_scripts() {
        let p = page_csp("abc", None);
        let script = p
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .unwrap();
        assert!(script.contains("'nonce-abc'"));
        assert!(!script.contains("unsafe-inline"));
        assert!(!script.contains("'unsafe-eval'"));
        for d in [
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(p.contains(d), "{d}");
        }
        assert!(!p.contains("ws:"));
        assert!(page_csp("abc", Some(("localhost", 3001))).contains("ws://localhost:3001"));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(new_nonce(), new_nonce());
        assert_eq!(new_nonce().len(), 24);
    }
}
