//! Who may drive the server: cross-site requests, unknown Host names, the access token and the
//! security headers, through the whole router.
#![cfg(feature = "ssr")]

use crate::common;

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use common::{harness, harness_with, request as req, send, Harness};
use serde_json::json;
use waifu_rt3d::server::security::Security;

const OWN: &str = "127.0.0.1:3000";
const TOKEN: &str = "a-test-token-of-some-length";

async fn with_token() -> Harness {
    common::harness_with_token(TOKEN).await
}

// ------------------------------------------------------------------ 1. cross-site writes

/// What a hostile page can send without a preflight: a `text/plain` JSON body, a form post to a
/// server function, a multipart upload. Each answers 403 `cross_origin` and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_are_refused_and_change_nothing() {
    let h = harness().await;
    let before = h.state.config.get();
    let evil = [("host", OWN), ("origin", "http://evil.example")];
    let sibling = [("host", OWN), ("sec-fetch-site", "same-site")];
    let cross = [("host", OWN), ("sec-fetch-site", "cross-site")];
    let patch = r#"{"tts": {"providers": {"espeak": {"voice_id": "de"}}}}"#;
    for headers in [&evil[..], &sibling[..], &cross[..]] {
        for content_type in ["text/plain", "application/json"] {
            let mut hs = headers.to_vec();
            hs.push(("content-type", content_type));
            let r = send(&h.app, req(Method::PUT, "/api/config", &hs, patch)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{hs:?}");
            assert_eq!(r.json()["code"], "cross_origin");
        }
        let mut hs = headers.to_vec();
        hs.push(("content-type", "application/x-www-form-urlencoded"));
        let r = send(
            &h.app,
            req(
                Method::POST,
                "/sfn/settings/output_mode/save",
                &hs,
                "mode=text",
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{hs:?}");
        assert_eq!(r.json()["code"], "cross_origin");

        let (ct, body) = common::multipart_file("planted.glb", b"glTF");
        let mut b = Request::post("/api/avatars/upload").header("content-type", ct);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let r = send(&h.app, b.body(Body::from(body)).unwrap()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(!h.state.paths.avatars.join("planted.glb").exists());

        let r = send(&h.app, req(Method::POST, "/api/sessions", headers, "")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // Reads of the history from another site are refused too.
        let r = send(&h.app, req(Method::GET, "/api/sessions", headers, "")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let r = send(
        &h.app,
        req(Method::POST, "/api/chat", &evil, r#"{"text": "hi"}"#),
    )
    .await;
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("--cors-origin http://evil.example"));
    assert_eq!(h.state.config.get(), before);
    let r = send(&h.app, common::get("/api/sessions")).await;
    assert_eq!(
        r.json()["sessions"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.json()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_pages_and_tools_keep_working() {
    let h = harness().await;
    let own = [
        ("host", OWN),
        ("origin", "http://127.0.0.1:3000"),
        ("sec-fetch-site", "same-origin"),
        ("content-type", "application/json"),
    ];
    let r = send(
        &h.app,
        req(
            Method::PUT,
            "/api/config",
            &own,
            r#"{"memory": {"max_history": 9}}"#,
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(h.state.config.get().memory.max_history, 9);
    // No Access-Control-Allow-Origin unless an origin is named.
    assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    // curl: no Origin, no fetch metadata.
    let r = send(
        &h.app,
        req(
            Method::PUT,
            "/api/config",
            &[("content-type", "application/json")],
            r#"{"memory": {"max_history": 10}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // The browser's server-function form post from the app's own page.
    let r = send(
        &h.app,
        req(
            Method::POST,
            "/sfn/settings/output_mode/save",
            &[
                ("host", OWN),
                ("origin", "http://127.0.0.1:3000"),
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
            ],
            "mode=text",
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // A link from another site to a page is an ordinary visit.
    let r = send(
        &h.app,
        req(
            Method::GET,
            "/files/avatars/default.vrm",
            &[("host", OWN), ("sec-fetch-site", "cross-site")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Only `application/json` is JSON: `text/plain` (which any page may send) and a missing type are
/// 415 even without an Origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_endpoints_take_only_application_json() {
    let h = harness().await;
    let before = h.state.config.get();
    let patch = r#"{"memory": {"max_history": 3}}"#;
    for ct in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| vec![("content-type", c)]).unwrap_or_default();
        let r = send(&h.app, req(Method::PUT, "/api/config", &headers, patch)).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(r.json()["code"], "unsupported_media_type");
        let r = send(
            &h.app,
            req(Method::POST, "/api/chat", &headers, r#"{"text": "hi"}"#),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    assert_eq!(h.state.config.get(), before);
    let r = send(
        &h.app,
        req(
            Method::PUT,
            "/api/config",
            &[("content-type", "Application/JSON; charset=utf-8")],
            patch,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_origins_get_cors() {
    let h = harness_with(|s| {
        s.with_security(
            Security::new(
                "127.0.0.1".parse().unwrap(),
                3000,
                &[],
                &["http://localhost:5173".into()],
                None,
            )
            .unwrap(),
        )
    })
    .await;
    let preflight = req(
        Method::OPTIONS,
        "/api/config",
        &[
            ("host", OWN),
            ("origin", "http://localhost:5173"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type"),
        ],
        "",
    );
    let r = send(&h.app, preflight).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert_eq!(
        r.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "http://localhost:5173"
    );
    let r = send(
        &h.app,
        req(
            Method::PUT,
            "/api/config",
            &[
                ("host", OWN),
                ("origin", "http://localhost:5173"),
                ("sec-fetch-site", "same-site"),
                ("content-type", "application/json"),
            ],
            r#"{"memory": {"recall": 2}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "http://localhost:5173"
    );
    assert_eq!(h.state.config.get().memory.recall, 2);
    // Any other origin: still refused, and no CORS header.
    let r = send(
        &h.app,
        req(
            Method::PUT,
            "/api/config",
            &[
                ("host", OWN),
                ("origin", "http://localhost:5174"),
                ("content-type", "application/json"),
            ],
            r#"{"memory": {"recall": 1}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(h.state.config.get().memory.recall, 2);
}

// ------------------------------------------------------------------ 2. Host names

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_names_are_refused_everywhere() {
    let h = harness().await;
    for uri in [
        "/api/config",
        "/api/sessions",
        "/files/avatars/default.vrm",
        "/sfn/settings",
        "/",
        "/chat",
        "/pkg/x.js",
    ] {
        let r = send(
            &h.app,
            req(
                Method::GET,
                uri,
                &[("host", "rebind.evil.example:3000")],
                "",
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            text.contains("--allowed-host rebind.evil.example"),
            "{uri}: {text}"
        );
        assert!(!text.contains("\"llm\""), "{uri} leaked data");
        if uri.starts_with("/api") || uri.starts_with("/files") || uri.starts_with("/sfn") {
            assert_eq!(r.json()["code"], "host_not_allowed");
        } else {
            assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
        }
    }
    let r = send(
        &h.app,
        req(
            Method::PUT,
            "/api/config",
            &[
                ("host", "evil.example"),
                ("content-type", "application/json"),
            ],
            r#"{"memory": {"recall": 0}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(h.state.config.get().memory.recall, 3);
    for ok in [
        "localhost:3000",
        "127.0.0.1:3000",
        "[::1]:3000",
        "localhost",
    ] {
        let r = send(&h.app, req(Method::GET, "/api/config", &[("host", ok)], "")).await;
        assert_eq!(r.status, StatusCode::OK, "{ok}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_host_names_are_answered() {
    let h = harness_with(|s| {
        s.with_security(
            Security::new(
                "127.0.0.1".parse().unwrap(),
                3000,
                &["companion.lan".into()],
                &[],
                None,
            )
            .unwrap(),
        )
    })
    .await;
    let r = send(
        &h.app,
        req(
            Method::GET,
            "/api/config",
            &[("host", "companion.lan:3000")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &h.app,
        req(
            Method::GET,
            "/api/config",
            &[("host", "other.lan:3000")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(Security::new(
        "127.0.0.1".parse().unwrap(),
        3000,
        &["http://x/".into()],
        &[],
        None
    )
    .is_err());
    assert!(Security::new(
        "127.0.0.1".parse().unwrap(),
        3000,
        &[],
        &["x.example".into()],
        None
    )
    .is_err());
}

// ------------------------------------------------------------------ 6. the token

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_api_call_needs_it() {
    let h = with_token().await;
    for (method, uri) in [
        (Method::GET, "/api/config"),
        (Method::GET, "/api/sessions"),
        (Method::GET, "/api/healthcheck"),
        (Method::GET, "/api/search?q=x"),
        (Method::POST, "/sfn/settings"),
        (Method::GET, "/files/avatars/default.vrm"),
        (Method::GET, "/files/audio/x.wav"),
        (Method::PUT, "/api/config"),
    ] {
        let r = send(
            &h.app,
            req(
                method.clone(),
                uri,
                &[("content-type", "application/json")],
                "{}",
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(r.json()["code"], "unauthorized");
        assert!(r.header(header::WWW_AUTHENTICATE).starts_with("Bearer"));
        let wrong = format!("Bearer {TOKEN}x");
        let r = send(
            &h.app,
            req(method.clone(), uri, &[("authorization", &wrong)], ""),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    let bearer = format!("Bearer {TOKEN}");
    let r = send(
        &h.app,
        req(
            Method::GET,
            "/api/config",
            &[("authorization", &bearer)],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &h.app,
        req(
            Method::GET,
            "/files/avatars/default.vrm",
            &[("authorization", &bearer)],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &h.app,
        req(
            Method::PUT,
            "/api/config",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            r#"{"memory": {"recall": 1}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.state.config.get().memory.recall, 1);
    // The app's own code is public: the sign-in page needs none of it, and it holds no data.
    let r = send(&h.app, common::get("/pkg/waifu-rt3d.js")).await;
    assert_ne!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_a_sign_in_form_that_trades_the_token_for_a_cookie() {
    let h = with_token().await;
    let r = send(&h.app, req(Method::GET, "/chat", &[("host", OWN)], "")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let page = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        page.contains("<form method=\"post\" action=\"/auth/login\">"),
        "{page}"
    );
    assert!(page.contains("name=\"next\" value=\"/chat\""));
    assert!(!page.contains("tab-chat"), "the app itself was served");
    assert!(!page.contains(TOKEN));

    // A wrong token: the form again, with the reason.
    let login = |body: &str| {
        req(
            Method::POST,
            "/auth/login",
            &[
                ("host", OWN),
                ("origin", "http://127.0.0.1:3000"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body,
        )
    };
    let r = send(&h.app, login("token=nope&next=%2Fchat")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&r.body).contains("not right"));
    assert!(r.headers.get(header::SET_COOKIE).is_none());

    // A cross-site sign-in (login CSRF) is refused like any other cross-site write.
    let r = send(
        &h.app,
        req(
            Method::POST,
            "/auth/login",
            &[("host", OWN), ("origin", "http://evil.example")],
            &format!("token={TOKEN}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = send(&h.app, login(&format!("token={TOKEN}&next=%2Fchat"))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header(header::LOCATION), "/chat");
    let cookie = r.header(header::SET_COOKIE).to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains(TOKEN), "the cookie holds the token itself");
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = send(
        &h.app,
        req(Method::GET, "/api/config", &[("cookie", &pair)], ""),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // `next` never leaves the server.
    let r = send(
        &h.app,
        login(&format!("token={TOKEN}&next=%2F%2Fevil.example")),
    )
    .await;
    assert_eq!(r.header(header::LOCATION), "/");

    // The printed sign-in link sets the cookie and drops the token from the address.
    let r = send(
        &h.app,
        req(
            Method::GET,
            &format!("/?token={TOKEN}"),
            &[("host", OWN)],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header(header::LOCATION), "/");
    assert!(r.header(header::SET_COOKIE).contains("HttpOnly"));
    let r = send(
        &h.app,
        req(
            Method::GET,
            "/?token=wrong-token-here",
            &[("host", OWN)],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Signing out clears the cookie.
    let r = send(
        &h.app,
        req(
            Method::POST,
            "/auth/logout",
            &[
                ("host", OWN),
                ("origin", "http://127.0.0.1:3000"),
                ("cookie", &pair),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header(header::SET_COOKIE).contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_no_token_is_needed() {
    let h = harness().await;
    let r = send(
        &h.app,
        req(Method::GET, "/api/config", &[("host", OWN)], ""),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // The sign-in form has nothing to do.
    let r = send(
        &h.app,
        req(Method::GET, "/auth/login?next=/chat", &[("host", OWN)], ""),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

// ------------------------------------------------------------------ 7. headers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let h = with_token().await;
    let bearer = format!("Bearer {TOKEN}");
    for (uri, headers) in [
        ("/api/config", vec![("authorization", bearer.as_str())]),
        ("/api/config", vec![]),
        ("/api/nope", vec![("authorization", bearer.as_str())]),
        (
            "/files/avatars/default.vrm",
            vec![("authorization", bearer.as_str())],
        ),
        ("/chat", vec![]),
        ("/api/config", vec![("host", "evil.example")]),
    ] {
        let r = send(&h.app, req(Method::GET, uri, &headers, "")).await;
        assert_eq!(r.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{uri}");
        assert_eq!(r.header(header::REFERRER_POLICY), "no-referrer", "{uri}");
        assert_eq!(
            r.header(header::HeaderName::from_static(
                "cross-origin-opener-policy"
            )),
            "same-origin",
            "{uri}"
        );
        let csp = r.header(header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") || !csp.contains("script-src"),
            "{uri}: {csp}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_tokens_stay_out_of_answers() {
    let h = with_token().await;
    let bearer = format!("Bearer {TOKEN}");
    let r = send(
        &h.app,
        req(
            Method::PUT,
            "/api/config",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            &json!({"llm": {"api_key": "sk-never-shown"}}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    for uri in ["/api/config", "/api/healthcheck"] {
        let r = send(
            &h.app,
            req(Method::GET, uri, &[("authorization", &bearer)], ""),
        )
        .await;
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("sk-never-shown") && !text.contains(TOKEN),
            "{uri}"
        );
    }
    assert!(!format!("{:?}", h.state.security).contains(TOKEN));
}
