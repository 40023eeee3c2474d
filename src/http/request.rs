//! What a handler gets: the validated head, the peer address, and a body `Read` that yields
//! exactly the body (Content-Length or chunked), counts it, and sends `100 Continue` only on the
//! first read — so a handler that refuses first (413, 415, 507…) never receives the body.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use super::chunked::ChunkedDecoder;
use super::conn::Conn;
use super::head::{Framing, Head};
use crate::error::{AppError, Fault, HttpError};
use crate::sys::Pipe;

/// One request, as handed to the handler.
pub struct Request<'c> {
    pub head: Head,
    /// The client's address: the TCP peer, or — behind a trusted reverse proxy — the address
    /// its `X-Forwarded-For` names (`proxy.rs` sets it before routing).
    pub peer: std::net::SocketAddr,
    pub body: Body<'c>,
    /// What a trusted reverse proxy said of the original request.
    pub forwarded: Forwarded,
}

/// What a trusted proxy's `X-Forwarded-Proto` and `X-Forwarded-Host` said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The client spoke HTTPS to the proxy (cookies get `Secure`, URLs `https://`).
    pub secure: bool,
    /// The host name the client asked the proxy for.
    pub host: Option<String>,
}

impl Request<'_> {
    pub fn method(&self) -> &str {
        &self.head.method
    }
    pub fn path(&self) -> &str {
        &self.head.path
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
    /// The host the client asked for: a trusted proxy's `X-Forwarded-Host`, else `Host`.
    pub fn host(&self) -> Option<&str> {
        self.forwarded
            .host
            .as_deref()
            .or_else(|| self.header("host"))
    }
}

enum Kind {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
}

/// The request body as a `Read`. Read errors carry an `HttpError` inside the `io::Error`, so
/// callers can tell a client's fault (bad chunk, timeout) from a disk error.
pub struct Body<'c> {
    conn: &'c mut Conn,
    kind: Kind,
    read: u64,
    continue_pending: bool,
    idle: Duration,
    failed: bool,
    rate: RateWindow,
}

/// The slowest a body may arrive: at least `bytes` in every `window`. A client that trickles
/// a byte now and then, each within the idle timeout, would otherwise hold a worker forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRate {
    pub bytes: u64,
    pub window: Duration,
}

/// Bytes seen since the current window began.
struct RateWindow {
    min: MinRate,
    since: Instant,
    at_start: u64,
}

impl RateWindow {
    /// After each read: at a window's end, too few bytes in it is a timeout (408).
    fn check(&mut self, read: u64) -> io::Result<()> {
        if self.since.elapsed() < self.min.window {
            return Ok(());
        }
        if read - self.at_start < self.min.bytes {
            return Err(io::Error::other(HttpError::TooSlow));
        }
        self.since = Instant::now();
        self.at_start = read;
        Ok(())
    }
}

