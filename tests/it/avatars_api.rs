//! The avatars API through the whole router: list, upload (validation, names, size cap), delete.

use crate::common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use common::{delete, get, harness, send};
use waifu_rt3d::avatars::{DEFAULT_VRM0, DEFAULT_VRM1};

/// A plain glTF binary from Khronos' sample models (tests/fixtures/avatars/PROVENANCE.md).
const BOX_GLB: &[u8] = include_bytes!("../fixtures/avatars/Box.glb");

fn upload(uri: &str, file_name: &str, bytes: &[u8]) -> Request<Body> {
    let (content_type, body) = common::multipart_file(file_name, bytes);
    Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn the_default_avatar_is_listed_and_served() {
    let h = harness().await;
    let r = send(&h.app, get("/api/avatars")).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["active"], "default.vrm");
    assert_eq!(j["avatars"][0]["name"], "default.vrm");
    assert_eq!(j["avatars"][0]["kind"], "vrm1");
    assert_eq!(j["avatars"][0]["default"], true);
    assert_eq!(j["avatars"][0]["url"], "/files/avatars/default.vrm");
    let f = send(&h.app, get("/files/avatars/default.vrm")).await;
    assert_eq!(f.status, StatusCode::OK);
    assert_eq!(f.header(header::CONTENT_TYPE), "model/gltf-binary");
    assert_eq!(f.body, DEFAULT_VRM1);
}

