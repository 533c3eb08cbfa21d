//! [ssr] The server binary: parse flags, set up logging, run.

use clap::Parser;
use std::{process::ExitCode, time::Duration};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = waifu_rt3d::server::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WAIFU_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,leptos=warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("\nwaifu-rt3d could not start: no async runtime ({e})\n");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(waifu_rt3d::server::run(cli));
    // Work still running on a blocking thread (the built-in model between two tokens, a voice
    // process) is not waited for: the process ends within the shutdown bound.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nwaifu-rt3d could not start: {e:#}\n");
            ExitCode::FAILURE
        }
    }
}
