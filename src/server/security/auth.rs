//! The access token. On loopback the machine's own user is the only one who can connect, so no
//! token is needed unless one is set; on any other address every API call, server function and
//! data file needs it, and pages show a sign-in form that trades the token for a cookie.

use super::{is_api_path, refusal, Security};
use axum::{
    body::Bytes,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use sha2::{Digest, Sha256};
use std::{
    fmt, fs, io,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

/// How long the sign-in cookie lasts.
const COOKIE_MAX_AGE_S: u64 = 30 * 24 * 3600;

/// The token. Its `Debug` output never shows it; requests are compared against digests, in
/// constant time.
#[derive(Clone)]
pub struct AuthToken {
    value: Arc<str>,
    digest: [u8; 32],
    /// What the sign-in cookie carries: derived from the token, so the cookie jar never holds
    /// the token itself.
    cookie: Arc<str>,
    cookie_digest: [u8; 32],
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(***)")
    }
}

impl AuthToken {
    /// Reads a token given on the command line or in a file: 16 to 256 characters that are safe
    /// in a header, a cookie and a URL.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if !(16..=256).contains(&raw.len()) {
            return Err("the token must be 16 to 256 characters long".into());
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        {
            return Err("the token may contain only letters, digits and - _ . ~".into());
        }
        let cookie = hex::encode(sha256(format!("waifu-rt3d session v1\n{raw}").as_bytes()));
        Ok(Self {
            digest: sha256(raw.as_bytes()),
            cookie_digest: sha256(cookie.as_bytes()),
            cookie: cookie.into(),
            value: raw.into(),
        })
    }

    /// A new random token: 32 bytes from the operating system, base64url.
    pub fn generate() -> io::Result<Self> {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self::parse(&text).map_err(io::Error::other)
    }

    /// The token itself: only for the one-time sign-in link printed on the terminal.
    pub fn expose(&self) -> &str {
        &self.value
    }

    fn matches(&self, given: &str) -> bool {
        same_digest(&sha256(given.as_bytes()), &self.digest)
    }

    fn matches_cookie(&self, given: &str) -> bool {
        same_digest(&sha256(given.as_bytes()), &self.cookie_digest)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two digests without stopping at the first difference.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where the token in force came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// None needed: loopback and none set.
    NotNeeded,
    /// `--auth-token` or `WAIFU_AUTH_TOKEN`.
    Given,
    /// The file in the data folder, made on an earlier start.
    Stored(PathBuf),
    /// Made now and saved to this file: print the sign-in link once.
    Generated(PathBuf),
}

/// The token a server needs: the one given, else none on loopback, else the one kept in `file`
/// (made and saved with mode 0600 the first time).
pub fn resolve_token(
    bind: IpAddr,
    given: Option<AuthToken>,
    file: &Path,
) -> anyhow::Result<(Option<AuthToken>, TokenSource)> {
    use anyhow::Context;
    if let Some(token) = given {
        return Ok((Some(token), TokenSource::Given));
    }
    if bind.is_loopback() {
        return Ok((None, TokenSource::NotNeeded));
    }
    match fs::read_to_string(file) {
        Ok(text) => {
            let token = AuthToken::parse(&text).map_err(|why| {
                anyhow::anyhow!(
                    "the access token in {} is not usable ({why}); delete the file to have a new one made, or pass --auth-token",
                    file.display()
                )
            })?;
            Ok((Some(token), TokenSource::Stored(file.to_path_buf())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let token = AuthToken::generate().context("no random numbers for a token")?;
            crate::private_file::replace(file, token.expose().as_bytes()).with_context(|| {
                format!("could not save the access token to {}", file.display())
            })?;
            Ok((Some(token), TokenSource::Generated(file.to_path_buf())))
        }
        Err(e) => Err(e).with_context(|| format!("could not read {}", file.display())),
    }
}

fn cookie_name(port: u16) -> String {
    format!("waifu_session_{port}")
}

/// Whether the request carries the token (`Authorization: Bearer`) or the sign-in cookie.
fn authorized(token: &AuthToken, port: u16, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .any(|given| token.matches(given));
    bearer || cookie_value(headers, &cookie_name(port)).is_some_and(|c| token.matches_cookie(&c))
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// What anyone may fetch: the built front end's files (code, no data), the icon and sign-in.
fn is_public(path: &str) -> bool {
    path.starts_with("/pkg/") || path == "/favicon.svg" || path.starts_with("/auth/")
}

/// The middleware: with a token set, everything but the public paths needs it.
pub async fn guard(State(security): State<Arc<Security>>, req: Request, next: Next) -> Response {
    let Some(token) = &security.token else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if is_public(path) || authorized(token, security.port, req.headers()) {
        return next.run(req).await;
    }
    let is_read = matches!(*req.method(), Method::GET | Method::HEAD);
    if is_read && !is_api_path(path) {
        // The sign-in link printed at start: `/?token=…` sets the cookie and drops the token from
        // the address bar.
        if let Some(given) = query_param(req.uri(), "token") {
            if token.matches(&given) {
                return signed_in(&security, token, &without_param(req.uri(), "token"));
            }
        }
        let next_path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        return sign_in_page(StatusCode::UNAUTHORIZED, next_path, None);
    }
    let mut res = refusal(
        StatusCode::UNAUTHORIZED,
        path,
        "unauthorized",
        "This server needs its access token: send `Authorization: Bearer <token>`, or sign in on the start page. The token was printed when the server first started and is kept in the data folder (config/auth-token).".into(),
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"waifu-rt3d\""),
    );
    res
}

/// `/auth/login` (the form and its answer) and `/auth/logout`.
pub fn routes() -> Router<crate::server::AppState> {
    Router::new()
        .route("/auth/login", get(login_form).post(login))
        .route("/auth/logout", post(logout))
}

async fn login_form(
    State(security): State<Arc<Security>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let next = safe_next(query_param(&uri, "next").as_deref());
    match &security.token {
        Some(token) if !authorized(token, security.port, &headers) => {
            sign_in_page(StatusCode::OK, &next, None)
        }
        _ => see_other(&next),
    }
}

async fn login(State(security): State<Arc<Security>>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let next = safe_next(field("next"));
    let Some(token) = &security.token else {
        return see_other(&next);
    };
    match field("token") {
        Some(given) if token.matches(given.trim()) => signed_in(&security, token, &next),
        _ => {
            tracing::warn!("a sign-in with a wrong token was refused");
            sign_in_page(
                StatusCode::UNAUTHORIZED,
                &next,
                Some("That token is not right. Copy it again from the terminal, or from config/auth-token in the data folder."),
            )
        }
    }
}

async fn logout(State(security): State<Arc<Security>>) -> Response {
    let mut res = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        cookie_name(security.port)
    )) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Sets the sign-in cookie and sends the browser on.
fn signed_in(security: &Security, token: &AuthToken, next: &str) -> Response {
    let mut res = see_other(next);
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_S}",
        cookie_name(security.port),
        token.cookie
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

fn see_other(location: &str) -> Response {
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Only a path on this server: never `//other.example` or a full URL.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && !n.contains(['\\', '\r', '\n']) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The path and query of `uri` without `name`.
fn without_param(uri: &Uri, name: &str) -> String {
    let rest: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .filter(|(k, _)| k != name)
                .collect()
        })
        .unwrap_or_default();
    if rest.is_empty() {
        uri.path().to_string()
    } else {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(rest)
            .finish();
        format!("{}?{query}", uri.path())
    }
}

/// The sign-in page: a small form of its own (the app's code is not served before sign-in).
fn sign_in_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let nonce = super::headers::new_nonce();
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark"><title>Sign in · waifu-rt3d</title>
<style nonce="{nonce}">
body{{margin:0;min-height:100vh;display:grid;place-items:center;background:#14121a;color:#ece8f4;font:16px/1.5 system-ui,sans-serif}}
main{{width:min(24rem,90vw);padding:2rem;border-radius:12px;background:#1e1b27;box-shadow:0 8px 32px #0006}}
h1{{margin:0 0 .5rem;font-size:1.4rem}} p{{margin:.5rem 0;color:#b9b2c9}}
label{{display:block;margin:1rem 0 .25rem}} input{{box-sizing:border-box;width:100%;padding:.6rem;border-radius:8px;border:1px solid #4a4458;background:#14121a;color:inherit}}
button{{margin-top:1rem;width:100%;padding:.6rem;border:0;border-radius:8px;background:#c06be0;color:#14121a;font-weight:600;cursor:pointer}}
.error{{color:#ff8a8a}} code{{color:#ece8f4}}
</style></head>
<body><main data-testid="sign-in">
<h1>◆ waifu-rt3d</h1>
<p>This companion is served on the network, so it asks for its access token.</p>
{error}
<form method="post" action="/auth/login">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form>
<p>The token was printed when the server first started. It is kept in <code>config/auth-token</code> in the data folder of the machine that runs it.</p>
</main></body></html>
"#,
        next = escape(next),
    );
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AuthToken {
        AuthToken::parse("correct-horse-battery-staple").unwrap()
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tokens_are_checked_and_never_shown() {
        assert!(AuthToken::parse("short").is_err());
        assert!(AuthToken::parse("has spaces in the middle").is_err());
        assert!(AuthToken::parse("quote\"in-a-long-token").is_err());
        let t = token();
        assert_eq!(format!("{t:?}"), "AuthToken(***)");
        let made = AuthToken::generate().unwrap();
        assert_eq!(made.expose().len(), 43);
        assert_ne!(made.expose(), AuthToken::generate().unwrap().expose());
    }

    #[test]
    fn bearer_or_cookie() {
        let t = token();
        let ok = |pairs: &[(header::HeaderName, &str)]| authorized(&t, 3000, &headers(pairs));
        assert!(ok(&[(
            header::AUTHORIZATION,
            "Bearer correct-horse-battery-staple"
        )]));
        assert!(ok(&[(
            header::AUTHORIZATION,
            "bearer  correct-horse-battery-staple "
        )]));
        assert!(!ok(&[(
            header::AUTHORIZATION,
            "Bearer correct-horse-battery-stapl"
        )]));
        assert!(!ok(&[(
            header::AUTHORIZATION,
            "Basic correct-horse-battery-staple"
        )]));
        assert!(!ok(&[]));
        let cookie = format!("a=b; waifu_session_3000={}", t.cookie);
        assert!(ok(&[(header::COOKIE, &cookie)]));
        // The cookie is not the token, and another port's cookie does not count.
        assert!(!ok(&[(
            header::COOKIE,
            "waifu_session_3000=correct-horse-battery-staple"
        )]));
        let other_port = format!("waifu_session_3100={}", t.cookie);
        assert!(!ok(&[(header::COOKIE, &other_port)]));
    }

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next(Some("/chat?x=1")), "/chat?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "chat",
            "/\\evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_sign_in_link_loses_its_token() {
        let uri: Uri = "/chat?token=abc&x=1".parse().unwrap();
        assert_eq!(query_param(&uri, "token").as_deref(), Some("abc"));
        assert_eq!(without_param(&uri, "token"), "/chat?x=1");
        let uri: Uri = "/?token=abc".parse().unwrap();
        assert_eq!(without_param(&uri, "token"), "/");
    }

    #[test]
    fn tokens_live_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth-token");
        let loopback = "127.0.0.1".parse().unwrap();
        let lan = "0.0.0.0".parse().unwrap();
        assert_eq!(
            resolve_token(loopback, None, &file).unwrap().1,
            TokenSource::NotNeeded
        );
        assert!(!file.exists());
        let (made, source) = resolve_token(lan, None, &file).unwrap();
        assert_eq!(source, TokenSource::Generated(file.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (again, source) = resolve_token(lan, None, &file).unwrap();
        assert_eq!(source, TokenSource::Stored(file.clone()));
        assert_eq!(again.unwrap().expose(), made.unwrap().expose());
        let (given, source) = resolve_token(lan, Some(token()), &file).unwrap();
        assert_eq!(source, TokenSource::Given);
        assert_eq!(given.unwrap().expose(), token().expose());
        fs::write(&file, "bad token").unwrap();
        assert!(resolve_token(lan, None, &file).is_err());
    }
}
