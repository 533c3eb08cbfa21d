//! What the HTTP engines share: turning transport failures and error answers into [`TtsError`]
//! classes, and reading a bounded body.

use super::TtsError;
use crate::shared::config::Secret;
use bytes::Bytes;
use reqwest::{Response, StatusCode};
use std::time::Duration;

/// Audio answers larger than this are refused rather than held in memory.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// Sends a request, mapping connection and timeout failures. `what` names the server in messages.
pub async fn send(
    req: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
) -> Result<Response, TtsError> {
    req.timeout(timeout)
        .send()
        .await
        .map_err(|e| transport(e, what, timeout))
}

pub fn transport(e: reqwest::Error, what: &str, timeout: Duration) -> TtsError {
    if e.is_timeout() {
        TtsError::Timeout(timeout.as_millis() as u64)
    } else if e.is_connect() || e.is_request() {
        TtsError::Unreachable(what.to_string())
    } else {
        TtsError::BadResponse(format!("the connection to {what} broke off"))
    }
}

/// Reads the body of a successful answer, at most [`MAX_BODY`] bytes whether or not the server
/// says how long it is.
pub async fn body(res: Response, what: &str, timeout: Duration) -> Result<Bytes, TtsError> {
    body_within(res, what, timeout, MAX_BODY).await
}

/// [`body`] with another limit (small answers such as a probe's).
pub async fn body_within(
    res: Response,
    what: &str,
    timeout: Duration,
    limit: usize,
) -> Result<Bytes, TtsError> {
    use crate::outbound::{read_limited, BodyError};
    let bytes = match read_limited(res, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::Transport(e)) => return Err(transport(e, what, timeout)),
        Err(BodyError::TooLarge(limit)) => {
            return Err(TtsError::BadResponse(format!(
                "{what} sent more than {}; the answer was refused",
                size(limit)
            )))
        }
    };
    if bytes.is_empty() {
        return Err(TtsError::BadResponse(format!("{what} sent no audio")));
    }
    Ok(Bytes::from(bytes))
}

/// A limit in the unit people read it in.
fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MB", bytes / 1024 / 1024)
    } else {
        format!("{} KB", bytes / 1024)
    }
}

pub use crate::outbound::error_detail;

/// The usual HTTP status classes. Providers with their own quirks (ElevenLabs' 401 quota)
/// look at the body first.
pub fn status_error(status: StatusCode, body: &[u8]) -> TtsError {
    let detail = format!("HTTP {}: {}", status.as_u16(), error_detail(body));
    match status.as_u16() {
        // Only redirects within the endpoint's own origin are followed (see `outbound`).
        300..=399 => TtsError::Misconfigured(format!(
            "HTTP {}: the endpoint redirects to another server, and requests carrying the key are not followed there; set the endpoint to the address it redirects to if you trust it",
            status.as_u16()
        )),
        401 | 403 => TtsError::Auth(detail),
        402 => TtsError::Quota {
            message: detail,
            rate_limited: false,
        },
        429 => TtsError::Quota {
            message: detail,
            rate_limited: true,
        },
        400..=499 => TtsError::BadRequest(detail),
        _ => TtsError::Server(detail),
    }
}

/// Reads an error answer's body (bounded) and classifies it. A server that echoes the key back
/// in its complaint does not get it into our messages.
pub async fn fail(res: Response, key: &Secret) -> TtsError {
    let status = res.status();
    let body = error_body(res, key).await;
    status_error(status, &body)
}

/// An error body, at most 16 KB (read no further), with the key blanked out.
pub async fn error_body(res: Response, key: &Secret) -> Vec<u8> {
    crate::outbound::error_text(res, key).await.into_bytes()
}

/// `base` without a trailing slash.
pub fn base(endpoint: &str) -> String {
    endpoint.trim().trim_end_matches('/').to_string()
}

/// An ok-or-classified check of a probe's answer.
pub async fn probe_status(res: Response, key: &Secret) -> Result<Response, TtsError> {
    if res.status().is_success() {
        Ok(res)
    } else {
        Err(fail(res, key).await)
    }
}

/// What both cloud adapters read from their settings.
pub struct Cloud {
    pub endpoint: String,
    pub key: Secret,
    pub model: String,
    pub voice: String,
    pub timeout: Duration,
    pub http: reqwest::Client,
}

impl Cloud {
    pub fn new(s: &crate::shared::config::TtsProviderSettings, http: reqwest::Client) -> Self {
        Self {
            endpoint: base(&s.endpoint),
            key: s.api_key.clone(),
            model: s.model.trim().to_string(),
            voice: s.voice_id.trim().to_string(),
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
            http,
        }
    }

    /// A missing key is a settings problem, found before any request.
    pub fn need_key(&self, who: &str) -> Result<(), TtsError> {
        if self.key.is_empty() {
            return Err(TtsError::Misconfigured(format!(
                "{who} needs an API key: add it under Voice → {who} in the Setup tab"
            )));
        }
        Ok(())
    }

    /// The request's voice, else the configured one.
    pub fn voice<'a>(&'a self, asked: &'a str) -> &'a str {
        if asked.is_empty() {
            &self.voice
        } else {
            asked
        }
    }
}
