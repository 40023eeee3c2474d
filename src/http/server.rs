//! The listener, the bounded worker pool and the per-connection loop.
//!
//! One acceptor thread hands sockets to a fixed pool of workers through a bounded queue. When
//! the queue is full the acceptor answers `503` with `Retry-After` itself and closes; when one
//! client address already holds its share of connections it answers `429`. Nothing here grows
//! with the number of clients: threads, queue and buffers are all fixed at start-up.
//!
//! Each worker serves one connection at a time: keep-alive, head deadline, body idle timeout,
//! write timeout, panic isolation, and the lingering close that lets a browser read an early
//! error response while it is still sending its body.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::head::{self, Framing, Head, HeadLimits};
use super::request::{Body, MinRate, Request};
use super::response::{self, Response};
use crate::error::{AppError, HttpError};
use crate::refusals::Refusals;

/// What the rest of pidrop plugs into the HTTP core.
pub trait Service: Send + Sync + 'static {
    /// Answers one request. May read the body, or not.
    fn handle(&self, req: &mut Request<'_>) -> Response;
    /// Renders an error the core found itself (bad head, busy, panic).
    fn error(&self, err: &AppError) -> Response;
}

/// Sizes and deadlines of the core, all from the configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub workers: usize,
    pub queue: usize,
    pub per_client: usize,
    pub head: HeadLimits,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// The slowest rate a body may arrive at (`--min-rate`).
    pub min_rate: MinRate,
    /// Workers kept for requests without a body (pages, listings, downloads, healthz): uploads
    /// may hold at most `workers - reserved` of them at once.
    pub reserved_workers: usize,
    pub keepalive_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Unread body bytes we read and drop to keep a connection; past this we close.
    pub discard_limit: u64,
}

/// How long and how much we read after a half-close before closing for good: long after an
/// early answer to a body still in flight (a browser must see our 413, not a reset), short after
/// a bad head, none after a header timeout (a client that slow gets no more of a worker's time).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BAD_HEAD: Duration = Duration::from_millis(200);
const LINGER_BYTES: u64 = 64 << 20; // 64 MiB
/// Keep-alive waits wake this often to notice shutdown or a waiting queue.
const IDLE_TICK: Duration = Duration::from_millis(200);
/// Worker stack: handlers keep their buffers on the heap.
const WORKER_STACK: usize = 256 << 10; // 256 KiB

struct Shared {
    cfg: ServerConfig,
    service: Arc<dyn Service>,
    stop: Arc<AtomicBool>,
    load: Arc<Load>,
    clients: Mutex<HashMap<IpAddr, usize>>,
    refusals: Refusals,
}

/// How loaded the server is right now (read by `/metrics`).
#[derive(Default)]
pub struct Load {
    /// Accepted connections waiting for a worker.
    pub queued: AtomicUsize,
    /// Workers serving a connection.
    pub busy: AtomicUsize,
    /// Workers reading a request body (see `ServerConfig::reserved_workers`).
    pub uploading: AtomicUsize,
}

/// A worker's claim to read a body; given back on drop.
struct UploadTurn<'a>(&'a AtomicUsize);

impl<'a> UploadTurn<'a> {
    /// None when uploads already hold every worker they may.
    fn claim(shared: &'a Shared) -> Option<UploadTurn<'a>> {
        let most = shared
            .cfg
            .workers
            .saturating_sub(shared.cfg.reserved_workers)
            .max(1);
        shared
            .load
            .uploading
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < most).then_some(n + 1)
            })
            .ok()
            .map(|_| UploadTurn(&shared.load.uploading))
    }
}

impl Drop for UploadTurn<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's claim on its client's share; released on drop.
struct ClientSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

struct Job {
    stream: TcpStream,
    peer: SocketAddr,
    /// When the acceptor took the connection: the header deadline runs from here, so time
    /// spent waiting in the queue counts and slow clients cannot hold queue places for long.
    accepted: Instant,
    slot: ClientSlot,
}

