//! REST errors: an [`AppError`] with an HTTP status, and a JSON body extractor that answers 400
//! (not axum's 422) for bad JSON.

use crate::shared::AppError;
use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::de::DeserializeOwned;

/// An error answer: `{"ok": false, "error", "code", "fields"?}` with a status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: AppError,
    /// Seconds for a `Retry-After` header: set on refusals for capacity (503) or rate (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            error: AppError::new(code, message),
            retry_after: None,
        }
    }

    /// A refusal for want of capacity or over the request rate: the client may try again after
    /// `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 507: the disk is full. `message` says what was not saved and that the old data is intact.
    pub fn disk_full(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INSUFFICIENT_STORAGE, crate::disk::FULL, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A 400 for one field of the body: the message starts with the field's name, and `fields`
    /// carries it as data. `problem` reads as the rest of the sentence ("must be …").
    pub fn bad_field(code: &str, field: &str, problem: impl std::fmt::Display) -> Self {
        let problem = problem.to_string();
        let mut e = Self::bad_request(code, format!("{field} {problem}."));
        e.error.fields.push(crate::shared::FieldError {
            path: field.to_string(),
            message: problem,
        });
        e
    }
}

impl From<crate::config::ConfigError> for ApiError {
    fn from(e: crate::config::ConfigError) -> Self {
        let status = match e {
            crate::config::ConfigError::Write { .. } if e.is_disk_full() => {
                tracing::error!(error = %e, "saving the settings failed: the disk is full");
                StatusCode::INSUFFICIENT_STORAGE
            }
            crate::config::ConfigError::Write { .. } => {
                tracing::error!(error = %e, "saving the settings failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error: e.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "ok": false,
            "error": self.error.message,
            "code": self.error.code,
        });
        if !self.error.fields.is_empty() {
            body["fields"] = serde_json::to_value(&self.error.fields).unwrap_or_default();
        }
        let mut res = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        res
    }
}

/// A JSON request body: `Content-Type: application/json` and a body of the right shape. Any other
/// media type is a 415 (a web page can send `text/plain` or form bodies to any site without
/// asking, never `application/json`); a body that is not JSON, or not the right shape, is a 400
/// that says what is wrong.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        parse_json(content_type.as_ref(), &bytes).map(ApiJson)
    }
}

/// A JSON body that may be left out entirely: an empty body reads as `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (content_type, bytes) = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(content_type.as_ref(), &bytes).map(OptionalJson)
    }
}

async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(Option<HeaderValue>, Bytes), ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        ApiError::new(
            e.status(),
            "bad_body",
            format!("The request body could not be read: {}", e.body_text()),
        )
    })?;
    Ok((content_type, bytes))
}

/// Parses a JSON body, with a 415 for anything not sent as `application/json` and a 400 that
/// points at the problem for anything else.
fn parse_json<T: DeserializeOwned>(
    content_type: Option<&HeaderValue>,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let media_type = content_type.and_then(|ct| ct.to_str().ok()).map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    if media_type.as_deref() != Some("application/json") {
        let sent = media_type.unwrap_or_else(|| "no Content-Type".into());
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("The body must be JSON sent with Content-Type: application/json, not {sent}."),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The request body is empty; send a JSON object.",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("The request body is not valid JSON: {inner}.")
        } else if path == "." {
            format!("The request body has the wrong shape: {inner}.")
        } else {
            format!("The request body has a problem at `{path}`: {inner}.")
        };
        ApiError::bad_request("invalid_json", message)
    })
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::BadQuery(message) => {
                ApiError::bad_request("bad_query", message)
            }
            other if other.is_disk_full() => {
                tracing::error!(error = %other, "database write failed: the disk is full");
                ApiError::disk_full(format!(
                    "The disk is full: the history database could not be written. {}",
                    crate::disk::advice(
                        "nothing was changed, and the history already saved is intact."
                    )
                ))
            }
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "database_error",
                    "The history database could not complete the request; see the server log. Nothing was changed.",
                )
            }
        }
    }
}

