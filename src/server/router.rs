//! The whole HTTP surface in one place: REST routes, data files, server functions and the
//! rendered app. Tests drive [`app`] in-process.

use super::{
    compression, files, limits, routes,
    security::{auth, headers, host, origin},
    site,
    state::AppState,
    telemetry,
};
use crate::app::{shell, App};
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, Method},
    middleware::{self, Next},
    response::Response,
    routing::get,
    Router,
};
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::time::Duration;
use tower_http::{
    request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::Span;

pub fn app(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            tracing::info_span!(
                "http",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %telemetry::request_id(req),
            )
        })
        .on_request(())
        // `on_response` already logs every status, errors included.
        .on_failure(())
        .on_response(|res: &Response, latency: Duration, _span: &Span| {
            // A number to two decimals: plain in the text format, a JSON number in the other.
            let latency_ms = (latency.as_secs_f64() * 100_000.0).round() / 100.0;
            tracing::info!(status = res.status().as_u16(), latency_ms, "done");
        });
    let guard = state.security.clone();
    // Inside the access rules: a request they refuse costs its client no quota, and only
    // clients let in take a place in the limiter's table.
    let api = limits::rate_limited(routes::api(), &state.config.get().limits);
    let router = Router::new()
        .merge(api)
        .merge(auth::routes())
        .route("/metrics", get(telemetry::metrics))
        .nest_service(
            "/files/avatars",
            files::serve::<()>(
                state.blobs.clone(),
                crate::avatars::FOLDER,
                files::Caching::Revalidate,
            ),
        )
        .nest_service(
            "/files/audio",
            files::serve::<()>(state.blobs.clone(), "audio", files::Caching::Immutable),
        )
        .leptos_routes(&state, routes, move || shell(options.clone()))
        .fallback_service(site::serve(&state))
        .layer(compression::layer())
        .layer(middleware::from_fn(cache_headers))
        .layer(middleware::from_fn(head_renders_fully))
        // The request rules (see `security`), innermost first: the token, then cross-site
        // refusal, then CORS for named origins, then the Host check; headers go on every answer.
        .layer(middleware::from_fn_with_state(guard.clone(), auth::guard))
        .layer(middleware::from_fn_with_state(guard.clone(), origin::guard));
    let router = match guard.cors_layer() {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(middleware::from_fn_with_state(guard, host::guard))
        .layer(middleware::from_fn(headers::add))
        // Observation sits outermost, so requests the rules above refuse are counted, logged and
        // given an id too. Innermost first: the id is copied to the answer; each request's log
        // span names it; the request is counted and timed by route; the id is made (or a usable
        // one a proxy sent is kept).
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(middleware::from_fn(telemetry::record))
        .layer(SetRequestIdLayer::x_request_id(telemetry::MakeId))
        .layer(middleware::from_fn(telemetry::keep_usable_request_id))
        .with_state(state)
}

/// A HEAD request for a page is rendered as a GET to the end and its body dropped afterwards.
/// Dropping a streaming Leptos render midway (what a plain HEAD does) disposes the page's
/// reactive owner while suspended parts are still resolving.
async fn head_renders_fully(mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() != Method::HEAD || path.starts_with("/files/") || path.starts_with("/pkg/") {
        return next.run(req).await;
    }
    *req.method_mut() = Method::GET;
    let res = next.run(req).await;
    let (mut parts, body) = res.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        Err(e) => tracing::warn!("rendering a HEAD response failed: {e}"),
    }
    Response::from_parts(parts, Body::empty())
}

/// API answers are never cached; the built front end's files carry a content hash in their
/// names, so they can be cached for good.
async fn cache_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    let success = res.status().is_success();
    let headers = res.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        if path.starts_with("/api") || path.starts_with("/sfn/") {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        } else if path.starts_with("/pkg/") && success {
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
        }
    }
    res
}
