//! What pidrop says at start so that people find the page: the address it bound (always the
//! first line of stdout: scripts and tests read it), then, when it listens on every interface,
//! the page's URL for each address a phone on the LAN can reach, and — in a terminal — a QR
//! code of the first one to scan. The page's share links get their QR codes here too (SVG).

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};

use qrcodegen::{QrCode, QrCodeEcc};

/// Prints the bound address, the LAN URLs, and a QR code when stdout is a terminal.
pub fn announce(bound: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "pidrop listening on http://{bound}");
    if bound.ip().is_unspecified() {
        let urls = lan_urls(bound);
        for url in &urls {
            let _ = writeln!(out, "  open {url} on a phone or laptop on this network");
        }
        if let Some(first) = urls.first().filter(|_| std::io::stdout().is_terminal()) {
            let _ = write!(out, "{}", qr_text(first));
        }
    }
    let _ = out.flush();
}

/// The page's URL for every address of this machine a LAN peer can reach: the IPv4 ones first
/// (what a QR code should carry: every phone resolves them), then `<hostname>.local` (mDNS),
/// then global IPv6 ones. Loopback and link-local addresses are left out.
pub fn lan_urls(bound: SocketAddr) -> Vec<String> {
    let port = bound.port();
    let addrs = crate::sys::interface_addrs().unwrap_or_default();
    let mut urls: Vec<String> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() => {
                Some(format!("http://{v4}:{port}/"))
            }
            _ => None,
        })
        .collect();
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    if !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        urls.push(format!("http://{host}.local:{port}/"));
    }
    if bound.is_ipv6() {
        urls.extend(addrs.iter().filter_map(|a| match a {
            IpAddr::V6(v6) if (v6.segments()[0] & 0xe000) == 0x2000 => {
                Some(format!("http://[{v6}]:{port}/"))
            }
            _ => None,
        }));
    }
    urls.dedup();
    urls
}

/// A QR code of `text` for a terminal: two modules per character cell (half blocks), light
/// modules drawn (a terminal's background is usually dark, and scanners read both ways), with
/// the quiet zone the standard asks for.
pub fn qr_text(text: &str) -> String {
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Low) else {
        return String::new();
    };
    let quiet = 2;
    let light = |x: i32, y: i32| !qr.get_module(x, y); // outside the code: light
    let mut out = String::new();
    let mut y = -quiet;
    while y < qr.size() + quiet {
        for x in -quiet..qr.size() + quiet {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    out
}

/// A QR code of `text` as an SVG image (one path of dark modules, a 4-module quiet zone), for
/// the page to show beside a link it made: no encoder in JavaScript, nothing from a CDN.
pub fn qr_svg(text: &str) -> String {
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Medium) else {
        return String::new();
    };
    let quiet = 4;
    let side = qr.size() + 2 * quiet;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + quiet, y + quiet));
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_qr_code_draws_the_same_modules_with_a_wider_quiet_zone() {
        let url = "http://192.168.1.20:8080/s/0123456789abcdef0123456789abcdef";
        let svg = qr_svg(url);
        let qr = QrCode::encode_text(url, QrCodeEcc::Medium).expect("encodes");
        let side = qr.size() + 8;
        assert!(svg.starts_with("<svg") && svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
        let dark = (0..qr.size())
            .flat_map(|y| (0..qr.size()).map(move |x| (x, y)))
            .filter(|&(x, y)| qr.get_module(x, y))
            .count();
        assert_eq!(svg.matches("h1v1h-1z").count(), dark);
        // The top-left finder pattern's corner, shifted by the quiet zone.
        assert!(svg.contains("M4,4h1v1h-1z"));
        assert!(!svg.contains("M3,4"));
    }

    #[test]
    fn a_qr_code_is_square_with_its_quiet_zone_and_finder_patterns() {
        let text = qr_text("http://192.168.1.20:8080/");
        let rows: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        let width = rows[0].len();
        // Version 2 (25 modules) for this length at level L, plus 2 on each side.
        assert_eq!(width, 25 + 4);
        assert_eq!(rows.len(), width.div_ceil(2));
        assert!(rows.iter().all(|r| r.len() == width));
        // The quiet zone is light all round; the top-left finder's corner is dark.
        assert!(rows[0].iter().all(|c| *c == '█'));
        assert_eq!(rows[1][1], '█', "the quiet zone's column");
        assert_eq!(rows[1][2], ' ', "the finder pattern's dark corner");
    }

    #[test]
    fn the_avahi_service_file_announces_the_default_port_over_http() {
        let file = include_str!("../systemd/pidrop-avahi.service");
        let port = match crate::config::parse(Vec::<String>::new(), |_| None) {
            Ok(crate::config::Command::Run(cfg)) => cfg.listen.port(),
            _ => panic!("the default configuration"),
        };
        assert!(file.contains(&format!("<port>{port}</port>")), "{file}");
        assert!(file.contains("<type>_http._tcp</type>"));
    }

    #[test]
    fn lan_urls_never_offer_loopback() {
        let urls = lan_urls("0.0.0.0:8080".parse().expect("addr"));
        assert!(
            urls.iter()
                .all(|u| !u.contains("127.0.0.1") && u.ends_with(":8080/")),
            "{urls:?}"
        );
    }
}
