//! [both] The only doorway to the 3D viewer (three.js + three-vrm, in `viewer-bridge/`). Rust
//! sends typed [`ViewerCommand`]s and receives typed [`ViewerEvent`]s; the bridge answers each
//! command in an `{ok, value, error}` [`Envelope`]. `ffi` talks to the bundle in the browser
//! build; in the server build the same calls are no-ops (effects never run there).

// What drives the viewer runs only in the browser build, which lints it for dead code; the
// server build compiles it for the page's markup and for the native tests.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

#[cfg(feature = "hydrate")]
mod ffi;
#[cfg(not(feature = "hydrate"))]
#[path = "ffi_ssr.rs"]
mod ffi;

mod avatar;
pub mod lipsync;

pub use avatar::Avatar;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The built bundle's plain address (`make` builds it into `public/viewer/`). Pages name its
/// content-hashed address, which the server knows, in the `<meta>` [`BUNDLE_META`].
pub const BRIDGE_URL: &str = "/viewer/viewer-bridge.js";

/// The `name` of the page's `<meta>` whose `content` is the address to load the bundle from.
pub const BUNDLE_META: &str = "waifu-viewer-bundle";

/// The page's `import()` wrapper (a global function defined by [`MODULE_LOADER_SCRIPT`]): the
/// Content-Security-Policy allows no `eval`, so WebAssembly cannot build one itself.
pub const MODULE_LOADER: &str = "__waifuImportModule";

/// The script that defines [`MODULE_LOADER`]; the page shell includes it with the response's
/// nonce. No `<`, `>` or `&`, so it reads the same escaped or not.
#[cfg(feature = "ssr")]
pub const MODULE_LOADER_SCRIPT: &str =
    "window.__waifuImportModule = function (url) { return import(url); };";

/// Mouth shapes for lip sync, each 0..1. Applied after every other expression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mouth {
    pub aa: f32,
    pub ih: f32,
    pub ou: f32,
    pub ee: f32,
    pub oh: f32,
}

/// What Rust asks the bridge to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ViewerCommand {
    /// Load a VRM/glTF by URL (replaces the current model once it has loaded).
    Load { url: String },
    /// Fade an expression (`happy`, `sad`, `aa`, ...) to `weight` over `fade_ms`.
    Expression {
        name: String,
        weight: f32,
        fade_ms: u32,
    },
    /// Set the mouth layer.
    Mouth(Mouth),
    /// Free the model and the WebGL context.
    Dispose,
}

/// What the bridge reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerEvent {
    Progress {
        loaded: f64,
        total: f64,
    },
    Loaded {
        url: String,
        /// `"0"`, `"1"` (VRM versions) or `"gltf"`.
        vrm: String,
        expressions: Vec<String>,
    },
    Error {
        url: String,
        message: String,
    },
    ContextLost,
    ContextRestored,
}

/// An event as the bridge writes it: `{"type": ..., fields}`. Decoded as one flat struct, then
/// checked into [`ViewerEvent`] (serde's internally tagged enums buffer every event first,
/// which costs the WASM bundle several kilobytes).
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    loaded: f64,
    #[serde(default)]
    total: f64,
    #[serde(default)]
    url: String,
    #[serde(default)]
    vrm: String,
    #[serde(default)]
    expressions: Vec<String>,
    #[serde(default)]
    message: String,
}

impl ViewerEvent {
    /// Reads one event from the bridge's JSON.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let e: RawEvent = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        Ok(match e.kind.as_str() {
            "progress" => ViewerEvent::Progress {
                loaded: e.loaded,
                total: e.total,
            },
            "loaded" => ViewerEvent::Loaded {
                url: e.url,
                vrm: e.vrm,
                expressions: e.expressions,
            },
            "error" => ViewerEvent::Error {
                url: e.url,
                message: e.message,
            },
            "context_lost" => ViewerEvent::ContextLost,
            "context_restored" => ViewerEvent::ContextRestored,
            other => return Err(format!("unknown event type {other:?}")),
        })
    }
}

/// The bridge's answer to a command. The commands Rust sends answer no value, so `value` is
/// not decoded (a generic JSON value type would cost the WASM bundle for nothing).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Envelope {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ViewerError {
    #[error("the 3D viewer is not running")]
    NotRunning,
    #[error("the 3D viewer could not start: {0}")]
    Start(String),
    #[error("the 3D viewer refused the command: {0}")]
    Refused(String),
}

impl Envelope {
    pub fn parse(raw: &str) -> Result<(), ViewerError> {
        let env: Envelope = serde_json::from_str(raw)
            .map_err(|e| ViewerError::Refused(format!("unreadable answer ({e})")))?;
        if env.ok {
            Ok(())
        } else {
            Err(ViewerError::Refused(
                env.error.unwrap_or_else(|| "no reason given".into()),
            ))
        }
    }
}

