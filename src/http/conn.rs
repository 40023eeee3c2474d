//! A TCP connection with one fixed read buffer, shared by the request head and the body.
//!
//! The buffer never grows: its capacity is fixed when the connection is accepted. The head parser
//! asks for "more" (`fill_more`) until a head is complete or the buffer is full; body readers take
//! what is buffered first and then read large slices straight from the socket, bypassing the
//! buffer, so file bytes are copied once on their way to the disk.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A socket plus its fixed read buffer. Bytes in `buf[start..end]` are received but not consumed.
pub struct Conn {
    stream: TcpStream,
    /// The read timeout last set on the socket, so unchanged values cost no syscall.
    timeout: Option<Duration>,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Conn {
    pub fn new(stream: TcpStream, capacity: usize) -> Conn {
        Conn {
            stream,
            timeout: None,
            buf: vec![0u8; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes behind what is buffered (moving it to the front first). Returns the count
    /// read: 0 means end of stream, or that the buffer is already full (check `buffered().len()`).
    pub fn fill_more(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(0);
        }
        let n = read_retrying(&mut self.stream, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Reads up to `out.len()` bytes: buffered bytes first, else straight from the socket when the
    /// caller's buffer is at least half as large as ours (the multipart parser's free space
    /// usually is: one copy fewer per byte), else through our buffer.
    pub fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if out.len() >= self.buf.len() / 2 {
                return read_retrying(&mut self.stream, out);
            }
            if self.fill_more()? == 0 {
                return Ok(0);
            }
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        Ok(n)
    }

    /// Sets the socket read timeout so that a read returns no later than `deadline`.
    /// Errors with `TimedOut` if the deadline has passed already.
    pub fn read_until(&mut self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.set_read_timeout(left.max(Duration::from_millis(1)))
    }

    /// Sets the socket read timeout; a no-op (no syscall) when it is already set to `timeout`,
    /// which is the common case on the body hot path.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        if self.timeout != Some(timeout) {
            self.stream.set_read_timeout(Some(timeout))?;
            self.timeout = Some(timeout);
        }
        Ok(())
    }
}

/// `read` that retries on EINTR and reports a socket timeout uniformly as `TimedOut`.
fn read_retrying(stream: &mut TcpStream, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(out) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map_err(crate::sys::timed_out),
        }
    }
}
