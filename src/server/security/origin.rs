//! Cross-site request refusal. A page on any web site can make the browser send "simple" requests
//! here (form posts, `text/plain` or multipart bodies) without asking first. Browsers say where a
//! request comes from (`Origin`, `Sec-Fetch-Site`); a state-changing request that a page of this
//! server did not send is refused before it reaches a handler.

use super::refusal;
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::Response,
};
use std::sync::Arc;

/// Reads a `--cors-origin` value into the form browsers send in `Origin` (`scheme://host[:port]`).
pub fn parse_cors_origin(raw: &str) -> Result<HeaderValue, String> {
    let bad = |why: &str| {
        format!("--cors-origin {raw:?} {why}: give an origin such as https://example.com or http://127.0.0.1:5173")
    };
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("is not a web origin"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("must be an http:// or https:// origin"));
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err(bad("must be an origin only, without a path"));
    }
    HeaderValue::from_str(&url.origin().ascii_serialization())
        .map_err(|_| bad("is not a web origin"))
}

/// Whether this request is one the origin rules look at: anything that can change state (every
/// method but GET, HEAD and OPTIONS, anywhere) and every API or server-function call, and the
/// metrics.
fn is_guarded(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/sfn/")
        || path == "/metrics"
}

/// Why a request must be refused as cross-site, or `None`. `cors` lists the origins allowed with
/// `--cors-origin`.
pub fn cross_site_reason(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    cors: &[HeaderValue],
) -> Option<String> {
    if !is_guarded(method, path) {
        return None;
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        if cors.contains(origin) {
            return None;
        }
        // With `Referrer-Policy: no-referrer` a browser sends `Origin: null` for a form its own
        // page posts; fetch metadata, which no page can set, still says where it came from.
        if origin == "null" && fetch_site == Some("same-origin") {
            return None;
        }
        let shown: String = origin.to_str().unwrap_or("?").chars().take(100).collect();
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|h| same_origin(&shown, h)) {
            return Some(format!(
                "This request came from another web site ({shown}), so it was refused: only this server's own pages may use it. To let a web app at that origin call the API, start the server with --cors-origin {shown}."
            ));
        }
    }
    match fetch_site {
        Some(site @ ("cross-site" | "same-site")) => Some(format!(
            "This request came from another web site (Sec-Fetch-Site: {site}), so it was refused: only this server's own pages may use it."
        )),
        _ => None,
    }
}

/// `origin` (`http://host:port`) is the origin of this server as reached through `host`.
fn same_origin(origin: &str, host: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") || url.path() != "/" {
        return false;
    }
    let Some((name, port)) = super::host::split_host(host) else {
        return false;
    };
    let origin_name = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string().to_ascii_lowercase(),
        None => return false,
    };
    // A Host without a port means the scheme's own port.
    let default_port = if url.scheme() == "https" { 443 } else { 80 };
    origin_name == name && url.port_or_known_default() == Some(port.unwrap_or(default_port))
}

/// The middleware: 403 `cross_origin`, and nothing changes.
pub async fn guard(
    State(security): State<Arc<super::Security>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    match cross_site_reason(req.method(), path, req.headers(), &security.cors) {
        Some(reason) => {
            tracing::warn!(method = %req.method(), path, "refused a cross-site request");
            refusal(StatusCode::FORBIDDEN, path, "cross_origin", reason)
        }
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn refused(method: Method, path: &str, pairs: &[(&str, &str)]) -> bool {
        cross_site_reason(&method, path, &headers(pairs), &[]).is_some()
    }

    #[test]
    fn own_pages_and_tools_pass() {
        let own = [
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
        ];
        assert!(!refused(Method::PUT, "/api/config", &own));
        assert!(!refused(
            Method::POST,
            "/sfn/settings/save",
            &[
                ("host", "localhost:3000"),
                ("origin", "http://localhost:3000"),
                ("sec-fetch-site", "same-origin")
            ]
        ));
        // curl and scripts send neither header.
        assert!(!refused(Method::DELETE, "/api/sessions/1", &[]));
        // A typed address or a bookmark.
        assert!(!refused(
            Method::GET,
            "/api/config",
            &[("sec-fetch-site", "none")]
        ));
        assert!(!refused(
            Method::PUT,
            "/api/config",
            &[("host", "[::1]:3000"), ("origin", "http://[::1]:3000")]
        ));
        assert!(!refused(
            Method::POST,
            "/api/chat",
            &[("host", "box.lan"), ("origin", "http://box.lan")]
        ));
        assert!(refused(
            Method::POST,
            "/api/chat",
            &[("host", "box.lan"), ("origin", "http://box.lan:8080")]
        ));
    }

    #[test]
    fn other_sites_are_refused() {
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:4000",
            "https://127.0.0.1:3000.evil.example",
            "null",
            "http://localhost:3000",
        ] {
            assert!(
                refused(
                    Method::POST,
                    "/api/chat",
                    &[("host", "127.0.0.1:3000"), ("origin", origin)]
                ),
                "{origin}"
            );
        }
        for site in ["cross-site", "same-site"] {
            assert!(refused(
                Method::POST,
                "/sfn/settings/save",
                &[("sec-fetch-site", site)]
            ));
            assert!(refused(
                Method::GET,
                "/api/sessions",
                &[("sec-fetch-site", site)]
            ));
            // A link from another site to a page is an ordinary visit.
            assert!(!refused(Method::GET, "/chat", &[("sec-fetch-site", site)]));
        }
        // A masked origin counts only when fetch metadata says the page was this server's.
        assert!(refused(
            Method::POST,
            "/auth/login",
            &[("host", "127.0.0.1:3000"), ("origin", "null")]
        ));
        assert!(refused(
            Method::POST,
            "/auth/login",
            &[("origin", "null"), ("sec-fetch-site", "cross-site")]
        ));
        assert!(!refused(
            Method::POST,
            "/auth/login",
            &[("origin", "null"), ("sec-fetch-site", "same-origin")]
        ));
        // No Host to compare with: an Origin alone cannot be this server's.
        assert!(refused(
            Method::POST,
            "/api/chat",
            &[("origin", "http://127.0.0.1:3000")]
        ));
    }

    #[test]
    fn named_origins_may_call() {
        let cors = [parse_cors_origin("http://127.0.0.1:5173/").unwrap()];
        let h = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:5173"),
            ("sec-fetch-site", "same-site"),
        ]);
        assert!(cross_site_reason(&Method::PUT, "/api/config", &h, &cors).is_none());
        let other = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:5174"),
        ]);
        assert!(cross_site_reason(&Method::PUT, "/api/config", &other, &cors).is_some());
    }

    #[test]
    fn cors_flags_must_be_origins() {
        assert_eq!(
            parse_cors_origin("https://Example.com:443").unwrap(),
            "https://example.com"
        );
        for bad in ["example.com", "https://example.com/app", "ftp://x", "*", ""] {
            assert!(parse_cors_origin(bad).is_err(), "{bad:?}");
        }
    }
}
