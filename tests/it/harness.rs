//! Starts the real `pidrop` binary on `127.0.0.1:0`, reads the bound address from its first line
//! of output (no port races, so tests run in parallel), kills it on drop, removes its directory,
//! and prints its log when a test fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("pidrop-it-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Server {
    pub child: Option<Child>,
    /// Its stdout after the first line (kept open: what it prints later can be read).
    pub stdout: Option<BufReader<ChildStdout>>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub root: TempDir,
    args: Vec<String>,
}

impl Server {
    /// Starts pidrop with a fresh upload dir and extra arguments.
    pub fn start(args: &[&str]) -> Server {
        let root = TempDir::new("srv");
        let dir = root.0.join("uploads");
        Server::start_in(root, dir, args, &[])
    }

    /// Starts pidrop with a fresh upload dir, extra arguments and environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let root = TempDir::new("srv");
        let dir = root.0.join("uploads");
        Server::start_in(root, dir, args, env)
    }

    pub fn start_in(root: TempDir, dir: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::launch(root, dir, args, env, None)
    }

    /// Starts under a shell prefix (e.g. `ulimit -n 40`).
    pub fn start_with_shell(prefix: &str, args: &[&str]) -> Server {
        let root = TempDir::new("srv");
        let dir = root.0.join("uploads");
        Server::launch(root, dir, args, &[], Some(prefix))
    }

    /// Starts inside a new user + mount namespace with the upload dir on a tmpfs of `size`
    /// (e.g. "8m"): a small disk that really fills up, without root.
    pub fn start_on_tmpfs(size: &str, args: &[&str]) -> Server {
        let root = TempDir::new("srv");
        let dir = root.0.join("uploads");
        std::fs::create_dir_all(&dir).expect("mount point");
        let prefix = format!("mount -t tmpfs -o size={size} tmpfs '{}'", dir.display());
        Server::launch(root, dir, args, &[], Some(&format!("unshare:{prefix}")))
    }

    /// Starts pidrop as shipped: the default `--anonymous` (a drop box), so the first admin
    /// account is made and its password printed (read it from `stdout`).
    pub fn start_as_shipped(args: &[&str]) -> Server {
        let root = TempDir::new("srv");
        let dir = root.0.join("uploads");
        let log = root.0.join("server.log");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Server::with_args(root, dir, log, args, &[], None)
    }

    fn launch(
        root: TempDir,
        dir: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
        shell: Option<&str>,
    ) -> Server {
        let log = root.0.join("server.log");
        // The suites predate accounts and test everything else with the open setting; the
        // access tests (and anything passing --anonymous or PIDROP_ANONYMOUS) choose their own.
        let chooses =
            args.contains(&"--anonymous") || env.iter().any(|(k, _)| *k == "PIDROP_ANONYMOUS");
        let open: &[&str] = if chooses {
            &[]
        } else {
            &["--anonymous", "admin"]
        };
        let args: Vec<String> = open.iter().chain(args).map(|s| s.to_string()).collect();
        Server::with_args(root, dir, log, args, env, shell)
    }

    fn with_args(
        root: TempDir,
        dir: PathBuf,
        log: PathBuf,
        args: Vec<String>,
        env: &[(&str, &str)],
        shell: Option<&str>,
    ) -> Server {
        let (child, addr, stdout) = spawn(&dir, &log, &args, env, shell);
        Server {
            child: Some(child),
            stdout: Some(stdout),
            addr,
            dir,
            log,
            root,
            args,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills (SIGKILL) and starts again on the same directory (a new port).
    pub fn restart(&mut self) {
        self.kill9();
        let (child, addr, stdout) = spawn(&self.dir, &self.log, &self.args, &[], None);
        self.child = Some(child);
        self.stdout = Some(stdout);
        self.addr = addr;
    }

    /// The next line it prints on stdout (after the first), without the newline.
    pub fn stdout_line(&mut self) -> String {
        let mut line = String::new();
        if let Some(out) = self.stdout.as_mut() {
            out.read_line(&mut line).expect("stdout line");
        }
        line.trim_end().to_string()
    }

    /// Stops it (SIGKILL) and returns what it printed on stdout since the last read.
    pub fn stop_and_read_stdout(&mut self) -> String {
        self.kill9();
        let mut rest = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut rest);
        }
        rest
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status (up to `limit`).
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > until {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the consistency check that runs after every start has finished, before a
    /// test changes files behind pidrop's back.
    pub fn wait_for_check(&self) {
        // The check of the last start (a start killed early may never have logged its own).
        let done = || {
            let log = self.log_text();
            log.rfind(" bytes in ")
                .is_some_and(|start| log[start..].contains("consistency check"))
        };
        assert!(
            eventually(Duration::from_secs(30), done),
            "the consistency check did not finish"
        );
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident memory of the server in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        proc_status(self.pid(), "VmRSS:")
    }

    pub fn threads(&self) -> u64 {
        proc_status(self.pid(), "Threads:")
    }

    /// Stored data files (not the .pidrop directory).
    pub fn stored_files(&self) -> Vec<String> {
        list(&self.dir)
            .into_iter()
            .filter(|n| n != ".pidrop")
            .collect()
    }

    pub fn temp_files(&self) -> Vec<String> {
        list(&self.dir.join(".pidrop/tmp"))
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], b"")
    }
}

