//! The health report: what works, what does not, and what to do about it.

use super::state::AppState;
use crate::shared::health::{Health, LibsHealth, LlmCheck, ProviderHealth, ProviderState};
use crate::{
    llm::LlmError,
    shared::config::{InputMode, LlmConfig},
};
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// Where the bundled three.js viewer is expected inside the built site.
pub fn viewer_bundle(site_root: &Path) -> std::path::PathBuf {
    site_root.join("viewer").join("viewer-bridge.js")
}

/// How long one provider probe may take: the whole report answers within about 3 s.
const PROBE_TIMEOUT: Duration = Duration::from_millis(2_500);

/// Asks the configured language model whether it can answer (no generation).
pub async fn probe_llm(state: &AppState, cfg: &LlmConfig) -> ProviderHealth {
    check_llm(state, cfg).await.health
}

/// The probe, with the models the provider offers (Setup's "Test connection").
pub async fn check_llm(state: &AppState, cfg: &LlmConfig) -> LlmCheck {
    let started = Instant::now();
    let result = match state.llm.get(cfg) {
        Ok(model) => match tokio::time::timeout(PROBE_TIMEOUT, model.probe()).await {
            Ok(r) => r,
            Err(_) => Err(LlmError::ConnectTimeout {
                provider: cfg.provider.label(),
                after: PROBE_TIMEOUT,
            }),
        },
        Err(e) => Err(e),
    };
    let latency_ms = Some(started.elapsed().as_millis() as u64);
    let provider = cfg.provider.name().to_string();
    match result {
        Ok(probe) => LlmCheck {
            health: ProviderHealth {
                provider,
                state: ProviderState::Ok,
                detail: probe.detail,
                latency_ms,
                last_error: None,
                last_success: None,
            },
            models: probe.models,
        },
        Err(e) => LlmCheck {
            health: ProviderHealth {
                provider,
                state: e.state(),
                detail: e.to_string(),
                latency_ms,
                last_error: None,
                last_success: None,
            },
            models: Vec::new(),
        },
    }
}

pub async fn report(state: &AppState) -> Health {
    let cfg = state.config.get();
    let (db, llm, tts, asr) = tokio::join!(
        state.db.health(),
        probe_llm(state, &cfg.llm),
        state.tts.probe_all(),
        state.asr.probe()
    );

    let bundle = viewer_bundle(Path::new(state.leptos_options.site_root.as_ref())).is_file();
    let libs = LibsHealth {
        three: bundle,
        three_vrm: bundle,
        default_avatar: crate::avatars::exists(
            &state.blobs,
            crate::shared::avatars::DEFAULT_AVATAR,
        )
        .await
        .unwrap_or(false),
    };

    let mut issues: Vec<String> = state.warnings.iter().cloned().collect();
    if !db.ok {
        issues.push(format!(
            "The database at {} does not answer; the history cannot be read or saved.",
            state.paths.db_file.display()
        ));
    }
    if !libs.three {
        issues.push("The 3D viewer bundle is not built, so no avatar can be shown.".into());
    }
    if !libs.default_avatar {
        issues.push("The default avatar is missing from the avatars folder.".into());
    }
    if llm.state != ProviderState::Ok {
        issues.push(format!("Language model ({}): {}", llm.provider, llm.detail));
    }
    if !tts.iter().any(|t| t.state == ProviderState::Ok) {
        issues.push("No voice is available: replies can be read but not heard.".into());
    }

    // Only when voice input is on: a recogniser nobody uses is nothing to worry about.
    if cfg.input_mode != InputMode::Text && asr.state != ProviderState::Ok {
        issues.push(format!(
            "Speech recognition ({}): {}",
            asr.provider, asr.detail
        ));
    }

    let llm_ok = llm.state == ProviderState::Ok;
    Health {
        ok: db.ok && llm_ok,
        libs,
        installed: (*state.installed).clone(),
        lmstudio: llm_ok,
        llm,
        tts,
        asr,
        db,
        issues,
        version: env!("CARGO_PKG_VERSION").into(),
    }
}