impl From<crate::server::history::HistoryError> for ApiError {
    fn from(e: crate::server::history::HistoryError) -> Self {
        use crate::server::history::HistoryError as E;
        let (status, code) = match e {
            E::Store(store) => return store.into(),
            E::BadField {
                code,
                ref field,
                ref problem,
            } => return ApiError::bad_field(code, field, problem),
            E::SessionNotFound(_)
            | E::MessageNotFound { .. }
            | E::MessageGone(_)
            | E::CharacterNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::TextTooLong => (StatusCode::PAYLOAD_TOO_LARGE, "text_too_long"),
            E::MissingTitle => (StatusCode::BAD_REQUEST, "missing_title"),
            E::TitleTooLong => (StatusCode::BAD_REQUEST, "title_too_long"),
            E::MissingText => (StatusCode::BAD_REQUEST, "missing_text"),
            E::BadRole => (StatusCode::BAD_REQUEST, "bad_role"),
            E::BadFormat => (StatusCode::BAD_REQUEST, "bad_format"),
            E::CharacterIncomplete | E::CharacterEmptied => {
                (StatusCode::BAD_REQUEST, "missing_fields")
            }
            E::NoFields => (StatusCode::BAD_REQUEST, "no_fields"),
            E::DefaultCharacter => (StatusCode::BAD_REQUEST, "default_character"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::avatars::AvatarError> for ApiError {
    fn from(e: crate::avatars::AvatarError) -> Self {
        use crate::avatars::AvatarError as E;
        // The error's text as a sentence: capitalised, with a full stop.
        let sentence = {
            let text = e.to_string();
            let mut chars = text.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
                + "."
        };
        let (status, code) = match e {
            E::BadName(_) => (StatusCode::BAD_REQUEST, "bad_name"),
            E::BadExtension(_) => (StatusCode::BAD_REQUEST, "bad_extension"),
            E::NotGltf(_) | E::NotVrm => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_a_model"),
            E::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            E::JsonTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "json_too_large"),
            E::FolderFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "avatars_full"),
            E::Exists(_) => (StatusCode::CONFLICT, "exists"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::DefaultProtected => (StatusCode::BAD_REQUEST, "default_avatar"),
            E::Unreadable(_) => (StatusCode::BAD_REQUEST, "bad_upload"),
            E::Stopped(message) => {
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
            E::Settings(config) => return config.into(),
            E::Io { .. } | E::Store { .. } if e.is_disk_full() => {
                tracing::error!(error = %e, "avatar file operation failed: the disk is full");
                return ApiError::disk_full(format!(
                    "The disk is full: the avatar could not be saved. {}",
                    crate::disk::advice(
                        "nothing was changed, and the avatars already there are intact."
                    )
                ));
            }
            E::Io { .. } | E::Store { .. } => {
                tracing::error!(error = %e, "avatar file operation failed");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "avatar_io",
                    "The avatars folder could not be written or read; check free disk space and permissions.",
                );
            }
        };
        ApiError::new(status, code, sentence)
    }
}

impl From<crate::tts::ChainError> for ApiError {
    fn from(e: crate::tts::ChainError) -> Self {
        if let crate::tts::ChainError::Busy(n) = e {
            return crate::server::limits::busy(
                e.code(),
                format!("The voices are busy: {n} syntheses are already running; try again in a moment."),
            );
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let message = match &e {
            crate::tts::ChainError::NothingToSay => {
                "There is nothing to say: the text is empty once markup, reasoning and emoji are removed.".to_string()
            }
            crate::tts::ChainError::DiskFull(_) => format!(
                "The disk is full: the speech could not be saved as audio. {}",
                crate::disk::advice("the audio already cached is intact.")
            ),
            crate::tts::ChainError::AllFailed(_) => format!(
                "No voice could speak. {}. The System tab shows each voice's state.",
                e.failures()
                    .iter()
                    .map(|f| format!("{}: {}", f.provider, f.error))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            crate::tts::ChainError::Busy(_) => e.to_string(),
        };
        let error = ApiError::new(status, e.code(), message);
        match status {
            // Every voice was too busy: worth another try shortly.
            StatusCode::SERVICE_UNAVAILABLE => {
                error.retry_after(crate::server::limits::RETRY_AFTER_S)
            }
            _ => error,
        }
    }
}

impl From<crate::turn::TurnError> for ApiError {
    fn from(e: crate::turn::TurnError) -> Self {
        use crate::turn::TurnError;
        // The database's errors answer as they do everywhere (400, 507, 500).
        let e = match e {
            TurnError::Store(e) => return e.into(),
            other => other,
        };
        let status = match &e {
            TurnError::MissingText | TurnError::TextTooLong | TurnError::InvalidSessionId => {
                StatusCode::BAD_REQUEST
            }
            TurnError::NoSuchCharacter(_) | TurnError::NoDefaultCharacter => StatusCode::NOT_FOUND,
            TurnError::Busy { .. } | TurnError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            TurnError::Llm(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            TurnError::Store(_) | TurnError::StoreFailed | TurnError::NoResult => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let error = ApiError::new(status, e.code(), e.to_string());
        match status {
            // A full gate, the built-in model's full queue, a server on its way down: worth
            // another try shortly.
            StatusCode::SERVICE_UNAVAILABLE => {
                error.retry_after(crate::server::limits::RETRY_AFTER_S)
            }
            _ => error,
        }
    }
}

impl From<crate::asr::AsrError> for ApiError {
    fn from(e: crate::asr::AsrError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        if status == StatusCode::BAD_GATEWAY {
            tracing::warn!(code = e.code(), error = %e, "speech recognition failed");
        }
        let error = ApiError::new(status, e.code(), e.to_string());
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                error.retry_after(crate::server::limits::RETRY_AFTER_S)
            }
            _ => error,
        }
    }
}

/// A numeric id from a path segment: `abc` is a 400, not a 500 or an empty 404.
pub fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("The {what} id must be a number, not {raw:?}."),
        )
    })
}

/// Query parameters; a value of the wrong kind (`limit=abc`) is a JSON 400 like every other error.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request("bad_query_string", format!("{}.", e.body_text())))
    }
}
