//! pidrop: start-up and shutdown. Parses the configuration, opens the upload directory, binds,
//! prints the bound address as the first line of output (tests and scripts read it), serves
//! until SIGTERM/SIGINT, then lets in-flight requests finish. Only `main` picks exit codes:
//! 0 after a clean stop, 2 for bad configuration, 1 when start-up fails.

use pidrop::{config, http, logger, routes, storage, sys};

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::Command;
use routes::App;

fn main() -> ExitCode {
    let cmd = match config::parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
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
    let store = storage::Store::open(
        &cfg.dir,
        cfg.min_free,
        cfg.require_mount.as_deref(),
        cfg.checksum,
    )
    .map_err(|e| format!("cannot use upload directory {}: {e}", cfg.dir.display()))?;
    let listener = TcpListener::bind(cfg.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    announce(bound);
    let server_cfg = cfg.server.clone();
    #[cfg(feature = "thumbnails")]
    let thumbs = pidrop::thumbs::Thumbs::start(store.state_dir().join("thumbs"))
        .map_err(|e| format!("cannot start the thumbnail worker: {e}"))?;
    let app = Arc::new(App {
        hosts: pidrop::hosts::Hosts::new(&cfg.hosts),
        host_refusals: pidrop::refusals::Refusals::new("request with a foreign Host"),
        cfg,
        store,
        started: Instant::now(),
        #[cfg(feature = "thumbnails")]
        thumbs,
    });
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_thread(stop.clone(), bound)?;
    sys::sd_notify("READY=1");
    http::run(listener, server_cfg, app, stop).map_err(|e| format!("server failed: {e}"))?;
    log::info!("stopped");
    Ok(())
}

/// The first line of standard output names the address actually bound.
fn announce(bound: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "pidrop listening on http://{bound}");
    let _ = out.flush();
    if bound.ip().is_unspecified() {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let host = host.trim();
        if !host.is_empty() {
            log::info!(
                "open http://{host}.local:{} from a phone or laptop on this network",
                bound.port()
            );
        }
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