/// Serves until `stop` is set and the listener is woken (a connection to it does that), then
/// lets in-flight requests finish for up to `shutdown_timeout`.
pub fn run(
    listener: TcpListener,
    cfg: ServerConfig,
    service: Arc<dyn Service>,
    stop: Arc<AtomicBool>,
    load: Arc<Load>,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        service,
        stop,
        load,
        clients: Mutex::new(HashMap::new()),
        refusals: Refusals::new("connection"),
    });
    let (tx, rx) = mpsc::sync_channel::<Job>(cfg.queue.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    for i in 0..cfg.workers.max(1) {
        let (shared, rx, done) = (shared.clone(), rx.clone(), done_tx.clone());
        thread::Builder::new()
            .name(format!("worker-{i}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                worker(&shared, &rx);
                let _ = done.send(());
            })?;
    }
    drop(done_tx);
    accept_loop(&listener, &shared, tx);
    drop(listener);
    let deadline = Instant::now() + cfg.shutdown_timeout;
    for _ in 0..cfg.workers.max(1) {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            log::warn!("shutdown deadline passed with requests still running");
            break;
        }
    }
    Ok(())
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, tx: SyncSender<Job>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(5);
                pair
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ECONNABORTED…: never stop accepting; wait and retry.
                log::warn!("accept failed: {e}; retrying in {backoff:?}");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let slot = match claim(shared, peer.ip()) {
            Some(slot) => slot,
            None => {
                let limit = shared.cfg.per_client as u64;
                refuse(
                    shared,
                    stream,
                    peer,
                    &AppError::TooManyConnections { limit },
                );
                continue;
            }
        };
        shared.load.queued.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            stream,
            peer,
            accepted: Instant::now(),
            slot,
        };
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                shared.load.queued.fetch_sub(1, Ordering::SeqCst);
                refuse(shared, job.stream, peer, &AppError::Busy);
            }
        }
    }
}

fn claim(shared: &Arc<Shared>, ip: IpAddr) -> Option<ClientSlot> {
    // A poisoned map is still a correct count (every update is one step): never a 429 for it.
    let mut map = shared
        .clients
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let n = map.entry(ip).or_insert(0);
    if *n >= shared.cfg.per_client {
        return None;
    }
    *n += 1;
    Some(ClientSlot {
        shared: shared.clone(),
        ip,
    })
}

/// A fast answer from the acceptor thread, which must never block on a client.
fn refuse(shared: &Shared, stream: TcpStream, peer: SocketAddr, err: &AppError) {
    shared.refusals.note(peer.ip(), &err.to_string());
    let _ = stream.set_nonblocking(true);
    // Drain what the client already sent, so closing does not reset before it reads our answer.
    let mut scratch = [0u8; 4096];
    let mut s = &stream;
    for _ in 0..16 {
        match s.read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let mut resp = shared.service.error(err);
    resp.set_header("Retry-After", "2");
    let _ = response::write(&stream, resp, false, false);
    let _ = stream.shutdown(Shutdown::Write);
}

fn worker(shared: &Arc<Shared>, rx: &Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        shared.load.queued.fetch_sub(1, Ordering::SeqCst);
        let (peer, accepted) = (job.peer, job.accepted);
        shared.load.busy.fetch_add(1, Ordering::SeqCst);
        // Our own bugs must not kill the worker either.
        let served = catch_unwind(AssertUnwindSafe(|| {
            serve_connection(shared, job.stream, peer, accepted, Some(job.slot))
        }));
        shared.load.busy.fetch_sub(1, Ordering::SeqCst);
        if served.is_err() {
            log::error!("connection from {peer} ended by a panic");
        }
    }
}

/// What reading the next head gave.
enum Next {
    Head(Head),
    /// The client closed or idled out between requests: close quietly.
    Closed,
}

