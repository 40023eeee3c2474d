//! Command-line flags and `PIDROP_*` environment variables, turned once into one validated
//! [`Config`]. Every setting has both forms; a flag wins over the environment. `--help` prints
//! the table below, so the help text and the parser cannot drift apart.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::{HeadLimits, MinRate, ServerConfig};
use crate::validate::AllowList;

/// Every setting, named in code: a misspelt key does not compile, where a string look-up
/// would read another setting silently. Each has exactly one row in `SETTINGS` (tested).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Listen,
    Dir,
    RequireMount,
    MaxSize,
    MaxRequest,
    Allow,
    MinFree,
    Checksum,
    Hosts,
    Origins,
    Workers,
    Queue,
    PerClient,
    MaxHead,
    MaxHeaders,
    HeaderTimeout,
    BodyTimeout,
    MinRate,
    KeepaliveTimeout,
    WriteTimeout,
    ShutdownTimeout,
    MaxParts,
    MaxField,
    ResumeExpiry,
    MaxResumable,
    ScanCmd,
    ScanTimeout,
    MaxScans,
    OnUpload,
    OnDelete,
    HookTimeout,
    StripGps,
    Users,
    Anonymous,
    ExpireAfter,
    MaxExpiry,
    MaxTotal,
    TrustedProxies,
    BasePath,
    Store,
    S3Endpoint,
    S3Bucket,
    S3Region,
    S3Prefix,
    S3Credentials,
    S3SyncInterval,
    S3Ca,
    S3Direct,
    S3Downloads,
    StaticDir,
    Log,
}

/// One setting: its key, flag name (without `--`), default, help text.
struct Setting {
    key: Key,
    name: &'static str,
    default: &'static str,
    help: &'static str,
}

