//! [ssr] The HTTP server: command line, start-up checks, shared state, the router and the REST
//! routes. Services (config, store) live in their own modules; this layer only wires them up.

pub mod avatars;
pub mod chat;
pub mod cli;
pub mod error;
pub mod files;
pub mod health;
pub mod history;
pub mod latency;
pub mod preflight;
pub mod router;
pub mod routes;
pub mod state;

pub use cli::Cli;
pub use router::app;
pub use state::AppState;

use anyhow::Context;
use std::{io, net::SocketAddr, path::PathBuf};

/// Boots the server: site settings, preflight, router, then serve until Ctrl-C or SIGTERM.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut leptos = load_site_settings(&cli.leptos_config)?;
    let addr = SocketAddr::new(cli.bind, cli.port);
    leptos.site_addr = addr;

    let ready = preflight::run(&cli.data_dir)
        .await
        .context("start-up checks failed")?;
    for warning in &ready.warnings {
        tracing::warn!("{warning}");
    }
    let site_root = PathBuf::from(leptos.site_root.as_ref());
    if !site_root.join(leptos.site_pkg_dir.as_ref()).is_dir() {
        tracing::warn!(
            "the front end was not found in {}: build it with `make run` (or `cargo leptos build --release`) from the repository",
            site_root.display()
        );
    }
    let state = AppState::new(leptos, ready)?;
    state.tts.warm_up();

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(e, addr))?;
    tracing::info!(
        "waifu-rt3d {} listening on http://{addr} (data in {})",
        env!("CARGO_PKG_VERSION"),
        state.paths.root.display()
    );
    let db = state.db.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server stopped with an error")?;
    db.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Reads the site settings (where the built front end is) from `Leptos.toml`. cargo-leptos's own
/// environment variables (`LEPTOS_*`, set by `cargo leptos watch`) override the file.
fn load_site_settings(path: &std::path::Path) -> anyhow::Result<leptos::config::LeptosOptions> {
    let conf = if path.is_file() {
        leptos::config::get_configuration(Some(&path.to_string_lossy()))
            .with_context(|| format!("{} is not a valid site settings file", path.display()))?
    } else {
        tracing::warn!(
            "{} not found; using built-in site settings (run from the repository folder, or pass --leptos-config)",
            path.display()
        );
        leptos::config::get_configuration(None).context("no site settings available")?
    };
    Ok(conf.leptos_options)
}

fn bind_error(e: io::Error, addr: SocketAddr) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "port {} on {} is already in use: another waifu-rt3d (or another program) is running there. Stop it, or start this one with --port <another port>",
            addr.port(),
            addr.ip()
        ),
        io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "not allowed to listen on {addr}: ports below 1024 need special rights; use --port with a number above 1024"
        ),
        io::ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "{} is not an address of this machine; use --bind 127.0.0.1 (this machine only) or --bind 0.0.0.0 (all interfaces)",
            addr.ip()
        ),
        _ => anyhow::anyhow!("could not listen on {addr}: {e}"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing open requests");
}