impl<'c> Body<'c> {
    pub(super) fn new(conn: &'c mut Conn, head: &Head, idle: Duration, min: MinRate) -> Body<'c> {
        let kind = match head.framing {
            Framing::None => Kind::Length { remaining: 0 },
            Framing::Length(n) => Kind::Length { remaining: n },
            Framing::Chunked => Kind::Chunked(ChunkedDecoder::new()),
        };
        let continue_pending = head.expect_continue && head.framing != Framing::None;
        Body {
            conn,
            kind,
            read: 0,
            continue_pending,
            idle,
            failed: false,
            rate: RateWindow {
                min,
                since: Instant::now(),
                at_start: 0,
            },
        }
    }

    /// The declared length, when the body has one.
    pub fn declared_len(&self) -> Option<u64> {
        match self.kind {
            Kind::Length { remaining } => Some(remaining + self.read),
            Kind::Chunked(_) => None,
        }
    }

    /// Body bytes delivered so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Whether the whole body has been read (the connection is at the next request).
    pub fn is_complete(&self) -> bool {
        !self.failed
            && match &self.kind {
                Kind::Length { remaining } => *remaining == 0,
                Kind::Chunked(d) => d.is_done(),
            }
    }

    /// Whether the client was told to send the body yet (false: it may be holding it back).
    pub fn continue_pending(&self) -> bool {
        self.continue_pending
    }

    /// Bytes still expected when the length is known.
    pub fn remaining(&self) -> Option<u64> {
        match self.kind {
            Kind::Length { remaining } => Some(remaining),
            Kind::Chunked(_) => None,
        }
    }

    fn send_continue(&mut self) -> io::Result<()> {
        if self.continue_pending {
            self.continue_pending = false;
            self.conn
                .stream()
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        Ok(())
    }

    fn read_inner(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.conn.set_read_timeout(self.idle)?;
        match &mut self.kind {
            Kind::Length { remaining } => {
                if *remaining == 0 || out.is_empty() {
                    return Ok(0);
                }
                let want = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(out.len());
                let n = self.conn.read_into(&mut out[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *remaining -= n as u64;
                Ok(n)
            }
            Kind::Chunked(dec) => loop {
                if dec.is_done() || out.is_empty() {
                    return Ok(0);
                }
                if self.conn.buffered().is_empty() && self.conn.fill_more()? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let buffered = self.conn.buffered();
                let p = dec.decode(buffered).map_err(io::Error::other)?;
                let n = (p.data.1 - p.data.0).min(out.len());
                out[..n].copy_from_slice(&buffered[p.data.0..p.data.0 + n]);
                // Data we could not hand out stays buffered for the next call.
                let unused = (p.data.1 - p.data.0) - n;
                if unused > 0 {
                    // Put back the bytes we did not copy: the decoder already counted them.
                    dec.unread(unused as u64);
                }
                self.conn.consume(p.consumed - unused);
                if n > 0 {
                    return Ok(n);
                }
            },
        }
    }

    /// Reads and drops up to `limit` bytes of what is left; true if the body ended within it.
    pub fn discard(&mut self, limit: u64) -> bool {
        let mut scratch = [0u8; 4096];
        let mut left = limit;
        while !self.is_complete() {
            if left == 0 {
                return false;
            }
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(scratch.len());
            match self.read(&mut scratch[..want]) {
                Ok(0) => return self.is_complete(),
                Ok(n) => left -= n as u64,
                Err(_) => return false,
            }
        }
        true
    }
}

impl Read for Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.tracked(|body| body.read_inner(out))
    }
}

impl Body<'_> {
    /// Runs one read step: refuses after a failure, sends `100 Continue` first if pending,
    /// counts what was delivered, and remembers a failure.
    fn tracked(&mut self, step: impl FnOnce(&mut Self) -> io::Result<usize>) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(HttpError::BadRequest(
                "body already failed",
            )));
        }
        let r = self.send_continue().and_then(|_| step(self));
        let r = r.and_then(|n| {
            self.read += n as u64;
            self.rate.check(self.read).map(|_| n)
        });
        match r {
            Ok(n) => Ok(n),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Moves up to `max` body bytes from the socket into `pipe` without copying them through user
    /// space, for a handler that sends them on to a file. `None` when this body cannot: it is
    /// chunked, or bytes are already buffered (read those with `read` first). `Some(0)` at the
    /// end of the body; a peer that closes early is `UnexpectedEof`, as for `read`.
    pub fn splice_into(&mut self, pipe: &Pipe, max: usize) -> io::Result<Option<usize>> {
        let Kind::Length { remaining } = self.kind else {
            return Ok(None);
        };
        if !self.conn.buffered().is_empty() {
            return Ok(None);
        }
        if remaining == 0 || max == 0 {
            return Ok(Some(0));
        }
        let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(max);
        let idle = self.idle;
        let n = self.tracked(|body| {
            body.conn.set_read_timeout(idle)?;
            match pipe.fill_from(body.conn.stream(), want)? {
                0 => Err(io::ErrorKind::UnexpectedEof.into()),
                n => Ok(n),
            }
        })?;
        if let Kind::Length { remaining } = &mut self.kind {
            *remaining -= n as u64;
        }
        Ok(Some(n))
    }
}

/// Turns a body read error into what it stands for: the client's protocol error (4xx), or a
/// fault of ours (500, logged).
pub fn body_error(e: io::Error) -> AppError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HttpError::Timeout.into(),
        io::ErrorKind::Other => match e.into_inner() {
            Some(inner) => match inner.downcast::<HttpError>() {
                Ok(h) => (*h).into(),
                Err(other) => match other.downcast::<Fault>() {
                    Ok(f) => AppError::Fault(*f),
                    Err(other) => HttpError::Io(io::Error::other(other)).into(),
                },
            },
            None => HttpError::Io(io::ErrorKind::Other.into()).into(),
        },
        _ => HttpError::Io(e).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own faults on the body path are 500; the client's are 4xx.
    #[test]
    fn body_errors_say_whose_fault_they_are() {
        let ours = body_error(crate::error::fault("file data out of order"));
        assert_eq!(ours.status(), 500);
        assert!(ours.to_string().contains("file data out of order"));
        let pipe = io::Error::other(Fault::with("a tee pipe", io::ErrorKind::OutOfMemory.into()));
        assert_eq!(body_error(pipe).status(), 500);
        let theirs = body_error(io::Error::other(HttpError::BadChunk("x")));
        assert_eq!(theirs.status(), 400);
        assert_eq!(
            body_error(io::ErrorKind::ConnectionReset.into()).status(),
            400
        );
        assert_eq!(body_error(io::ErrorKind::TimedOut.into()).status(), 408);
    }
}
