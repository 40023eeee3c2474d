//! Responses: a status, checked headers and a body that is empty, bytes, or a slice of a file.
//!
//! Header values are checked when written: a value holding CR, LF or another control byte is
//! dropped (and logged), so user data can never split a response. File bodies go out with
//! `sendfile(2)`, straight from the page cache to the socket.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;

use crate::time::http_date;

/// A response body.
pub enum Payload {
    Empty,
    Bytes(Cow<'static, [u8]>),
    File {
        file: File,
        start: u64,
        len: u64,
    },
    /// `len` bytes read from elsewhere as they are sent (a stored file in an S3 bucket).
    Reader {
        body: Box<dyn std::io::Read + Send>,
        len: u64,
    },
}

impl Payload {
    pub fn size(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } | Payload::Reader { len, .. } => *len,
        }
    }
}

/// A response as handlers build it.
pub struct Response {
    pub status: u16,
    headers: Vec<(Cow<'static, str>, String)>,
    pub payload: Payload,
    /// Ask the server to close the connection after this response.
    pub close: bool,
    /// The error code when this answers an error (counted by `/metrics`).
    pub code: Option<&'static str>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            payload: Payload::Empty,
            close: false,
            code: None,
        }
    }

    pub fn with_body(
        status: u16,
        content_type: &str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Response {
        let mut r = Response::new(status);
        r.payload = Payload::Bytes(body.into());
        r.header("Content-Type", content_type)
    }

    pub fn json(status: u16, body: String) -> Response {
        Response::with_body(status, "application/json", body.into_bytes())
    }

    /// Adds a header (builder style).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((Cow::Borrowed(name), value.into()));
        self
    }

    /// A header's value, if set.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets a header, replacing any earlier value of the same name.
    pub fn set_header(&mut self, name: &'static str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((Cow::Borrowed(name), value.into()));
    }
}

/// A header value that cannot end the header or the line: visible ASCII, space, tab, and
/// UTF-8 bytes (obs-text); no CR, LF, NUL or other control bytes.
pub fn is_safe_header_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        460 => "Checksum Mismatch",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// Writes `resp` to the socket. `head_only` is for HEAD requests; `keep_alive` picks the
/// `Connection` header. Returns the body bytes written.
pub fn write(
    stream: &TcpStream,
    resp: Response,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<u64> {
    let mut head = String::with_capacity(256);
    head.push_str(&format!(
        "HTTP/1.1 {} {}\r\n",
        resp.status,
        reason(resp.status)
    ));
    head.push_str(&format!(
        "Date: {}\r\n",
        http_date(std::time::SystemTime::now())
    ));
    for (name, value) in &resp.headers {
        if is_safe_header_value(value) {
            head.push_str(&format!("{name}: {value}\r\n"));
        } else {
            log::error!("dropped header {name}: its value holds control characters");
        }
    }
    let len = resp.payload.size();
    let bodyless = resp.status == 204 || resp.status == 304 || resp.status < 200;
    if !bodyless {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = stream;
    if head_only || bodyless {
        out.write_all(head.as_bytes())?;
        return Ok(0);
    }
    match resp.payload {
        Payload::Empty => {
            out.write_all(head.as_bytes())?;
            Ok(0)
        }
        Payload::Bytes(b) => {
            // One write for small bodies: fewer packets for the JSON replies.
            let mut all = head.into_bytes();
            all.extend_from_slice(&b);
            out.write_all(&all)?;
            Ok(b.len() as u64)
        }
        Payload::File { file, start, len } => {
            out.write_all(head.as_bytes())?;
            let sent = crate::sys::send_file(stream, &file, start, len)?;
            if sent != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while sent",
                ));
            }
            Ok(sent)
        }
        Payload::Reader { body, len } => {
            out.write_all(head.as_bytes())?;
            let sent = io::copy(&mut Read::take(body, len), &mut out)?;
            if sent != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stored file ended early while sent",
                ));
            }
            Ok(sent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_with_line_breaks_are_unsafe() {
        assert!(is_safe_header_value("attachment; filename=\"a b.txt\""));
        assert!(is_safe_header_value("UTF-8''%E2%9C%93"));
        assert!(!is_safe_header_value("a\r\nSet-Cookie: x=1"));
        assert!(!is_safe_header_value("a\nb"));
        assert!(!is_safe_header_value("a\rb"));
        assert!(!is_safe_header_value("a\0b"));
    }
}
