//! Property tests of `apply_patch` and of saving through [`ConfigStore::update`]: any JSON a
//! client can PUT, shaped like the settings or not.

use super::{apply_patch, from_document, validate, ConfigStore};
use crate::shared::config::{AppConfig, LlmProvider, Secret, TtsProvider};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// Values that mean something somewhere in the settings, valid or not for the field they land in.
const WORDS: &[&str] = &[
    "",
    "x",
    "auto",
    "http://127.0.0.1:1234/v1",
    "https://api.example.com/v1",
    "http://[::1]:8020",
    "not a url",
    "ftp://example.com",
    "http://",
    "default.vrm",
    "../evil.vrm",
    ".hidden.vrm",
    "my/avatar.vrm",
    "voice.onnx",
    "voice.txt",
    "en",
    "ja",
    "zh-cn",
    "klingon",
    "xtts_api_server",
    "coqui_server",
    "embedded",
    "lmstudio",
    "ollama",
    "openai",
    "openai_compatible",
    "piper_local",
    "fish_audio",
    "elevenlabs",
    "xtts_server",
    "espeak",
    "disabled",
    "mp3",
    "wav",
    "opus",
    "text",
    "voice",
    "text+voice",
    "sk-new-key",
];

fn word() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(Value::from),
        1 => crate::testing::any_text().prop_map(Value::from),
        1 => crate::testing::re("[a-z]{200,300}").prop_map(Value::from),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            0u64,
            1,
            2,
            10,
            99,
            100,
            200,
            201,
            1_000,
            4_096,
            4_097,
            8_000,
            12_345,
            22_050,
            32_768,
            32_769,
            600_000,
            600_001,
            1_000_000,
            u64::MAX,
        ])
        .prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![0.0f64, 0.7, 2.0, 2.5, -0.5, 1e-300, 1e300, -0.0])
            .prop_map(Value::from),
    ]
}

/// Any JSON at all, with object keys that are also the settings' own names.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        word()
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "llm", "tts", "asr", "memory", "avatar", "profile", "providers", "provider",
            "endpoint", "api_key", "api_key_set", "model", "voice_id", "flavor", "language",
            "fallback_chain", "max_history", "recall", "active", "timeout_ms", "temperature",
            "piper_local", "fish_audio", "xtts_server",
        ])
        .prop_map(str::to_string),
        1 => crate::testing::re("[a-z_]{1,8}"),
    ]
}

/// A patch with the settings' own shape (`template`): at each object, some fields, each either a
/// plausible value, `null`, a value of another type, or (for objects) a patch of the same shape.
fn shaped(template: &Value) -> BoxedStrategy<Value> {
    match template {
        Value::Object(fields) => {
            let mut parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
                .iter()
                .map(|(name, inner)| {
                    let name = name.clone();
                    prop::option::weighted(
                        0.3,
                        prop_oneof![8 => shaped(inner), 1 => Just(Value::Null), 1 => any_json()],
                    )
                    .prop_map(move |v| v.map(|v| (name.clone(), v)))
                    .boxed()
                })
                .collect();
            // Keys are never serialised when empty, and some clients send unknown fields.
            if fields.contains_key("api_key_set") {
                parts.push(
                    prop::option::weighted(0.2, word())
                        .prop_map(|v| v.map(|v| ("api_key".to_string(), v)))
                        .boxed(),
                );
            }
            parts.push(prop::option::weighted(0.03, (key(), any_json())).boxed());
            parts
                .prop_map(|kvs| Value::Object(kvs.into_iter().flatten().collect::<Map<_, _>>()))
                .boxed()
        }
        Value::Array(_) => prop_oneof![
            prop::collection::vec(
                prop::sample::select(TtsProvider::ALL.map(TtsProvider::name).to_vec())
                    .prop_map(Value::from),
                0..6
            )
            .prop_map(Value::Array),
            any_json(),
        ]
        .boxed(),
        Value::String(s) => prop_oneof![3 => word(), 1 => Just(Value::from(s.clone()))].boxed(),
        Value::Number(_) => number().boxed(),
        Value::Bool(_) => any::<bool>().prop_map(Value::Bool).boxed(),
        Value::Null => prop_oneof![word(), number()].boxed(),
    }
}

/// What a client may PUT: mostly shaped like the settings, sometimes any JSON at all, sometimes
/// in the earlier server's flat `tts` form.
fn patch() -> impl Strategy<Value = Value> {
    let template = serde_json::to_value(AppConfig::default()).unwrap_or(Value::Null);
    let flat = prop::collection::btree_map(
        prop::sample::select(vec![
            "endpoint",
            "api_key",
            "voice_id",
            "model",
            "flavor",
            "language",
            "timeout_ms",
            "provider",
        ])
        .prop_map(str::to_string),
        prop_oneof![word(), number()],
        0..4,
    )
    .prop_map(|m| serde_json::json!({ "tts": Value::Object(m.into_iter().collect()) }));
    prop_oneof![6 => shaped(&template), 2 => any_json(), 1 => flat]
}

