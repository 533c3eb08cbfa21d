//! REST errors: an [`AppError`] with an HTTP status, and a JSON body extractor that answers 400
//! (not axum's 422) for bad JSON.

use crate::shared::AppError;
use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::de::DeserializeOwned;

/// An error answer: `{"ok": false, "error", "code", "fields"?}` with a status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: AppError,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            error: AppError::new(code, message),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<crate::config::ConfigError> for ApiError {
    fn from(e: crate::config::ConfigError) -> Self {
        let status = match e {
            crate::config::ConfigError::Write { .. } => {
                tracing::error!(error = %e, "saving the settings failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error: e.into(),
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
        (self.status, Json(body)).into_response()
    }
}

/// A JSON request body. Any media type that could be JSON is accepted (older clients send none);
/// a body that is not JSON, or not the right shape, is a 400 that says what is wrong.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            let jsonish = ct.starts_with("application/json")
                || ct.contains("+json")
                || ct.starts_with("text/plain");
            if !jsonish {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("The body must be JSON (Content-Type: application/json), not {ct}."),
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                e.status(),
                "bad_body",
                format!("The request body could not be read: {}", e.body_text()),
            )
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "invalid_json",
                "The request body is empty; send a JSON object.",
            ));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(ApiJson)
            .map_err(|e| {
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
}
