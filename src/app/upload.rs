//! [both] Sending a file to a REST route: XHR rather than a server function, so the page shows
//! real upload progress (a server function would buffer the whole file first), and the progress
//! bar with its done and failed lines that every file form shows.

use leptos::prelude::*;

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum Upload {
    Idle,
    /// Percent sent.
    Sending(u32),
    /// What to say now it is done.
    Done(String),
    Failed(String),
}

impl Upload {
    pub fn sending(&self) -> bool {
        matches!(self, Self::Sending(_))
    }

    /// For `data-state` attributes: `idle`, `sending`, `done`, `error`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Sending(_) => "sending",
            Self::Done(_) => "done",
            Self::Failed(_) => "error",
        }
    }
}

/// The progress bar and the result lines of an upload. `id` prefixes their test ids
/// (`<id>-progress`, `<id>-done`, `<id>-error`). One fixed structure with reactive attributes:
/// cheaper in the WASM than a view per state.
#[component]
pub fn UploadStatus(state: RwSignal<Upload>, id: &'static str) -> impl IntoView {
    view! {
        <progress max="100" data-testid=format!("{id}-progress")
            hidden=move || !state.get().sending()
            value=move || match state.get() { Upload::Sending(p) => p, _ => 0 }></progress>
        <p class="ok" role="status" data-testid=format!("{id}-done")
            hidden=move || !matches!(state.get(), Upload::Done(_))>
            {move || match state.get() { Upload::Done(msg) => msg, _ => String::new() }}
        </p>
        <p class="error" role="alert" data-testid=format!("{id}-error")
            hidden=move || !matches!(state.get(), Upload::Failed(_))>
            {move || match state.get() { Upload::Failed(msg) => msg, _ => String::new() }}
        </p>
    }
}

/// Sends `file` as the multipart field `file` to `url`, reporting progress in percent, then
/// the route's JSON answer, or the error to show: the answer's own `error`, else one made from
/// the status.
#[cfg(feature = "hydrate")]
pub fn post_file(
    url: &str,
    file: web_sys::File,
    progress: impl Fn(u32) + 'static,
    done: impl FnOnce(Result<serde_json::Value, String>) + 'static,
) {
    use wasm_bindgen::{prelude::*, JsCast};
    let (Ok(xhr), Ok(form)) = (web_sys::XmlHttpRequest::new(), web_sys::FormData::new()) else {
        done(Err("This browser cannot upload files.".into()));
        return;
    };
    if form
        .append_with_blob_and_filename("file", &file, &file.name())
        .is_err()
        || xhr.open("POST", url).is_err()
    {
        done(Err("The upload could not be started.".into()));
        return;
    }
    // The progress callback lives as long as the request: it is dropped with the last event.
    let progress =
        Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
            if e.length_computable() && e.total() > 0.0 {
                progress((e.loaded() / e.total() * 100.0) as u32);
            }
        });
    if let Ok(upload) = xhr.upload() {
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }
    // `send` can fail after the end handler is set; whichever comes first answers.
    let done = std::rc::Rc::new(std::cell::Cell::new(Some(done)));
    let finish = done.clone();
    let request = xhr.clone();
    let end = Closure::once_into_js(move || {
        drop(progress);
        let Some(done) = finish.take() else { return };
        let status = request.status().unwrap_or(0);
        let body = request.response_text().ok().flatten().unwrap_or_default();
        done(answer_of(status, &body));
    });
    xhr.set_onloadend(Some(end.unchecked_ref()));
    if xhr.send_with_opt_form_data(Some(&form)).is_err() {
        if let Some(done) = done.take() {
            done(Err("The upload could not be sent.".into()));
        }
    }
}

#[cfg(not(feature = "hydrate"))]
pub fn post_file(
    _url: &str,
    _file: web_sys::File,
    _progress: impl Fn(u32) + 'static,
    _done: impl FnOnce(Result<serde_json::Value, String>) + 'static,
) {
}

/// The route's answer, or the error to show for it.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn answer_of(status: u16, body: &str) -> Result<serde_json::Value, String> {
    let answer: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    match status {
        200..=299 => Ok(answer),
        0 => Err("The upload did not reach the server; is it running?".into()),
        _ => Err(answer["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| match status {
                413 => "The file is too large for the server.".into(),
                _ => format!("The server answered {status}."),
            })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_come_from_the_body_else_the_status() {
        assert_eq!(
            answer_of(
                400,
                r#"{"ok":false,"error":"This image has no character card."}"#
            )
            .err(),
            Some("This image has no character card.".into())
        );
        assert_eq!(
            answer_of(413, "").err(),
            Some("The file is too large for the server.".into())
        );
        assert_eq!(
            answer_of(502, "<html>").err(),
            Some("The server answered 502.".into())
        );
        assert!(answer_of(0, "").is_err_and(|m| m.contains("did not reach")));
        assert_eq!(
            answer_of(200, r#"{"ok":true}"#).ok(),
            Some(serde_json::json!({"ok": true}))
        );
    }
}
