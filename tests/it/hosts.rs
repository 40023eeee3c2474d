//! The DNS-rebinding defence through the real binary: a `Host` that is not one of this machine's
//! names or addresses gets 421 and nothing else happens, for reads and for deletes alike.

use crate::harness::*;

/// An address of this machine's interfaces that is not loopback (from the kernel's own table),
/// sent as a `Host` value over a loopback connection: no traffic leaves 127.0.0.1.
fn own_lan_address() -> Option<String> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let lines: Vec<&str> = trie.lines().collect();
    lines.windows(2).find_map(|w| {
        let ip = w[0].trim().strip_prefix("|-- ")?;
        (w[1].contains("/32 host LOCAL") && !ip.starts_with("127.")).then(|| ip.to_string())
    })
}

fn host_name() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim().to_string();
    (!h.is_empty()).then_some(h)
}

fn with_host(srv: &Server, method: &str, path: &str, host: &str, extra: &[(&str, &str)]) -> Resp {
    let mut s = connect(srv.addr);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    std::io::Write::write_all(&mut s, head.as_bytes()).expect("head");
    read_response(&mut std::io::BufReader::new(s), method == "HEAD").expect("response")
}

#[test]
fn foreign_host_names_are_refused_before_routing() {
    let srv = Server::start(&[]);
    let put = request(srv.addr, "PUT", "/upload/a.txt", &[], b"hello");
    assert_eq!(put.status, 201, "{}", put.text());
    let url = put.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let port = srv.addr.port();
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        "EVIL.EXAMPLE.".to_string(),
        "localhost.evil.example".to_string(),
        format!("203.0.113.7:{port}"),
        "[2001:db8::1]".to_string(),
        format!("user@localhost:{port}"),
        "local host".to_string(),
    ] {
        for (method, path) in [("GET", "/files"), ("GET", "/"), ("DELETE", url.as_str())] {
            let origin = format!("http://{host}");
            let r = with_host(&srv, method, path, &host, &[("Origin", &origin)]);
            assert_eq!(r.status, 421, "{method} {path} with Host {host:?}");
            assert_eq!(r.json()["error"]["code"], "misdirected_host");
        }
    }
    assert_eq!(srv.get(&url).body, b"hello", "the file is still there");
    let log = srv.log_text();
    assert!(
        log.contains("refused a request with a foreign Host"),
        "refusals are logged"
    );
    assert_eq!(
        log.matches("refused a request").count(),
        1,
        "once per address and interval"
    );
}

#[test]
fn the_machine_s_own_names_and_addresses_are_served() {
    let srv = Server::start(&[]);
    let port = srv.addr.port();
    let mut hosts = vec![
        "localhost".to_string(),
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".to_string(),
    ];
    match host_name() {
        Some(h) => {
            hosts.push(format!("{h}:{port}"));
            hosts.push(format!("{h}.local:{port}"));
            hosts.push(format!("{}.local.", h.to_uppercase()));
        }
        None => eprintln!("this machine has no host name: not checked"),
    }
    match own_lan_address() {
        Some(ip) => hosts.push(format!("{ip}:{port}")),
        None => eprintln!("this machine has no non-loopback address: not checked"),
    }
    for host in &hosts {
        let r = with_host(&srv, "GET", "/healthz", host, &[]);
        assert_eq!(r.status, 200, "Host {host:?}");
    }
    // HTTP/1.0 without Host, from this machine.
    let out = raw(srv.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn hosts_setting_adds_names_and_star_turns_the_check_off() {
    let srv = Server::start(&["--hosts", "files.example.org,nas.lan"]);
    for (host, status) in [
        ("files.example.org", 200),
        ("NAS.lan:443", 200),
        ("evil.example", 421),
    ] {
        assert_eq!(
            with_host(&srv, "GET", "/healthz", host, &[]).status,
            status,
            "{host}"
        );
    }
    let open = Server::start(&["--hosts", "*"]);
    assert_eq!(
        with_host(&open, "GET", "/healthz", "evil.example", &[]).status,
        200
    );
}

/// A new address (a DHCP lease, a Wi-Fi dongle plugged in) is answered to without a restart:
/// inside a network namespace made for this test, an address added after start is served
/// within the refresh interval, and was refused before it existed.
#[test]
fn an_address_added_after_start_is_served() {
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        eprintln!("no `ip` command (iproute2): the address-change test did not run");
        return;
    }
    let root = TempDir::new("netns");
    let q = |p: std::path::PathBuf| p.display().to_string();
    let (dir, out) = (q(root.0.join("up")), q(root.0.join("out")));
    let script = format!(
        r#"set -e
ip link set lo up
'{bin}' --listen 127.0.0.1:0 --dir '{dir}' --min-free 0 >'{out}' 2>/dev/null &
pid=$!
for i in $(seq 100); do grep -q listening '{out}' && break; sleep 0.1; done
url=$(sed -n 's/^pidrop listening on //p' '{out}')
code() {{ curl -s -o /dev/null -w '%{{http_code}}' -H "Host: $1" "$url/healthz"; }}
before=$(code 198.51.100.7:8080)
ip addr add 198.51.100.7/32 dev lo
sleep 2.5
after=$(code 198.51.100.7:8080)
kill $pid
echo "result $before $after""#,
        bin = env!("CARGO_BIN_EXE_pidrop"),
    );
    let run = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("result 421 200"),
        "{stdout} {}",
        String::from_utf8_lossy(&run.stderr)
    );
}
