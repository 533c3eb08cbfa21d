//! Rendering the app's pages on the server. Leptos keeps one reactive runtime per process; the
//! test renders on a multi-threaded runtime, as the server does, and loads it with concurrent
//! renders while the other tests of this binary run beside it.
#![cfg(feature = "ssr")]

use crate::common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use common::{get, harness, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_pages_render_on_the_server() {
    let h = harness().await;
    for (uri, marker) in [
        ("/", "tab-chat"),
        ("/setup", "tab-setup"),
        ("/system", "tab-system"),
        ("/viewer", "tab-viewer"),
    ] {
        let r = send(&h.app, get(uri)).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(String::from_utf8_lossy(&r.body).contains(marker), "{uri}");
    }
    // The System tab renders the voice cards with their Test buttons and the latency panel
    // (empty: no replies yet).
    let system = String::from_utf8_lossy(&send(&h.app, get("/system")).await.body).to_string();
    for marker in [
        "data-testid=\"latency-panel\"",
        "data-testid=\"latency-first-audio\"",
        "data-testid=\"latency-empty\"",
        "data-testid=\"tts-card-",
        "data-testid=\"tts-test-",
    ] {
        assert!(system.contains(marker), "/system has no {marker}");
    }
    // Each page carries a Content-Security-Policy whose nonce is the one on its inline scripts,
    // new for every response; no inline script goes without it.
    let mut nonces = Vec::new();
    for uri in ["/", "/chat", "/setup", "/definitely-not-a-page"] {
        let r = send(&h.app, get(uri)).await;
        let csp = r.header(header::CONTENT_SECURITY_POLICY).to_string();
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("{uri}: no nonce in {csp:?}"))
            .to_string();
        let script_src = csp
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe-inline"), "{uri}: {csp}");
        for d in [
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(d), "{uri}: {csp}");
        }
        let body = String::from_utf8_lossy(&r.body).to_string();
        let scripts: Vec<&str> = body.split("<script").skip(1).collect();
        assert!(!scripts.is_empty(), "{uri} has no scripts");
        for s in scripts {
            let tag = s.split('>').next().unwrap_or_default();
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")) || tag.contains(" src="),
                "{uri}: an inline script without the nonce: <script{tag}>"
            );
        }
        nonces.push(nonce);
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 4, "nonces repeat across responses");
    // The Setup tab shows programs and model files read-only: set in the config file, never
    // sent by the form.
    h.state
        .config
        .update(serde_json::json!({"tts": {"providers": {"piper_local": {"binary": "/opt/piper/piper"}}}}))
        .await
        .unwrap();
    let setup = String::from_utf8_lossy(&send(&h.app, get("/setup")).await.body).to_string();
    for path in [
        "tts.providers.piper_local.binary",
        "tts.providers.piper_local.voice_path",
        "tts.providers.espeak.binary",
    ] {
        assert!(
            setup.contains(&format!("data-testid=\"file-setting-{path}\"")),
            "/setup does not show {path}"
        );
        assert!(
            !setup.contains(&format!("name=\"{path}\"")),
            "/setup lets the form send {path}"
        );
    }
    assert!(setup.contains("/opt/piper/piper"));
    assert!(setup.contains("set in the config file") || setup.contains("Set in the config file"));

    let r = send(&h.app, get("/definitely-not-a-page")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // HEAD answers headers only.
    for uri in ["/setup", "/system", "/api/healthcheck"] {
        let r = send(&h.app, Request::head(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(r.body.is_empty(), "{uri}");
        let len: usize = r.header(header::CONTENT_LENGTH).parse().unwrap_or(0);
        assert!(len > 0, "{uri} has no content-length");
    }

    // Many renders at once all finish. The limit only tells a stall from slowness: while the
    // rest of the suite runs the model, the voices and the recogniser on two cores, 48 debug
    // renders have taken over 20 s; alone they take about one.
    let renders = (0..48).map(|i| {
        let app = h.app.clone();
        let uri = ["/setup", "/system", "/chat", "/viewer"][i % 4];
        tokio::spawn(async move { send(&app, get(uri)).await.status })
    });
    let all = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        futures_join(renders.collect()),
    )
    .await
    .expect("concurrent page renders stalled");
    assert!(all.iter().all(|s| *s == StatusCode::OK), "{all:?}");
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<StatusCode>>) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
