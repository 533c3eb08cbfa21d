//! [ssr] No-op twin of `ffi.rs`: the server renders the viewer's markup but never runs it.

use super::{ViewerError, ViewerEvent};

pub struct Viewer;

impl Viewer {
    pub fn command(&self, _json: &str) -> Result<String, ViewerError> {
        Err(ViewerError::NotRunning)
    }
}

pub async fn mount(
    _root: web_sys::HtmlElement,
    _on_event: impl Fn(ViewerEvent) + 'static,
) -> Result<Viewer, ViewerError> {
    Err(ViewerError::NotRunning)
}
