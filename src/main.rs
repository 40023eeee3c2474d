//! pidrop: start-up and shutdown. Parses the configuration, opens the upload directory, binds,
//! prints the bound address as the first line of output (tests and scripts read it), serves
//! until SIGTERM/SIGINT, then lets in-flight requests finish. Only `main` picks exit codes:
//! 0 after a clean stop, 2 for bad configuration, 1 when start-up fails.

use pidrop::{config, http, logger, routes, storage, sys};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use config::Command;
use routes::App;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("user" | "token")) {
        return ExitCode::from(pidrop::access::cli::run(args));
    }
    let cmd = match config::parse(args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pidrop: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match cmd {
        Command::Help => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("pidrop {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Check(cfg, mode) => {
            logger::init(&cfg.log);
            return match check(&cfg, mode) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("pidrop: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Run(cfg) => *cfg,
    };
    logger::init(&cfg.log);
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("pidrop: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cfg: config::Config) -> Result<(), String> {
    // Before any thread exists, so that only the signal thread ever sees SIGTERM/SIGINT.
    sys::block_termination_signals().map_err(|e| format!("cannot set up signals: {e}"))?;
    let store = Arc::new(open_store(&cfg)?);
    let listener = TcpListener::bind(cfg.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    // The first account is made before the address is announced (whoever waits for that line
    // then finds the accounts file settled), and its password printed after it.
    let users = pidrop::access::cli::users_file(&cfg);
    let first = (cfg.anonymous != pidrop::access::Anonymous::Admin)
        .then(|| pidrop::access::cli::first_admin(&users));
    pidrop::announce::announce(bound);
    if let Some(first) = first {
        say_first_admin(first, bound);
    }
    let server_cfg = cfg.server.clone();
    #[cfg(feature = "thumbnails")]
    let thumbs = pidrop::thumbs::Thumbs::open(store.state_dir().join("thumbs"))
        .map_err(|e| format!("cannot open the thumbnail cache: {e}"))?;
    let after_commit = pidrop::after_commit::AfterCommit::start()
        .map_err(|e| format!("cannot start the after-commit worker: {e}"))?;
    let store_for_check = store.clone();
    let tus = Arc::new(pidrop::tus::Tus::new(&cfg, store.clone()));
    let load = Arc::new(http::Load::default());
    let access = pidrop::access::Access::open(&users, cfg.anonymous, store.clone())
        .map_err(|e| format!("cannot use the accounts file: {e}"))?;
    let app = Arc::new(App {
        hosts: pidrop::hosts::Hosts::new(&cfg.hosts),
        host_refusals: pidrop::refusals::Refusals::new("request with a foreign Host"),
        cfg,
        store,
        started: Instant::now(),
        #[cfg(feature = "thumbnails")]
        thumbs,
        after_commit,
        tus,
        #[cfg(feature = "s3")]
        direct: pidrop::upload::direct::Direct::default(),
        metrics: pidrop::metrics::Metrics::default(),
        access,
        load: load.clone(),
    });
    spawn_sweeper(app.clone())?;
    #[cfg(feature = "s3")]
    if let Some(s3) = &app.cfg.s3 {
        spawn_bucket_sync(app.store.clone(), s3.sync_interval)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_thread(stop.clone(), bound)?;
    sys::sd_notify("READY=1");
    spawn_background_check(store_for_check, SystemTime::now());
    http::run(listener, server_cfg, app, stop, load).map_err(|e| format!("server failed: {e}"))?;
    log::info!("stopped");
    Ok(())
}

/// Prints the first admin account's password, this once (or why none could be made).
fn say_first_admin(first: Result<Option<String>, String>, bound: std::net::SocketAddr) {
    use std::io::Write;
    match first {
        Ok(None) => {}
        Ok(Some(pw)) => {
            let url = pidrop::announce::lan_urls(bound)
                .into_iter()
                .find(|_| bound.ip().is_unspecified())
                .unwrap_or_else(|| format!("http://{bound}/"));
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "created the account admin with password {pw} (shown this once; change it with: pidrop user passwd admin); log in at {url}login"
            );
            let _ = out.flush();
            log::warn!("created the first account, admin; its password was printed on stdout");
        }
        Err(e) => log::warn!(
            "no account exists and none could be made ({e}); add one with: pidrop user add NAME --role admin"
        ),
    }
}

/// Removes what has expired, now and then, for as long as pidrop runs: resumable uploads past
/// `--resume-expiry`, and files past their lifetime (`--expire-after`, `expires` fields; they
/// are hidden from the second they expire, this frees their space). One thread for both.
fn spawn_sweeper(app: Arc<App>) -> Result<(), String> {
    let every = app
        .tus
        .sweep_interval()
        .min(std::time::Duration::from_secs(5));
    std::thread::Builder::new()
        .name("sweeper".into())
        .stack_size(256 << 10)
        .spawn(move || loop {
            app.tus.sweep();
            let n = app.sweep_expired();
            if n > 0 {
                log::info!("removed {n} expired file(s)");
            }
            std::thread::sleep(every);
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the expiry sweeper: {e}"))
}

/// `--store s3`: lists the bucket now and then, so that what other nodes on it stored is
/// listed here and what they deleted is not.
#[cfg(feature = "s3")]
fn spawn_bucket_sync(store: Arc<storage::Store>, every: std::time::Duration) -> Result<(), String> {
    std::thread::Builder::new()
        .name("s3-sync".into())
        .stack_size(256 << 10)
        .spawn(move || loop {
            match store.sync_bucket() {
                Some(Ok(s)) if s.added + s.dropped > 0 => {
                    log::info!(
                        "bucket sync: {} file(s) added, {} dropped",
                        s.added,
                        s.dropped
                    )
                }
                Some(Err(e)) => log::warn!("bucket sync failed (tried again later): {e}"),
                _ => {}
            }
            std::thread::sleep(every);
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the bucket sync: {e}"))
}

/// `--store s3`: stored files go to the bucket (checked now; start-up fails with the reason).
#[cfg(feature = "s3")]
fn with_bucket(
    store: storage::Store,
    s3: &pidrop::config::S3Config,
) -> Result<storage::Store, storage::OpenError> {
    let bucket =
        pidrop::s3::connect(s3).map_err(|e| storage::OpenError::Io(std::io::Error::other(e)))?;
    log::info!("stored files go to bucket {} at {}", s3.bucket, s3.endpoint);
    store.with_bucket(Arc::new(bucket), &s3.prefix, s3.redirect)
}

#[cfg(not(feature = "s3"))]
fn with_bucket(
    _: storage::Store,
    _: &pidrop::config::S3Config,
) -> Result<storage::Store, storage::OpenError> {
    Err(storage::OpenError::Io(std::io::Error::other(
        "this build has no S3 support (feature s3)",
    )))
}

/// Opens the upload dir and its catalogue; a damaged catalogue, or one from a newer pidrop, is
/// refused with the command that makes a new one from the files.
fn open_store(cfg: &config::Config) -> Result<storage::Store, String> {
    storage::Store::open(
        &cfg.dir,
        cfg.min_free,
        cfg.require_mount.as_deref(),
        cfg.checksum,
    )
    .map(|s| s.with_max_total(cfg.max_total))
    .and_then(|s| match &cfg.s3 {
        None => Ok(s),
        Some(s3) => with_bucket(s, s3),
    })
    .map_err(|e| {
        let mut msg = format!("cannot use upload directory {}: {e}", cfg.dir.display());
        if matches!(e, storage::OpenError::Catalogue(storage::CatalogueError::Corrupt(_) | storage::CatalogueError::Newer(_))) {
            msg.push_str(&format!(
                ". To make a new catalogue from the files (the old one is kept aside; original names and fields of files without a pidrop 0.1 sidecar are lost, they show their stored names): pidrop check --rebuild --dir {}",
                cfg.dir.display()
            ));
        }
        msg
    })
}

/// `pidrop check`: reports (and with `--repair` / `--rebuild` mends) what differs between the
/// catalogue and the files. True when nothing is left to mend.
fn check(cfg: &config::Config, mode: config::CheckMode) -> Result<bool, String> {
    use config::CheckMode;
    if mode == CheckMode::Rebuild {
        let aside = storage::move_catalogue_aside(&cfg.dir).map_err(|e| e.to_string())?;
        if let Some(aside) = aside {
            println!("moved the old catalogue aside as .pidrop/{aside}");
        }
    }
    let store = open_store(cfg)?;
    if mode == CheckMode::Rebuild {
        rebuild(&store)?;
    }
    // A commit in flight in a running service has renamed its files but not yet written its
    // rows: only files older than a minute are taken for leftovers.
    let before = SystemTime::now() - Duration::from_secs(60);
    let report = store
        .check(mode != CheckMode::Report, before, Duration::ZERO)
        .map_err(|e| format!("check failed: {e}"))?;
    println!("{report}");
    Ok(mode != CheckMode::Report || report == storage::CheckReport::default())
}

/// `pidrop check --rebuild` after the catalogue was moved aside: the files listed again —
/// from the upload dir (names and fields lost), or from the bucket with `--store s3` (every
/// object carries its record).
fn rebuild(store: &storage::Store) -> Result<(), String> {
    #[cfg(feature = "s3")]
    if let Some(synced) = store.sync_bucket() {
        let s = synced.map_err(|e| format!("cannot list the bucket: {e}"))?;
        println!(
            "listed {} file(s) from the bucket, with their names, fields, albums and owners",
            s.added
        );
        return Ok(());
    }
    let n = store.import_unlisted().map_err(|e| e.to_string())?;
    println!("listed {n} file(s) again; their original names and fields are lost (they show their stored names)");
    Ok(())
}

/// After start: the consistency check, slowly, in the background; logs what it repaired.
fn spawn_background_check(store: Arc<storage::Store>, started: SystemTime) {
    let spawned = std::thread::Builder::new()
        .name("check".into())
        .spawn(
            move || match store.check(true, started, Duration::from_millis(20)) {
                Ok(r) if r == storage::CheckReport::default() => {
                    log::info!("consistency check: catalogue and files agree")
                }
                Ok(r) => log::warn!("consistency check: {r}"),
                Err(e) => log::error!("consistency check failed: {e}"),
            },
        );
    if let Err(e) = spawned {
        log::error!("cannot start the consistency check: {e}");
    }
}

fn spawn_signal_thread(stop: Arc<AtomicBool>, bound: SocketAddr) -> Result<(), String> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let sig = sys::wait_for_termination();
            log::info!("signal {sig} received: finishing in-flight requests");
            sys::sd_notify("STOPPING=1");
            stop.store(true, Ordering::SeqCst);
            // Wake the acceptor, which is blocked in accept().
            let mut wake = bound;
            if wake.ip().is_unspecified() {
                wake.set_ip(if bound.is_ipv4() {
                    [127, 0, 0, 1].into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}