const SETTINGS: &[Setting] = &[
    Setting { key: Key::Listen, name: "listen", default: "0.0.0.0:8080", help: "address and port to serve on; port 0 picks a free one" },
    Setting { key: Key::Dir, name: "dir", default: "./uploads", help: "upload directory (created if missing)" },
    Setting { key: Key::RequireMount, name: "require-mount", default: "", help: "refuse to start or store uploads unless --dir is on this mounted filesystem (e.g. /mnt/usb)" },
    Setting { key: Key::MaxSize, name: "max-size", default: "16G", help: "largest file accepted (units: K, M, G, T; powers of 1024)" },
    Setting { key: Key::MaxRequest, name: "max-request", default: "64G", help: "largest request body (all files of one multipart POST)" },
    Setting { key: Key::Allow, name: "allow", default: "default", help: "allowed extensions, comma-separated; 'default' for photos, video, audio, documents, text and archives; '*' for any" },
    Setting { key: Key::MinFree, name: "min-free", default: "256M", help: "free space that must remain on the upload filesystem" },
    Setting { key: Key::Checksum, name: "checksum", default: "sha256", help: "sha256 of every upload (in the JSON and metadata), or off: on a Pi without SHA instructions hashing can be the bottleneck" },
    Setting { key: Key::Hosts, name: "hosts", default: "", help: "extra host names this server answers to besides its own names and addresses (comma-separated, e.g. a reverse proxy's public name); '*' turns the Host check off" },
    Setting { key: Key::Origins, name: "origins", default: "", help: "extra origins allowed to upload/delete (comma-separated, e.g. http://nas.local:8080)" },
    Setting { key: Key::Workers, name: "workers", default: "16", help: "worker threads (each serves one connection at a time)" },
    Setting { key: Key::Queue, name: "queue", default: "64", help: "accepted connections waiting for a worker; beyond this new ones get 503" },
    Setting { key: Key::PerClient, name: "per-client", default: "8", help: "connections one client address may hold (queued or served); beyond this 429" },
    Setting { key: Key::MaxHead, name: "max-head", default: "8K", help: "request line + headers size limit (414/431)" },
    Setting { key: Key::MaxHeaders, name: "max-headers", default: "64", help: "number of request headers allowed (431)" },
    Setting { key: Key::HeaderTimeout, name: "header-timeout", default: "10s", help: "total time to receive a request head (408)" },
    Setting { key: Key::BodyTimeout, name: "body-timeout", default: "30s", help: "longest pause between two reads of a request body" },
    Setting { key: Key::MinRate, name: "min-rate", default: "1K/30s", help: "slowest an upload may arrive, per second averaged over a window (408 below it); 'off' for no minimum. A phone on weak Wi-Fi sends 50K or more" },
    Setting { key: Key::KeepaliveTimeout, name: "keepalive-timeout", default: "5s", help: "how long an idle keep-alive connection is kept" },
    Setting { key: Key::WriteTimeout, name: "write-timeout", default: "30s", help: "longest a response write may block" },
    Setting { key: Key::ShutdownTimeout, name: "shutdown-timeout", default: "10s", help: "on SIGTERM, how long in-flight requests may run" },
    Setting { key: Key::MaxParts, name: "max-parts", default: "1000", help: "parts in one multipart body" },
    Setting { key: Key::MaxField, name: "max-field", default: "64K", help: "size of one text field in a multipart body" },
    Setting { key: Key::ResumeExpiry, name: "resume-expiry", default: "24h", help: "how long an unfinished resumable (tus) upload is kept after its last progress; then its bytes are removed" },
    Setting { key: Key::MaxResumable, name: "max-resumable", default: "64", help: "unfinished resumable uploads kept at once (a quarter of them, at least 1, per client address); beyond this 429" },
    Setting { key: Key::ScanCmd, name: "scan-cmd", default: "", help: "command that may veto each file before it is stored, given its path as the last argument (e.g. 'clamdscan --fdpass --no-summary'); exit 0 stores it, another status refuses it (422); no shell" },
    Setting { key: Key::ScanTimeout, name: "scan-timeout", default: "10s", help: "longest a --scan-cmd run may take; then it is killed and the file refused (503)" },
    Setting { key: Key::MaxScans, name: "max-scans", default: "2", help: "--scan-cmd runs at once; more uploads wait for one to end" },
    Setting { key: Key::OnUpload, name: "on-upload", default: "", help: "command run after each file is stored (PIDROP_* environment, a JSON record on stdin); never holds the upload; no shell" },
    Setting { key: Key::OnDelete, name: "on-delete", default: "", help: "command run after each file is deleted, like --on-upload" },
    Setting { key: Key::HookTimeout, name: "hook-timeout", default: "60s", help: "longest an --on-upload or --on-delete run may take; then its process group is killed" },
    Setting { key: Key::StripGps, name: "strip-gps", default: "off", help: "on: remove GPS tags from JPEG photos as they come in (guests who download them do not learn where they were taken)" },
    Setting { key: Key::Users, name: "users", default: "", help: "the accounts file (pidrop user …, pidrop token …); default: $CREDENTIALS_DIRECTORY/users under systemd's LoadCredential=, else .pidrop/users in --dir" },
    Setting { key: Key::Anonymous, name: "anonymous", default: "dropbox", help: "what a caller without credentials may do: dropbox (upload, and delete its own uploads by their delete tokens), viewer (list and download), none, admin (everything: pidrop 0.1's open behaviour)" },
    Setting { key: Key::ExpireAfter, name: "expire-after", default: "off", help: "every upload's lifetime (e.g. 7d, 12h); then it is no longer listed or served, and removed. An upload may ask for less with an expires field (1h, 7d)" },
    Setting { key: Key::MaxExpiry, name: "max-expiry", default: "off", help: "the longest lifetime an upload's expires field may ask for (a longer one is cut to this)" },
    Setting { key: Key::MaxTotal, name: "max-total", default: "off", help: "most bytes the stored files may take together (e.g. 200G); an upload past it gets 507" },
    Setting { key: Key::TrustedProxies, name: "trusted-proxies", default: "", help: "reverse proxies (CIDR,… e.g. 127.0.0.1/32) whose X-Forwarded-For, -Proto and -Host are believed: the client's address, HTTPS, the host name; from anyone else they are ignored" },
    Setting { key: Key::BasePath, name: "base-path", default: "", help: "serve under this path behind a reverse proxy (e.g. /drop): every URL pidrop emits carries it; requests may come with or without it" },
    Setting { key: Key::Store, name: "store", default: "local", help: "where stored files live: local (the upload dir) or s3 (a bucket: --s3-endpoint, --s3-bucket; credentials from PIDROP_S3_ACCESS_KEY_ID and PIDROP_S3_SECRET_ACCESS_KEY or --s3-credentials)" },
    Setting { key: Key::S3Endpoint, name: "s3-endpoint", default: "", help: "the S3 server, e.g. http://garage.local:3900" },
    Setting { key: Key::S3Bucket, name: "s3-bucket", default: "", help: "the bucket stored files go to" },
    Setting { key: Key::S3Region, name: "s3-region", default: "garage", help: "the region signatures name (Garage's default is garage; AWS: us-east-1 …)" },
    Setting { key: Key::S3Prefix, name: "s3-prefix", default: "", help: "a prefix for every object key, e.g. pidrop/" },
    Setting { key: Key::S3Credentials, name: "s3-credentials", default: "", help: "a file with access_key_id = … and secret_access_key = … lines (default: $CREDENTIALS_DIRECTORY/s3 under systemd's LoadCredential=, else the PIDROP_S3_* environment variables)" },
    Setting { key: Key::S3SyncInterval, name: "s3-sync-interval", default: "30s", help: "with --store s3, how often this node lists the bucket to show what other nodes stored and deleted" },
    Setting { key: Key::S3Ca, name: "s3-ca", default: "", help: "with an https:// --s3-endpoint (the s3-tls build): a PEM file of the certificate authorities to trust (default: $SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt)" },
    Setting { key: Key::S3Direct, name: "s3-direct", default: "off", help: "with --store s3, on: the page sends files straight to the bucket (POST /upload/presign; the bucket's CORS must allow the page's origin), and pidrop checks each before it is listed; not with --strip-gps on or --scan-cmd (the bytes never pass through pidrop)" },
    Setting { key: Key::S3Downloads, name: "s3-downloads", default: "proxy", help: "with --store s3: proxy (pidrop streams downloads from the bucket) or redirect (a 302 to a presigned GET valid 15 minutes, with pidrop's type and disposition: clients fetch from the bucket directly)" },
    Setting { key: Key::StaticDir, name: "static-dir", default: "", help: "serve an edited copy of the page (index.html, app.js, style.css) from this directory instead of the embedded one" },
    Setting { key: Key::Log, name: "log", default: "info", help: "log level: error, warn, info, debug, trace (RUST_LOG also works)" },
];

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub dir: PathBuf,
    pub require_mount: Option<PathBuf>,
    pub max_size: u64,
    pub max_request: u64,
    pub allow: AllowList,
    pub min_free: u64,
    pub checksum: bool,
    pub hosts: Vec<String>,
    pub origins: Vec<String>,
    pub server: ServerConfig,
    pub max_parts: u64,
    pub max_field: u64,
    pub resume_expiry: Duration,
    pub max_resumable: u64,
    pub hooks: HookConfig,
    pub strip_gps: bool,
    pub users: Option<PathBuf>,
    pub anonymous: crate::access::Anonymous,
    /// Every upload's lifetime (`--expire-after`).
    pub expire_after: Option<Duration>,
    /// The longest lifetime an upload may ask for (`--max-expiry`).
    pub max_expiry: Option<Duration>,
    /// Most bytes stored in all (`--max-total`).
    pub max_total: Option<u64>,
    /// Proxies whose `X-Forwarded-*` are believed (`--trusted-proxies`).
    pub trusted_proxies: Vec<crate::proxy::Cidr>,
    /// `/drop`, or empty (`--base-path`).
    pub base_path: String,
    /// `--store s3`: the bucket's settings (credentials are read at start, never here).
    pub s3: Option<S3Config>,
    pub static_dir: Option<PathBuf>,
    pub log: String,
}

