//! The health report: what works, what does not, and what to do about it.

use super::state::AppState;
use crate::{
    shared::health::{Health, LibsHealth, ProviderHealth, ProviderState},
    store,
};
use std::path::Path;

/// Where the bundled three.js viewer is expected inside the built site.
pub fn viewer_bundle(site_root: &Path) -> std::path::PathBuf {
    site_root.join("viewer").join("viewer-bridge.js")
}

pub async fn report(state: &AppState) -> Health {
    let cfg = state.config.get();
    let db = store::db_health(&state.db);

    let bundle = viewer_bundle(Path::new(state.leptos_options.site_root.as_ref())).is_file();
    let libs = LibsHealth {
        three: bundle,
        three_vrm: bundle,
        default_avatar: state.paths.avatars.join("default.vrm").is_file(),
    };

    let llm = ProviderHealth {
        provider: cfg.llm.provider.name().into(),
        state: ProviderState::Misconfigured,
        detail: "This build has no language model adapter yet, so replies cannot be generated."
            .into(),
        latency_ms: None,
    };
    let (db, tts) = tokio::join!(db, state.tts.probe_all());

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

    let llm_ok = llm.state == ProviderState::Ok;
    Health {
        ok: db.ok && llm_ok,
        libs,
        lmstudio: llm_ok,
        llm,
        tts,
        db,
        issues,
        version: env!("CARGO_PKG_VERSION").into(),
    }
}
