//! Watching the server from outside: the request id every answer carries (`x-request-id`), the
//! request counts and times, and `GET /metrics` that renders them (names in [`crate::metrics`]).

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::PrometheusHandle;
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};
use tower_http::request_id::{MakeRequestId, RequestId};

pub const REQUEST_ID: &str = "x-request-id";

/// The route label of a request that matched no route (unknown paths): one fixed value, so
/// unknown paths cannot add series.
pub const UNMATCHED: &str = "other";

/// The label of a request no route template names: the file folders (served whole, without a
/// template of their own), else [`UNMATCHED`].
fn unmatched_route(path: &str) -> &'static str {
    [
        ("/files/audio/", "/files/audio/{file}"),
        ("/files/avatars/", "/files/avatars/{file}"),
        ("/pkg/", "/pkg/{file}"),
    ]
    .into_iter()
    .find(|(prefix, _)| path.starts_with(prefix))
    .map_or(UNMATCHED, |(_, label)| label)
}

/// `GET /metrics`: every metric in Prometheus's text format, never cached.
pub async fn metrics(State(handle): State<PrometheusHandle>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        handle.render(),
    )
        .into_response()
}

/// Counts and times every request by its route template; outside the request rules, so refused
/// requests are counted too.
pub async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = match req.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str().to_owned(),
        None => unmatched_route(req.uri().path()).to_owned(),
    };
    let method = method_label(req.method());
    let res = next.run(req).await;
    crate::metrics::http_request(method, &route, res.status().as_u16(), started.elapsed());
    res
}

/// Standard methods by name; anything else one label, so invented methods add no series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Makes request ids: 16 random bytes in hex, or a counter when the system has no random
/// numbers to give.
#[derive(Clone, Copy, Default)]
pub struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let mut bytes = [0u8; 16];
        let id = match getrandom::fill(&mut bytes) {
            Ok(()) => hex::encode(bytes),
            Err(_) => format!("req-{}", COUNTER.fetch_add(1, Ordering::Relaxed)),
        };
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// A proxy in front may send its own request id, and it is kept so both logs tell of the same
/// request; one that is long or has other characters than letters, digits and `-_.:` is dropped
/// (and a new one made), so the logs hold nothing a client chose freely.
pub async fn keep_usable_request_id(mut req: Request, next: Next) -> Response {
    let usable = req
        .headers()
        .get(REQUEST_ID)
        .is_none_or(|v| is_usable_id(v.as_bytes()));
    if !usable {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

fn is_usable_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The request id the id layer gave the request, for its log span.
pub fn request_id(req: &Request) -> &str {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_new_each_time_and_incoming_ones_are_checked() {
        let req = axum::http::Request::new(());
        let a = MakeId.make_request_id(&req).unwrap();
        let b = MakeId.make_request_id(&req).unwrap();
        assert_ne!(a.header_value(), b.header_value());
        assert_eq!(a.header_value().len(), 32);
        assert!(is_usable_id(a.header_value().as_bytes()));
        assert!(is_usable_id(b"proxy-7f3a:12.5_x"));
        for bad in [&b""[..], b"has space", b"quote\"", b"{json}", &[b'a'; 65]] {
            assert!(!is_usable_id(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn files_are_labelled_by_their_folder_and_the_rest_is_other() {
        assert_eq!(
            unmatched_route("/files/audio/ab12.wav"),
            "/files/audio/{file}"
        );
        assert_eq!(
            unmatched_route("/files/avatars/x/../y.vrm"),
            "/files/avatars/{file}"
        );
        assert_eq!(unmatched_route("/pkg/waifu-rt3d.abc.wasm"), "/pkg/{file}");
        assert_eq!(unmatched_route("/wp-admin/install.php"), UNMATCHED);
        assert_eq!(unmatched_route("/files/audiox"), UNMATCHED);
    }

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