/// The upload hooks (`hooks.rs`): commands as words, and their limits.
#[derive(Clone, Debug, Default)]
pub struct HookConfig {
    pub scan: Option<Vec<String>>,
    pub scan_timeout: Duration,
    pub max_scans: usize,
    pub on_upload: Option<Vec<String>>,
    pub on_delete: Option<Vec<String>>,
    pub timeout: Duration,
}

/// A setting that could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    UnknownFlag(String),
    MissingValue(String),
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownFlag(s) => write!(f, "unknown option {s} (see --help)"),
            ConfigError::MissingValue(s) => write!(f, "option --{s} needs a value"),
            ConfigError::Invalid { name, value, why } => {
                write!(f, "invalid --{name} {value:?}: {why}")
            }
        }
    }
}

/// What the command line asks for.
pub enum Command {
    Run(Box<Config>),
    /// `pidrop check [--repair | --rebuild] [OPTIONS]`: the consistency check by hand.
    Check(Box<Config>, CheckMode),
    Help,
    Version,
}

/// What `pidrop check` does besides reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckMode {
    /// Report only.
    Report,
    /// Remove data files without a row, drop rows without a file.
    Repair,
    /// Move the catalogue aside and make a new one from the files.
    Rebuild,
}

pub fn help() -> String {
    let mut s = String::from(
        "pidrop — a small, dependable file-upload server\n\nUsage: pidrop [OPTIONS]\n       pidrop check [--repair | --rebuild] [OPTIONS]   compare the catalogue with the files (--repair: remove files without a row, drop rows without a file; --rebuild: a new catalogue from the files)\n\nEvery option can also be set in the environment as PIDROP_<NAME> (e.g. PIDROP_MAX_SIZE=4G).\n\nOptions:\n",
    );
    for st in SETTINGS {
        let env = env_name(st.name);
        s.push_str(&format!(
            "  --{:<18} {}\n  {:<20} [default: {}] [env: {}]\n",
            st.name, st.help, "", st.default, env
        ));
    }
    s.push_str("  --help               this text\n  --version            the version\n");
    s
}

