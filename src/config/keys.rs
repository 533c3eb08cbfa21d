//! Where the API keys sit in the config, and the origin (scheme, host, port) each one belongs to.
//!
//! A key is only ever sent to the origin it was saved with: moving an endpoint to another origin
//! without giving a key in the same change drops the stored key (see `apply_patch`), and the file
//! binds each key to its origin (see `sealed`).

use crate::shared::config::{AppConfig, Secret, TtsProvider};

/// One place in the config that holds a key, with the endpoint that key is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySlot {
    Llm,
    Asr,
    Tts(TtsProvider),
}

impl KeySlot {
    /// Every slot, in the order the config lists them.
    pub fn all() -> impl Iterator<Item = KeySlot> {
        [KeySlot::Llm, KeySlot::Asr]
            .into_iter()
            .chain(TtsProvider::ALL.into_iter().map(KeySlot::Tts))
    }

    /// The JSON pointer of the object holding `api_key` and `endpoint`.
    pub fn pointer(self) -> String {
        match self {
            KeySlot::Llm => "/llm".into(),
            KeySlot::Asr => "/asr/providers/openai_compatible".into(),
            KeySlot::Tts(p) => format!("/tts/providers/{}", p.name()),
        }
    }

    /// The dotted path of the key, as field errors and notices name it.
    pub fn path(self) -> String {
        format!(
            "{}.api_key",
            self.pointer().trim_start_matches('/').replace('/', ".")
        )
    }

    /// Who the key is for, in words.
    pub fn label(self) -> &'static str {
        match self {
            KeySlot::Llm => "the language model",
            KeySlot::Asr => "speech recognition",
            KeySlot::Tts(p) => p.label(),
        }
    }

    pub fn key(self, cfg: &AppConfig) -> &Secret {
        match self {
            KeySlot::Llm => &cfg.llm.api_key,
            KeySlot::Asr => &cfg.asr.providers.openai_compatible.api_key,
            KeySlot::Tts(p) => &cfg.tts.providers.get(p).api_key,
        }
    }

    pub fn key_mut(self, cfg: &mut AppConfig) -> &mut Secret {
        match self {
            KeySlot::Llm => &mut cfg.llm.api_key,
            KeySlot::Asr => &mut cfg.asr.providers.openai_compatible.api_key,
            KeySlot::Tts(p) => &mut cfg.tts.providers.get_mut(p).api_key,
        }
    }

    pub fn endpoint(self, cfg: &AppConfig) -> &str {
        match self {
            KeySlot::Llm => &cfg.llm.endpoint,
            KeySlot::Asr => &cfg.asr.providers.openai_compatible.endpoint,
            KeySlot::Tts(p) => &cfg.tts.providers.get(p).endpoint,
        }
    }

    /// The origin this slot's key is sent to under `cfg`.
    pub fn origin(self, cfg: &AppConfig) -> String {
        origin_of(self.endpoint(cfg))
    }
}

/// `scheme://host:port` of an endpoint, with the port always written out, so that
/// `https://api.openai.com/v1` and `https://API.openai.com:443/` compare equal. An endpoint that
/// is not an http(s) address has the empty origin: no key is ever sent there.
pub fn origin_of(endpoint: &str) -> String {
    let Ok(url) = url::Url::parse(endpoint.trim()) else {
        return String::new();
    };
    match (url.scheme(), url.host_str(), url.port_or_known_default()) {
        (scheme @ ("http" | "https"), Some(host), Some(port)) => {
            format!("{scheme}://{host}:{port}")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://api.openai.com/v1"),
            "https://api.openai.com:443"
        );
        assert_eq!(
            origin_of(" https://API.openai.com:443/other "),
            "https://api.openai.com:443"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:1234/v1"),
            "http://127.0.0.1:1234"
        );
        assert_ne!(
            origin_of("http://api.openai.com/v1"),
            origin_of("https://api.openai.com/v1")
        );
        assert_ne!(
            origin_of("http://127.0.0.1:1234/v1"),
            origin_of("http://127.0.0.1:1235/v1")
        );
        assert_eq!(origin_of(""), "");
        assert_eq!(origin_of("not a url"), "");
        assert_eq!(origin_of("file:///etc/passwd"), "");
    }

    #[test]
    fn slots_name_their_keys() {
        let paths: Vec<String> = KeySlot::all().map(KeySlot::path).collect();
        assert_eq!(paths[0], "llm.api_key");
        assert!(paths.contains(&"tts.providers.fish_audio.api_key".to_string()));
        let mut cfg = AppConfig::default();
        *KeySlot::Tts(TtsProvider::Elevenlabs).key_mut(&mut cfg) = Secret::new("k");
        assert_eq!(cfg.tts.providers.elevenlabs.api_key.expose(), "k");
        assert_eq!(
            KeySlot::Tts(TtsProvider::Elevenlabs).origin(&cfg),
            "https://api.elevenlabs.io:443"
        );
    }
}
