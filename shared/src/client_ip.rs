//! The client's address: Spin's `spin-client-addr` (the TCP peer), unless that peer is one of the
//! `trusted_proxies` (CIDRs), in which case `X-Forwarded-For` is read right to left and the first
//! address that is not itself a trusted proxy is the client (seed 003). An untrusted peer's
//! `X-Forwarded-For` is ignored: anyone can send that header.
//!
//! A request may carry several `X-Forwarded-For` lines (each proxy may add its own line instead
//! of extending the last one); RFC 9110 §5.3 makes them one list, joined in order with commas
//! ([`forwarded_for`]). Reading only the first line would take a client-written hop for the
//! right-most one.

use std::net::IpAddr;

use http::HeaderMap;

/// Every `X-Forwarded-For` line joined in order with `, ` (RFC 9110 §5.3), `None` when there is
/// none. A line that is not visible ASCII becomes an unparseable hop, which stops the walk in
/// [`resolve`] there (it is never skipped).
pub fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let mut lines = headers.get_all("x-forwarded-for").iter().peekable();
    lines.peek()?;
    let joined: Vec<String> = lines
        .map(|v| {
            v.to_str()
                .map_or_else(|_| "invalid".to_owned(), str::to_owned)
        })
        .collect();
    Some(joined.join(", "))
}

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8`, `fd00::/8`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr {
            network: addr,
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> Option<(u128, u8)> {
            match ip {
                IpAddr::V4(v4) => Some((u128::from(u32::from(v4)) << 96, 32)),
                IpAddr::V6(v6) => Some((u128::from(v6), 128)),
            }
        };
        // IPv4-mapped IPv6 peers compare as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (Some((net, net_len)), Some((addr, addr_len))) = (bits(self.network), bits(ip)) else {
            return false;
        };
        if net_len != addr_len {
            return false;
        }
        let prefix = u32::from(self.prefix);
        if prefix == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - prefix);
        (net & mask) == (addr & mask)
    }
}

/// Parses the `trusted_proxies` setting (comma-separated CIDRs; malformed entries are ignored).
pub fn parse_trusted(setting: &str) -> Vec<Cidr> {
    setting.split(',').filter_map(Cidr::parse).collect()
}

/// The client address for `peer` and its `X-Forwarded-For` header under `trusted` proxies.
pub fn resolve(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let Some(header) = forwarded_for else {
        return Some(peer);
    };
    let mut last = peer;
    for hop in header.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // A malformed hop: stop at the last address we could trust the origin of.
            return Some(last);
        };
        if !is_trusted(ip) {
            return Some(ip);
        }
        last = ip;
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(!Cidr::parse("fd00::/8").unwrap().contains(ip("10.0.0.1")));
        assert!(Cidr::parse("192.168.1.7")
            .unwrap()
            .contains(ip("192.168.1.7")));
        assert!(!Cidr::parse("192.168.1.7")
            .unwrap()
            .contains(ip("192.168.1.8")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["", "10.0.0.0/33", "::/129", "nope", "10.0.0.0/x"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted = parse_trusted("10.0.0.0/8, 192.168.0.1");
        // Untrusted peer: its header is ignored.
        assert_eq!(
            resolve(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Trusted peer: right-most untrusted hop.
        assert_eq!(
            resolve(
                Some(ip("10.0.0.5")),
                Some("1.2.3.4, 198.51.100.7"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            resolve(
                Some(ip("10.0.0.5")),
                Some("1.2.3.4, 198.51.100.7, 10.0.0.9, 192.168.0.1"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        // Everything trusted: the left-most hop.
        assert_eq!(
            resolve(Some(ip("10.0.0.5")), Some("10.0.0.1"), &trusted),
            Some(ip("10.0.0.1"))
        );
        // Garbage stops the walk at the last trusted address.
        assert_eq!(
            resolve(Some(ip("10.0.0.5")), Some("evil, 10.0.0.2"), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            resolve(Some(ip("10.0.0.5")), None, &trusted),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(resolve(None, Some("1.2.3.4"), &trusted), None);
    }

    /// Two proxies that each add their own line: the right-most untrusted hop is in the second
    /// line. Reading only the first line would take the client-written `6.6.6.6`.
    #[test]
    fn every_forwarded_for_line_is_read_in_order() {
        use http::HeaderValue;
        let trusted = parse_trusted("10.0.0.0/8");
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.7, 10.0.0.3"),
        );
        let joined = forwarded_for(&headers).unwrap();
        assert_eq!(joined, "6.6.6.6, 198.51.100.7, 10.0.0.3");
        assert_eq!(
            resolve(Some(ip("10.0.0.5")), Some(&joined), &trusted),
            Some(ip("198.51.100.7"))
        );
        // A line that is not text is a malformed hop: the walk stops there, it never skips it.
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.3"));
        let joined = forwarded_for(&headers).unwrap();
        assert_eq!(
            resolve(Some(ip("10.0.0.5")), Some(&joined), &trusted),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }
}
