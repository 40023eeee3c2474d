//! Which `Host` names this server answers to: the defence against DNS rebinding.
//!
//! A web page on the Internet can point its own host name at the Pi's address and then talk to
//! pidrop as a same-origin page: the browser sends `Host: evil.example`, and an `Origin` that
//! agrees with it. Checking `Host` against the names this machine really has stops that, since
//! the attacker's page can only ever send its own name. Allowed by default: `localhost`, any
//! loopback address, every address of the machine's interfaces, its host name and
//! `<hostname>.local` (mDNS), each with or without a port. `--hosts` adds names (a reverse
//! proxy's public name); `--hosts '*'` turns the check off.
//!
//! Addresses change (DHCP, a USB Wi-Fi dongle): a miss re-reads the interfaces and the host
//! name, at most once per `REFRESH` (2 s), so the list stays current without a timer thread and a
//! flood of foreign names costs one `getifaddrs` every few seconds at most.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sys;

/// How often a miss may re-read the machine's addresses and name.
const REFRESH: Duration = Duration::from_secs(2);

/// The allow-list: fixed names from the configuration plus what the machine has now.
pub struct Hosts {
    any: bool,
    extra: Vec<String>,
    machine: Mutex<Machine>,
}

/// The machine's own names and addresses, as last read.
struct Machine {
    read_at: Option<Instant>,
    names: Vec<String>,
    addrs: Vec<IpAddr>,
}

impl Machine {
    fn read() -> Machine {
        let mut names = Vec::new();
        if let Some(h) = sys::host_name() {
            let h = h.to_ascii_lowercase();
            let short = h.split('.').next().unwrap_or(&h).to_string();
            names.push(format!("{short}.local"));
            if short != h {
                names.push(short);
            }
            names.push(h);
        }
        let addrs = sys::interface_addrs().unwrap_or_else(|e| {
            log::warn!("cannot read the interface addresses: {e}");
            Vec::new()
        });
        Machine {
            read_at: Some(Instant::now()),
            names,
            addrs,
        }
    }

    fn knows(&self, host: &HostName) -> bool {
        match host {
            HostName::Ip(ip) => self.addrs.contains(ip),
            HostName::Name(n) => self.names.iter().any(|m| m == n),
        }
    }
}

/// A `Host` value reduced to what is compared: an address, or a lower-case name without a
/// trailing dot. The port is checked for shape and then ignored.
#[derive(Debug, PartialEq, Eq)]
enum HostName {
    Ip(IpAddr),
    Name(String),
}

impl Hosts {
    /// `setting` is the `--hosts` value: comma-separated names, or `*` for no check.
    pub fn new(setting: &[String]) -> Hosts {
        let any = setting.iter().any(|s| s == "*");
        let extra = setting
            .iter()
            .filter(|s| *s != "*")
            .filter_map(|s| match parse(s) {
                Some(HostName::Name(n)) => Some(n),
                Some(HostName::Ip(ip)) => Some(ip.to_string()),
                None => None,
            })
            .collect();
        Hosts {
            any,
            extra,
            machine: Mutex::new(Machine {
                read_at: None,
                names: Vec::new(),
                addrs: Vec::new(),
            }),
        }
    }

    /// Whether a request with this `Host` (None: an HTTP/1.0 request without one) from `peer`
    /// may be served.
    pub fn allows(&self, host: Option<&str>, peer: IpAddr) -> bool {
        if self.any {
            return true;
        }
        let Some(host) = host else {
            // Only a client on this machine may leave the name out.
            return is_loopback(peer);
        };
        let Some(name) = parse(host) else {
            return false;
        };
        match &name {
            HostName::Ip(ip) if is_loopback(*ip) => return true,
            HostName::Ip(ip) if self.extra.contains(&ip.to_string()) => return true,
            HostName::Name(n) if n == "localhost" || self.extra.contains(n) => return true,
            _ => {}
        }
        let Ok(mut machine) = self.machine.lock() else {
            return false;
        };
        if machine.knows(&name) {
            return true;
        }
        if machine.read_at.is_none_or(|t| t.elapsed() >= REFRESH) {
            *machine = Machine::read();
            return machine.knows(&name);
        }
        false
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Parses `name`, `name:port`, `1.2.3.4:port` or `[v6]:port`. Anything else — userinfo, a path,
/// spaces, an empty name, a port that is not a number — is `None` and refused.
fn parse(host: &str) -> Option<HostName> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = v6.parse().ok()?;
        let port_fine = after.is_empty() || port_ok(Some(after.strip_prefix(':')?));
        return port_fine.then_some(HostName::Ip(IpAddr::V6(ip)));
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if !port_ok(port) {
        return None;
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Some(HostName::Ip(ip));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then_some(HostName::Name(name))
}

/// No port, or 1 to 5 digits.
fn port_ok(port: Option<&str>) -> bool {
    match port {
        None => true,
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const LAN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));

    #[test]
    fn host_values_parse_strictly() {
        assert_eq!(parse("Pi.Local."), Some(HostName::Name("pi.local".into())));
        assert_eq!(
            parse("pi.local:8080"),
            Some(HostName::Name("pi.local".into()))
        );
        assert_eq!(
            parse("[::1]:80"),
            Some(HostName::Ip("::1".parse().expect("ip")))
        );
        assert_eq!(
            parse("[::1]"),
            Some(HostName::Ip("::1".parse().expect("ip")))
        );
        assert_eq!(
            parse("10.0.0.2:1"),
            Some(HostName::Ip("10.0.0.2".parse().expect("ip")))
        );
        for bad in [
            "",
            ":80",
            "user@localhost",
            "localhost:",
            "localhost:80x",
            "local host",
            "a/b",
            "[::1",
            "[::1]x",
            "[::1]:",
            "localhost:123456",
            "a..b",
            "é.local",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn loopback_names_pass_and_foreign_ones_do_not() {
        let h = Hosts::new(&[]);
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:1",
            "127.1.2.3",
            "[::1]:9",
        ] {
            assert!(h.allows(Some(ok), LAN), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "192.0.2.99",
            "[2001:db8::1]:80",
        ] {
            assert!(!h.allows(Some(bad), LOCAL), "{bad}");
        }
    }

    #[test]
    fn the_machine_s_own_name_passes() {
        let h = Hosts::new(&[]);
        let Some(name) = sys::host_name() else {
            return; // a machine without a name has nothing to check here
        };
        let short = name.split('.').next().unwrap_or(&name).to_string();
        assert!(h.allows(Some(&format!("{short}.local:8080")), LAN));
        assert!(h.allows(Some(&name.to_ascii_uppercase()), LAN));
    }

    #[test]
    fn missing_host_only_from_loopback_and_star_allows_all() {
        let h = Hosts::new(&["nas.example.org".into()]);
        assert!(h.allows(None, LOCAL));
        assert!(!h.allows(None, LAN));
        assert!(h.allows(Some("NAS.example.org:443"), LAN));
        let any = Hosts::new(&["*".into()]);
        assert!(any.allows(Some("evil.example"), LAN));
        assert!(any.allows(None, LAN));
    }
}
