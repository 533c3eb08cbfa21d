//! The one error type that crosses the wire, for REST responses and server functions alike.

use serde::{Deserialize, Serialize};

/// A problem with one field of a submitted document, addressed by its dotted path
/// (`llm.endpoint`, `tts.providers.fish_audio.endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// A clear, safe error: a human message that says what failed and what to do, a stable
/// snake_case `code`, and per-field problems where a form was at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl AppError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A document that failed validation; the message lists every field problem.
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let summary = fields
            .iter()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            code: "invalid_config".into(),
            message: format!("The settings were not saved: {summary}"),
            fields,
        }
    }

    /// The message for one field, if that field was at fault.
    pub fn field(&self, path: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.message.as_str())
    }
}

impl leptos::server_fn::error::FromServerFnError for AppError {
    type Encoder = crate::shared::json_text::JsonText;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        // On the server, arguments that do not decode are the caller's fault: 400 with the
        // reason (the function itself never ran, so nothing else sets the status).
        #[cfg(feature = "ssr")]
        if matches!(
            value,
            leptos::server_fn::error::ServerFnErrorErr::Args(_)
                | leptos::server_fn::error::ServerFnErrorErr::MissingArg(_)
                | leptos::server_fn::error::ServerFnErrorErr::Deserialization(_)
        ) {
            if let Some(res) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
                res.set_status(axum::http::StatusCode::BAD_REQUEST);
            }
            return AppError::new(
                "invalid_arguments",
                format!("The request's arguments are not valid: {value}"),
            );
        }
        AppError::new(
            "request_failed",
            format!("The request to the server failed: {value}. Check that the server is running and reload the page."),
        )
    }
}
