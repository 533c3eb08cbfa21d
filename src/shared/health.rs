//! The health report (`GET /api/healthcheck`, and the System tab).

use serde::{Deserialize, Serialize};

/// The state of one provider, as a probe found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderState {
    Ok,
    /// The server is up but has no model loaded.
    NoModel,
    Unreachable,
    Auth,
    Quota,
    Misconfigured,
    Error,
}

impl ProviderState {
    /// The name on the wire, as serde writes it.
    pub fn name(self) -> &'static str {
        super::wire_name::of(&self)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderHealth {
    pub provider: String,
    pub state: ProviderState,
    /// What the probe saw, and what to do about it.
    pub detail: String,
    pub latency_ms: Option<u64>,
    /// The last time this provider failed to speak (voices only; since the server started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// The last time this provider spoke (voices only; cache hits do not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<LastSuccess>,
}

/// A provider's last failure: its class (`auth`, `quota`, `timeout`, ...) and the message, which
/// never holds a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    pub code: String,
    pub message: String,
    /// Unix seconds.
    pub ts: f64,
}

/// A provider's last synthesis: how long it took and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastSuccess {
    pub latency_ms: u64,
    /// Unix seconds.
    pub ts: f64,
}

/// "Test connection" in Setup: the probe's answer and the models the server offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmCheck {
    pub health: ProviderHealth,
    pub models: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbHealth {
    pub ok: bool,
    pub journal_mode: String,
    pub messages: i64,
}

/// Whether the front-end libraries and the default avatar are in place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LibsHealth {
    pub three: bool,
    pub three_vrm: bool,
    pub default_avatar: bool,
}

/// Where a file that `make setup` installs was found: the data folder is asked first, then the
/// install folder (the checkout's `data/` under `make run`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallSource {
    DataFolder,
    InstallFolder,
    /// In neither; the path is where it belongs in the data folder.
    #[default]
    Missing,
}

impl InstallSource {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::DataFolder => "data_folder",
            Self::InstallFolder => "install_folder",
            Self::Missing => "missing",
        }
    }

    /// How the System tab says it.
    pub fn label(self) -> &'static str {
        match self {
            Self::DataFolder => "from the data folder",
            Self::InstallFolder => "from the install folder",
            Self::Missing => "not installed: run `make setup`",
        }
    }
}

/// One installed file: the path used and where it was found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstalledFile {
    pub path: String,
    pub source: InstallSource,
}

/// The files `make setup` installs, as the server found them at start-up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstalledHealth {
    /// The built-in language model.
    pub model: InstalledFile,
    /// The Piper program (the local neural voice), unless the settings name another.
    pub piper: InstalledFile,
    /// The Python of faster-whisper's virtualenv (offline speech recognition).
    #[serde(default)]
    pub whisper: InstalledFile,
    /// The Whisper model's folder (its `model.bin` is what is looked for).
    #[serde(default)]
    pub whisper_model: InstalledFile,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub ok: bool,
    pub libs: LibsHealth,
    /// Which built-in model and which Piper this server uses, and from which folder.
    #[serde(default)]
    pub installed: InstalledHealth,
    /// Kept for the earlier server's clients: whether the configured LLM answered.
    pub lmstudio: bool,
    pub llm: ProviderHealth,
    pub tts: Vec<ProviderHealth>,
    /// Speech recognition (`asr.provider`); `disabled` is reported as misconfigured, saying so.
    pub asr: ProviderHealth,
    pub db: DbHealth,
    /// Everything a person should know about, in plain words.
    pub issues: Vec<String>,
    pub version: String,
}