/// The browser keeps the JS viewer in thread-local storage; the server's twin is a plain value
/// (a server render may be dropped on any thread, where local storage would panic).
#[cfg(feature = "hydrate")]
type ViewerStorage = LocalStorage;
#[cfg(not(feature = "hydrate"))]
type ViewerStorage = SyncStorage;

/// A handle on a mounted viewer, for whoever drives the avatar (the chat tab's lip sync and
/// emotions). Cheap to copy; every call is a no-op until the viewer is running.
#[derive(Clone, Copy)]
pub struct ViewerHandle {
    inner: StoredValue<Option<ffi::Viewer>, ViewerStorage>,
}

impl Default for ViewerHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ViewerHandle {
    pub fn new() -> Self {
        Self {
            inner: StoredValue::new_with_storage(None),
        }
    }

    /// Sends one command.
    pub fn send(&self, cmd: &ViewerCommand) -> Result<(), ViewerError> {
        // The server never runs a viewer, and its browser-local storage must not be touched
        // from another thread (a server render may be cleaned up anywhere).
        if cfg!(not(feature = "hydrate")) {
            return Err(ViewerError::NotRunning);
        }
        let json = serde_json::to_string(cmd).map_err(|e| ViewerError::Refused(e.to_string()))?;
        self.inner
            .try_with_value(|v| v.as_ref().map(|v| v.command(&json)))
            .flatten()
            .ok_or(ViewerError::NotRunning)
            .and_then(|raw| Envelope::parse(&raw?))
    }

    /// Fades an expression (`happy`, `angry`, `sad`, `relaxed`, `surprised`, ...) to `weight`.
    pub fn set_expression(&self, name: &str, weight: f32, fade_ms: u32) -> Result<(), ViewerError> {
        self.send(&ViewerCommand::Expression {
            name: name.into(),
            weight,
            fade_ms,
        })
    }

    /// Sets the mouth layer (visemes), applied after every expression.
    pub fn set_mouth(&self, mouth: Mouth) -> Result<(), ViewerError> {
        self.send(&ViewerCommand::Mouth(mouth))
    }

    #[cfg(test)]
    fn is_running(&self) -> bool {
        cfg!(feature = "hydrate") && self.inner.try_with_value(|v| v.is_some()).unwrap_or(false)
    }

    fn attach(&self, viewer: ffi::Viewer) {
        self.inner.set_value(Some(viewer));
    }

    /// Frees the model and the WebGL context.
    pub fn dispose(&self) {
        if self.send(&ViewerCommand::Dispose).is_ok() {
            let _ = self.inner.try_set_value(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_the_server_the_handle_is_a_no_op_from_any_thread() {
        // A server render may be cleaned up on another thread than the one that made it.
        let owner = Owner::new();
        let h = owner.with(ViewerHandle::new);
        std::thread::spawn(move || {
            assert_eq!(h.set_mouth(Mouth::default()), Err(ViewerError::NotRunning));
            assert!(!h.is_running());
            h.dispose();
            owner.cleanup();
            drop(owner);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn commands_and_events_speak_the_bridge_protocol() {
        let c = serde_json::to_value(ViewerCommand::Expression {
            name: "happy".into(),
            weight: 1.0,
            fade_ms: 300,
        })
        .unwrap();
        assert_eq!(
            c,
            serde_json::json!({"cmd": "expression", "name": "happy", "weight": 1.0, "fade_ms": 300})
        );
        let m = serde_json::to_value(ViewerCommand::Mouth(Mouth {
            aa: 1.0,
            ..Mouth::default()
        }))
        .unwrap();
        assert_eq!(m["cmd"], "mouth");
        assert_eq!(m["aa"], 1.0);
        let e = ViewerEvent::parse(
            r#"{"type":"loaded","url":"/a.vrm","vrm":"1","expressions":["aa"]}"#,
        )
        .unwrap();
        assert!(matches!(e, ViewerEvent::Loaded { ref vrm, .. } if vrm == "1"));
        let e = ViewerEvent::parse(r#"{"type":"context_lost"}"#).unwrap();
        assert_eq!(e, ViewerEvent::ContextLost);
        assert!(ViewerEvent::parse(r#"{"type":"nope"}"#).is_err());
        assert_eq!(Envelope::parse(r#"{"ok":true,"value":3}"#), Ok(()));
        assert_eq!(
            Envelope::parse(r#"{"ok":false,"error":"no"}"#),
            Err(ViewerError::Refused("no".into()))
        );
    }
}
