//! [ssr] The HTTP server: command line, start-up checks, shared state, the router and the REST
//! routes. Services (config, store) live in their own modules; this layer only wires them up.

pub(crate) mod avatars;
pub(crate) mod cards;
pub mod chat;
pub(crate) mod cli;
pub(crate) mod compression;
pub(crate) mod error;
pub(crate) mod files;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod latency;
pub(crate) mod limits;
pub(crate) mod models;
pub mod paths;
pub mod preflight;
pub(crate) mod router;
pub(crate) mod routes;
pub mod security;
pub(crate) mod site;
pub(crate) mod state;
pub(crate) mod telemetry;

pub use cli::{Cli, LogFormat};
pub use router::app;
pub use state::AppState;

use anyhow::Context;
use std::{future::IntoFuture, io, net::SocketAddr};

/// Boots the server: site settings, preflight, router, then serve until Ctrl-C or SIGTERM.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut leptos = load_site_settings(&cli.leptos_config)?;
    let addr = SocketAddr::new(cli.bind, cli.port);
    leptos.site_addr = addr;

    preflight::front_end(&leptos).context("start-up checks failed")?;
    let backends = preflight::Backends {
        database: cli.database_url.clone(),
        secret_key_file: cli.secret_key_file.clone(),
        storage: cli.storage_url.clone(),
    };
    let mut ready = preflight::run_with(&cli.data_dir, &backends)
        .await
        .context("start-up checks failed")?;
    ready.paths = ready.paths.with_install_dir(&cli.install_dir);
    for warning in &ready.warnings {
        tracing::warn!("{warning}");
    }
    let token_file = ready.paths.root.join("config").join("auth-token");
    let (token, token_source) =
        security::auth::resolve_token(cli.bind, cli.auth_token, &token_file)?;
    let rules = security::Security::new(
        cli.bind,
        cli.port,
        &cli.allowed_hosts,
        &cli.cors_origins,
        token.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let state = AppState::new(leptos, ready)?.with_security(rules);
    state.tts.warm_up();

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(e, addr))?;
    tracing::info!(
        "waifu-rt3d {} listening on http://{addr} (data in {})",
        env!("CARGO_PKG_VERSION"),
        state.paths.root.display()
    );
    announce_access(addr, &token_source, token.as_ref(), cli.log_format);
    let db = state.db.clone();
    let shutdown = state.shutdown.clone();
    let signalled = shutdown.clone();
    let server = // The peer's address keys the per-client request rate (`limits`).
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    ).with_graceful_shutdown(async move {
        shutdown_signal().await;
        // Chat turns store what they have and end their streams; without this an open stream
        // would hold the server up for as long as its model writes.
        signalled.cancel();
    });
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server.into_future() => served.context("the server stopped with an error")?,
        () = deadline => {
            tracing::warn!(
                "requests still open {} s after the signal; stopping without them",
                SHUTDOWN_GRACE.as_secs()
            );
            return Ok(());
        }
    }
    // Waits for the last writes; bounded, as an abandoned query can hold a connection.
    if tokio::time::timeout(std::time::Duration::from_secs(2), db.close())
        .await
        .is_err()
    {
        tracing::warn!("the database did not close within 2 s");
        return Ok(());
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How long open requests get to finish after SIGTERM or Ctrl-C. Chat streams end at once (their
/// turns are cancelled); this bounds everything else, such as an upload or a synthesis. With the
/// database's 2 s and the runtime's 1 s (`main.rs`), the process is gone within 10 s.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(7);

/// Says how to get in: nothing to do on loopback; off loopback, where the token is, and the
/// sign-in link itself the one time the token was made (it is shown nowhere else).
fn announce_access(
    addr: SocketAddr,
    source: &security::TokenSource,
    token: Option<&security::AuthToken>,
    logs: LogFormat,
) {
    use security::TokenSource;
    let host = if addr.ip().is_unspecified() {
        format!("<this machine's address>:{}", addr.port())
    } else {
        addr.to_string()
    };
    match (source, token) {
        (TokenSource::Generated(file), Some(token)) => {
            // Printed, not logged: the terminal of the person who started the server. With JSON
            // logs on standard output it goes to standard error, so the log stays all JSON.
            let link = format!(
                "\n    Open this link to sign in (it holds the access token, saved in {}):\n\n        http://{host}/?token={}\n",
                file.display(),
                token.expose()
            );
            match logs {
                LogFormat::Text => println!("{link}"),
                LogFormat::Json => eprintln!("{link}"),
            }
        }
        (TokenSource::Stored(file), Some(_)) => tracing::info!(
            "requests need the access token kept in {} (sign in at http://{host}/)",
            file.display()
        ),
        (TokenSource::Given, Some(_)) => {
            tracing::info!("requests need the access token given with --auth-token")
        }
        _ => {}
    }
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "serving on {addr}: other machines can reach this server; every request needs the access token"
        );
    }
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
    tracing::info!("shutting down: ending chat streams and finishing open requests");
}
