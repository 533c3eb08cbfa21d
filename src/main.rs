//! [ssr] The server binary: parse flags, set up logging, run.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use waifu_rt3d::server::LogFormat;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = waifu_rt3d::server::Cli::parse();
    let format = cli.log_format;
    let logs = tracing_subscriber::fmt().with_env_filter(
        EnvFilter::try_from_env("WAIFU_LOG")
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,leptos=warn")),
    );
    match format {
        LogFormat::Text => logs.init(),
        // Each line an object: time, level, target, the event's fields, and the request's span
        // (its method, path and request id).
        LogFormat::Json => logs.json().init(),
    }
    match waifu_rt3d::server::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match format {
                LogFormat::Text => eprintln!("\nwaifu-rt3d could not start: {e:#}\n"),
                LogFormat::Json => {
                    tracing::error!(error = format!("{e:#}"), "waifu-rt3d could not start")
                }
            }
            ExitCode::FAILURE
        }
    }
}
