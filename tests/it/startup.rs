//! Starting up: a server without its built front end stops with the command that builds it, and
//! the built-in model and Piper are found in the install folder when the data folder has none.

use crate::common::{get, send};
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};
use waifu_rt3d::server::{app, paths, preflight, AppState};

#[test]
fn a_missing_front_end_stops_the_server_with_the_command_that_builds_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("site");
    std::fs::create_dir_all(&empty).unwrap();
    let settings = dir.path().join("Leptos.toml");
    std::fs::write(
        &settings,
        format!(
            "[package.metadata.leptos]\noutput-name = \"waifu-rt3d\"\nsite-root = {:?}\nsite-pkg-dir = \"pkg\"\nhash-files = true\n",
            empty.display().to_string()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_waifu-rt3d"))
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--leptos-config")
        .arg(&settings)
        .env_remove("WAIFU_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started without a front end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(err.contains("the front end is not built"), "{err}");
    assert!(err.contains("make build"), "{err}");
    assert!(
        err.contains(&empty.join("pkg").display().to_string()),
        "{err}"
    );
}

fn put(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"not really installed").unwrap();
}

#[tokio::test]
async fn the_model_and_piper_come_from_the_install_folder_when_the_data_folder_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let install = dir.path().join("checkout").join("data");
    put(&install.join(paths::model_file()));
    put(&install.join(paths::PIPER_PROGRAM));
    let mut ready = preflight::run(&dir.path().join("w")).await.unwrap();
    ready.paths = ready.paths.with_install_dir(&install);
    let options = leptos::config::LeptosOptions::builder()
        .output_name("waifu-rt3d")
        .build();
    let state = AppState::new(options, ready).unwrap();
    assert_eq!(
        state.llm.embedded().path(),
        install.join(paths::model_file())
    );

    let health = send(&app(state), get("/api/healthcheck")).await.json();
    let installed = &health["installed"];
    assert_eq!(installed["model"]["source"], "install_folder", "{health}");
    assert_eq!(
        installed["model"]["path"],
        install.join(paths::model_file()).display().to_string()
    );
    assert_eq!(installed["piper"]["source"], "install_folder", "{health}");
    assert_eq!(
        installed["piper"]["path"],
        install.join(paths::PIPER_PROGRAM).display().to_string()
    );
}
