//! [both] Wire types shared by the server and the browser: the config model, the health report and
//! the one serialisable error.

pub mod asr;
pub mod avatars;
pub mod cards;
pub mod chat;
pub mod config;
pub mod config_form;
pub mod error;
pub mod health;
pub mod history;
pub mod json_text;
pub mod models;
pub mod tts;
pub mod wire_name;

pub use error::{AppError, FieldError};