fn env_name(flag: &str) -> String {
    format!("PIDROP_{}", flag.replace('-', "_").to_ascii_uppercase())
}

/// Parses flags (`--name value` or `--name=value`) over environment values over defaults.
pub fn parse<I, E>(args: I, env: E) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let (check, values) = match read_args(args, env)? {
        Args::Done(cmd) => return Ok(cmd),
        Args::Values(check, values) => (check, values),
    };
    let cfg = Box::new(build(&values)?);
    Ok(match check {
        Some(mode) => Command::Check(cfg, mode),
        None => Command::Run(cfg),
    })
}

/// What the command line says before its values are typed.
enum Args {
    /// `--help` or `--version`: nothing else matters.
    Done(Command),
    Values(Option<CheckMode>, Values),
}

fn read_args<I, E>(args: I, env: E) -> Result<Args, ConfigError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let mut raw: Vec<String> = SETTINGS
        .iter()
        .map(|s| env(&env_name(s.name)).unwrap_or_else(|| s.default.to_string()))
        .collect();
    let mut it = args.into_iter().peekable();
    let mut check = None;
    if it.peek().map(String::as_str) == Some("check") {
        it.next();
        check = Some(CheckMode::Report);
    }
    while let Some(arg) = it.next() {
        match (arg.as_str(), check) {
            ("--help" | "-h", _) => return Ok(Args::Done(Command::Help)),
            ("--version" | "-V", _) => return Ok(Args::Done(Command::Version)),
            ("--repair", Some(_)) => check = Some(CheckMode::Repair),
            ("--rebuild", Some(_)) => check = Some(CheckMode::Rebuild),
            _ => {
                let (i, value) = flag_value(&arg, &mut it)?;
                raw[i] = value;
            }
        }
    }
    Ok(Args::Values(check, Values { raw }))
}

/// `--name value` or `--name=value`: the setting's index and its value.
fn flag_value(
    arg: &str,
    rest: &mut impl Iterator<Item = String>,
) -> Result<(usize, String), ConfigError> {
    let unknown = || ConfigError::UnknownFlag(arg.to_string());
    let flag = arg.strip_prefix("--").ok_or_else(unknown)?;
    let (name, inline) = match flag.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (flag, None),
    };
    let i = SETTINGS
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(unknown)?;
    let value = match inline {
        Some(v) => v,
        None => rest
            .next()
            .ok_or_else(|| ConfigError::MissingValue(name.to_string()))?,
    };
    Ok((i, value))
}

/// Each setting's text (flag over environment over default), read as a type by key.
struct Values {
    raw: Vec<String>,
}

impl Values {
    fn text(&self, key: Key) -> (&'static str, &str) {
        let i = SETTINGS
            .iter()
            .position(|s| s.key == key)
            .expect("every key has its row in SETTINGS (tested)");
        (SETTINGS[i].name, &self.raw[i])
    }

