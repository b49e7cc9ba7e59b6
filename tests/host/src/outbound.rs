//! Outbound HTTP permission checks, mirroring Spin's
//! `outbound-networking-config` (`allowed_hosts.rs`) and the deny path of
//! `factor-outbound-http` (a disallowed request fails with
//! `ErrorCode::HttpRequestDenied`).
//!
//! Syntax: `scheme://host[:port]` where scheme may be `*`, host may be `*` or
//! `*.domain`, and port may be `*`, a number or a range `a..b`; without a port
//! the scheme's well-known port applies. Entries may be templates over
//! application variables (`"http://{{ verifier_host }}"`), resolved at start.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::variables::render_template;

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Subdomain(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    Port(u16),
    Range(u16, u16),
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHost {
    /// Parses one literal (already template-resolved) entry.
    pub fn parse(entry: &str) -> Result<Self> {
        let entry = entry.trim();
        let Some((scheme, rest)) = entry.split_once("://") else {
            bail!("{entry:?} does not contain a scheme (e.g. 'http://' or '*://')");
        };
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match port.split_once('/') {
            Some((_, path)) if !path.is_empty() => bail!("{entry:?} must not have a path"),
            Some((port, _)) => port,
            None => port,
        };
        let host = host.trim_end_matches('/');
        if host.contains('/') {
            bail!("{entry:?} must not have a path");
        }
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => Some(s.to_string()),
            s => bail!("invalid scheme {s:?} in {entry:?}"),
        };
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("{entry:?}: wildcards are allowed only as prefixes");
            }
            HostPattern::Subdomain(format!(".{domain}"))
        } else if host.contains('*') || host.is_empty() {
            bail!("{entry:?}: invalid host");
        } else {
            HostPattern::Exact(host.to_ascii_lowercase())
        };
        let port = if port.is_empty() {
            let default = scheme.as_deref().and_then(well_known_port);
            PortPattern::Port(default.with_context(|| {
                format!("{entry:?}: no port given and the scheme has no default port")
            })?)
        } else if port == "*" {
            PortPattern::Any
        } else if let Some((a, b)) = port.split_once("..") {
            PortPattern::Range(a.parse()?, b.parse()?)
        } else {
            PortPattern::Port(
                port.parse()
                    .with_context(|| format!("{entry:?}: port is not a number"))?,
            )
        };
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Exact(h) => *h == host,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Port(p) => port.or_else(|| well_known_port(scheme)) == Some(p),
            PortPattern::Range(a, b) => port
                .or_else(|| well_known_port(scheme))
                .is_some_and(|p| (a..b).contains(&p)),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// A component's resolved `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

impl AllowedHosts {
    /// Resolves templates against application variables and parses entries.
    pub fn parse(entries: &[String], app_vars: &HashMap<String, String>) -> Result<Self> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead");
        }
        entries
            .iter()
            .map(|e| {
                let resolved = render_template(e, app_vars)?;
                AllowedHost::parse(&resolved)
                    .with_context(|| format!("invalid allowed_outbound_hosts entry {e:?}"))
            })
            .collect::<Result<_>>()
            .map(Self)
    }

    /// Whether a request to `uri` may go out.
    pub fn allows_uri(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.0
            .iter()
            .any(|h| h.allows(scheme, host, uri.port_u16()))
    }
}

impl AllowedHosts {
    /// Whether a non-HTTP connection (e.g. `redis://host:port`) to `address`
    /// may be opened, like Spin's `AllowedHostChecker::is_address_allowed`.
    /// Addresses that do not parse as `scheme://host[:port][/path]` are denied.
    pub fn allows_address(&self, address: &str) -> bool {
        address
            .parse::<http::Uri>()
            .is_ok_and(|uri| self.allows_uri(&uri))
    }
}

