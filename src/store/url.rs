//! The database URL (`--database-url` / `DATABASE_URL`): which database the [`super::Store`] is.
//! A PostgreSQL URL may carry a password, so this type never prints one: `Debug` and
//! [`DatabaseUrl::redacted`] show `***` in its place.

use std::{fmt, path::PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL server, as a `postgres://` connection URL.
    Postgres(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("the database URL must start with sqlite:// or postgres:// (got \"{0}\")")]
    Scheme(String),
    #[error("the database URL sqlite:// names no file")]
    NoFile,
}

impl DatabaseUrl {
    /// Reads `sqlite://path` (relative to the working folder; `sqlite:///abs` for an absolute
    /// one), `sqlite:path`, or `postgres://…` / `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        let Some(rest) = url.strip_prefix("sqlite:") else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(UrlError::Scheme(format!("{scheme}:")));
        };
        let path = rest.strip_prefix("//").unwrap_or(rest);
        // Connection options (`?mode=rwc`) are sqlx's to set, not the user's.
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(UrlError::NoFile);
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    /// The URL with any password replaced by `***`: what logs and errors may show.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact_password(url),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:secret@host/db?password=secret` → `scheme://user:***@host/db?password=***`.
fn redact_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_schemes_and_refuses_others() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/db/app.db"),
            Ok(DatabaseUrl::Sqlite("data/db/app.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/w/app.db?mode=rwc"),
            Ok(DatabaseUrl::Sqlite("/var/lib/w/app.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:app.db"),
            Ok(DatabaseUrl::Sqlite("app.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!(DatabaseUrl::parse("sqlite://"), Err(UrlError::NoFile));
        assert_eq!(
            DatabaseUrl::parse("mysql://u:p@h/db"),
            Err(UrlError::Scheme("mysql:".into()))
        );
        // The refusal never repeats the rest of the URL, where a password could be.
        let refused = DatabaseUrl::parse("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!refused.to_string().contains("hunter2"));
    }

    #[test]
    fn a_password_never_shows() {
        for (url, shown) in [
            (
                "postgres://waifu:hunter2@db.local:5432/waifu",
                "postgres://waifu:***@db.local:5432/waifu",
            ),
            (
                "postgres://waifu:p%40ss@h/db?sslmode=require&password=hunter2",
                "postgres://waifu:***@h/db?sslmode=require&password=***",
            ),
            (
                "postgres://h/db?Password=hunter2",
                "postgres://h/db?Password=***",
            ),
            ("postgres://waifu@h", "postgres://waifu@h"),
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed.redacted(), shown);
            assert_eq!(format!("{parsed:?}"), shown);
            assert_eq!(parsed.to_string(), shown);
        }
    }
}
