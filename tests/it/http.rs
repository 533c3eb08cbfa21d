//! Router tests: the whole HTTP surface driven in-process, on a real data folder.
#![cfg(feature = "ssr")]

use crate::common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use common::{get, harness, put_json, send};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_config_is_redacted_and_not_cached() {
    let h = harness().await;
    h.state
        .config
        .update(json!({"llm": {"api_key": "sk-top-secret"}}))
        .await
        .unwrap();
    let r = send(&h.app, get("/api/config")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(!text.contains("sk-top-secret"), "{text}");
    assert!(!text.contains("\"api_key\""), "{text}");
    let cfg = r.json();
    assert_eq!(cfg["llm"]["api_key_set"], true);
    assert_eq!(cfg["tts"]["providers"]["fish_audio"]["api_key_set"], false);
    // The earlier server's flat fields are mirrored from the selected provider.
    assert_eq!(cfg["tts"]["provider"], "piper_local");
    assert!(cfg["tts"].get("voice_id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_config_deep_merges_saves_and_redacts() {
    let h = harness().await;
    let r = send(
        &h.app,
        put_json("/api/config", r#"{"llm": {"provider": "ollama", "endpoint": "http://127.0.0.1:11434/v1", "api_key": "ollama-key"}, "tts": {"providers": {"xtts_server": {"language": "ja"}}}}"#),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let body = r.json();
    assert_eq!(body["ok"], true);
    assert_eq!(body["config"]["llm"]["provider"], "ollama");
    assert_eq!(body["config"]["llm"]["api_key_set"], true);
    assert!(!String::from_utf8_lossy(&r.body).contains("ollama-key"));
    // Siblings survive.
    assert_eq!(
        body["config"]["tts"]["providers"]["xtts_server"]["endpoint"],
        "http://127.0.0.1:8020"
    );
    // Persisted to disk with the key, sealed and bound to its endpoint's origin.
    let disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&h.state.paths.config_file).unwrap())
            .unwrap();
    assert_eq!(
        disk["llm"]["api_key"]["origin"], "http://127.0.0.1:11434",
        "{disk}"
    );
    assert_eq!(disk["tts"]["providers"]["xtts_server"]["language"], "ja");
    assert_eq!(
        h.state.config.get().llm.api_key,
        waifu_rt3d::shared::config::Secret::new("ollama-key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_edit_put_round_trip_keeps_keys() {
    let h = harness().await;
    h.state
        .config
        .update(json!({"tts": {"providers": {"elevenlabs": {"api_key": "xi-key"}}}}))
        .await
        .unwrap();
    let mut cfg = send(&h.app, get("/api/config")).await.json();
    cfg["memory"]["max_history"] = json!(20);
    let r = send(&h.app, put_json("/api/config", &cfg.to_string())).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let now = h.state.config.get();
    assert_eq!(now.memory.max_history, 20);
    assert_eq!(now.tts.providers.elevenlabs.api_key.expose(), "xi-key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_clients_flat_tts_fields_land_on_the_selected_provider() {
    let h = harness().await;
    let r = send(
        &h.app,
        put_json(
            "/api/config",
            r#"{"tts": {"provider": "fish_audio", "voice_id": "abc123", "api_key": "fish"}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let now = h.state.config.get();
    assert_eq!(now.tts.providers.fish_audio.voice_id, "abc123");
    assert_eq!(now.tts.providers.fish_audio.api_key.expose(), "fish");
    assert_eq!(r.json()["config"]["tts"]["voice_id"], "abc123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400_not_422_and_change_nothing() {
    let h = harness().await;
    let before = h.state.config.get();
    for (body, code) in [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        (r#"{"llm": {"provider": "lmstudio""#, "invalid_json"),
        ("[1,2,3]", "invalid_config"),
        (r#"{"llm": {"provider": "skynet"}}"#, "invalid_config"),
        (r#"{"tts": {"fallback_chain": ["nope"]}}"#, "invalid_config"),
        (r#"{"memory": {"max_history": 100000}}"#, "invalid_config"),
        (
            r#"{"llm": {"provider": "lmstudio", "endpoint": "ftp://x"}}"#,
            "invalid_config",
        ),
    ] {
        let r = send(&h.app, put_json("/api/config", body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "body {body}");
        let j = r.json();
        assert_eq!(j["ok"], false);
        assert_eq!(j["code"], code, "body {body}: {j}");
        assert!(j["error"].as_str().unwrap().len() > 10);
    }
    assert_eq!(h.state.config.get(), before);
    let r = send(
        &h.app,
        put_json("/api/config", r#"{"llm": {"provider": "skynet"}}"#),
    )
    .await;
    assert_eq!(r.json()["fields"][0]["path"], "llm.provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_media_type_is_415() {
    let h = harness().await;
    let req = Request::put("/api/config")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("a=b"))
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.json()["code"], "unsupported_media_type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_paths_and_methods_answer_json() {
    let h = harness().await;
    for uri in ["/api/nope", "/api", "/api/sessions/999/zzz"] {
        let r = send(&h.app, get(uri)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.json()["code"], "not_found");
        assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    }
    let r = send(
        &h.app,
        Request::post("/api/config").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json()["code"], "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_has_the_documented_shape() {
    let h = harness().await;
    let r = send(&h.app, get("/api/healthcheck")).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    for key in [
        "ok", "libs", "lmstudio", "llm", "tts", "db", "issues", "version",
    ] {
        assert!(j.get(key).is_some(), "missing {key}: {j}");
    }
    assert_eq!(j["db"]["ok"], true);
    assert_eq!(j["db"]["journal_mode"], "wal");
    assert_eq!(j["db"]["messages"], 0);
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(j["llm"]["provider"], "embedded");
    // Default chain: piper, then espeak.
    let tts: Vec<_> = j["tts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["provider"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tts, ["piper_local", "espeak"]);
    // Preflight installs the generated default avatar.
    assert_eq!(j["libs"]["default_avatar"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_served_with_types_ranges_and_etags() {
    let h = harness().await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    std::fs::write(h.state.paths.avatars.join("Aiko Model.vrm"), &bytes).unwrap();
    std::fs::write(h.state.paths.audio.join("abc.wav"), b"RIFF....WAVE").unwrap();

    let r = send(&h.app, get("/files/avatars/Aiko%20Model.vrm")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CONTENT_TYPE), "model/gltf-binary");
    assert_eq!(r.body, bytes);
    let etag = r.header(header::ETAG).to_string();
    assert!(etag.starts_with("W/\""), "{etag}");

    let req = Request::get("/files/avatars/Aiko%20Model.vrm")
        .header(header::RANGE, "bytes=100-199")
        .body(Body::empty())
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &bytes[100..200]);

    let req = Request::get("/files/avatars/Aiko%20Model.vrm")
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, req).await.status, StatusCode::NOT_MODIFIED);

    let r = send(&h.app, get("/files/audio/abc.wav")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::CONTENT_TYPE), "audio/wav");
    assert!(r.header(header::CACHE_CONTROL).contains("immutable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_data_folders_is_reachable() {
    let h = harness().await;
    // A secret next to the served folders, and a symlink pointing at it.
    let secret = h.state.paths.root.join("config").join("app.json");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&secret, h.state.paths.avatars.join("link.vrm")).unwrap();
    std::fs::write(h.state.paths.avatars.join(".hidden.vrm"), b"x").unwrap();
    for uri in [
        "/files/avatars/../config/app.json",
        "/files/avatars/%2e%2e/config/app.json",
        "/files/avatars/%2e%2e%2fconfig%2fapp.json",
        "/files/avatars/..%2f..%2fdb%2fapp.db",
        "/files/avatars/link.vrm",
        "/files/avatars/.hidden.vrm",
        "/files/avatars/",
        "/files/avatars/missing.vrm",
        "/files/audio/%00.wav",
        "/files/audio/..%5c..%5cconfig%5capp.json",
    ] {
        let r = send(&h.app, get(uri)).await;
        assert!(
            r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
            "{uri} answered {}",
            r.status
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("\"provider\""),
            "{uri} leaked the config"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_functions_answer_the_ui() {
    let h = harness().await;
    h.state
        .config
        .update(json!({"llm": {"api_key": "sk-sfn-secret"}}))
        .await
        .unwrap();
    let req = Request::post("/sfn/settings")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(!String::from_utf8_lossy(&r.body).contains("sk-sfn-secret"));
    assert_eq!(r.json()["llm"]["api_key_set"], true);

    let req = Request::post("/sfn/settings/save")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(
            r#"{"entries": [["memory.max_history", "7"], ["llm.api_key", ""]]}"#,
        ))
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(h.state.config.get().memory.max_history, 7);
    assert_eq!(h.state.config.get().llm.api_key.expose(), "sk-sfn-secret");

    let req = Request::post("/sfn/settings/save")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(
            r#"{"entries": [["memory.max_history", "999"]]}"#,
        ))
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let j = r.json();
    assert_eq!(j["code"], "invalid_config", "{j}");
    assert_eq!(j["fields"][0]["path"], "memory.max_history");
}

/// The Chat tab's input switch reads `input_mode` with `asr.barge_in`, and saves `input_mode`
/// alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_tab_reads_the_voice_input_and_saves_only_the_input_mode() {
    use waifu_rt3d::shared::config::InputMode;
    let h = harness().await;
    let call = |uri: &'static str, form: &'static str| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(form))
            .unwrap()
    };
    let r = send(&h.app, call("/sfn/settings/voice_input", "")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"input_mode": "text", "barge_in": false}));

    let r = send(
        &h.app,
        call("/sfn/settings/input_mode/save", "mode=hands_free"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json(), json!("hands_free"));
    let cfg = h.state.config.get();
    assert_eq!(cfg.input_mode, InputMode::HandsFree);
    assert!(!cfg.asr.barge_in, "only the mode is saved");
    let r = send(&h.app, call("/sfn/settings/voice_input", "")).await;
    assert_eq!(r.json()["input_mode"], "hands_free");

    let r = send(&h.app, call("/sfn/settings/input_mode/save", "mode=shout")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "invalid_arguments");
    assert_eq!(h.state.config.get().input_mode, InputMode::HandsFree);
}

/// The Chat tab's Voice on/off reads and saves `output_mode` alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_tab_reads_and_saves_only_the_output_mode() {
    let h = harness().await;
    let call = |uri: &'static str, form: &'static str| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(form))
            .unwrap()
    };
    let r = send(&h.app, call("/sfn/settings/output_mode", "")).await;
    assert_eq!(r.status, StatusCode::OK);
    let before = h.state.config.get().output_mode;
    assert_eq!(r.json(), serde_json::to_value(before).unwrap());

    let r = send(
        &h.app,
        call("/sfn/settings/output_mode/save", "mode=text%2Bvoice"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json(), json!("text+voice"));
    assert_eq!(
        h.state.config.get().output_mode,
        waifu_rt3d::shared::config::OutputMode::TextVoice
    );
    let r = send(&h.app, call("/sfn/settings/output_mode/save", "mode=text")).await;
    assert_eq!(r.json(), json!("text"));

    // Not a mode: refused with the reason, nothing changes.
    let r = send(&h.app, call("/sfn/settings/output_mode/save", "mode=loud")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "invalid_arguments");
    assert!(
        r.json()["message"].as_str().unwrap().contains("loud"),
        "{}",
        r.json()
    );
    assert_eq!(
        h.state.config.get().output_mode,
        waifu_rt3d::shared::config::OutputMode::Text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_gives_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cli = waifu_rt3d::server::Cli {
        port,
        bind: "127.0.0.1".parse().unwrap(),
        data_dir: dir.path().join("data"),
        install_dir: dir.path().join("data"),
        database_url: None,
        secret_key_file: None,
        leptos_config: crate::common::fake_site(dir.path()),
        allowed_hosts: vec![],
        cors_origins: vec![],
        auth_token: None,
        log_format: waifu_rt3d::server::LogFormat::Text,
        storage_url: None,
    };
    let err = waifu_rt3d::server::run(cli).await.unwrap_err().to_string();
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains("--port"), "{err}");
}

/// A Setup-tab save, as the browser sends it.
fn sfn_save(entries: Value) -> Request<Body> {
    Request::post("/sfn/settings/save")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(json!({ "entries": entries }).to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_and_model_files_cannot_be_changed_over_http() {
    let h = harness().await;
    // The config file (here: the server itself) names a Piper program and voice.
    h.state
        .config
        .update(json!({"tts": {"providers": {"piper_local": {"binary": "/opt/piper/piper", "voice_path": "/opt/piper/v.onnx"}}}}))
        .await
        .unwrap();
    let before = h.state.config.get();
    for body in [
        json!({"tts": {"providers": {"piper_local": {"binary": "/tmp/evil.sh"}}}}),
        json!({"tts": {"providers": {"piper_local": {"voice_path": "/tmp/x.onnx"}}}}),
        json!({"tts": {"providers": {"espeak": {"binary": "/bin/sh"}}}}),
        json!({"tts": {"providers": {"piper_local": {"binary": null}}}}),
        json!({"tts": {"provider": "piper_local", "binary": "/tmp/evil.sh"}}),
    ] {
        let r = send(&h.app, put_json("/api/config", &body.to_string())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let j = r.json();
        assert_eq!(j["code"], "invalid_config", "{j}");
        let field = &j["fields"][0];
        assert!(
            field["path"]
                .as_str()
                .unwrap()
                .starts_with("tts.providers."),
            "{j}"
        );
        assert!(
            field["message"]
                .as_str()
                .unwrap()
                .contains("set it in the config file"),
            "{j}"
        );
    }
    // The Setup tab's save is refused the same way.
    let r = send(
        &h.app,
        sfn_save(json!([
            ["tts.providers.piper_local.binary", "/tmp/evil.sh"],
            ["memory.max_history", "9"]
        ])),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let j = r.json();
    assert_eq!(
        j["fields"][0]["path"], "tts.providers.piper_local.binary",
        "{j}"
    );
    assert!(j["fields"][0]["message"]
        .as_str()
        .unwrap()
        .contains("set it in the config file"));
    assert_eq!(h.state.config.get(), before);

    // Sending the stored values back (GET, edit, PUT) is fine.
    let mut cfg = send(&h.app, get("/api/config")).await.json();
    cfg["memory"]["max_history"] = json!(21);
    let r = send(&h.app, put_json("/api/config", &cfg.to_string())).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = send(
        &h.app,
        sfn_save(json!([
            ["tts.providers.piper_local.binary", "/opt/piper/piper"],
            ["memory.max_history", "22"]
        ])),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let now = h.state.config.get();
    assert_eq!(now.memory.max_history, 22);
    assert_eq!(now.tts.providers.piper_local.binary, "/opt/piper/piper");
    assert_eq!(
        now.tts.providers.piper_local.voice_path,
        "/opt/piper/v.onnx"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_an_endpoint_to_another_server_drops_its_key_and_says_so() {
    let h = harness().await;
    let r = send(
        &h.app,
        put_json(
            "/api/config",
            r#"{"llm": {"provider": "openai", "endpoint": "https://api.openai.com/v1", "api_key": "sk-moving"},
                "tts": {"providers": {"elevenlabs": {"api_key": "xi-moving"}, "fish_audio": {"api_key": "fish-moving"}}}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["cleared_keys"], json!([]));

    // Same origin, another path: the key stays.
    let r = send(
        &h.app,
        put_json(
            "/api/config",
            r#"{"llm": {"endpoint": "https://api.openai.com/v1/"}}"#,
        ),
    )
    .await;
    assert_eq!(r.json()["cleared_keys"], json!([]));
    assert_eq!(r.json()["config"]["llm"]["api_key_set"], true);

    // Another host: dropped, and the answer says so.
    let r = send(
        &h.app,
        put_json(
            "/api/config",
            r#"{"llm": {"endpoint": "https://collector.example/v1"}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["cleared_keys"], json!(["llm.api_key"]), "{j}");
    assert!(
        j["notices"][0]
            .as_str()
            .unwrap()
            .contains("collector.example"),
        "{j}"
    );
    assert_eq!(j["config"]["llm"]["api_key_set"], false);
    assert!(h.state.config.get().llm.api_key.is_empty());
    // A GET-edit-PUT round trip that moves the endpoint drops the key as well.
    let mut cfg = send(&h.app, get("/api/config")).await.json();
    cfg["tts"]["providers"]["elevenlabs"]["endpoint"] = json!("http://127.0.0.1:9/v1");
    let j = send(&h.app, put_json("/api/config", &cfg.to_string()))
        .await
        .json();
    assert_eq!(
        j["cleared_keys"],
        json!(["tts.providers.elevenlabs.api_key"]),
        "{j}"
    );
    assert_eq!(
        h.state
            .config
            .get()
            .tts
            .providers
            .fish_audio
            .api_key
            .expose(),
        "fish-moving"
    );

    // The Setup tab: a provider switch brings the new provider's endpoint; the save says the key
    // went.
    h.state
        .config
        .update(json!({"llm": {"provider": "openai", "endpoint": "https://api.openai.com/v1", "api_key": "sk-again"}}))
        .await
        .unwrap();
    let r = send(
        &h.app,
        sfn_save(json!([
            ["llm.provider", "lmstudio"],
            ["llm.endpoint", "http://127.0.0.1:1234/v1"],
            ["llm.api_key", ""]
        ])),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let j = r.json();
    assert_eq!(j["config"]["llm"]["api_key_set"], false, "{j}");
    assert_eq!(j["notices"].as_array().unwrap().len(), 1, "{j}");
    assert!(
        j["notices"][0].as_str().unwrap().contains("language model"),
        "{j}"
    );
    // A key typed with the new endpoint is kept, with nothing to say.
    let r = send(
        &h.app,
        sfn_save(json!([
            ["llm.endpoint", "http://127.0.0.1:1235/v1"],
            ["llm.api_key", "lm-key"]
        ])),
    )
    .await;
    let j = r.json();
    assert_eq!(j["config"]["llm"]["api_key_set"], true, "{j}");
    assert_eq!(j["notices"], json!([]));
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_keys_appear_in_no_file_of_the_data_folder() {
    let h = harness().await;
    let keys = [
        "sk-at-rest-1111",
        "xi-at-rest-2222",
        "fish-at-rest-3333",
        "sk-at-rest-4444",
    ];
    let r = send(
        &h.app,
        put_json(
            "/api/config",
            &json!({"llm": {"provider": "openai", "endpoint": "https://api.openai.com/v1", "api_key": keys[0]},
                "tts": {"providers": {"elevenlabs": {"api_key": keys[1]}, "fish_audio": {"api_key": keys[2]}}}})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &h.app,
        sfn_save(json!([
            ["llm.endpoint", "https://api.openai.com/v1"],
            ["llm.api_key", keys[3]]
        ])),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let files = files_under(&h.state.paths.root);
    assert!(files.iter().any(|f| f.ends_with("config/app.json")));
    assert!(files.iter().any(|f| f.ends_with("config/secret.key")));
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for key in &keys {
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "{key} is in {}",
                file.display()
            );
        }
    }
    // And they are all still there, in memory.
    let cfg = h.state.config.get();
    assert_eq!(cfg.llm.api_key.expose(), keys[3]);
    assert_eq!(cfg.tts.providers.elevenlabs.api_key.expose(), keys[1]);
    assert_eq!(cfg.tts.providers.fish_audio.api_key.expose(), keys[2]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key_file = h.state.paths.root.join("config").join("secret.key");
        let mode = std::fs::metadata(key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// `GET /api/models` lists the models folder's `.gguf` files from their headers (the installed
/// model when there is one, and a damaged file as unreadable), behind the same access rules as
/// every `/api` route; `llm.local_model` takes only a plain `.gguf` name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_route_lists_model_files_and_the_choice_stays_in_the_folder() {
    let h = harness().await;
    let models = &h.state.paths.models;
    let installed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/models")
        .join(waifu_rt3d::llm::embedded::MODEL_FILE);
    #[cfg(unix)]
    if installed.is_file() {
        std::os::unix::fs::symlink(
            &installed,
            models.join(waifu_rt3d::llm::embedded::MODEL_FILE),
        )
        .unwrap();
    }
    std::fs::write(models.join("broken.gguf"), b"GGUF\x03\x00\x00\x00").unwrap();
    std::fs::write(models.join("readme.txt"), b"not a model").unwrap();

    let r = send(&h.app, get("/api/models")).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["selected"], waifu_rt3d::llm::embedded::MODEL_FILE);
    let list = j["models"].as_array().unwrap();
    let broken = list.iter().find(|m| m["file"] == "broken.gguf").unwrap();
    assert!(broken["error"].is_string(), "{broken}");
    assert!(list.iter().all(|m| m["file"] != "readme.txt"), "{j}");
    if installed.is_file() {
        let smol = list
            .iter()
            .find(|m| m["file"] == waifu_rt3d::llm::embedded::MODEL_FILE)
            .unwrap();
        assert_eq!(smol["quantization"], "Q4_1", "{smol}");
        assert_eq!(smol["selected"], true);
        assert_eq!(smol["chat_template"], true);
        assert_eq!(smol["parameters"], 134_515_008);
    }

    // Choosing a file: a plain name in the folder, never a path out of it.
    for bad in [
        "../config/app.json",
        "../../etc/passwd.gguf",
        "/etc/x.gguf",
        "sub/x.gguf",
        "..\\x.gguf",
        ".hidden.gguf",
        "model.bin",
    ] {
        let body = json!({"llm": {"local_model": bad}}).to_string();
        let r = send(&h.app, put_json("/api/config", &body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json()["fields"][0]["path"], "llm.local_model", "{bad}");
    }
    let body = json!({"llm": {"local_model": "broken.gguf"}}).to_string();
    assert_eq!(
        send(&h.app, put_json("/api/config", &body)).await.status,
        StatusCode::OK
    );
    let j = send(&h.app, get("/api/models")).await.json();
    assert_eq!(j["selected"], "broken.gguf");
    // The embedded provider now loads that file.
    assert_eq!(
        h.state.llm.embedded_for(&h.state.config.get().llm).path(),
        models.join("broken.gguf")
    );

    // The same Host check as every /api route.
    let r = send(
        &h.app,
        Request::get("/api/models")
            .header(header::HOST, "rebind.evil.example:3000")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
