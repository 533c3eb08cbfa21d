//! [ssr] The server binary: parse flags, set up logging, run.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = waifu_rt3d::server::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WAIFU_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,leptos=warn")),
        )
        .init();
    match waifu_rt3d::server::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nwaifu-rt3d could not start: {e:#}\n");
            ExitCode::FAILURE
        }
    }
}
