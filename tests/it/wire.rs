//! Bytes on the wire: pages and JSON compressed on the fly, the built front end's precompressed
//! twins, the content-hashed viewer bundle, and what must go out as it is (event streams, audio,
//! models, small answers). Its own test binary: it renders pages (see `pages.rs`).
#![cfg(feature = "ssr")]

use crate::common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use common::openai_mock::{Flavor, MockLlm, KEY};
use common::{harness, harness_with, put_json, send, Reply};
use http_body_util::BodyExt;
use serde_json::json;
use std::io::{Read, Write};
use tower::ServiceExt;

fn get_with(uri: &str, accept: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT_ENCODING, accept)
        .body(Body::empty())
        .unwrap()
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
    w.write_all(bytes).unwrap();
    drop(w);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    w.write_all(bytes).unwrap();
    w.finish().unwrap()
}

/// The body as the browser reads it, after undoing `Content-Encoding`.
fn decoded(r: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    match r.header(header::CONTENT_ENCODING) {
        "br" => {
            brotli::Decompressor::new(&r.body[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "gzip" => {
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        "" => out = r.body.clone(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

fn varies_by_encoding(r: &Reply) -> bool {
    r.headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding")
    })
}

/// A built site: a script with both twins, a style sheet without (as `make dev` leaves it), and
/// the viewer bundle with a brotli twin.
fn site() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    let viewer = dir.path().join("viewer");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::create_dir_all(&viewer).unwrap();
    let lines = |n: usize, line: fn(usize) -> String| -> Vec<u8> {
        (0..n).map(line).collect::<String>().into_bytes()
    };
    let script = lines(200, |i| {
        format!("export function f{i}() {{ return {i}; }}\n")
    });
    std::fs::write(pkg.join("waifu-rt3d.js"), &script).unwrap();
    std::fs::write(pkg.join("waifu-rt3d.js.br"), brotli(&script)).unwrap();
    std::fs::write(pkg.join("waifu-rt3d.js.gz"), gzip(&script)).unwrap();
    let css = ".tab { color: red; }\n".repeat(100);
    std::fs::write(pkg.join("waifu-rt3d.css"), &css).unwrap();
    let bundle = lines(300, |i| format!("const v{i} = {{ three: {i} }};\n"));
    std::fs::write(viewer.join("viewer-bridge.js"), &bundle).unwrap();
    std::fs::write(viewer.join("viewer-bridge.js.br"), brotli(&bundle)).unwrap();
    (dir, script, bundle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_json_and_the_front_end_go_out_compressed() {
    let (dir, script, bundle) = site();
    let h = harness_with(|s| s.with_site_root(dir.path())).await;

    // Pages and JSON, in whichever encoding the browser takes; as they are when it takes none.
    for (accept, encoding) in [("br", "br"), ("gzip", "gzip"), ("gzip, deflate, br", "br")] {
        let r = send(&h.app, get_with("/chat", accept)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header(header::CONTENT_ENCODING), encoding, "{accept}");
        assert!(varies_by_encoding(&r));
        assert!(String::from_utf8(decoded(&r)).unwrap().contains("tab-chat"));

        let r = send(&h.app, get_with("/api/config", accept)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header(header::CONTENT_ENCODING), encoding, "{accept}");
        let config: serde_json::Value = serde_json::from_slice(&decoded(&r)).unwrap();
        assert!(config["llm"].is_object(), "{config}");
    }
    let page = send(&h.app, get_with("/chat", "identity")).await;
    assert_eq!(page.header(header::CONTENT_ENCODING), "");
    let page = String::from_utf8(page.body).unwrap();
    // The 404 page still renders behind the files.
    let r = send(&h.app, get_with("/definitely-not-a-page", "br")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8(decoded(&r))
        .unwrap()
        .contains("not-found"));

    // Built files: the twin the browser takes, byte for byte, never compressed twice.
    for (accept, encoding, ext) in [("br", "br", ".br"), ("gzip", "gzip", ".gz")] {
        let r = send(&h.app, get_with("/pkg/waifu-rt3d.js", accept)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header(header::CONTENT_ENCODING), encoding);
        let twin = std::fs::read(dir.path().join(format!("pkg/waifu-rt3d.js{ext}"))).unwrap();
        assert_eq!(r.body, twin);
        assert_eq!(decoded(&r), script);
        assert!(r.header(header::CONTENT_TYPE).contains("javascript"));
        assert_eq!(
            r.header(header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert!(varies_by_encoding(&r));
    }
    let r = send(&h.app, get_with("/pkg/waifu-rt3d.js", "identity")).await;
    assert_eq!(r.header(header::CONTENT_ENCODING), "");
    assert_eq!(r.body, script);
    // Without a twin the file is compressed on the fly.
    let r = send(&h.app, get_with("/pkg/waifu-rt3d.css", "br")).await;
    assert_eq!(r.header(header::CONTENT_ENCODING), "br");
    assert_eq!(
        decoded(&r),
        ".tab { color: red; }\n".repeat(100).into_bytes()
    );

    // The page names the viewer bundle by a content-hashed address, which is cached for good.
    let url = page
        .split("name=\"waifu-viewer-bundle\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no viewer bundle meta in the page"))
        .to_string();
    let hash = url
        .strip_prefix("/viewer/viewer-bridge.")
        .and_then(|rest| rest.strip_suffix(".js"))
        .unwrap_or_else(|| panic!("not a hashed bundle address: {url}"));
    assert!(
        hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{url}"
    );
    let r = send(&h.app, get_with(&url, "br")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header(header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.header(header::CONTENT_ENCODING), "br");
    assert_eq!(decoded(&r), bundle);
    assert!(r.header(header::CONTENT_TYPE).contains("javascript"));
    let r = send(&h.app, get_with(&url, "identity")).await;
    assert_eq!(r.body, bundle);
    // Another hash is not the bundle; the plain name still works but is not cached for good.
    let r = send(
        &h.app,
        get_with("/viewer/viewer-bridge.0123456789abcdef.js", "br"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(&h.app, get_with("/viewer/viewer-bridge.js", "identity")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.header(header::CACHE_CONTROL).contains("immutable"));
}

#[tokio::test]
async fn event_streams_media_and_small_answers_go_out_as_they_are() {
    let h = harness().await;
    let mock = MockLlm::start(Flavor::LmStudio).await;
    let config = json!({"llm": {"provider": "lmstudio", "endpoint": mock.base_url,
        "model": "tokens:20:20", "api_key": KEY, "first_token_timeout_ms": 1000}});
    let r = send(&h.app, put_json("/api/config", &config.to_string())).await;
    assert_eq!(r.status, StatusCode::OK);

    // The chat stream: plain events, each as it is written; the first comes before the end.
    let req = Request::post("/api/chat/stream?session_id=3")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT_ENCODING, "br, gzip")
        .body(Body::from(r#"{"text":"hi"}"#))
        .unwrap();
    let res = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(res.headers().get(header::CONTENT_ENCODING).is_none());
    let mut body = res.into_body();
    let mut seen = String::new();
    while !seen.contains("event: token") {
        let frame = body.frame().await.expect("the stream ended").unwrap();
        let chunk = frame.into_data().unwrap_or_default();
        seen.push_str(std::str::from_utf8(&chunk).expect("a compressed event"));
    }
    assert!(
        !seen.contains("event: done"),
        "the stream arrived whole: {seen}"
    );
    let rest = body.collect().await.unwrap().to_bytes();
    seen.push_str(std::str::from_utf8(&rest).unwrap());
    assert!(seen.contains("event: done"), "{seen}");

    // Audio and models are compressed already.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(8192).collect();
    std::fs::write(h.state.paths.audio.join("abc.wav"), &bytes).unwrap();
    std::fs::write(h.state.paths.avatars.join("Aiko.vrm"), &bytes).unwrap();
    for uri in ["/files/audio/abc.wav", "/files/avatars/Aiko.vrm"] {
        let r = send(&h.app, get_with(uri, "br, gzip")).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert_eq!(r.header(header::CONTENT_ENCODING), "", "{uri}");
        assert_eq!(r.body, bytes, "{uri}");
    }
    // A small answer gains nothing.
    let r = send(&h.app, get_with("/api/no-such-thing", "br, gzip")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header(header::CONTENT_ENCODING), "");
    assert_eq!(r.json()["ok"], json!(false));
}