#[tokio::test]
async fn a_vrm0_upload_is_saved_listed_and_never_silently_replaced() {
    let h = harness().await;
    let r = send(
        &h.app,
        upload("/api/avatars/upload", "twin.vrm", DEFAULT_VRM0),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let j = r.json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["name"], "twin.vrm");
    assert_eq!(j["url"], "/files/avatars/twin.vrm");
    let list = send(&h.app, get("/api/avatars")).await.json();
    let twin = &list["avatars"][1];
    assert_eq!(twin["name"], "twin.vrm");
    assert_eq!(twin["kind"], "vrm0");
    assert_eq!(twin["size"], DEFAULT_VRM0.len());

    let again = send(
        &h.app,
        upload("/api/avatars/upload", "twin.vrm", DEFAULT_VRM1),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["code"], "exists");
    let over = send(
        &h.app,
        upload(
            "/api/avatars/upload?overwrite=true",
            "twin.vrm",
            DEFAULT_VRM1,
        ),
    )
    .await;
    assert_eq!(over.status, StatusCode::OK);
    let served = send(&h.app, get("/files/avatars/twin.vrm")).await;
    assert_eq!(served.body, DEFAULT_VRM1);
    // The default itself can never be replaced.
    let def = send(
        &h.app,
        upload(
            "/api/avatars/upload?overwrite=true",
            "default.vrm",
            DEFAULT_VRM0,
        ),
    )
    .await;
    assert_eq!(def.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn bad_uploads_get_400_or_415_and_leave_nothing_behind() {
    let h = harness().await;
    let cases: [(&str, Vec<u8>, StatusCode); 6] = [
        ("model.fbx", DEFAULT_VRM1.to_vec(), StatusCode::BAD_REQUEST),
        ("noext", DEFAULT_VRM1.to_vec(), StatusCode::BAD_REQUEST),
        (
            "fake.glb",
            b"PK\x03\x04 not a model".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "plain.vrm",
            BOX_GLB.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "cut.vrm",
            DEFAULT_VRM1[..5000].to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "bad.gltf",
            b"{\"nodes\": []}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (name, bytes, status) in cases {
        let r = send(&h.app, upload("/api/avatars/upload", name, &bytes)).await;
        assert_eq!(
            r.status,
            status,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["ok"], false);
    }
    let left: Vec<_> = std::fs::read_dir(&h.state.paths.avatars)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["default.vrm"], "nothing else was written");
    // A plain GLB is fine as .glb.
    let glb = send(&h.app, upload("/api/avatars/upload", "plain.glb", BOX_GLB)).await;
    assert_eq!(glb.status, StatusCode::OK);
    assert_eq!(glb.json()["kind"], "glb");
}

#[tokio::test]
async fn path_parts_in_names_never_leave_the_folder() {
    let h = harness().await;
    for raw in [
        "../escape.vrm",
        "%2e%2e%2fescape2.vrm",
        "..\\..\\escape3.vrm",
        ".hidden.vrm",
    ] {
        let r = send(&h.app, upload("/api/avatars/upload", raw, DEFAULT_VRM0)).await;
        assert_eq!(r.status, StatusCode::OK, "{raw}");
        let name = r.json()["name"].as_str().unwrap().to_string();
        assert!(
            !name.contains(['/', '\\']) && !name.starts_with('.'),
            "{raw} -> {name}"
        );
        assert!(
            h.state.paths.avatars.join(&name).is_file(),
            "{raw} -> {name}"
        );
    }
    assert!(!h.state.paths.root.join("escape.vrm").exists());
    assert!(!h.state.paths.root.join("escape2.vrm").exists());
    for raw in [
        "..%2Fdefault.vrm",
        "%2e%2e%2fconfig%2fapp.json",
        ".hidden.vrm",
    ] {
        let r = send(&h.app, delete(&format!("/api/avatars/{raw}"))).await;
        assert!(r.status.is_client_error(), "{raw}: {}", r.status);
    }
    assert!(h.state.paths.config_file.is_file());
}

#[tokio::test]
async fn bodies_over_the_cap_are_413_whether_declared_or_streamed() {
    let h = harness().await;
    let r = send(
        &h.app,
        common::put_json("/api/config", r#"{"avatar": {"max_upload_mb": 1}}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Declared: Content-Length over the cap.
    let big = vec![b'x'; 1_300_000];
    let r = send(&h.app, upload("/api/avatars/upload", "big.vrm", &big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["code"], "too_large");
    // Streamed: no length given, the count while reading stops it.
    let mut req = upload("/api/avatars/upload", "big.vrm", &big);
    req.headers_mut().remove(header::CONTENT_LENGTH);
    let body = std::mem::replace(req.body_mut(), Body::empty());
    let stream = http_body_util::BodyStream::new(body);
    *req.body_mut() = Body::from_stream(futures_util_stream(stream));
    let r = send(&h.app, req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let left = std::fs::read_dir(&h.state.paths.avatars).unwrap().count();
    assert_eq!(left, 1, "the partial upload was removed");
}

/// A body stream without a known length.
fn futures_util_stream(
    body: http_body_util::BodyStream<Body>,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> {
    use futures::StreamExt;
    body.filter_map(|frame| async move {
        match frame {
            Ok(f) => f.into_data().ok().map(Ok),
            Err(e) => Some(Err(e)),
        }
    })
}

#[tokio::test]
async fn delete_removes_uploads_but_not_the_default_and_resets_the_active_choice() {
    let h = harness().await;
    send(
        &h.app,
        upload("/api/avatars/upload", "mine.vrm", DEFAULT_VRM0),
    )
    .await;
    let r = send(
        &h.app,
        common::put_json("/api/config", r#"{"avatar": {"active": "mine.vrm"}}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&h.app, delete("/api/avatars/default.vrm")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "default_avatar");
    // The Chat tab asks only for the URL of the avatar to show.
    let active_url = || {
        Request::post("/sfn/avatars/active_url")
            .header(header::ACCEPT, "application/json")
            .body(Body::empty())
            .unwrap()
    };
    let r = send(&h.app, active_url()).await;
    assert_eq!(r.json(), "/files/avatars/mine.vrm");
    let r = send(&h.app, delete("/api/avatars/mine.vrm")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["ok"], true);
    let r = send(&h.app, active_url()).await;
    assert_eq!(r.json(), "/files/avatars/default.vrm");
    assert!(!h.state.paths.avatars.join("mine.vrm").exists());
    assert_eq!(h.state.config.get().avatar.active, "default.vrm");
    let r = send(&h.app, delete("/api/avatars/mine.vrm")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A multipart upload of `file_name` whose body is `head`, then `filler` chunks of 64 KB (each
/// counted in `pulled` when the server takes it), then the closing boundary; no length given.
/// Like bytes from a network, each chunk is ready only after the reader has waited once: the
/// multipart reader takes whatever is ready at once, so an always-ready body would be read
/// whole whatever the handler does.
fn streamed_upload(
    file_name: &str,
    head: &[u8],
    filler: usize,
    pulled: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Request<Body> {
    use futures::StreamExt;
    let (content_type, whole) = common::multipart_file(file_name, head);
    let split = whole.windows(head.len()).position(|w| w == head).unwrap() + head.len();
    let (start, end) = (whole[..split].to_vec(), whole[split..].to_vec());
    let filler = futures::stream::iter(0..filler).then(move |_| {
        let pulled = pulled.clone();
        async move {
            tokio::task::yield_now().await;
            pulled.fetch_add(64 * 1024, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![0u8; 64 * 1024]))
        }
    });
    let body = futures::stream::iter([Ok(axum::body::Bytes::from(start))])
        .chain(filler)
        .chain(futures::stream::iter([Ok(axum::body::Bytes::from(end))]));
    Request::post("/api/avatars/upload")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .unwrap()
}

fn avatar_files(h: &common::Harness) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(&h.state.paths.avatars)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_glb_declaring_a_json_chunk_over_32_mb_is_refused_before_the_rest_is_read() {
    let h = harness().await;
    // The binary glTF header (magic, version 2, total length) and a first chunk header that
    // declares 64 MB of JSON; then 40 MB would follow, under the 100 MB upload cap.
    let mut head = b"glTF".to_vec();
    head.extend(2u32.to_le_bytes());
    head.extend((100u32 << 20).to_le_bytes());
    head.extend((64u32 << 20).to_le_bytes());
    head.extend(b"JSON");
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let r = send(
        &h.app,
        streamed_upload("huge.glb", &head, 640, pulled.clone()),
    )
    .await;
    let message = r.error_message(StatusCode::PAYLOAD_TOO_LARGE, "json_too_large");
    assert!(message.contains("64 MB, over the 32 MB"), "{message}");
    let read = pulled.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        read <= 256 * 1024,
        "{read} bytes of the 40 MB after the header were read"
    );
    assert_eq!(avatar_files(&h), ["default.vrm"]);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_upload_leaves_no_temporary_file() {
    use futures::StreamExt;
    let h = harness().await;
    let (content_type, whole) = common::multipart_file("gone.vrm", DEFAULT_VRM1);
    // Half the file arrives, then the client goes quiet (and is then dropped).
    let half = whole[..whole.len() / 2].to_vec();
    let body = futures::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(half))])
        .chain(futures::stream::pending());
    let req = Request::post("/api/avatars/upload")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .unwrap();
    let request = tokio::spawn({
        use tower::ServiceExt;
        h.app.clone().oneshot(req)
    });
    // Wait until the upload is being written to its temporary file.
    let dir = h.state.paths.avatars.clone();
    let writing = || {
        std::fs::read_dir(&dir).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(".upload-")
                && e.metadata().unwrap().len() > 0
        })
    };
    for _ in 0..1000 {
        if writing() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(writing(), "the upload never started writing");
    // The connection drops: the request's future is dropped mid-upload.
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    assert_eq!(avatar_files(&h), ["default.vrm"]);
}

#[tokio::test]
async fn the_folder_cap_refuses_an_upload_that_would_pass_it_and_keeps_nothing() {
    let h = harness().await;
    let cap = |mb: u64| {
        common::put_json(
            "/api/config",
            &format!(r#"{{"avatar": {{"max_total_mb": {mb}}}}}"#),
        )
    };
    assert_eq!(send(&h.app, cap(0)).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(send(&h.app, cap(2)).await.status, StatusCode::OK);
    // 770 KB of default avatar, then 770 KB more: 1.5 MB, under the cap.
    let r = send(
        &h.app,
        upload("/api/avatars/upload", "one.vrm", DEFAULT_VRM0),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // A third would make 2.2 MB.
    let r = send(
        &h.app,
        upload("/api/avatars/upload", "two.vrm", DEFAULT_VRM0),
    )
    .await;
    let message = r.error_message(StatusCode::INSUFFICIENT_STORAGE, "avatars_full");
    for part in [
        "limit of 2 MB (avatar.max_total_mb)",
        "1.5 MB are in use",
        "Delete avatars",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert_eq!(avatar_files(&h), ["default.vrm", "one.vrm"]);
    // Replacing a file: the one replaced does not count.
    let r = send(
        &h.app,
        upload(
            "/api/avatars/upload?overwrite=true",
            "one.vrm",
            DEFAULT_VRM1,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Space freed is space to use.
    send(&h.app, delete("/api/avatars/one.vrm")).await;
    let r = send(
        &h.app,
        upload("/api/avatars/upload", "two.vrm", DEFAULT_VRM0),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(avatar_files(&h), ["default.vrm", "two.vrm"]);
}
