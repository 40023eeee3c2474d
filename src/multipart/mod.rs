//! A streaming multipart/form-data parser (RFC 7578 / RFC 2046) over any `Read`, in one fixed
//! buffer.
//!
//! Invariants:
//! - Memory is the buffer (8 KiB in pidrop) plus the current part's headers; part data is handed
//!   out as slices of the buffer and never accumulated.
//! - A delimiter (`CRLF--boundary`) split across buffer edges or reads is found: the longest tail
//!   of the buffer that could start a delimiter is held back until more bytes arrive.
//! - A delimiter match not followed by `--` or (padding) CRLF is content, as python-multipart and
//!   the corpus expect.
//! - Anything before the first boundary other than empty lines is an error (browsers send none);
//!   the epilogue after the closing boundary is ignored.
//! - The body must end with the closing boundary: end of input anywhere else is `Truncated`.

pub mod disposition;

use std::io::{self, Read};

use crate::error::MultipartError;

/// pidrop's buffer size: the card's fixed 8 KiB.
pub const BUFFER_SIZE: usize = 8 << 10; // 8 KiB
/// RFC 2046 caps a boundary at 70 characters.
const MAX_BOUNDARY: usize = 70;
/// Spaces or tabs allowed between a boundary and its CRLF (RFC 2046 transport padding).
const MAX_PADDING: usize = 32;
const MAX_PART_HEADERS: usize = 16;

/// One part's headers, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    pub name: String,
    /// Present (possibly empty) for file parts.
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// What the parser found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Part(PartHead),
    Data(&'a [u8]),
    PartEnd,
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Headers,
    Body,
    End,
}

/// Errors from reading the source, kept apart from format errors.
#[derive(Debug)]
pub enum ParseError {
    Format(MultipartError),
    Io(io::Error),
}

impl From<MultipartError> for ParseError {
    fn from(e: MultipartError) -> Self {
        ParseError::Format(e)
    }
}

/// Where the parser's bytes come from: any `Read`, or a source that keeps its own copy of what
/// it hands out (`upload::tee::TeeBody`) and is told which bytes the parser is done with.
pub trait Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// The parser has consumed everything before body offset `offset` (before each read).
    fn release(&mut self, offset: u64) -> io::Result<()> {
        let _ = offset;
        Ok(())
    }
}

impl<R: Read> Source for R {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }
}

/// The streaming parser.
pub struct Multipart<R> {
    src: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes read from `src` so far.
    taken: u64,
    eof: bool,
    /// `CRLF--boundary`
    delim: Vec<u8>,
    state: State,
    parts: u64,
    max_parts: u64,
}

/// Extracts the boundary from a `multipart/form-data; boundary=…` Content-Type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut it = content_type.split(';');
    let mime = it.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::BadContentType(
            "Content-Type is not multipart/form-data",
        ));
    }
    for param in it {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty()
                || v.len() > MAX_BOUNDARY
                || v.bytes().any(|b| !(0x20..=0x7e).contains(&b))
            {
                return Err(MultipartError::BadContentType("invalid boundary"));
            }
            return Ok(v.to_string());
        }
    }
    Err(MultipartError::BadContentType("no boundary parameter"))
}

