//! `POST /api/asr`: a recording in, its transcript out; `POST /api/asr/warm`: load the local
//! recogniser before the first recording (docs/api.md). The recording is a multipart `file`
//! field or a raw body with an audio `Content-Type`, at most 25 MB, read only once a place
//! under `limits.transcriptions` is free.

use crate::{
    asr::{AsrError, AudioKind, MAX_UPLOAD_BYTES},
    server::{error::ApiError, state::AppState},
    shared::{
        asr::{AsrTimings, Transcription, TranscriptionMeta},
        config::AsrProvider,
    },
};
use axum::{
    body::Bytes,
    extract::{FromRequest, Multipart, Request, State},
    http::{header, StatusCode},
    Json,
};
use serde_json::{json, Value};
use std::time::Instant;

/// Multipart framing around the file: boundaries and part headers.
pub const FRAMING_ALLOWANCE: usize = 64 * 1024;

pub async fn transcribe(
    State(s): State<AppState>,
    req: Request,
) -> Result<Json<Transcription>, ApiError> {
    let arrived = Instant::now();
    let cfg = s.config.get();
    if cfg.asr.provider == AsrProvider::Disabled {
        return Err(AsrError::Disabled.into());
    }
    // Refused before a byte of the body is read; the place is held until the transcript is out.
    let _place = s.gates.transcription(&cfg.limits)?;
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared_length.is_some_and(|n| n > MAX_UPLOAD_BYTES + FRAMING_ALLOWANCE) {
        return Err(too_large());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_form = content_type.as_deref().is_some_and(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    });
    let (audio, kind) = if is_form {
        from_form(req, &s).await?
    } else {
        let kind = AudioKind::declared(content_type.as_deref())
            .map_err(|e| ApiError::from(AsrError::UnsupportedType(e.to_string())))?;
        let bytes = axum::body::to_bytes(req.into_body(), MAX_UPLOAD_BYTES)
            .await
            .map_err(|_| too_large())?;
        (bytes, kind)
    };
    let receive_ms = ms(arrived);
    let (provider, heard) = s.asr.transcribe(audio, kind).await?;
    Ok(Json(Transcription {
        ok: true,
        text: heard.text,
        language: heard.language,
        duration_ms: heard.duration_ms,
        meta: TranscriptionMeta {
            provider,
            timings: AsrTimings {
                receive_ms,
                decode_ms: heard.decode_ms,
                transcribe_ms: heard.transcribe_ms,
                total_ms: ms(arrived),
            },
        },
    }))
}

/// The `file` field of a multipart body, read to the cap.
async fn from_form(req: Request, s: &AppState) -> Result<(Bytes, AudioKind), ApiError> {
    let mut form = Multipart::from_request(req, s).await.map_err(|e| {
        ApiError::bad_request(
            "asr_bad_form",
            format!(
                "Send the recording as multipart/form-data with a `file` field ({}).",
                e.body_text()
            ),
        )
    })?;
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request(
                "asr_bad_form",
                format!("The multipart body could not be read ({}).", e.body_text()),
            )
        }
    };
    while let Some(mut field) = form.next_field().await.map_err(unreadable)? {
        if field.name() != Some("file") {
            continue;
        }
        let kind = AudioKind::declared_part(field.content_type())
            .map_err(|e| ApiError::from(AsrError::UnsupportedType(e.to_string())))?;
        let mut audio = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            if audio.len() + chunk.len() > MAX_UPLOAD_BYTES {
                return Err(too_large());
            }
            audio.extend_from_slice(&chunk);
        }
        return Ok((audio.into(), kind));
    }
    Err(ApiError::bad_request(
        "asr_missing_file",
        "The multipart body has no `file` field: put the recording there.",
    ))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "The recording is larger than {} MB; speak in shorter turns.",
            MAX_UPLOAD_BYTES / 1024 / 1024
        ),
    )
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

/// Starts the configured local recogniser in the background (the browser calls it when the
/// microphone is first switched on). Answers at once; `warm` says whether it was already loaded.
pub async fn warm(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let before = s.asr.probe().await;
    let provider = s.asr.warm()?;
    Ok(Json(json!({
        "ok": true,
        "provider": provider,
        "state": before.state,
        "detail": before.detail,
    })))
}
