//! [ssr] Who may talk to the server, and what the browser may do with its pages.
//!
//! Every request passes, in this order (outermost first, see `server::router`):
//! 1. [`headers`]: security headers on every answer (`nosniff`, no referrer, a strict default
//!    Content-Security-Policy; pages get their own with a per-response nonce).
//! 2. [`host`]: the `Host` header must name this server (DNS rebinding protection).
//! 3. CORS, only for the origins named with `--cors-origin`.
//! 4. [`origin`]: a state-changing request from another site is refused (CSRF protection).
//! 5. [`auth`]: with a token set, `/api`, `/sfn` and `/files` need it; pages show a sign-in form.

pub mod auth;
pub mod headers;
pub mod host;
pub mod origin;

pub use auth::{AuthToken, TokenSource};

use axum::http::HeaderValue;
use std::net::IpAddr;

/// The request rules of one server: which names it answers to, which other origins may call it,
/// and the token, if one is needed.
pub struct Security {
    pub(crate) hosts: host::HostRules,
    pub(crate) cors: Vec<HeaderValue>,
    pub(crate) token: Option<AuthToken>,
    /// Part of the sign-in cookie's name: cookies ignore ports, two instances on one machine must
    /// not overwrite each other's.
    pub(crate) port: u16,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("hosts", &self.hosts)
            .field("cors", &self.cors)
            .field("token", &self.token)
            .field("port", &self.port)
            .finish()
    }
}

impl Security {
    /// The rules of a server on loopback with no flags: local names only, no CORS, no token.
    pub fn loopback(port: u16) -> Self {
        Self {
            hosts: host::HostRules::new(IpAddr::from([127, 0, 0, 1]), Vec::new()),
            cors: Vec::new(),
            token: None,
            port,
        }
    }

    /// The rules from the command line. Fails, saying which flag is wrong, on a host name or an
    /// origin that cannot be one.
    pub fn new(
        bind: IpAddr,
        port: u16,
        allowed_hosts: &[String],
        cors_origins: &[String],
        token: Option<AuthToken>,
    ) -> Result<Self, String> {
        let names = allowed_hosts
            .iter()
            .filter(|h| !h.trim().is_empty())
            .map(|h| host::HostName::parse_flag(h))
            .collect::<Result<Vec<_>, _>>()?;
        let cors = cors_origins
            .iter()
            .filter(|o| !o.trim().is_empty())
            .map(|o| origin::parse_cors_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            hosts: host::HostRules::new(bind, names),
            cors,
            token,
            port,
        })
    }

    /// Whether requests must carry the token.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// The CORS layer for the named origins; none when there are none (no
    /// `Access-Control-Allow-Origin` is ever sent then).
    pub fn cors_layer(&self) -> Option<tower_http::cors::CorsLayer> {
        use axum::http::{header, Method};
        use tower_http::cors::{AllowOrigin, CorsLayer};
        if self.cors.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.cors.clone()))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::DELETE,
                    Method::PATCH,
                ])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .max_age(std::time::Duration::from_secs(600)),
        )
    }
}

/// A refusal in the form the caller understands: JSON for API paths (like every other API
/// error), plain text elsewhere.
pub(crate) fn refusal(
    status: axum::http::StatusCode,
    path: &str,
    code: &str,
    message: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if is_api_path(path) {
        crate::server::error::ApiError::new(status, code, message).into_response()
    } else {
        (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("{message}\n"),
        )
            .into_response()
    }
}

/// Paths whose answers are data for programs, not pages for people.
pub(crate) fn is_api_path(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/sfn/")
        || path.starts_with("/files/")
        || path == "/metrics"
}
