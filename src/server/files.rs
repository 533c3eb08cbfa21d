//! `/files/avatars/*` and `/files/audio/*`: the two data folders the browser may read. tower-http
//! serves the bytes (with Range and If-Modified-Since); the guard in front keeps every request
//! inside its folder (no `..`, no encoded slashes, no hidden files, no symlinks leading out) and
//! adds the right content type, an ETag and cache headers.

use super::error::ApiError;
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use std::{path::PathBuf, sync::Arc, time::UNIX_EPOCH};
use tower_http::services::ServeDir;

/// How long a browser may keep a file.
#[derive(Clone, Copy, Debug)]
pub enum Caching {
    /// The name is a content hash, so the bytes behind it never change.
    Immutable,
    /// The name can be reused (an avatar deleted and uploaded again): always revalidate.
    Revalidate,
}

impl Caching {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Caching::Immutable => "public, max-age=31536000, immutable",
            Caching::Revalidate => "no-cache",
        })
    }
}

#[derive(Clone)]
struct Folder {
    root: Arc<PathBuf>,
    caching: Caching,
}

/// A router that serves the files of `root`.
pub fn serve<S: Clone + Send + Sync + 'static>(root: PathBuf, caching: Caching) -> Router<S> {
    let folder = Folder {
        root: Arc::new(root.clone()),
        caching,
    };
    Router::new()
        .fallback_service(ServeDir::new(root).append_index_html_on_directories(false))
        .layer(middleware::from_fn_with_state(folder, guard))
}

/// The content type browsers and three.js expect, by extension.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "vrm" | "glb" => "model/gltf-binary",
        "gltf" => "model/gltf+json",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" | "opus" => "audio/ogg",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

async fn guard(State(folder): State<Folder>, req: Request, next: Next) -> Response {
    let not_found = || ApiError::not_found("No such file.").into_response();
    let raw = req.uri().path().trim_start_matches('/');
    // Invalid UTF-8 is refused; a malformed escape stays as it is and names no file.
    let Ok(rel) = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
    else {
        return not_found();
    };
    let unsafe_part = |s: &str| s.is_empty() || s == ".." || s.starts_with('.');
    if rel.is_empty() || rel.contains(['\\', '\0']) || rel.split('/').any(unsafe_part) {
        return not_found();
    }
    // Resolve symlinks and make sure the real file is still inside the folder.
    let (Ok(real), Ok(root)) = (
        tokio::fs::canonicalize(folder.root.join(&rel)).await,
        tokio::fs::canonicalize(folder.root.as_ref()).await,
    ) else {
        return not_found();
    };
    if !real.starts_with(&root) {
        return not_found();
    }
    let Ok(meta) = tokio::fs::metadata(&real).await else {
        return not_found();
    };
    if !meta.is_file() {
        return not_found();
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let etag = format!("W/\"{:x}-{:x}\"", meta.len(), mtime);
    let etag_value = HeaderValue::from_str(&etag).ok();

    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Some(v) = etag_value {
            res.headers_mut().insert(header::ETAG, v);
        }
        res.headers_mut()
            .insert(header::CACHE_CONTROL, folder.caching.header());
        return res;
    }

    let mut res = next.run(req).await;
    if res.status().is_success() {
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type_for(&rel)),
        );
        headers.insert(header::CACHE_CONTROL, folder.caching.header());
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(v) = etag_value {
            headers.insert(header::ETAG, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type_for("x.VRM"), "model/gltf-binary");
        assert_eq!(content_type_for("x.gltf"), "model/gltf+json");
        assert_eq!(content_type_for("x.mp3"), "audio/mpeg");
        assert_eq!(content_type_for("x.wav"), "audio/wav");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }
}
