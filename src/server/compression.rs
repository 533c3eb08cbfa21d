//! On-the-fly compression (brotli or gzip, as the browser asks) of what compresses well: pages,
//! JSON, and the front end's files where the build made no compressed twins (`make dev`; see
//! `site`). Never an event stream: each chat event must leave the moment it is written. Never
//! audio, models or images, which are compressed already, nor bodies too small to gain.

use axum::http::{header, Extensions, HeaderMap, StatusCode, Version};
use tower_http::compression::{
    predicate::{And, Predicate, SizeAbove},
    CompressionLayer,
};

/// Below this many bytes compression saves less than it costs.
const MIN_SIZE: u16 = 1024;

type Rule = And<SizeAbove, fn(StatusCode, Version, &HeaderMap, &Extensions) -> bool>;

/// The layer, at tower-http's on-the-fly levels (brotli 4, gzip 6).
pub fn layer() -> CompressionLayer<Rule> {
    let by_type: fn(StatusCode, Version, &HeaderMap, &Extensions) -> bool = |_, _, headers, _| {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(compressible)
    };
    CompressionLayer::new().compress_when(SizeAbove::new(MIN_SIZE).and(by_type))
}

/// Whether a body of this `Content-Type` is worth compressing. A list of what is, so that a type
/// nobody thought of goes out as it is.
pub fn compressible(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "text/event-stream" => false,
        "application/json" | "application/javascript" | "application/wasm" | "image/svg+xml" => {
            true
        }
        m => m.starts_with("text/") || m.ends_with("+json") || m.ends_with("+xml"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_compressed_streams_and_media_are_not() {
        for t in [
            "text/html; charset=utf-8",
            "application/json",
            "text/javascript",
            "text/css",
            "application/wasm",
            "image/svg+xml",
            "model/gltf+json",
            "TEXT/PLAIN",
        ] {
            assert!(compressible(t), "{t}");
        }
        for t in [
            "text/event-stream",
            "text/event-stream; charset=utf-8",
            "audio/mpeg",
            "audio/wav",
            "model/gltf-binary",
            "image/png",
            "application/octet-stream",
            "",
        ] {
            assert!(!compressible(t), "{t}");
        }
    }
}