    fn typed<T>(
        &self,
        key: Key,
        read: impl Fn(&str) -> Option<T>,
        why: &'static str,
    ) -> Result<T, ConfigError> {
        let (name, v) = self.text(key);
        read(v).ok_or_else(|| invalid(name, v, why))
    }

    fn size(&self, key: Key) -> Result<u64, ConfigError> {
        self.typed(key, parse_size, "expected a size such as 512M or 4G")
    }

    fn duration(&self, key: Key) -> Result<Duration, ConfigError> {
        self.typed(
            key,
            parse_duration,
            "expected a duration such as 10s or 500ms",
        )
    }

    fn count(&self, key: Key) -> Result<usize, ConfigError> {
        let read = |v: &str| v.parse::<usize>().ok().filter(|c| *c > 0 && *c <= 100_000);
        self.typed(key, read, "expected a whole number from 1 to 100000")
    }

    /// `off` (or empty) for none, else a value `read` takes.
    fn optional<T>(
        &self,
        key: Key,
        read: impl Fn(&str) -> Option<T>,
        why: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.typed(
            key,
            |s| match s.trim() {
                "" | "off" => Some(None),
                s => read(s).map(Some),
            },
            why,
        )
    }

    /// An optional path: empty means none.
    fn path(&self, key: Key) -> Option<PathBuf> {
        Some(self.text(key).1)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    /// A comma-separated list, without empty items or trailing slashes.
    fn list(&self, key: Key) -> Vec<String> {
        self.text(key)
            .1
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// The typed, validated configuration from the values.
fn build(v: &Values) -> Result<Config, ConfigError> {
    let listen = v.typed(
        Key::Listen,
        |s| s.parse().ok(),
        "expected ADDR:PORT, e.g. 0.0.0.0:8080",
    )?;
    let allow = v.typed(
        Key::Allow,
        AllowList::parse,
        "expected extensions like jpg,png or '*' or 'default'",
    )?;
    let checksum = v.typed(
        Key::Checksum,
        |s| match s {
            "sha256" => Some(true),
            "off" => Some(false),
            _ => None,
        },
        "expected sha256 or off",
    )?;
    let max_size = v.typed(
        Key::MaxSize,
        |s| parse_size(s).filter(|n| *n > 0),
        "expected a size of more than 0, such as 4G",
    )?;
    Ok(Config {
        listen,
        dir: PathBuf::from(v.text(Key::Dir).1),
        require_mount: v.path(Key::RequireMount),
        max_size,
        max_request: v.size(Key::MaxRequest)?,
        allow,
        min_free: v.size(Key::MinFree)?,
        checksum,
        hosts: v.list(Key::Hosts),
        origins: v.list(Key::Origins),
        server: server_config(v)?,
        max_parts: v.count(Key::MaxParts)? as u64,
        max_field: v.size(Key::MaxField)?,
        resume_expiry: v.duration(Key::ResumeExpiry)?,
        max_resumable: v.count(Key::MaxResumable)? as u64,
        hooks: hook_config(v)?,
        users: v.path(Key::Users),
        anonymous: v.typed(
            Key::Anonymous,
            crate::access::Anonymous::parse,
            "expected admin, viewer, dropbox or none",
        )?,
        strip_gps: v.typed(Key::StripGps, on_off, "expected on or off")?,
        expire_after: v.optional(
            Key::ExpireAfter,
            parse_duration_days,
            "expected off or a duration such as 7d or 12h",
        )?,
        max_expiry: v.optional(
            Key::MaxExpiry,
            parse_duration_days,
            "expected off or a duration such as 30d",
        )?,
        max_total: v.optional(
            Key::MaxTotal,
            parse_size,
            "expected off or a size such as 200G",
        )?,
        trusted_proxies: v.typed(
            Key::TrustedProxies,
            crate::proxy::parse_list,
            "expected addresses or ranges such as 127.0.0.1/32,10.0.0.0/8",
        )?,
        base_path: v.typed(
            Key::BasePath,
            crate::proxy::parse_base_path,
            "expected a path such as /drop (letters, digits, - _ . ~)",
        )?,
        s3: s3_config(v)?,
        static_dir: v.path(Key::StaticDir),
        log: v.text(Key::Log).1.to_string(),
    })
}

/// Where `--store s3` keeps stored files.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub prefix: String,
    pub credentials: Option<PathBuf>,
    /// `--s3-ca`: the authorities an https:// endpoint's certificate is checked against.
    pub ca: Option<PathBuf>,
    /// How often the bucket is listed for other nodes' changes.
    pub sync_interval: Duration,
    /// `--s3-downloads redirect`: downloads are 302s to presigned GETs.
    pub redirect: bool,
    /// `--s3-direct on`: browsers may upload straight to the bucket.
    pub direct: bool,
}

fn on_off(s: &str) -> Option<bool> {
    match s {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// `--s3-direct`: on or off, and not where every byte must pass through pidrop.
fn s3_direct(v: &Values) -> Result<bool, ConfigError> {
    let on = v.typed(Key::S3Direct, on_off, "expected on or off")?;
    if on && (v.text(Key::StripGps).1 == "on" || !v.text(Key::ScanCmd).1.trim().is_empty()) {
        return Err(ConfigError::Invalid {
            name: "s3-direct",
            value: "on".into(),
            why:
                "a direct upload never passes through pidrop: not with --strip-gps on or --scan-cmd",
        });
    }
    Ok(on)
}

/// `--store` and the `--s3-*` settings.
fn s3_config(v: &Values) -> Result<Option<S3Config>, ConfigError> {
    let store = v.typed(
        Key::Store,
        |s| matches!(s, "local" | "s3").then(|| s.to_string()),
        "expected local or s3",
    )?;
    if store == "local" {
        return Ok(None);
    }
    let need = |key| {
        v.typed(
            key,
            |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string()),
            "required with --store s3",
        )
    };
    Ok(Some(S3Config {
        endpoint: need(Key::S3Endpoint)?,
        bucket: need(Key::S3Bucket)?,
        region: need(Key::S3Region)?,
        prefix: v.text(Key::S3Prefix).1.to_string(),
        credentials: v.path(Key::S3Credentials),
        ca: v.path(Key::S3Ca),
        sync_interval: v.duration(Key::S3SyncInterval)?,
        redirect: v.typed(
            Key::S3Downloads,
            |s| match s {
                "proxy" => Some(false),
                "redirect" => Some(true),
                _ => None,
            },
            "expected proxy or redirect",
        )?,
        direct: s3_direct(v)?,
    }))
}

/// The hook commands, split into words (no shell), and their limits.
fn hook_config(v: &Values) -> Result<HookConfig, ConfigError> {
    let command = |key| {
        v.typed(
            key,
            |s| match s.trim() {
                "" => Some(None),
                s => crate::hooks::split_command(s).map(Some),
            },
            "expected a command and its arguments (quotes group words; a quote is open)",
        )
    };
    Ok(HookConfig {
        scan: command(Key::ScanCmd)?,
        scan_timeout: v.duration(Key::ScanTimeout)?,
        max_scans: v.count(Key::MaxScans)?,
        on_upload: command(Key::OnUpload)?,
        on_delete: command(Key::OnDelete)?,
        timeout: v.duration(Key::HookTimeout)?,
    })
}

/// The HTTP core's sizes and deadlines.
fn server_config(v: &Values) -> Result<ServerConfig, ConfigError> {
    let max_head = v.typed(
        Key::MaxHead,
        |s| parse_size(s).filter(|n| (1024..=1 << 20).contains(n)),
        "expected a size between 1K and 1M",
    )?;
    let workers = v.count(Key::Workers)?;
    Ok(ServerConfig {
        workers,
        // A quarter of the workers (at least one) never take an upload.
        reserved_workers: if workers > 1 { (workers / 4).max(1) } else { 0 },
        min_rate: v.typed(
            Key::MinRate,
            parse_min_rate,
            "expected RATE/WINDOW such as 1K/30s, or off",
        )?,
        queue: v.count(Key::Queue)?,
        per_client: v.count(Key::PerClient)?,
        head: HeadLimits {
            max_head: usize::try_from(max_head).unwrap_or(1 << 20),
            max_headers: v.count(Key::MaxHeaders)?,
        },
        header_timeout: v.duration(Key::HeaderTimeout)?,
        body_timeout: v.duration(Key::BodyTimeout)?,
        keepalive_timeout: v.duration(Key::KeepaliveTimeout)?,
        write_timeout: v.duration(Key::WriteTimeout)?,
        shutdown_timeout: v.duration(Key::ShutdownTimeout)?,
        discard_limit: 64 << 10,
    })
}

fn invalid(name: &'static str, value: &str, why: &'static str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        why,
    }
}

/// `123`, `64K`, `512M`, `4G`, `1T`, also `4GiB`/`4GB` (all powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let unit = s[digits..].trim().to_ascii_uppercase();
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// `1K/30s`: at least 1 KiB per second, over every 30 s window; `off`: no minimum.
pub fn parse_min_rate(s: &str) -> Option<MinRate> {
    if s.trim() == "off" {
        return Some(MinRate {
            bytes: 0,
            window: Duration::from_secs(3600),
        });
    }
    let (rate, window) = s.split_once('/')?;
    let rate = parse_size(rate)?;
    let window = parse_duration(window)?;
    let bytes = u64::try_from(u128::from(rate) * window.as_millis() / 1000).ok()?;
    Some(MinRate { bytes, window })
}

/// `30d`, or anything `parse_duration` takes.
pub fn parse_duration_days(s: &str) -> Option<Duration> {
    match s.trim().strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u64 = days.parse().ok()?;
            Some(Duration::from_secs(n.checked_mul(86_400)?))
        }
        _ => parse_duration(s),
    }
}

