//! [ssr] The built-in model files on offer: one service for `GET /api/models` and the Setup tab.

use crate::{server::state::AppState, shared::models::LocalModel};

/// The `.gguf` files of the data folder's `models/`, then the install folder's, read off the
/// request path's threads (each header read touches the disk).
pub async fn local_models(
    state: &AppState,
    selected: &str,
) -> Result<Vec<LocalModel>, tokio::task::JoinError> {
    let dirs = state.paths.model_dirs();
    let selected = selected.to_string();
    tokio::task::spawn_blocking(move || crate::llm::gguf::list(&dirs, &selected)).await
}
