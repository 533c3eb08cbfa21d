//! The `Host` check. A page on another site can make the browser resolve its own name to
//! 127.0.0.1 (DNS rebinding) and then read this server's answers as its own; the browser still
//! sends that other name as `Host`, so only names that really mean this server are answered.

use super::refusal;
use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::Response,
};
use parking_lot::Mutex;
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::Arc,
};

/// A name given with `--allowed-host`: any port, or one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    name: String,
    port: Option<u16>,
}

impl HostName {
    /// Reads a `--allowed-host` value: `name` or `name:port` (IPv6 as `[::1]:port`).
    pub fn parse_flag(raw: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "--allowed-host {raw:?} is not a host name: give a name such as my-pc.local or my-pc.local:3000 (no scheme, no path)"
            )
        };
        let (name, port) = split_host(raw.trim()).ok_or_else(bad)?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(bad());
        }
        Ok(Self { name, port })
    }
}

/// Splits a `Host` value into a lower-case name (IPv6 without brackets, no trailing dot) and the
/// port. `None` when it cannot be a host at all.
pub fn split_host(raw: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (inside, port)
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) => (name, Some(port.parse().ok()?)),
            None => (raw, None),
        }
    };
    if name.contains(['/', '@', '?', '#', ' ']) || (name.contains(':') && !raw.starts_with('[')) {
        return None;
    }
    Some((name.trim_end_matches('.').to_ascii_lowercase(), port))
}

/// The names this server answers to.
pub struct HostRules {
    bind: IpAddr,
    names: Vec<HostName>,
    /// IP literals checked against this machine's addresses (when listening on all of them).
    local: Mutex<HashMap<IpAddr, bool>>,
}

impl std::fmt::Debug for HostRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRules")
            .field("bind", &self.bind)
            .field("names", &self.names)
            .finish()
    }
}

impl HostRules {
    pub fn new(bind: IpAddr, names: Vec<HostName>) -> Self {
        Self {
            bind,
            names,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a `Host` header value names this server: `localhost`, a loopback address, the
    /// address it listens on (any of this machine's addresses when that is 0.0.0.0 or ::), or a
    /// name given with `--allowed-host`.
    pub fn allows(&self, raw: &str) -> bool {
        let Some((name, port)) = split_host(raw) else {
            return false;
        };
        if name == "localhost" {
            return true;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            if ip.is_loopback() || ip == self.bind || is_mapped(ip, self.bind) {
                return true;
            }
            if self.bind.is_unspecified() && self.is_local(ip) {
                return true;
            }
        }
        self.names
            .iter()
            .any(|n| n.name == name && (n.port.is_none() || n.port == port))
    }

    /// An IP literal is one of this machine's addresses exactly when a socket can be bound to
    /// it. Answers are remembered (a few hundred at most), so a flood of made-up addresses costs
    /// one failed bind each and no memory.
    fn is_local(&self, ip: IpAddr) -> bool {
        let mut cache = self.local.lock();
        if let Some(known) = cache.get(&ip) {
            return *known;
        }
        let local = UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok();
        if cache.len() < 256 {
            cache.insert(ip, local);
        }
        local
    }
}

/// `::ffff:127.0.0.1` and `127.0.0.1` are one address.
fn is_mapped(ip: IpAddr, bind: IpAddr) -> bool {
    match (ip, bind) {
        (IpAddr::V6(v6), IpAddr::V4(v4)) => v6.to_ipv4_mapped() == Some(v4),
        _ => false,
    }
}

/// The middleware: any other `Host` gets 403 naming the flag that would allow it. A request
/// without `Host` (HTTP/1.0 tools, in-process tests) cannot come from a browser and passes.
pub async fn guard(
    State(security): State<Arc<super::Security>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{fffd}").to_string())
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    match host {
        Some(host) if !security.hosts.allows(&host) => {
            let shown: String = host.chars().take(100).collect();
            tracing::warn!(host = %shown, "refused a request for an unknown host name");
            refusal(
                StatusCode::FORBIDDEN,
                req.uri().path(),
                "host_not_allowed",
                format!(
                    "This server does not answer to the name {shown:?}. If you reach it by that name on purpose, start it with --allowed-host {name} (or WAIFU_ALLOWED_HOSTS={name}).",
                    name = split_host(&shown).map(|(n, _)| n).unwrap_or_else(|| "<name>".into())
                ),
            )
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(bind: &str, names: &[&str]) -> HostRules {
        HostRules::new(
            bind.parse().unwrap(),
            names
                .iter()
                .map(|n| HostName::parse_flag(n).unwrap())
                .collect(),
        )
    }

    #[test]
    fn local_names_on_any_port() {
        let r = rules("127.0.0.1", &[]);
        for ok in [
            "localhost",
            "LOCALHOST:3000",
            "localhost.:80",
            "127.0.0.1",
            "127.0.0.1:3100",
            "127.1.2.3:3000",
            "[::1]",
            "[::1]:3000",
        ] {
            assert!(r.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.nip.io:3000",
            "",
            "10.1.2.3:3000",
            "::1",
            "[::1",
            "a b",
            "localhost:notaport",
            "user@localhost",
        ] {
            assert!(!r.allows(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_bind_address_and_named_hosts() {
        let r = rules("192.0.2.7", &["my-pc.local", "box.lan:3000"]);
        assert!(r.allows("192.0.2.7:3000"));
        assert!(r.allows("my-pc.local"));
        assert!(r.allows("MY-PC.local:8080"));
        assert!(r.allows("box.lan:3000"));
        assert!(!r.allows("box.lan:3001"));
        assert!(!r.allows("box.lan"));
        assert!(!r.allows("192.0.2.8:3000"));
    }

    #[test]
    fn listening_everywhere_allows_this_machines_own_addresses_only() {
        let r = rules("0.0.0.0", &[]);
        assert!(r.allows("127.0.0.1:3000"));
        // TEST-NET-3 is never an address of this machine.
        assert!(!r.allows("203.0.113.9:3000"));
        assert!(r.allows("0.0.0.0:3000"));
    }

    #[test]
    fn flags_that_are_urls_are_refused() {
        for bad in ["http://my-pc.local", "my-pc.local/x", "", "a b", "x:y"] {
            assert!(HostName::parse_flag(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            HostName::parse_flag("Box.LAN:3000").unwrap(),
            HostName {
                name: "box.lan".into(),
                port: Some(3000)
            }
        );
    }
}
