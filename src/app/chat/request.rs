//! `fetch` requests the Chat tab sends itself (the chat stream, the playback report), beside the
//! server functions.

use wasm_bindgen::JsValue;

/// A `fetch` request init that sends `body` (JSON) with `method`.
pub(super) fn json_init(method: &str, body: &str) -> Result<web_sys::RequestInit, JsValue> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new()?;
    headers.set("content-type", "application/json")?;
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(body));
    Ok(init)
}
