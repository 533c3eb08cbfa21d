//! Command-line flags; each can also be set by an environment variable.

use clap::Parser;
use std::{net::IpAddr, path::PathBuf};

/// waifu-rt3d: a local-first 3D anime companion, served to your browser.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Port to listen on.
    #[arg(long, env = "WAIFU_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address to listen on. The default serves this machine only.
    #[arg(long, env = "WAIFU_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Folder for settings, the database, avatars, audio and models.
    #[arg(long, env = "WAIFU_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Site settings of the built front end (see Leptos.toml).
    #[arg(long, env = "WAIFU_LEPTOS_CONFIG", default_value = "Leptos.toml")]
    pub leptos_config: PathBuf,
}