/// `wasi:http` hooks enforcing [`AllowedHosts`] and otherwise sending for real.
pub struct OutboundHooks {
    pub(crate) allowed: Arc<AllowedHosts>,
    pub(crate) component_id: Arc<str>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        if !self.allowed.allows_uri(request.uri()) {
            eprintln!(
                "A component ({}) tried to make an HTTP request to a non-allowed host: {}",
                self.component_id,
                request.uri()
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: &str) -> bool {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        let vars = HashMap::from([("verifier_host".to_string(), "127.0.0.1:4000".to_string())]);
        AllowedHosts::parse(&entries, &vars)
            .unwrap()
            .allows_uri(&url.parse().unwrap())
    }

    #[test]
    fn exact_hosts_and_default_ports() {
        assert!(allows(&["https://example.com"], "https://example.com/x"));
        assert!(allows(
            &["https://example.com"],
            "https://example.com:443/x"
        ));
        assert!(!allows(&["https://example.com"], "http://example.com/x"));
        assert!(!allows(
            &["https://example.com"],
            "https://example.com:8443/"
        ));
        assert!(!allows(&["https://example.com"], "https://evil.com/"));
        assert!(allows(
            &["http://127.0.0.1:8080"],
            "http://127.0.0.1:8080/a"
        ));
        assert!(!allows(
            &["http://127.0.0.1:8080"],
            "http://127.0.0.1:8081/a"
        ));
        assert!(!allows(&[], "http://127.0.0.1:8080/a"));
    }

    #[test]
    fn wildcards_and_ranges() {
        assert!(allows(&["*://*:*"], "http://anything:1234/"));
        assert!(allows(&["http://*:*"], "http://a.b:9/"));
        assert!(!allows(&["http://*:*"], "https://a.b:9/"));
        assert!(allows(
            &["https://*.example.com"],
            "https://api.example.com/"
        ));
        assert!(!allows(&["https://*.example.com"], "https://example.com/"));
        assert!(allows(&["http://localhost:*"], "http://localhost:5555/"));
        assert!(allows(
            &["http://localhost:8000..8100"],
            "http://localhost:8050/"
        ));
        assert!(!allows(
            &["http://localhost:8000..8100"],
            "http://localhost:8100/"
        ));
    }

    #[test]
    fn templates_are_resolved() {
        assert!(allows(
            &["http://{{ verifier_host }}"],
            "http://127.0.0.1:4000/v"
        ));
        assert!(!allows(
            &["http://{{ verifier_host }}"],
            "http://127.0.0.1:4001/v"
        ));
    }

    #[test]
    fn redis_addresses() {
        let vars = HashMap::from([(
            "redis_origin".to_string(),
            "redis://127.0.0.1:6390".to_string(),
        )]);
        let hosts = AllowedHosts::parse(&["{{ redis_origin }}".to_string()], &vars).unwrap();
        assert!(hosts.allows_address("redis://127.0.0.1:6390"));
        assert!(hosts.allows_address("redis://127.0.0.1:6390/0"));
        assert!(hosts.allows_address("redis://:secret@127.0.0.1:6390"));
        assert!(!hosts.allows_address("redis://127.0.0.1:6391"));
        assert!(!hosts.allows_address("redis://127.0.0.1"));
        assert!(!hosts.allows_address("rediss://127.0.0.1:6390"));
        assert!(!hosts.allows_address("127.0.0.1:6390"));
        assert!(!hosts.allows_address(""));
        let hosts = AllowedHosts::parse(&["redis://cache.internal".to_string()], &vars).unwrap();
        assert!(hosts.allows_address("redis://cache.internal"));
        assert!(hosts.allows_address("redis://cache.internal:6379"));
        assert!(!hosts.allows_address("redis://cache.internal:6380"));
        assert!(!AllowedHosts::default().allows_address("redis://127.0.0.1:6379"));
    }

    #[test]
    fn invalid_entries() {
        let vars = HashMap::new();
        for bad in [
            "example.com",
            "*",
            "ftp://x",
            "http://a.com/path",
            "http://a*b.com",
        ] {
            assert!(
                AllowedHosts::parse(&[bad.to_string()], &vars).is_err(),
                "{bad}"
            );
        }
        assert!(AllowedHosts::parse(&["insecure:allow-all".to_string()], &vars).is_err());
    }
}
