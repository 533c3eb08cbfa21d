//! [hydrate] The wasm-bindgen imports of the viewer bundle. The bundle is loaded lazily with a
//! dynamic `import()`, so the WASM does not depend on the file at build time and pages without a
//! viewer never download three.js.

use super::{ViewerError, ViewerEvent, BRIDGE_URL, BUNDLE_META, MODULE_LOADER};
use wasm_bindgen::{prelude::*, JsCast};

#[wasm_bindgen]
extern "C" {
    /// The bundle's module namespace.
    type BridgeModule;
    #[wasm_bindgen(method, catch, js_name = createViewer)]
    fn create_viewer(
        this: &BridgeModule,
        root: &web_sys::HtmlElement,
        emit: &js_sys::Function,
    ) -> Result<Bridge, JsValue>;

    /// One viewer, as `createViewer` returns it.
    type Bridge;
    #[wasm_bindgen(method, catch)]
    fn command(this: &Bridge, json: &str) -> Result<String, JsValue>;
}

/// A running viewer and the callback its events come through (kept alive with it).
pub struct Viewer {
    bridge: Bridge,
    _emit: Closure<dyn Fn(String)>,
}

impl Viewer {
    pub fn command(&self, json: &str) -> Result<String, ViewerError> {
        self.bridge
            .command(json)
            .map_err(|e| ViewerError::Refused(describe(&e)))
    }
}

/// Imports the bundle (once per page: the browser caches modules) and starts a viewer on the
/// `<canvas>` inside `root`.
pub async fn mount(
    root: web_sys::HtmlElement,
    on_event: impl Fn(ViewerEvent) + 'static,
) -> Result<Viewer, ViewerError> {
    // `import()` is syntax, not a function, and the page's Content-Security-Policy allows no
    // `eval` to wrap it: the page shell defines the wrapper in a nonce-marked script.
    let import = web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w, &JsValue::from_str(MODULE_LOADER)).ok())
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| {
            ViewerError::Start(format!(
                "the page has no module loader ({MODULE_LOADER}); reload the page"
            ))
        })?;
    let url = bundle_url();
    let promise = import
        .call1(&JsValue::NULL, &JsValue::from_str(&url))
        .map_err(|e| ViewerError::Start(describe(&e)))?;
    let module = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
        .await
        .map_err(|e| {
            ViewerError::Start(format!(
                "the viewer bundle {url} did not load ({}); build it with `make build`",
                describe(&e)
            ))
        })?
        .unchecked_into::<BridgeModule>();
    let emit = Closure::<dyn Fn(String)>::new(move |raw: String| match ViewerEvent::parse(&raw) {
        Ok(event) => on_event(event),
        Err(e) => leptos::logging::warn!("unknown viewer event {raw}: {e}"),
    });
    let bridge = module
        .create_viewer(&root, emit.as_ref().unchecked_ref())
        .map_err(|e| ViewerError::Start(describe(&e)))?;
    Ok(Viewer {
        bridge,
        _emit: emit,
    })
}

/// The bundle's address as the page names it (content-hashed), else the plain one.
fn bundle_url() -> String {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| {
            d.query_selector(&format!("meta[name=\"{BUNDLE_META}\"]"))
                .ok()
                .flatten()
        })
        .and_then(|meta| meta.get_attribute("content"))
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| BRIDGE_URL.to_string())
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".into())
}