/// `slot` is the connection's claim on its client's share. It is given back *before* the
/// client can see the connection end (before the last response is written): a client that
/// reads our answer and connects again at once must find its share free.
fn serve_connection(
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    mut slot: Option<ClientSlot>,
) {
    let cfg = &shared.cfg;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(cfg.write_timeout));
    let mut conn = Conn::new(stream, cfg.head.max_head.max(8 << 10));
    let mut first = true;
    loop {
        let since = if first { accepted } else { Instant::now() };
        let head = match next_head(shared, &mut conn, first, since) {
            Ok(Next::Head(h)) => h,
            Ok(Next::Closed) | Err(HttpError::Io(_)) => return,
            Err(e) => {
                let err = AppError::Http(e);
                log::info!("{peer} bad request: {err}");
                // No more of a worker's time for a client too slow to send a head.
                let wait =
                    (!matches!(err, AppError::Http(HttpError::Timeout))).then_some(LINGER_BAD_HEAD);
                let ended = Ended {
                    slot: &mut slot,
                    method: "-",
                    path: "-",
                    head_only: false,
                };
                answer_and_close(shared, &conn, peer, ended, &err, wait);
                return;
            }
        };
        first = false;
        if !serve_request(shared, &mut conn, peer, head, &mut slot) {
            return;
        }
    }
}

/// What `answer_and_close` needs of the request it ends.
struct Ended<'a> {
    slot: &'a mut Option<ClientSlot>,
    method: &'a str,
    path: &'a str,
    head_only: bool,
}

/// Answers an error the core found itself, then closes (lingering `wait` first, if any). The
/// client's share is given back before the answer goes out.
fn answer_and_close(
    shared: &Shared,
    conn: &Conn,
    peer: SocketAddr,
    ended: Ended<'_>,
    err: &AppError,
    wait: Option<Duration>,
) {
    let resp = shared.service.error(err);
    let status = resp.status;
    drop(ended.slot.take());
    let _ = response::write(conn.stream(), resp, ended.head_only, false);
    access_log(peer, ended.method, ended.path, status, 0, 0, Instant::now());
    if let Some(wait) = wait {
        linger(conn.stream(), wait);
    }
}

/// Serves one request of a connection; false when the connection is done.
fn serve_request(
    shared: &Shared,
    conn: &mut Conn,
    peer: SocketAddr,
    head: Head,
    slot: &mut Option<ClientSlot>,
) -> bool {
    let cfg = &shared.cfg;
    let started = Instant::now();
    let head_only = head.method == "HEAD";
    // Uploads never take the last workers: short requests always find one.
    let turn = match head.framing {
        Framing::None => None,
        _ => UploadTurn::claim(shared),
    };
    if turn.is_none() && head.framing != Framing::None {
        let ended = Ended {
            slot,
            method: &head.method,
            path: &head.path,
            head_only,
        };
        answer_and_close(
            shared,
            conn,
            peer,
            ended,
            &AppError::Busy,
            Some(LINGER_TIME),
        );
        return false;
    }
    let mut req = Request {
        peer,
        body: Body::new(conn, &head, cfg.body_timeout, cfg.min_rate),
        head,
        forwarded: Default::default(),
    };
    let resp = handle(shared, &mut req);
    let (keep, must_linger) = settle_body(shared, &mut req, &resp);
    let bytes_in = req.body.bytes_read();
    let (method, path) = (req.head.method.clone(), req.head.path.clone());
    drop(req);
    drop(turn);
    let status = resp.status;
    if !keep {
        drop(slot.take());
    }
    let out = match response::write(conn.stream(), resp, head_only, keep) {
        Ok(n) => n,
        Err(e) => {
            log::info!("{peer} write failed: {e}");
            return false;
        }
    };
    access_log(peer, &method, &path, status, bytes_in, out, started);
    if !keep {
        if must_linger {
            linger(conn.stream(), LINGER_TIME);
        }
        let _ = conn.stream().shutdown(Shutdown::Both);
    }
    keep
}

/// The service's answer; a panic in it is a 500 that closes the connection.
fn handle(shared: &Shared, req: &mut Request<'_>) -> Response {
    match catch_unwind(AssertUnwindSafe(|| shared.service.handle(req))) {
        Ok(r) => r,
        Err(_) => {
            log::error!("handler panicked on {} {}", req.head.method, req.head.path);
            let mut r = shared.service.error(&AppError::Internal);
            r.close = true;
            r
        }
    }
}

