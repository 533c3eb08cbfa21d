//! [ssr] The server binary: parse flags, set up logging, run.

use clap::Parser;
use std::{process::ExitCode, time::Duration};
use tracing_subscriber::EnvFilter;
use waifu_rt3d::server::LogFormat;

fn main() -> ExitCode {
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