/// The names in a directory, sorted (none if it does not exist).
pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn spawn(
    dir: &Path,
    log: &Path,
    args: &[String],
    env: &[(&str, &str)],
    shell: Option<&str>,
) -> (Child, SocketAddr, BufReader<ChildStdout>) {
    let bin = env!("CARGO_BIN_EXE_pidrop");
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut full: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--min-free".into(),
        "0".into(),
    ];
    full.extend(args.iter().cloned());
    let mut cmd = match shell {
        None => {
            let mut c = Command::new(bin);
            c.args(&full);
            c
        }
        Some(prefix) => {
            let quoted: Vec<String> = full
                .iter()
                .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
                .collect();
            // "unshare:PREFIX" runs the shell in a new user + mount namespace first.
            let (mut c, prefix) = match prefix.strip_prefix("unshare:") {
                Some(p) => {
                    let mut c = Command::new("unshare");
                    c.args(["-rm", "sh"]);
                    (c, p)
                }
                None => (Command::new("sh"), prefix),
            };
            c.arg("-c")
                .arg(format!("{prefix} && exec '{bin}' {}", quoted.join(" ")));
            c
        }
    };
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::from(logf))
        .stdin(Stdio::null());
    cmd.env_remove("NOTIFY_SOCKET").env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn pidrop");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let mut stdout = BufReader::new(stdout);
    stdout.read_line(&mut line).expect("first line");
    let addr = line
        .trim()
        .strip_prefix("pidrop listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "unexpected first line {line:?}; log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
    (child, addr, stdout)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- pidrop log ----\n{}", self.log_text());
        }
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

/// One request on a fresh connection (Connection: close); reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = connect(addr);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write head");
    let _ = s.write_all(body);
    read_response(&mut BufReader::new(s), method == "HEAD").expect("a response")
}

/// Sends raw bytes, half-closes, and returns everything the server sent until it closed.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(bytes).expect("write");
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Reads one response from a buffered stream (Content-Length framing, or to EOF).
pub fn read_response<R: BufRead>(r: &mut R, head_only: bool) -> Option<Resp> {
    let mut status_line = String::new();
    loop {
        status_line.clear();
        if r.read_line(&mut status_line).ok()? == 0 {
            return None;
        }
        let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':')?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        if status == 100 {
            continue;
        }
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let mut body = Vec::new();
        if !head_only && status != 204 && status != 304 {
            match len {
                Some(n) => {
                    body.resize(n, 0);
                    r.read_exact(&mut body).ok()?;
                }
                None => {
                    r.read_to_end(&mut body).ok()?;
                }
            }
        }
        return Some(Resp {
            status,
            headers,
            body,
        });
    }
}

/// A multipart/form-data body.
pub struct Form {
    pub boundary: String,
    pub body: Vec<u8>,
}

impl Form {
    pub fn new() -> Form {
        Form {
            boundary: "----pidropTestBoundary7MA4YWxkTrZu0gW".into(),
            body: Vec::new(),
        }
    }
    pub fn field(mut self, name: &str, value: &str) -> Form {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self
    }
    pub fn file(mut self, field: &str, filename: &str, ctype: &str, data: &[u8]) -> Form {
        self.body.extend_from_slice(
            format!("--{}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n", self.boundary).as_bytes(),
        );
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\r\n");
        self
    }
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.body,
        )
    }
}

impl Default for Form {
    fn default() -> Self {
        Self::new()
    }
}

/// The head of a `POST /upload` with this Content-Type and length, for tests that send the body
/// themselves.
pub fn upload_head(content_type: &str, len: usize, close: bool) -> Vec<u8> {
    let close = if close { "Connection: close\r\n" } else { "" };
    format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n{close}\r\n").into_bytes()
}

/// POST a form to /upload.
pub fn post_form(addr: SocketAddr, form: Form) -> Resp {
    let (ct, body) = form.finish();
    request(
        addr,
        "POST",
        "/upload",
        &[("Content-Type", &ct), ("Accept", "application/json")],
        &body,
    )
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A minimal valid PNG header followed by `extra` bytes (enough for the magic check).
pub fn png(extra: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    v.extend(bytes(7, extra));
    v
}

pub fn jpeg(extra: usize) -> Vec<u8> {
    let mut v = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
    ];
    v.extend(bytes(9, extra));
    v
}

pub fn sha256_hex(data: &[u8]) -> String {
    use std::process::Command;
    let dir = TempDir::new("sha");
    let p = dir.0.join("f");
    std::fs::write(&p, data).expect("write");
    let out = Command::new("sha256sum")
        .arg(&p)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Waits until `f` is true or the time is up.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// A whole file by tus: created with `metadata` (an `Upload-Metadata` value), sent in one
/// PATCH; the PATCH's answer.
pub fn tus_whole(addr: SocketAddr, metadata: &str, body: &[u8]) -> Resp {
    let tus = ("Tus-Resumable", "1.0.0");
    let len = body.len().to_string();
    let created = request(
        addr,
        "POST",
        "/tus",
        &[tus, ("Upload-Length", &len), ("Upload-Metadata", metadata)],
        b"",
    );
    let loc = created.header("Location").expect("location").to_string();
    let octets = ("Content-Type", "application/offset+octet-stream");
    request(
        addr,
        "PATCH",
        &loc,
        &[tus, ("Upload-Offset", "0"), octets],
        body,
    )
}

/// The original names in a listing's answer, sorted.
pub fn original_names(resp: &Resp) -> Vec<String> {
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut names: Vec<String> = resp.json()["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["original_name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

/// The stored name of the first file in an upload's answer.
pub fn name_of(resp: &Resp) -> String {
    resp.json()["files"][0]["name"]
        .as_str()
        .expect("a stored name")
        .to_string()
}
