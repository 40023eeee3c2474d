//! The client side of HTTP/1.1 for talking to an S3 server (on a `Conn`: plain TCP, or TLS in
//! the `s3-tls` build — `endpoint.rs`): one
//! connection per request (`Connection: close` — no pool to go stale, and no keep-alive quirk
//! after an empty PUT), the response head parsed with the server's own `httparse`, bodies by
//! `Content-Length`, chunked (the server's decoder) or to the end. A request body is written
//! by the caller as it arrives (`Sending`), so an upload part goes from the socket it came in
//! on to the one it leaves by without being held in memory.

use std::io::{self, BufRead, BufReader, Read, Write};

use super::endpoint::{Conn, Endpoint};
use crate::http::chunked::ChunkedDecoder;

/// A response head larger than this is refused.
const HEAD_LIMIT: usize = 64 * 1024;
/// Error bodies (XML) are read up to this much.
pub const SMALL_BODY: u64 = 1 << 20;

/// A response: status, headers, and the body to read.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: BodyReader,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole body, up to `limit` bytes (more is an error).
    pub fn read_all(&mut self, limit: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        (&mut self.body).take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(io::Error::other("response body too large"));
        }
        Ok(out)
    }
}

/// How a response body ends.
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder, Vec<u8>, usize),
    ToEnd,
}

/// A response body as a `Read`.
pub struct BodyReader {
    conn: BufReader<Conn>,
    framing: Framing,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match &mut self.framing {
            Framing::Length(0) => Ok(0),
            Framing::Length(left) => {
                let want = usize::try_from(*left).unwrap_or(usize::MAX).min(out.len());
                let n = self.conn.read(&mut out[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::ToEnd => self.conn.read(out),
            Framing::Chunked(dec, buf, at) => loop {
                if dec.is_done() {
                    return Ok(0);
                }
                if *at == buf.len() {
                    buf.clear();
                    *at = 0;
                    let chunk = self.conn.fill_buf()?;
                    if chunk.is_empty() {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    buf.extend_from_slice(chunk);
                    let n = chunk.len();
                    self.conn.consume(n);
                }
                let p = dec.decode(&buf[*at..]).map_err(io::Error::other)?;
                let data = &buf[*at + p.data.0..*at + p.data.1];
                let n = data.len().min(out.len());
                out[..n].copy_from_slice(&data[..n]);
                let unused = data.len() - n;
                if unused > 0 {
                    dec.unread(unused as u64);
                }
                *at += p.consumed - unused;
                if n > 0 {
                    return Ok(n);
                }
            },
        }
    }
}

/// A request whose head is sent and whose body the caller writes (exactly the declared
/// length), then `finish`es to read the response.
pub struct Sending {
    stream: Conn,
    left: u64,
    /// A HEAD request: its response has no body, whatever its Content-Length says.
    head_only: bool,
}

impl Write for Sending {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(data.len());
        if n == 0 && !data.is_empty() {
            return Err(io::Error::other("more body than declared"));
        }
        let n = self.stream.write(&data[..n])?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Sending {
    /// Bytes of the body still to write.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// The response, once the whole body is written.
    pub fn finish(mut self) -> io::Result<Reply> {
        if self.left > 0 {
            return Err(io::Error::other("request body shorter than declared"));
        }
        self.stream.flush()?;
        read_reply(self.stream, self.head_only)
    }
}

/// Connects to the endpoint and sends a request head; `head` holds the request line and
/// headers, without the blank line.
pub fn send(endpoint: &Endpoint, head: &str, body_len: u64) -> io::Result<Sending> {
    let mut stream = endpoint.connect()?;
    stream.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())?;
    Ok(Sending {
        stream,
        left: body_len,
        head_only: head.starts_with("HEAD "),
    })
}

fn read_reply(stream: Conn, head_only: bool) -> io::Result<Reply> {
    let mut conn = BufReader::with_capacity(16 * 1024, stream);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let n = conn.read_until(b'\n', &mut head)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if head.len() > HEAD_LIMIT {
            return Err(io::Error::other("response head too large"));
        }
    }
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut slots);
    parsed
        .parse(&head)
        .map_err(|e| io::Error::other(format!("bad response head: {e}")))?;
    let status = parsed.code.unwrap_or(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
    };
    let framing = if head_only {
        Framing::Length(0)
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked(ChunkedDecoder::new(), Vec::new(), 0)
    } else if let Some(len) = find("content-length") {
        Framing::Length(
            len.trim()
                .parse()
                .map_err(|_| io::Error::other("bad Content-Length"))?,
        )
    } else if status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        Framing::ToEnd
    };
    Ok(Reply {
        status,
        headers,
        body: BodyReader { conn, framing },
    })
}
