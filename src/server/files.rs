//! `/files/avatars/*` and `/files/audio/*`: the two folders of the object store the browser may
//! read, whichever backend holds them. Each request stays inside its folder (no `..`, no encoded
//! slashes, no hidden files; in a local folder, no symlinks leading out), and the answer has the
//! right content type, the object's ETag and last-modified time (`If-None-Match` or
//! `If-Modified-Since` → 304), one byte range when asked
//! (206 with `Content-Range`, 416 when it cannot be met), cache headers, and HEAD.

use super::error::ApiError;
use crate::blobs::{BlobError, Blobs};
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use object_store::{GetOptions, GetRange};
use std::{path::Path, sync::Arc};

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

struct Folder {
    blobs: Blobs,
    /// The folder's name in the store (`avatars`, `audio`).
    name: &'static str,
    caching: Caching,
}

/// A router that serves the objects of `folder` in `blobs`.
pub fn serve<S: Clone + Send + Sync + 'static>(
    blobs: Blobs,
    folder: &'static str,
    caching: Caching,
) -> Router<S> {
    let folder = Arc::new(Folder {
        blobs,
        name: folder,
        caching,
    });
    Router::new().fallback(move |req: Request| {
        let folder = folder.clone();
        async move { answer(&folder, req).await }
    })
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

fn not_found() -> Response {
    ApiError::not_found("No such file.").into_response()
}

/// The name a request asks for inside the folder, when it is a plain one.
fn requested_name(raw: &str) -> Option<String> {
    let raw = raw.trim_start_matches('/');
    // Invalid UTF-8 is refused; a malformed escape stays as it is and names no file.
    let rel = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?
        .into_owned();
    let unsafe_part = |s: &str| s.is_empty() || s == ".." || s.starts_with('.');
    if rel.is_empty()
        || rel.contains(['\\', '\0'])
        || rel.split('/').any(unsafe_part)
        || crate::blobs::is_staging_name(&rel)
    {
        return None;
    }
    Some(rel)
}

/// In a local folder, whether the file is really inside it once symlinks are resolved.
async fn inside_local_folder(root: &Path, folder: &str, rel: &str) -> bool {
    let folder = root.join(folder);
    let (Ok(real), Ok(folder)) = (
        tokio::fs::canonicalize(folder.join(rel)).await,
        tokio::fs::canonicalize(&folder).await,
    ) else {
        return false;
    };
    real.starts_with(&folder) && tokio::fs::metadata(&real).await.is_ok_and(|m| m.is_file())
}

async fn answer(folder: &Folder, req: Request) -> Response {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut res = StatusCode::METHOD_NOT_ALLOWED.into_response();
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
    };
    let Some(rel) = requested_name(req.uri().path()) else {
        return not_found();
    };
    if let Some(root) = folder.blobs.local_root() {
        if !inside_local_folder(root, folder.name, &rel).await {
            return not_found();
        }
    }
    let key = format!("{}/{rel}", folder.name);
    let headers = req.headers();
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| folder.blobs.store_etags(v));
    // Only without an `If-None-Match`, which takes precedence (RFC 9110, 13.1.3).
    let if_modified_since = headers
        .get(header::IF_MODIFIED_SINCE)
        .filter(|_| if_none_match.is_none())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        // The header has whole seconds and a folder's times do not: the object sent with
        // `Last-Modified: T` was modified within the second T.
        .map(|t| t.with_timezone(&chrono::Utc) + chrono::Duration::nanoseconds(999_999_999));
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| !head);
    let result = match range {
        Some(range) => ranged(folder, &key, range, if_none_match, if_modified_since).await,
        None => {
            let opts = GetOptions {
                if_none_match,
                if_modified_since,
                head,
                ..GetOptions::default()
            };
            folder.blobs.get(&key, opts).await.map(Some)
        }
    };
    let got = match result {
        Ok(Some(got)) => got,
        Ok(None) => return unsatisfiable(folder, &key).await,
        Err(BlobError::NotModified { .. }) => return not_modified(folder, headers),
        Err(BlobError::NotFound { .. }) => return not_found(),
        Err(e) => {
            tracing::error!(key, error = %e, "a data file could not be read");
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "storage_error",
                "The file storage did not answer; try again.",
            )
            .into_response();
        }
    };
    let size = got.meta.size;
    let range = got.range.clone();
    let etag = got
        .meta
        .e_tag
        .as_deref()
        .map(|t| folder.blobs.etag_header(t));
    let modified = got
        .meta
        .last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let partial = range.start > 0 || range.end < size;
    let mut res = Response::new(if head {
        Body::empty()
    } else {
        Body::from_stream(got.into_stream())
    });
    let out = res.headers_mut();
    common_headers(out, folder, etag.as_deref());
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type_for(&rel)),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&modified) {
        out.insert(header::LAST_MODIFIED, v);
    }
    out.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    if partial {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{size}",
            range.start,
            range.end.saturating_sub(1)
        )) {
            res.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    res
}

/// A GET of one byte range: the object's size first (to judge the range), then those bytes.
/// `Ok(None)` when the range cannot be met. More than one range gets the whole object.
async fn ranged(
    folder: &Folder,
    key: &str,
    range: &str,
    if_none_match: Option<String>,
    if_modified_since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<object_store::GetResult>, BlobError> {
    let meta = folder
        .blobs
        .get(
            key,
            GetOptions {
                if_none_match,
                if_modified_since,
                head: true,
                ..GetOptions::default()
            },
        )
        .await?
        .meta;
    let ranges =
        http_range_header::parse_range_header(range).and_then(|parsed| parsed.validate(meta.size));
    let wanted = match ranges.as_deref() {
        Ok([one]) => Some(GetRange::Bounded(*one.start()..*one.end() + 1)),
        Ok(_) => None,
        Err(_) => return Ok(None),
    };
    let opts = GetOptions {
        range: wanted,
        // The bytes must come from the object that was measured.
        if_match: meta.e_tag.clone(),
        ..GetOptions::default()
    };
    folder.blobs.get(key, opts).await.map(Some)
}

/// 416, with the object's size when it is known.
async fn unsatisfiable(folder: &Folder, key: &str) -> Response {
    let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    if let Ok(Some(meta)) = folder.blobs.head(key).await {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
            res.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    res
}

/// 304: the client's copy is current. The tag it sent back is the object's.
fn not_modified(folder: &Folder, request: &HeaderMap) -> Response {
    let mut res = StatusCode::NOT_MODIFIED.into_response();
    let sent = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.contains(',') && v.trim() != "*")
        .map(str::trim);
    common_headers(res.headers_mut(), folder, sent);
    res
}

fn common_headers(out: &mut HeaderMap, folder: &Folder, etag: Option<&str>) {
    out.insert(header::CACHE_CONTROL, folder.caching.header());
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(v) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        out.insert(header::ETAG, v);
    }
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

    #[test]
    fn only_plain_names_inside_the_folder_are_asked_for() {
        assert_eq!(requested_name("/a%20b.vrm").as_deref(), Some("a b.vrm"));
        for bad in [
            "/a.vrm%231",
            "/",
            "/../x",
            "/%2e%2e/x",
            "/.hidden",
            "/a//b",
            "/a%5cb",
            "/%00.wav",
            "/%ff",
        ] {
            assert_eq!(requested_name(bad), None, "{bad}");
        }
    }
}