impl<R: Source> Multipart<R> {
    pub fn new(src: R, boundary: &str, capacity: usize, max_parts: u64) -> Multipart<R> {
        let mut delim = b"\r\n--".to_vec();
        delim.extend_from_slice(boundary.as_bytes());
        // The buffer must hold a delimiter plus what follows it, whatever the caller asked.
        let capacity = capacity.max(delim.len() + MAX_PADDING + 8);
        Multipart {
            src,
            buf: vec![0u8; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            taken: 0,
            eof: false,
            delim,
            state: State::Start,
            parts: 0,
            max_parts,
        }
    }

    /// The source, e.g. to see how much of the body was read.
    pub fn get_ref(&self) -> &R {
        &self.src
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.src
    }

    /// The body offset up to which input is consumed: the end of the last event's data.
    pub fn consumed(&self) -> u64 {
        self.taken - (self.end - self.start) as u64
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more input behind what is buffered; false at end of input or with a full buffer.
    fn fill(&mut self) -> Result<bool, ParseError> {
        if self.eof {
            return Ok(false);
        }
        self.src.release(self.consumed()).map_err(ParseError::Io)?;
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(false);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    self.taken += n as u64;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ParseError::Io(e)),
            }
        }
    }

    /// Ensures at least `n` bytes are buffered; false if the input ends first.
    fn want(&mut self, n: usize) -> Result<bool, ParseError> {
        while self.end - self.start < n {
            if !self.fill()? {
                return Ok(self.end - self.start >= n);
            }
        }
        Ok(true)
    }

    /// The next event. After `End` or an error, keeps returning the same.
    pub fn next_event(&mut self) -> Result<Event<'_>, ParseError> {
        loop {
            match self.state {
                State::End => return Ok(Event::End),
                State::Start => self.start_boundary()?,
                State::Headers => return self.headers().map(Event::Part),
                State::Body => return self.body(),
            }
        }
    }

    /// Optional empty lines, then `--boundary` and what follows it.
    fn start_boundary(&mut self) -> Result<(), ParseError> {
        loop {
            if !self.want(1)? {
                return Err(MultipartError::Malformed("empty body").into());
            }
            let skip = self
                .buffered()
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if skip == 0 {
                break;
            }
            self.start += skip;
        }
        let dash_boundary_len = self.delim.len() - 2;
        if !self.want(dash_boundary_len)? || self.buffered()[..dash_boundary_len] != self.delim[2..]
        {
            return Err(
                MultipartError::Malformed("the body does not start with the boundary").into(),
            );
        }
        match self.after_delimiter(dash_boundary_len)? {
            Some(next) => {
                self.state = next;
                Ok(())
            }
            None => Err(MultipartError::Malformed("invalid text after the first boundary").into()),
        }
    }

    /// Looks at what follows a delimiter of `len` bytes at the buffer start. Consumes it and
    /// returns the next state, or `None` if it is not a delimiter after all.
    fn after_delimiter(&mut self, len: usize) -> Result<Option<State>, ParseError> {
        self.want(len + 2)?;
        let rest = &self.buffered()[len.min(self.end - self.start)..];
        if rest.starts_with(b"--") {
            self.start += len + 2;
            return Ok(Some(State::End));
        }
        // Transport padding, then CRLF.
        let mut pad = 0;
        loop {
            if !self.want(len + pad + 2)? {
                return if self.eof {
                    Err(MultipartError::Truncated.into())
                } else {
                    Ok(None)
                };
            }
            let b = self.buffered()[len + pad];
            if b == b' ' || b == b'\t' {
                pad += 1;
                if pad > MAX_PADDING {
                    return Ok(None);
                }
                continue;
            }
            if self.buffered()[len + pad..len + pad + 2] == *b"\r\n" {
                self.start += len + pad + 2;
                return Ok(Some(State::Headers));
            }
            return Ok(None);
        }
    }

    fn headers(&mut self) -> Result<PartHead, ParseError> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
            match httparse::parse_headers(&self.buf[self.start..self.end], &mut slots) {
                Ok(httparse::Status::Complete((len, headers))) => {
                    let head = part_head(headers)?;
                    self.start += len;
                    self.parts += 1;
                    if self.parts > self.max_parts {
                        return Err(MultipartError::TooManyParts {
                            limit: self.max_parts,
                        }
                        .into());
                    }
                    self.state = State::Body;
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {
                    if !self.fill()? {
                        if self.eof {
                            return Err(MultipartError::Truncated.into());
                        }
                        let limit = (self.buf.len() - self.delim.len()) as u64;
                        return Err(MultipartError::PartHeadersTooLarge { limit }.into());
                    }
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(MultipartError::Malformed("too many part headers").into())
                }
                Err(_) => return Err(MultipartError::Malformed("invalid part header").into()),
            }
        }
    }

    fn body(&mut self) -> Result<Event<'_>, ParseError> {
        loop {
            let found = memchr::memmem::find(self.buffered(), &self.delim);
            match found {
                Some(0) => {
                    match self.after_delimiter(self.delim.len())? {
                        Some(next) => {
                            self.state = next;
                            return Ok(Event::PartEnd);
                        }
                        None => {
                            // A look-alike: its first byte is content.
                            let s = self.start;
                            self.start += 1;
                            return Ok(Event::Data(&self.buf[s..s + 1]));
                        }
                    }
                }
                Some(i) => {
                    let s = self.start;
                    self.start += i;
                    return Ok(Event::Data(&self.buf[s..s + i]));
                }
                None => {
                    let keep = partial_suffix(self.buffered(), &self.delim);
                    let safe = self.end - self.start - keep;
                    if safe > 0 {
                        let s = self.start;
                        self.start += safe;
                        return Ok(Event::Data(&self.buf[s..s + safe]));
                    }
                    if !self.fill()? {
                        return Err(MultipartError::Truncated.into());
                    }
                }
            }
        }
    }
}

/// The length of the longest suffix of `buf` that is a proper prefix of `delim`.
fn partial_suffix(buf: &[u8], delim: &[u8]) -> usize {
    let max = (delim.len() - 1).min(buf.len());
    let tail = &buf[buf.len() - max..];
    // Candidates start at a CR (the delimiter's first byte).
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\r', &tail[from..]) {
        let at = from + off;
        if delim.starts_with(&tail[at..]) {
            return tail.len() - at;
        }
        from = at + 1;
    }
    0
}

fn part_head(headers: &[httparse::Header<'_>]) -> Result<PartHead, MultipartError> {
    let mut disposition = None;
    let mut content_type = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(disposition::parse(h.value).ok_or(MultipartError::Malformed(
                "Content-Disposition is not form-data",
            ))?);
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(String::from_utf8_lossy(h.value).trim().to_string());
        } else if h.name.eq_ignore_ascii_case("content-transfer-encoding") {
            let v = String::from_utf8_lossy(h.value);
            let v = v.trim();
            if !["7bit", "8bit", "binary"]
                .iter()
                .any(|ok| v.eq_ignore_ascii_case(ok))
            {
                return Err(MultipartError::UnsupportedEncoding);
            }
        }
    }
    let d = disposition.ok_or(MultipartError::Malformed(
        "a part has no Content-Disposition",
    ))?;
    let name = d
        .name
        .ok_or(MultipartError::Malformed("a part has no name"))?;
    Ok(PartHead {
        name,
        filename: d.filename,
        content_type,
    })
}

#[cfg(test)]
mod tests;