/// `10s`, `500ms`, `2m`, `24h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().ok()?;
    let d = match &s[digits..] {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse(args.iter().map(|s| s.to_string()), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })? {
            Command::Run(c) => Ok(*c),
            _ => panic!("not a run"),
        }
    }

    #[test]
    fn defaults_work_with_no_arguments() {
        let c = run(&[], &[]).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.dir, PathBuf::from("./uploads"));
        assert_eq!(c.max_size, 16 << 30);
        assert_eq!(c.min_free, 256 << 20);
    }

    #[test]
    fn flags_beat_environment() {
        let c = run(
            &["--max-size", "4G", "--dir=/mnt/usb"],
            &[("PIDROP_MAX_SIZE", "1M"), ("PIDROP_MIN_FREE", "1G")],
        )
        .expect("valid");
        assert_eq!(c.max_size, 4 << 30);
        assert_eq!(c.min_free, 1 << 30);
        assert_eq!(c.dir, PathBuf::from("/mnt/usb"));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        assert!(matches!(
            run(&["--max-size", "lots"], &[]),
            Err(ConfigError::Invalid {
                name: "max-size",
                ..
            })
        ));
        assert!(matches!(
            run(&["--nope"], &[]),
            Err(ConfigError::UnknownFlag(_))
        ));
        assert!(matches!(
            run(&["--dir"], &[]),
            Err(ConfigError::MissingValue(_))
        ));
        assert!(matches!(
            run(&["--workers", "0"], &[]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            run(&["--listen", "8080"], &[]),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size("5g"), Some(5 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("99999999999T"), None);
        assert_eq!(parse_size("1.5G"), None);
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("x"), None);
        let r = parse_min_rate("1K/30s").expect("rate");
        assert_eq!((r.bytes, r.window), (30 << 10, Duration::from_secs(30)));
        assert_eq!(parse_min_rate("off").map(|r| r.bytes), Some(0));
        assert_eq!(parse_min_rate("1K"), None);
        assert_eq!(parse_min_rate("1K/0s"), None);
    }

    #[test]
    fn the_systemd_example_file_documents_every_setting() {
        let example = include_str!("../systemd/pidrop.default");
        for s in SETTINGS {
            assert!(
                example.contains(&format!("#{}=", env_name(s.name))),
                "{} missing",
                s.name
            );
        }
    }

    #[test]
    fn every_key_has_exactly_one_row() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert_eq!(s.key as usize, i, "{} is out of order", s.name);
            assert_eq!(SETTINGS.iter().filter(|t| t.key == s.key).count(), 1);
        }
        let values = Values {
            raw: SETTINGS.iter().map(|s| s.default.to_string()).collect(),
        };
        assert_eq!(values.text(Key::Log), ("log", "info"));
        assert_eq!(values.text(Key::Listen), ("listen", "0.0.0.0:8080"));
    }

    #[test]
    fn help_lists_every_setting_with_its_env_name() {
        let h = help();
        for s in SETTINGS {
            assert!(h.contains(&format!("--{}", s.name)));
            assert!(h.contains(&env_name(s.name)));
        }
    }
}
