//! [ssr] What every request to a provider shares, so that a key never travels further than the
//! origin it was saved for: the HTTP client follows redirects only within the origin it was asked
//! (reqwest drops `Authorization` on a cross-host redirect but keeps custom headers such as
//! ElevenLabs' `xi-api-key`), error bodies are read to a bound and shown without the key, and
//! successful answers are read whole only up to a limit.

use crate::shared::config::Secret;

/// How much of an error body is read: enough for any provider's complaint, never a whole page.
pub const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// Redirects followed in a row before giving up.
const MAX_REDIRECTS: usize = 10;

/// A client builder for provider requests: same-origin redirects only. A redirect elsewhere stops
/// there, so the caller sees the 3xx answer and can say what to fix.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(same_origin_redirects())
}

/// Follows a redirect only to the scheme, host and port of the request that started the chain.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Reads at most [`ERROR_BODY_LIMIT`] bytes of `res`, chunk by chunk, and stops there: a huge or
/// endless error answer is never held whole. A body that breaks off gives what arrived.
pub async fn read_capped(mut res: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        let room = ERROR_BODY_LIMIT - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    body
}

/// Why an answer's body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    /// More than this many bytes: said by `Content-Length`, or counted while reading a body that
    /// did not say.
    TooLarge(usize),
    Transport(reqwest::Error),
}

/// Reads `res` whole, refusing more than `limit` bytes: a `Content-Length` over the limit is
/// refused before anything is read, and a body without one is read chunk by chunk and given up
/// as soon as it passes the limit, so a server that sends without end never fills the memory.
pub async fn read_limited(mut res: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(BodyError::Transport)? {
        if chunk.len() > limit - body.len() {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `text` without `key`: a server that echoes the key in its complaint does not get it into our
/// messages, even when the body was cut in the middle of it.
pub fn scrub(text: &str, key: &Secret) -> String {
    let key = key.expose();
    // Very short "keys" (placeholders such as "x") are not secrets, and replacing them would
    // garble the message.
    if key.len() < 4 {
        return text.to_string();
    }
    let mut out = text.replace(key, "***");
    for cut in (4..key.len()).rev() {
        if key.is_char_boundary(cut) && out.ends_with(&key[..cut]) {
            out.truncate(out.len() - cut);
            out.push_str("***");
            break;
        }
    }
    out
}

/// An error answer's body: bounded, as text, scrubbed of `key`.
pub async fn error_text(res: reqwest::Response, key: &Secret) -> String {
    scrub(&String::from_utf8_lossy(&read_capped(res).await), key)
}

/// The gist of an error body: a JSON `message`/`detail`/`msg` where there is one, else the start
/// of the text. Short, single-line, and never an echo of a request header.
pub fn error_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let found = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| json_message(&v));
    let detail = found.unwrap_or_else(|| text.trim().to_string());
    let detail: String = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = detail.chars().take(200).collect();
    if short.len() < detail.len() {
        short.push('…');
    }
    if short.is_empty() {
        "no details".into()
    } else {
        short
    }
}

fn json_message(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(json_message).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        Value::Object(map) => ["message", "msg", "detail", "error"]
            .iter()
            .find_map(|k| map.get(*k).and_then(json_message)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_scrubbed_whole_and_cut() {
        let key = Secret::new("sk-abcdef123456");
        assert_eq!(
            scrub("bad key sk-abcdef123456 given", &key),
            "bad key *** given"
        );
        assert_eq!(scrub("cut at sk-abcdef1", &key), "cut at ***");
        assert_eq!(scrub("nothing here", &key), "nothing here");
        assert_eq!(scrub("x marks", &Secret::new("x")), "x marks");
    }

    /// A server that answers `status` with a chunked body (no `Content-Length`) that never
    /// ends: only the reader hanging up stops it.
    async fn endless(status: &'static str) -> reqwest::Response {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            let head = format!("HTTP/1.1 {status}\r\ntransfer-encoding: chunked\r\n\r\n");
            let _ = sock.write_all(head.as_bytes()).await;
            let chunk = format!("{:x}\r\n{}\r\n", 4096, "e".repeat(4096));
            // It never ends: only the reader hanging up stops it.
            while sock.write_all(chunk.as_bytes()).await.is_ok() {}
        });
        client_builder()
            .build()
            .unwrap()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn error_bodies_are_read_to_the_bound_only() {
        let res = endless("500 Internal Server Error").await;
        let body = tokio::time::timeout(std::time::Duration::from_secs(5), read_capped(res))
            .await
            .expect("the read stops at the bound");
        assert_eq!(body.len(), ERROR_BODY_LIMIT);
    }

    #[tokio::test]
    async fn a_body_without_length_is_refused_past_the_limit() {
        let res = endless("200 OK").await;
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read_limited(res, 100_000),
        )
        .await
        .expect("the read stops at the limit");
        assert!(
            matches!(read, Err(BodyError::TooLarge(100_000))),
            "{read:?}"
        );
    }
}
