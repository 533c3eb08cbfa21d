//! The object store behind avatars and cached audio, on both backends: a folder (`file://`) and
//! S3 (moto, see `common::moto`). The same checks run on each; a test named `..._on_s3` fails
//! when moto is not installed (`make setup-test`).

use crate::common::{self, moto::moto, *};
use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use std::sync::Arc;
use waifu_rt3d::{
    avatars,
    blobs::{Blobs, Location},
    tts::{Audio, AudioCache, OutputKind},
};

/// A fresh store of each kind: a temporary folder, and a new bucket (under a prefix, so the
/// prefix handling is exercised too).
async fn folder_store() -> (tempfile::TempDir, Blobs) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::open(&Location::Folder(dir.path().join("store")))
        .await
        .unwrap();
    (dir, blobs)
}

async fn s3_store() -> Blobs {
    let url = moto().bucket("some/prefix");
    Blobs::open(&Location::parse(&url).unwrap()).await.unwrap()
}

async fn the_store_layer(blobs: Blobs) {
    assert_eq!(blobs.read("avatars/a.vrm").await.unwrap(), None);
    assert!(blobs.head("avatars/a.vrm").await.unwrap().is_none());
    blobs.put("avatars/a.vrm", "one".into()).await.unwrap();
    assert!(!blobs
        .put_if_absent("avatars/a.vrm", "two".into())
        .await
        .unwrap());
    assert_eq!(
        blobs.read("avatars/a.vrm").await.unwrap().unwrap(),
        "one".as_bytes()
    );
    assert!(blobs
        .put_if_absent("avatars/b c.vrm", "three".into())
        .await
        .unwrap());
    blobs.put("audio/.meta/x.json", "{}".into()).await.unwrap();
    let names: Vec<_> = blobs
        .list("avatars")
        .await
        .unwrap()
        .into_iter()
        .map(|(name, meta)| (name, meta.size))
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, [("a.vrm".into(), 3), ("b c.vrm".to_string(), 5)]);
    // `list` stays in its folder; `list_all` goes into sub-folders.
    assert!(blobs.list("audio").await.unwrap().is_empty());
    assert_eq!(blobs.list_all("audio").await.unwrap().len(), 1);
    assert_eq!(
        blobs.read_range("avatars/b c.vrm", 1..3).await.unwrap(),
        "hr".as_bytes()
    );
    blobs.delete("avatars/a.vrm").await.unwrap();
    // Deleting what is not there is no error (S3 cannot tell).
    blobs.delete("avatars/a.vrm").await.unwrap();
    assert!(blobs.head("avatars/a.vrm").await.unwrap().is_none());
}

#[tokio::test]
async fn the_store_layer_in_a_folder() {
    let (_dir, blobs) = folder_store().await;
    the_store_layer(blobs).await;
}

#[tokio::test]
async fn the_store_layer_on_s3() {
    the_store_layer(s3_store().await).await;
}

