//! Requests a web page could forge: checked before any route runs.
//!
//! A browser lets any page send a "simple" cross-site POST without asking the server first
//! (no CORS preflight) when its content type is `text/plain`, a form or multipart. So data
//! routes take only the types a page cannot send that way: `application/json`, and for
//! `/v1/push` also an Arrow IPC stream. A wrong or missing type is 415
//! `UNSUPPORTED_MEDIA_TYPE` and nothing is read.
//!
//! DNS rebinding points a name the attacker owns at `127.0.0.1`, so a page on that name
//! reaches a server on localhost as same-origin; its requests still say `Host: <that name>`.
//! A server without API keys therefore answers only requests whose `Host` is an IP address,
//! `localhost`, or a name given with `--allowed-hosts`; any other is 403
//! `HOST_NOT_ALLOWED`. With API keys the key is the guard (a page never learns it), so any
//! host is served. The probes (`/health`, `/ready`) are never checked.

use axum::http::HeaderMap;
use axum::http::header::{CONTENT_TYPE, HOST};

use crate::push::ARROW_STREAM;

/// Names a server without API keys answers to, besides IP addresses and `localhost`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
    /// `*`: every host (the operator guards the server some other way).
    any: bool,
}

/// Why an allowed-hosts list cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostsError {
    #[error("allowed hosts `{text}`: an empty name")]
    EmptyName { text: String },
    #[error("allowed hosts: `{name}` is not a host name (no scheme, port or path)")]
    NotAName { name: String },
}

impl AllowedHosts {
    /// Host names separated by commas (`feature-server.prod,fs.internal`), or `*` for any.
    /// Ports are not part of a name; case does not matter. Empty names are an error.
    pub fn parse(text: &str) -> Result<Self, HostsError> {
        let mut hosts = AllowedHosts::default();
        for name in text.split(',').map(str::trim) {
            match name {
                "" => return Err(HostsError::EmptyName { text: text.to_string() }),
                "*" => hosts.any = true,
                name if name.contains([':', '/', ' ']) => {
                    return Err(HostsError::NotAName { name: name.to_string() });
                }
                name => hosts.names.push(name.to_ascii_lowercase()),
            }
        }
        Ok(hosts)
    }

    /// Whether a request with this `Host` header (name or address, maybe with a port) is
    /// served when the server has no API keys.
    pub fn admits(&self, host: Option<&[u8]>) -> bool {
        if self.any {
            return true;
        }
        // HTTP/1.1 requires Host; a request without one is not from a browser.
        let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else {
            return host.is_none();
        };
        let name = strip_port(host.trim());
        name.eq_ignore_ascii_case("localhost")
            || name.parse::<std::net::IpAddr>().is_ok()
            || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// `name:port` → `name`; `[::1]:80` → `::1`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(address, _)| address);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The content types a data route takes, for its message; `None` when the route takes any.
pub fn expected_types(route: &str) -> Option<&'static str> {
    match route {
        "/v1/features"
        | "/get-online-features"
        | "/push"
        | "/write-to-online-store"
        | "/materialize"
        | "/materialize-incremental" => Some("application/json"),
        "/v1/push" => Some("application/json or application/vnd.apache.arrow.stream"),
        _ => None,
    }
}

/// Whether a POST to `route` carries a content type that route takes.
pub fn content_type_ok(route: &str, headers: &HeaderMap) -> bool {
    if expected_types(route).is_none() {
        return true;
    }
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (route == "/v1/push" && essence.eq_ignore_ascii_case(ARROW_STREAM))
}

/// The request's `Host` header, as bytes.
pub fn host(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(HOST).map(|v| v.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_without_keys_are_addresses_localhost_or_named() {
        let none = AllowedHosts::default();
        for ok in [
            "127.0.0.1",
            "127.0.0.1:6566",
            "localhost",
            "LOCALHOST:80",
            "[::1]:6566",
            "::1",
            "10.0.0.7",
        ] {
            assert!(none.admits(Some(ok.as_bytes())), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:6566",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!none.admits(Some(refused.as_bytes())), "{refused}");
        }
        assert!(!none.admits(Some(b"\xff")));
        let named = AllowedHosts::parse("Feature-Server.prod, fs").unwrap();
        assert!(named.admits(Some(b"feature-server.PROD:443")));
        assert!(named.admits(Some(b"fs")));
        assert!(!named.admits(Some(b"fs.evil")));
        assert!(AllowedHosts::parse("*").unwrap().admits(Some(b"anything")));
        assert!(AllowedHosts::parse("a,,b").is_err());
        assert!(AllowedHosts::parse("http://a").is_err());
        assert!(AllowedHosts::parse("a:80").is_err());
    }

    #[test]
    fn data_routes_take_json_and_pushes_arrow() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            headers
        };
        assert!(content_type_ok("/v1/features", &with("application/json")));
        assert!(content_type_ok(
            "/v1/features",
            &with("Application/JSON; charset=utf-8")
        ));
        assert!(!content_type_ok("/v1/features", &with("text/plain")));
        assert!(!content_type_ok(
            "/v1/features",
            &with("application/x-www-form-urlencoded")
        ));
        assert!(!content_type_ok("/v1/features", &HeaderMap::new()));
        assert!(!content_type_ok("/get-online-features", &with(ARROW_STREAM)));
        assert!(content_type_ok("/v1/push", &with(ARROW_STREAM)));
        assert!(!content_type_ok("/push", &with("multipart/form-data; boundary=x")));
        assert!(content_type_ok("/metrics", &HeaderMap::new()));
    }
}
