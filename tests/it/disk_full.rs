//! A full disk during each kind of write (settings, database, audio cache, avatar upload): the
//! answer is 507 `disk_full` with a message that says what was not saved, and what was there
//! before is intact. The disk is a small tmpfs, really filled; where mounting one is not
//! permitted the tests say so and skip.

use crate::common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use common::{get, harness_in, post_json, put_json, send, tts_mock::VoiceMock, Harness};
use serde_json::json;
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};
use waifu_rt3d::avatars::{DEFAULT_VRM0, DEFAULT_VRM1};

/// A tmpfs mounted on a fresh folder, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None`, with the reason printed, where mounting is not permitted.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir }),
            Ok(o) => {
                eprintln!(
                    "skipped: mounting a tmpfs is not permitted here ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount ({e})");
                None
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes a file until the disk has no room left; returns it (removing it frees the disk).
    fn fill(&self) -> PathBuf {
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        let err = loop {
            if let Err(e) = f.write_all(&block) {
                break e;
            }
        };
        // Then byte by byte into the last part of a block.
        while f.write_all(&[0]).is_ok() {}
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a file the server still holds open must not keep the disk mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn harness_on(disk: &SmallDisk) -> Harness {
    harness_in(&disk.data(), |s| s).await
}

/// A 507 with the disk-full code and every part of the message.
fn assert_disk_full(r: &common::Reply, parts: &[&str]) {
    let message = r.error_message(StatusCode::INSUFFICIENT_STORAGE, "disk_full");
    for part in ["The disk is full", "Free some space"].iter().chain(parts) {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
}

fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.') || n.ends_with(".tmp"))
        .collect()
}

#[tokio::test]
async fn settings_on_a_full_disk_answer_507_and_the_old_file_stays() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let h = harness_on(&disk).await;
    let change = |n: u32| {
        put_json(
            "/api/config",
            &json!({"memory": {"max_history": n}}).to_string(),
        )
    };
    assert_eq!(send(&h.app, change(30)).await.status, StatusCode::OK);
    let before = std::fs::read(&h.state.paths.config_file).unwrap();
    disk.fill();
    let r = send(&h.app, change(40)).await;
    assert_disk_full(
        &r,
        &[
            "the settings could not be saved",
            "previous settings are still in effect",
        ],
    );
    assert_eq!(std::fs::read(&h.state.paths.config_file).unwrap(), before);
    assert_eq!(h.state.config.get().memory.max_history, 30);
    let shown = send(&h.app, get("/api/config")).await.json();
    assert_eq!(shown["memory"]["max_history"], 30);
    assert_eq!(
        hidden_files(h.state.config.path().parent().unwrap()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn an_upload_on_a_full_disk_answers_507_and_the_old_avatar_stays() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let h = harness_on(&disk).await;
    let upload = |uri: &str, bytes: &[u8]| {
        let (content_type, body) = common::multipart_file("mine.vrm", bytes);
        Request::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let r = send(&h.app, upload("/api/avatars/upload", DEFAULT_VRM0)).await;
    assert_eq!(r.status, StatusCode::OK);
    disk.fill();
    let r = send(
        &h.app,
        upload("/api/avatars/upload?overwrite=true", DEFAULT_VRM1),
    )
    .await;
    assert_disk_full(&r, &["the avatar could not be saved", "intact"]);
    let mine = h.state.paths.avatars.join("mine.vrm");
    assert_eq!(std::fs::read(mine).unwrap(), DEFAULT_VRM0);
    assert_eq!(hidden_files(&h.state.paths.avatars), Vec::<String>::new());
}

#[tokio::test]
async fn speech_on_a_full_disk_answers_507_and_the_cached_audio_stays() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let h = harness_on(&disk).await;
    let voice = VoiceMock::xtts(0).await;
    h.state
        .config
        .update(
            json!({"tts": {"provider": "xtts_server", "fallback_chain": [],
            "providers": {"xtts_server": voice.xtts_settings()}}}),
        )
        .await
        .unwrap();
    let say = |text: &str| post_json("/api/tts", &json!({ "text": text }).to_string());
    let r = send(&h.app, say("Good morning.")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let url = r.json()["url"].as_str().unwrap().to_string();
    let cached = send(&h.app, get(&url)).await.body;
    assert!(!cached.is_empty());
    disk.fill();
    let r = send(&h.app, say("Something new to say.")).await;
    assert_disk_full(
        &r,
        &[
            "the speech could not be saved",
            "audio already cached is intact",
        ],
    );
    assert_eq!(
        voice.calls(),
        2,
        "the voice spoke; its audio could not be kept"
    );
    // The audio saved before is still there and still a cache hit.
    assert_eq!(send(&h.app, get(&url)).await.body, cached);
    let again = send(&h.app, say("Good morning.")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["meta"]["cached"], true);
    assert_eq!(voice.calls(), 2);
    for dir in [
        h.state.paths.audio.clone(),
        h.state.paths.audio.join(".meta"),
    ] {
        let temp: Vec<_> = hidden_files(&dir)
            .into_iter()
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert_eq!(temp, Vec::<String>::new(), "{}", dir.display());
    }
}

#[tokio::test]
async fn the_database_on_a_full_disk_answers_507_and_keeps_every_saved_row() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let h = harness_on(&disk).await;
    let r = send(&h.app, post_json("/api/sessions", r#"{"title": "Full"}"#)).await;
    let sid = r.json()["id"].as_i64().unwrap();
    let add = |n: usize| {
        let text = format!("message {n}: {}", "words to fill the disk ".repeat(700));
        post_json(
            &format!("/api/sessions/{sid}/messages"),
            &json!({"role": "user", "text": text}).to_string(),
        )
    };
    let r = send(&h.app, add(0)).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut saved = vec![r.json()["message_id"].as_i64().unwrap()];
    let filler = disk.fill();
    // SQLite reuses room it already has (the WAL, free pages): write until it needs more.
    let mut refused = None;
    for n in 1..2000 {
        let r = send(&h.app, add(n)).await;
        if r.status == StatusCode::OK {
            saved.push(r.json()["message_id"].as_i64().unwrap());
        } else {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the database never ran out of room");
    assert_disk_full(
        &r,
        &[
            "the history database could not be written",
            "nothing was changed",
        ],
    );
    let page = send(
        &h.app,
        get(&format!("/api/sessions/{sid}/messages?limit=1000")),
    )
    .await
    .json();
    let ids: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, saved, "every acknowledged message, and only those");
    // The check runs in SQLite itself, on a connection of its own to the same file.
    let pool = waifu_rt3d::store::open(&h.state.paths.db_file)
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    // Room again: writes work again.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(send(&h.app, add(9999)).await.status, StatusCode::OK);
}
