//! Life behind a reverse proxy (Caddy, nginx): only from `--trusted-proxies` are
//! `X-Forwarded-For` (the client's address, for logs, limits, throttling and owners),
//! `X-Forwarded-Proto` (HTTPS: `Secure` cookies, `https://` links) and `X-Forwarded-Host` (the
//! name checked against the Host allow-list) believed; from anyone else they are ignored, so a
//! client cannot claim another address. `--base-path /drop` mounts pidrop under a path: a
//! request's path loses the prefix here (a proxy may also strip it itself), and every URL pidrop
//! emits gets it back (`App::url`, the page's assets).

use std::net::{IpAddr, SocketAddr};

use crate::http::Request;

/// An address range: a network and its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `::1/128`, or a bare address (the one address).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net: addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.net.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// `CIDR,CIDR,…`; empty: none.
pub fn parse_list(s: &str) -> Option<Vec<Cidr>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Cidr::parse)
        .collect()
}

/// `/drop/` → `/drop`; `/` or empty → empty (no prefix). `None` for what cannot be a prefix.
pub fn parse_base_path(s: &str) -> Option<String> {
    let t = s.trim().trim_end_matches('/');
    if t.is_empty() {
        return Some(String::new());
    }
    let ok = t.starts_with('/')
        && t[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    ok.then(|| t.to_string())
}

/// Applies what a trusted proxy says to `req` (its client address, HTTPS, host), and strips
/// the base path from its path.
pub fn apply(trusted: &[Cidr], base: &str, req: &mut Request<'_>) {
    if trusted.iter().any(|c| c.contains(req.peer.ip())) {
        if let Some(client) = req
            .header("x-forwarded-for")
            .and_then(|v| client_of(v, trusted))
        {
            req.peer = SocketAddr::new(client, req.peer.port());
        }
        req.forwarded.secure = req
            .header("x-forwarded-proto")
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        req.forwarded.host = req
            .header("x-forwarded-host")
            .and_then(|h| h.split(',').next())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
    }
    if !base.is_empty() {
        let path = &req.head.path;
        if path == base {
            req.head.path = "/".to_string();
        } else if let Some(rest) = path.strip_prefix(base).filter(|r| r.starts_with('/')) {
            req.head.path = rest.to_string();
        }
    }
}

/// The client in `X-Forwarded-For` (`client, proxy1, proxy2`): the rightmost address that is
/// not a trusted proxy — the leftmost ones are whatever the client wrote.
fn client_of(header: &str, trusted: &[Cidr]) -> Option<IpAddr> {
    let addrs: Vec<IpAddr> = header
        .split(',')
        .map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Option<_>>()?;
    addrs
        .iter()
        .rev()
        .find(|a| !trusted.iter().any(|c| c.contains(**a)))
        .or(addrs.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_their_addresses_only() {
        let c = |s| Cidr::parse(s).expect(s);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(c("10.0.0.0/8").contains(ip("10.200.1.2")));
        assert!(!c("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(c("192.168.1.0/25").contains(ip("192.168.1.127")));
        assert!(!c("192.168.1.0/25").contains(ip("192.168.1.128")));
        assert!(c("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(c("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(c("::1/128").contains(ip("::1")));
        assert!(c("fd00::/8").contains(ip("fd12::1")));
        assert!(c("0.0.0.0/0").contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address() {
        let trusted = parse_list("127.0.0.1, 10.0.0.0/8").expect("list");
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert_eq!(client_of("203.0.113.9", &trusted), ip("203.0.113.9"));
        // A client that writes its own X-Forwarded-For does not choose its address.
        assert_eq!(
            client_of("1.2.3.4, 203.0.113.9, 10.0.0.2", &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_of("10.0.0.3", &trusted), ip("10.0.0.3"));
        assert_eq!(client_of("nonsense", &trusted), None);
    }

    #[test]
    fn base_paths_are_normalised_or_refused() {
        assert_eq!(parse_base_path("/drop/"), Some("/drop".to_string()));
        assert_eq!(parse_base_path("/"), Some(String::new()));
        assert_eq!(parse_base_path("/a/b"), Some("/a/b".to_string()));
        for bad in ["drop", "/a//b", "/a/../b", "/a b", "/<x>"] {
            assert_eq!(parse_base_path(bad), None, "{bad}");
        }
    }
}