#[tokio::test]
async fn a_missing_bucket_or_a_bad_url_stops_start_up_with_a_clear_message() {
    let url = moto().bucket("");
    let missing = url.replace("waifu-test", "waifu-missing");
    let err = Blobs::open(&Location::parse(&missing).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not answer"), "{err}");
    assert!(err.contains("bucket exists"), "{err}");
    let err = Location::parse("ftp://x/y").unwrap_err().to_string();
    assert!(err.contains("STORAGE_URL"), "{err}");
}

/// The harness with its avatars and audio in `storage` (`None`: the data folder).
async fn harness_on(storage: Option<&str>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness_on_storage(&dir.path().join("data"), storage, |s| s).await;
    h._dir = Some(dir);
    h
}

fn with_header(uri: &str, name: header::HeaderName, value: &str) -> Request<Body> {
    Request::get(uri)
        .header(name, value)
        .body(Body::empty())
        .unwrap()
}

async fn files_are_served_with_ranges_and_etags(h: Harness) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    h.state
        .blobs
        .put("avatars/Aiko Model.vrm", bytes.clone().into())
        .await
        .unwrap();
    h.state
        .blobs
        .put("audio/abc.wav", "RIFF....WAVE".into())
        .await
        .unwrap();
    let uri = "/files/avatars/Aiko%20Model.vrm";

    let r = send(&h.app, get(uri)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, bytes);
    assert_eq!(r.header(header::CONTENT_TYPE), "model/gltf-binary");
    assert_eq!(r.header(header::CONTENT_LENGTH), "4096");
    assert_eq!(r.header(header::CACHE_CONTROL), "no-cache");
    assert_eq!(r.header(header::ACCEPT_RANGES), "bytes");
    let etag = r.header(header::ETAG).to_string();
    assert!(etag.ends_with('"') && etag.len() > 2, "{etag:?}");

    let r = send(&h.app, with_header(uri, header::RANGE, "bytes=100-199")).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &bytes[100..200]);
    assert_eq!(r.header(header::CONTENT_RANGE), "bytes 100-199/4096");
    assert_eq!(r.header(header::CONTENT_LENGTH), "100");

    let r = send(&h.app, with_header(uri, header::RANGE, "bytes=-10")).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &bytes[4086..]);
    assert_eq!(r.header(header::CONTENT_RANGE), "bytes 4086-4095/4096");

    let r = send(&h.app, with_header(uri, header::RANGE, "bytes=4000-")).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &bytes[4000..]);

    for unsatisfiable in ["bytes=5000-6000", "bytes=4096-"] {
        let r = send(&h.app, with_header(uri, header::RANGE, unsatisfiable)).await;
        assert_eq!(
            r.status,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{unsatisfiable}"
        );
        assert_eq!(r.header(header::CONTENT_RANGE), "bytes */4096");
    }

    let r = send(&h.app, with_header(uri, header::IF_NONE_MATCH, &etag)).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(r.header(header::ETAG), etag);
    let modified = send(&h.app, get(uri))
        .await
        .header(header::LAST_MODIFIED)
        .to_string();
    assert!(modified.ends_with(" GMT"), "{modified:?}");
    let r = send(
        &h.app,
        with_header(uri, header::IF_MODIFIED_SINCE, &modified),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = send(
        &h.app,
        with_header(
            uri,
            header::IF_MODIFIED_SINCE,
            "Mon, 01 Jan 2001 00:00:00 GMT",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&h.app, with_header(uri, header::IF_NONE_MATCH, "\"other\"")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, bytes);

    let r = send(&h.app, Request::head(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    assert_eq!(r.header(header::CONTENT_LENGTH), "4096");
    assert_eq!(r.header(header::ETAG), etag);

    let r = send(
        &h.app,
        Request::builder()
            .method(Method::DELETE)
            .uri(uri)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_ne!(r.status, StatusCode::OK);
    assert!(h
        .state
        .blobs
        .head("avatars/Aiko Model.vrm")
        .await
        .unwrap()
        .is_some());

    let r = send(&h.app, get("/files/audio/abc.wav")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"RIFF....WAVE");
    assert_eq!(r.header(header::CONTENT_TYPE), "audio/wav");
    assert!(r.header(header::CACHE_CONTROL).contains("immutable"));

    // Nothing outside the two folders, and nothing hidden inside them.
    h.state
        .blobs
        .put("audio/.meta/abc.json", "{\"provider\":\"x\"}".into())
        .await
        .unwrap();
    h.state
        .blobs
        .put("secret.json", "{\"provider\":\"x\"}".into())
        .await
        .unwrap();
    for uri in [
        "/files/avatars/../secret.json",
        "/files/avatars/%2e%2e/secret.json",
        "/files/avatars/..%2fsecret.json",
        "/files/audio/.meta/abc.json",
        "/files/audio/%2emeta/abc.json",
        "/files/audio/..%5csecret.json",
        "/files/avatars/",
        "/files/avatars/missing.vrm",
    ] {
        let r = send(&h.app, get(uri)).await;
        assert!(
            r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
            "{uri} answered {}",
            r.status
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("provider"),
            "{uri} leaked a hidden object"
        );
    }
}

#[tokio::test]
async fn files_in_a_folder_are_served_with_ranges_and_etags() {
    files_are_served_with_ranges_and_etags(harness_on(None).await).await;
}

#[tokio::test]
async fn files_on_s3_are_served_with_ranges_and_etags() {
    let url = moto().bucket("waifu");
    files_are_served_with_ranges_and_etags(harness_on(Some(&url)).await).await;
}

#[tokio::test]
async fn an_avatar_on_s3_is_uploaded_listed_served_and_deleted() {
    let url = moto().bucket("");
    let h = harness_on(Some(&url)).await;
    // Nothing of it lands in the data folder (its avatars folder holds only uploads under way).
    let local = || std::fs::read_dir(&h.state.paths.avatars).unwrap().count();
    assert_eq!(local(), 0, "the default avatar went into the data folder");

    let (content_type, body) = common::multipart_file("mine.vrm", avatars::DEFAULT_VRM0);
    let r = send(
        &h.app,
        Request::post("/api/avatars/upload")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(local(), 0, "the upload's temporary file stayed");

    let list = send(&h.app, get("/api/avatars")).await.json();
    let names: Vec<_> = list["avatars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].clone(), a["kind"].clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("default.vrm".into(), "vrm1".into()),
            ("mine.vrm".into(), "vrm0".into())
        ],
        "{list}"
    );
    let r = send(&h.app, get("/files/avatars/mine.vrm")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, avatars::DEFAULT_VRM0);

    // Taken names stay taken.
    let (content_type, body) = common::multipart_file("mine.vrm", avatars::DEFAULT_VRM1);
    let r = send(
        &h.app,
        Request::post("/api/avatars/upload")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let r = send(&h.app, common::delete("/api/avatars/mine.vrm")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        send(&h.app, get("/files/avatars/mine.vrm")).await.status,
        StatusCode::NOT_FOUND
    );
    let list = send(&h.app, get("/api/avatars")).await.json();
    assert_eq!(list["avatars"].as_array().unwrap().len(), 1, "{list}");
    let health = send(&h.app, get("/api/healthcheck")).await.json();
    assert_eq!(health["libs"]["default_avatar"], true, "{health}");
}

#[tokio::test]
async fn instances_starting_together_write_the_default_avatar_once() {
    let url = moto().bucket("shared");
    let location = Location::parse(&url).unwrap();
    let stores: Vec<_> = futures::future::join_all((0..3).map(|_| Blobs::open(&location)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let wrote = futures::future::join_all(stores.iter().map(avatars::ensure_default)).await;
    let wrote: Vec<bool> = wrote.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        wrote.iter().filter(|w| **w).count(),
        1,
        "each start-up wrote it: {wrote:?}"
    );
    assert_eq!(
        stores[2]
            .read("avatars/default.vrm")
            .await
            .unwrap()
            .unwrap(),
        avatars::DEFAULT_VRM1
    );
    // And whole servers too.
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let started = futures::future::join_all(dirs.iter().map(|d| {
        let backends = waifu_rt3d::server::preflight::Backends {
            storage: Some(url.clone()),
            ..Default::default()
        };
        async move { waifu_rt3d::server::preflight::run_with(d.path(), &backends).await }
    }))
    .await;
    assert!(started.iter().all(Result::is_ok));
}

#[tokio::test]
async fn two_instances_synthesising_the_same_audio_end_at_the_same_url() {
    let url = moto().bucket("");
    let location = Location::parse(&url).unwrap();
    let a = Arc::new(AudioCache::new(
        Blobs::open(&location).await.unwrap(),
        "audio",
    ));
    let b = Arc::new(AudioCache::new(
        Blobs::open(&location).await.unwrap(),
        "audio",
    ));
    let hash = format!("{:064}", 7);
    let make = || async {
        // Both are under way at once: neither finds the other's file.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        Ok(Audio {
            bytes: vec![7u8; 5_000].into(),
            kind: OutputKind::MP3,
            sample_rate: None,
            duration_ms: Some(42),
            timings: None,
        })
    };
    let (ea, eb) = tokio::join!(
        a.get_or_create(&hash, OutputKind::MP3, "fish_audio", u64::MAX, make()),
        b.get_or_create(&hash, OutputKind::MP3, "fish_audio", u64::MAX, make()),
    );
    let ((ea, hit_a), (eb, hit_b)) = (ea.unwrap(), eb.unwrap());
    assert!(
        !hit_a && !hit_b,
        "one of them found a file that was not there yet"
    );
    assert_eq!(ea.name, eb.name);
    // Each instance now finds it, and serves the same bytes.
    for cache in [&a, &b] {
        let found = cache.lookup(&hash, OutputKind::MP3).await.unwrap();
        assert_eq!(found.name, ea.name);
        assert_eq!(found.meta.duration_ms, Some(42));
    }
    let h = harness_on(Some(&url)).await;
    let r = send(&h.app, get(&format!("/files/audio/{}", ea.name))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, vec![7u8; 5_000]);
    assert_eq!(r.header(header::CONTENT_TYPE), "audio/mpeg");
}

#[tokio::test]
async fn the_cache_on_s3_evicts_the_oldest_files_over_its_cap() {
    let url = moto().bucket("");
    let blobs = Blobs::open(&Location::parse(&url).unwrap()).await.unwrap();
    let cache = Arc::new(AudioCache::new(blobs.clone(), "audio"));
    let cap = 35_000;
    let mut names = Vec::new();
    for n in 0..4u8 {
        let (e, _) = cache
            .get_or_create(
                &format!("{n:064}"),
                OutputKind::MP3,
                "fish_audio",
                cap,
                async move {
                    Ok(Audio {
                        bytes: vec![n; 10_000].into(),
                        kind: OutputKind::MP3,
                        sample_rate: None,
                        duration_ms: None,
                        timings: None,
                    })
                },
            )
            .await
            .unwrap();
        names.push(e.name);
        // S3 times are whole seconds: the next object must be newer.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    }
    let left: Vec<_> = blobs
        .list("audio")
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert!(
        !left.contains(&names[0]),
        "the oldest file stayed: {left:?}"
    );
    assert!(left.contains(&names[3]), "the newest file went: {left:?}");
    let total: u64 = blobs
        .list_all("audio")
        .await
        .unwrap()
        .iter()
        .map(|m| m.size)
        .sum();
    assert!(total <= cap, "{total}");
    // Its metadata went with it.
    assert!(blobs
        .head(&format!("audio/.meta/{:064}.json", 0))
        .await
        .unwrap()
        .is_none());
}
