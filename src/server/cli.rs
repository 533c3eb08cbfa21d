//! Command-line flags; each can also be set by an environment variable.

use super::security::AuthToken;
use crate::store::DatabaseUrl;
use clap::Parser;
use std::{net::IpAddr, path::PathBuf};

/// waifu-rt3d: a local-first 3D anime companion, served to your browser.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Port to listen on.
    #[arg(long, env = "WAIFU_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address to listen on. The default serves this machine only; any other address needs a
    /// token (see --auth-token).
    #[arg(long, env = "WAIFU_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Folder for settings, the database, avatars, audio and models.
    #[arg(long, env = "WAIFU_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Where avatars and cached audio are kept: `file:///a/folder`, or `s3://bucket/prefix`
    /// (endpoint, region and credentials from the AWS_* variables), which several instances
    /// can share. By default the data folder itself (its `avatars/` and `audio/`).
    #[arg(long, env = "STORAGE_URL")]
    pub storage_url: Option<String>,

    /// Where `make setup` installed the built-in model and the local voices (its `models/` and
    /// `tools/`), for those the data folder does not have itself: a data folder's own copy comes
    /// first. `make run` passes the checkout's `data/`.
    #[arg(long, env = "WAIFU_INSTALL_DIR", default_value = "data")]
    pub install_dir: PathBuf,

    /// The database: `sqlite://path/app.db`, or `postgres://user:password@host/db` for several
    /// instances that share one history. Unset: the SQLite file in the data folder.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        value_parser = parse_database_url
    )]
    pub database_url: Option<DatabaseUrl>,

    /// The key that seals API keys in the settings. Unset: `config/secret.key` in the data
    /// folder, made on first start. Instances that share a database must be given the same file.
    #[arg(long = "secret-key-file", env = "WAIFU_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,

    /// Site settings of the built front end (see Leptos.toml).
    #[arg(long, env = "WAIFU_LEPTOS_CONFIG", default_value = "Leptos.toml")]
    pub leptos_config: PathBuf,

    /// Another name this server may be reached by (the browser's Host header), besides
    /// localhost, 127.0.0.1, [::1] and the addresses it listens on. Repeatable; `name` allows any
    /// port, `name:port` that port only.
    #[arg(
        long = "allowed-host",
        env = "WAIFU_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// A web origin (`https://example.com`) whose pages may call the API from the browser
    /// (CORS). Repeatable; none by default.
    #[arg(
        long = "cors-origin",
        env = "WAIFU_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// The token every API request must carry (`Authorization: Bearer <token>` or the sign-in
    /// cookie). Needed off loopback: without it one is generated and kept in the data folder.
    #[arg(
        long = "auth-token",
        env = "WAIFU_AUTH_TOKEN",
        hide_env_values = true,
        value_parser = AuthToken::parse
    )]
    pub auth_token: Option<AuthToken>,

    /// How log lines look: `text` for people, or `json`, one JSON object per line for a log
    /// collector. Which lines are written is set by WAIFU_LOG.
    #[arg(
        long,
        env = "WAIFU_LOG_FORMAT",
        default_value = "text",
        value_parser = LogFormat::parse
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "text" | "" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(
                "WAIFU_LOG_FORMAT (or --log-format) must be `text` (the default) or `json` (one JSON object per line)"
                    .into(),
            ),
        }
    }
}

fn parse_database_url(url: &str) -> Result<DatabaseUrl, String> {
    DatabaseUrl::parse(url).map_err(|e| e.to_string())
}