/// After the handler: whether the connection can be kept (the body was read or a small rest
/// drained, nobody waits for a worker), and whether closing must linger for an unread body.
fn settle_body(shared: &Shared, req: &mut Request<'_>, resp: &Response) -> (bool, bool) {
    let cfg = &shared.cfg;
    let mut keep = req.head.keep_alive && !resp.close && !shared.stop.load(Ordering::SeqCst);
    let mut must_linger = false;
    if !req.body.is_complete() {
        let small = req.body.remaining().is_some_and(|r| r <= cfg.discard_limit);
        if req.body.continue_pending() || !small || !req.body.discard(cfg.discard_limit) {
            keep = false;
            must_linger = true;
        }
    }
    // Others are waiting for a worker: free this one instead of idling on keep-alive.
    if shared.load.queued.load(Ordering::SeqCst) > 0 {
        keep = false;
    }
    (keep, must_linger)
}

/// Waits for and parses the next request head. The first request of a connection gets the
/// header deadline from accept; later ones wait up to the keep-alive timeout for a first byte.
fn next_head(
    shared: &Shared,
    conn: &mut Conn,
    first: bool,
    accepted: Instant,
) -> Result<Next, HttpError> {
    let cfg = &shared.cfg;
    if conn.buffered().is_empty() {
        let idle_limit = if first {
            cfg.header_timeout
        } else {
            cfg.keepalive_timeout
        };
        loop {
            if !first && shared.stop.load(Ordering::SeqCst) {
                return Ok(Next::Closed);
            }
            conn.set_read_timeout(IDLE_TICK).map_err(HttpError::Io)?;
            match conn.fill_more() {
                Ok(0) => return Ok(Next::Closed),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let waited = accepted.elapsed();
                    if waited >= idle_limit {
                        return if first {
                            Err(HttpError::Timeout)
                        } else {
                            Ok(Next::Closed)
                        };
                    }
                    if !first && shared.load.queued.load(Ordering::SeqCst) > 0 {
                        return Ok(Next::Closed);
                    }
                }
                Err(e) => return Err(HttpError::Io(e)),
            }
        }
    }
    // The whole head must arrive within the header deadline, however slowly it drips.
    let deadline = if first { accepted } else { Instant::now() } + cfg.header_timeout;
    loop {
        // Tolerate the empty lines some clients send between requests (RFC 9112 §2.2).
        let skip = conn
            .buffered()
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        conn.consume(skip);
        if let Some((head, len)) = head::parse(conn.buffered(), cfg.head)? {
            conn.consume(len);
            return Ok(Next::Head(head));
        }
        conn.read_until(deadline).map_err(|_| HttpError::Timeout)?;
        match conn.fill_more() {
            Ok(0) if conn.buffered().is_empty() => return Ok(Next::Closed),
            Ok(0) => {
                return Err(HttpError::BadRequest(
                    "connection closed inside the request head",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(HttpError::Timeout),
            Err(e) => return Err(HttpError::Io(e)),
        }
    }
}

/// Half-close, then read and drop for a moment, so the peer sees our response rather than a
/// reset caused by closing with its unread bytes still in our receive buffer.
fn linger(stream: &TcpStream, time: Duration) {
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + time;
    let mut scratch = [0u8; 8192];
    let mut total = 0u64;
    let mut s = stream;
    while total < LINGER_BYTES {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
}

fn access_log(
    peer: SocketAddr,
    method: &str,
    path: &str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    started: Instant,
) {
    // The path only: query strings may carry secrets.
    log::info!(
        "{} \"{} {}\" {} in={} out={} {}ms",
        peer.ip(),
        method,
        path,
        status,
        bytes_in,
        bytes_out,
        started.elapsed().as_millis()
    );
}

#[cfg(test)]
mod tests {
    use std::panic::catch_unwind;

    /// The per-request panic isolation depends on unwinding. This runs under qemu for every ARM
    /// build (built with -Zbuild-std=std,panic_unwind): if a target were built with
    /// panic=abort or without a working unwinder, it would abort here.
    #[test]
    fn panics_unwind_on_this_target() {
        let caught = catch_unwind(|| panic!("a handler bug"));
        assert!(caught.is_err());
    }
}