/// A valid config with keys stored: one of every language-model and voice provider pair, built
/// once (building one per case would double the cost of each case).
fn current() -> impl Strategy<Value = AppConfig> {
    static CONFIGS: OnceLock<Vec<AppConfig>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        let mut out = Vec::new();
        for llm in LlmProvider::ALL {
            for (i, tts) in TtsProvider::ALL.into_iter().enumerate() {
                let flavor = ["xtts_api_server", "coqui_server"][i % 2];
                let patch = json!({
                    "llm": {"provider": llm.name(), "endpoint": "http://127.0.0.1:1234/v1"},
                    "tts": {
                        "provider": tts.name(),
                        "fallback_chain": TtsProvider::ALL[i..].iter().map(|p| p.name()).collect::<Vec<_>>(),
                        "providers": {"xtts_server": {"flavor": flavor}},
                    },
                    "memory": {"max_history": i * 10},
                });
                let Ok(mut cfg) = apply_patch(&AppConfig::default(), patch) else {
                    continue;
                };
                cfg.llm.api_key = Secret::new("sk-llm-stored");
                cfg.tts.providers.fish_audio.api_key = Secret::new("fish-stored");
                cfg.tts.providers.elevenlabs.api_key = Secret::new("eleven-stored");
                out.push(cfg);
            }
        }
        assert_eq!(out.len(), 25, "every provider pair is a valid config");
        out
    });
    prop::sample::select(configs.as_slice())
}

/// Whether `patch` may touch the key stored at `path` (`["llm"]`, `["tts", "providers", "x"]`):
/// it names `api_key` there, sends a flat `tts.api_key`, or replaces an object on the way.
fn may_touch_key(patch: &Value, path: &[&str]) -> bool {
    if path.first() == Some(&"tts")
        && patch
            .get("tts")
            .and_then(Value::as_object)
            .is_some_and(|t| t.contains_key("api_key"))
    {
        return true;
    }
    let mut at = patch;
    for name in path {
        match at.get(name) {
            None => return false,
            Some(Value::Object(_)) => at = &at[name],
            Some(_) => return true,
        }
    }
    at.get("api_key").is_some()
}

proptest! {
    #![proptest_config(crate::testing::config())]

    /// Whatever is PUT: no panic; a refusal says why (a field or "not an object"); an accepted
    /// patch gives settings that pass `validate`, that are loaded back exactly as saved, that a
    /// GET-edit-PUT of the redacted view leaves alone, and that the same PUT sent again (a retry)
    /// does not change; and a stored key survives every patch that does not name it unless its
    /// endpoint moved to another origin, when it is dropped.
    #[test]
    fn any_patch_is_refused_or_gives_valid_settings_that_keep_their_keys(
        current in current(),
        patch in patch(),
    ) {
        match apply_patch(&current, patch.clone()) {
            Err(super::ConfigError::Invalid(fields)) => prop_assert!(!fields.is_empty()),
            Err(super::ConfigError::NotAnObject) => prop_assert!(!patch.is_object()),
            Err(other) => {
                return Err(TestCaseError::fail(format!("apply_patch does not write: {other}")))
            }
            Ok(next) => {
                prop_assert_eq!(validate(&next), vec![]);
                let saved = serde_json::to_value(&next).unwrap_or(Value::Null);
                prop_assert_eq!(&from_document(&saved).ok(), &Some(next.clone()));
                let view = serde_json::to_value(next.redacted()).unwrap_or(Value::Null);
                prop_assert_eq!(&apply_patch(&next, view).ok(), &Some(next.clone()));
                prop_assert_eq!(&apply_patch(&next, patch.clone()).ok(), &Some(next.clone()));

                // A stored key survives every patch that does not name it, except that a key
                // whose endpoint moved to another origin is dropped: it never goes elsewhere.
                let expect_key = |before: &str, after: &str, stored: &'static str| {
                    if super::origin_of(before) == super::origin_of(after) { stored } else { "" }
                };
                if !may_touch_key(&patch, &["llm"]) {
                    prop_assert_eq!(
                        next.llm.api_key.expose(),
                        expect_key(&current.llm.endpoint, &next.llm.endpoint, "sk-llm-stored")
                    );
                }
                for (provider, key) in [
                    (TtsProvider::FishAudio, "fish-stored"),
                    (TtsProvider::Elevenlabs, "eleven-stored"),
                ] {
                    if !may_touch_key(&patch, &["tts", "providers", provider.name()]) {
                        let (before, after) =
                            (current.tts.providers.get(provider), next.tts.providers.get(provider));
                        prop_assert_eq!(
                            after.api_key.expose(),
                            expect_key(&before.endpoint, &after.endpoint, key)
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    // Each case loads a store and saves up to four times (write, fsync, rename, read back), in
    // memory (/dev/shm) where there is one: one case in twenty, 500 by default.
    #![proptest_config(crate::testing::config_divided(20))]

    /// Through the store, as `PUT /api/config` does: a refused patch leaves both the settings in
    /// effect and the file on disk exactly as they were; an accepted one is in effect at once and
    /// is what a restart loads, with no warning.
    #[test]
    fn a_refused_update_changes_nothing_and_an_accepted_one_is_what_loads(
        patches in prop::collection::vec(patch(), 1..5),
    ) {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
        let dir = dir.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("app.json");
        let (store, _) = ConfigStore::load(path.clone())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for patch in patches {
            let before = store.get();
            let file_before = std::fs::read(&path).ok();
            match rt.block_on(store.update(patch)) {
                Err(_) => {
                    prop_assert_eq!(&store.get(), &before);
                    prop_assert_eq!(std::fs::read(&path).ok(), file_before);
                }
                Ok(next) => {
                    prop_assert_eq!(&store.get(), &next);
                    let (reloaded, report) = ConfigStore::load(path.clone())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(report.warnings.is_empty(), "{:?}", report.warnings);
                    prop_assert_eq!(&reloaded.get(), &next);
                }
            }
        }
    }
}
