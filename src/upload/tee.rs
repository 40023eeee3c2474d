//! A request body that a parser scans in user space while the bytes it finds to be file data
//! reach the file without passing through user space at all.
//!
//! Why: a multipart body must be scanned byte by byte for its boundary, so it cannot simply be
//! spliced like a PUT body; read into the parser's 8 KiB buffer and written from there, every
//! byte is copied three times on its way to the disk (bench/PROFILE.md). Here the socket is
//! spliced into a *scan* pipe, `tee(2)` duplicates each batch (page references, no copy) into a
//! *hold* pipe, and the parser reads the scan pipe in its 8 KiB pieces. The hold pipe carries
//! the same bytes in the same order: what the parser finds to be file data is kept there and
//! spliced into the file a batch at a time; everything else (boundaries, part headers, form
//! fields, refused files) is read out and dropped.
//!
//! Invariants:
//! - Every byte handed to the parser stays in the hold pipe, in stream order, until it is
//!   released or flushed: `released` is the body offset of the hold pipe's first byte.
//! - Kept file data (`pending`) is always at the front of the hold pipe, contiguous.
//! - `tee` copies from the front of the scan pipe, so a batch is duplicated only once no earlier
//!   byte of it is waiting, and the parser never reads a byte not yet in the hold pipe.
//! - No new batch is taken from the socket while file data is kept: the caller flushes when
//!   fewer bytes are duplicated than one parser step may read (`flush_due`). So when a batch
//!   comes in, the hold pipe holds only the parser's buffer (≤ 8 KiB).
//! - Without pipes (a chunked or short body, or none to be had) it is a plain pass-through.

use std::io::{self, Read};

use crate::error::{fault, Fault};
use crate::http::request::Body;
use crate::multipart::{self, BUFFER_SIZE};
use crate::sys::Pipe;

/// An error on one of our own pipes is our fault (500), never the client's.
fn pipe_fault(e: io::Error) -> io::Error {
    io::Error::other(Fault::with("a tee pipe", e))
}

/// The most one parser step (`next_event`) reads: its buffer, plus a delimiter with padding it
/// consumes along the way. Kept file data is flushed before fewer bytes than this are left.
const STEP_READS_AT_MOST: usize = 2 * BUFFER_SIZE;
/// Kept file data is flushed once this much is kept, whatever else: large enough that each
/// splice into the file is one of few (each write call into ext4 costs ~4.5 µs here), small
/// enough to leave room in the hold pipe for the next batch.
const FLUSH_AT: usize = 512 << 10;
/// The most the hold pipe may have to hold when it is rewritten compactly (see `compact`): the
/// parser's buffer and a little more; more would mean a caller broke the invariants.
const MAX_COMPACT: usize = 4 * BUFFER_SIZE;

/// Smaller pipes (the system's pipe budget for the user is spent: the kernel then hands out
/// two-page pipes) are not worth it, and could not hold a compacted parser buffer and a batch.
const MIN_PIPE: usize = 64 << 10;

struct Pipes {
    scan: Pipe,
    hold: Pipe,
    /// Bytes in the scan pipe.
    in_scan: usize,
    /// Bytes at the front of the scan pipe that are already duplicated into the hold pipe.
    teed: usize,
    /// Bytes in the hold pipe.
    held: usize,
    /// Bytes at the front of the hold pipe kept as file data.
    pending: usize,
    /// The body offset of the hold pipe's first byte.
    released: u64,
}

/// The body, read through a scan pipe and a hold pipe (or directly, without them).
pub struct TeeBody<'b, 'c> {
    body: &'b mut Body<'c>,
    pipes: Option<Pipes>,
}

impl<'b, 'c> TeeBody<'b, 'c> {
    /// Reads `body` through two pipes when `hold` is true and the pipes can be had; else
    /// directly.
    pub fn new(body: &'b mut Body<'c>, hold: bool) -> TeeBody<'b, 'c> {
        let pipes = if hold {
            match (Pipe::new(), Pipe::new()) {
                (Ok(scan), Ok(hold)) if scan.capacity().min(hold.capacity()) >= MIN_PIPE => {
                    Some(Pipes {
                        scan,
                        hold,
                        in_scan: 0,
                        teed: 0,
                        held: 0,
                        pending: 0,
                        released: 0,
                    })
                }
                _ => None,
            }
        } else {
            None
        };
        TeeBody { body, pipes }
    }

    /// Whether file data must be kept from the hold pipe (`keep`, `flush`) rather than written
    /// from the parser's buffer.
    pub fn holds(&self) -> bool {
        self.pipes.is_some()
    }

    /// Body bytes received from the client so far (some may still be waiting in the pipes).
    pub fn bytes_read(&self) -> u64 {
        self.body.bytes_read()
    }

    /// The next bytes for the parser: at most `out.len()`, 0 at the end of the body.
    pub fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(p) = self.pipes.as_mut() else {
            return self.body.read(out);
        };
        if out.is_empty() {
            return Ok(0);
        }
        if p.teed == 0 && p.in_scan == 0 {
            if p.pending > 0 {
                return Err(fault("a new batch while file data is kept"));
            }
            let room = p.hold.capacity().saturating_sub(p.held);
            match self
                .body
                .splice_into(&p.scan, room.min(p.scan.capacity()))?
            {
                Some(0) => return Ok(0),
                Some(n) => p.in_scan = n,
                None => {
                    // Bytes that arrived with the head sit in the connection's buffer: they are
                    // read from there and copied into the hold pipe.
                    let n = self.body.read(out)?;
                    p.hold_copy(&out[..n])?;
                    return Ok(n);
                }
            }
        }
        p.read_scanned(out)
    }

    /// Drops held bytes up to body offset `upto` (the parser is done with them). Offsets
    /// already released, and kept file data, are left alone.
    pub fn release(&mut self, upto: u64) -> io::Result<()> {
        let Some(p) = self.pipes.as_mut() else {
            return Ok(());
        };
        if p.pending > 0 {
            if upto > p.released + p.pending as u64 {
                return Err(fault("release past kept file data"));
            }
            return Ok(());
        }
        let mut scratch = [0u8; BUFFER_SIZE];
        while p.released < upto {
            let left = usize::try_from(upto - p.released).unwrap_or(usize::MAX);
            if left > p.held {
                return Err(fault("release past what the hold pipe holds"));
            }
            let want = left.min(scratch.len());
            let n = p.hold.read_out(&mut scratch[..want]).map_err(pipe_fault)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            p.held -= n;
            p.released += n as u64;
        }
        Ok(())
    }

    /// Keeps the `n` bytes that end at body offset `end` as file data, behind the file data
    /// kept already (held bytes before the first are dropped).
    pub fn keep(&mut self, end: u64, n: usize) -> io::Result<()> {
        let start = end.saturating_sub(n as u64);
        if self.pipes.as_ref().is_some_and(|p| p.pending == 0) {
            self.release(start)?;
        }
        let p = self.pipes.as_mut().ok_or_else(|| fault("no hold pipe"))?;
        if start != p.released + p.pending as u64 || p.pending + n > p.held {
            return Err(fault("file data out of order"));
        }
        p.pending += n;
        Ok(())
    }

    /// Whether the kept file data should go to the file now: there is a lot of it, or the
    /// parser may soon need a new batch (which must not come in while data is kept).
    pub fn flush_due(&self) -> bool {
        self.pipes.as_ref().is_some_and(|p| {
            p.pending > 0 && (p.pending >= FLUSH_AT || p.teed < STEP_READS_AT_MOST)
        })
    }

    /// The hold pipe and the count of kept bytes at its front, which the caller must move out
    /// of it (all of them); `None` when nothing is kept.
    pub fn flush(&mut self) -> Option<(&Pipe, usize)> {
        let p = self.pipes.as_mut()?;
        let n = std::mem::take(&mut p.pending);
        if n == 0 {
            return None;
        }
        // Accounted before the caller moves them: if that fails, the upload is abandoned
        // together with its pipes.
        p.held -= n;
        p.released += n as u64;
        Some((&p.hold, n))
    }

    /// Forgets the kept file data (its file was refused): it is dropped with the next release.
    pub fn drop_kept(&mut self) {
        if let Some(p) = self.pipes.as_mut() {
            p.pending = 0;
        }
    }
}

impl Pipes {
    /// Hands out the next bytes of the scan pipe (it must hold some), each duplicated into the
    /// hold pipe before it is read.
    fn read_scanned(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.teed == 0 {
            self.tee()?;
        }
        let want = out.len().min(self.teed);
        let n = self.scan.read_out(&mut out[..want]).map_err(pipe_fault)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.teed -= n;
        self.in_scan -= n;
        Ok(n)
    }

    /// Duplicates the front of the scan pipe into the hold pipe, making the hold pipe's
    /// contents compact first if it has no free slot left.
    fn tee(&mut self) -> io::Result<()> {
        let mut n = self
            .scan
            .tee_into(&self.hold, self.in_scan)
            .map_err(pipe_fault)?;
        if n == 0 {
            self.compact()?;
            n = self
                .scan
                .tee_into(&self.hold, self.in_scan)
                .map_err(pipe_fault)?;
            if n == 0 {
                return Err(fault("the hold pipe takes no more"));
            }
        }
        self.teed = n;
        self.held += n;
        Ok(())
    }

    /// A pipe's capacity is counted in slots, one per piece of data put in: a client sending a
    /// byte at a time fills all of them with a few hundred bytes. Reading what is held (at most
    /// the parser's buffer, since no file data is kept when a batch comes in) and writing it
    /// back packs it into whole pages.
    fn compact(&mut self) -> io::Result<()> {
        if self.held > MAX_COMPACT || self.pending > 0 {
            return Err(fault("the hold pipe holds more than the parser can"));
        }
        let mut buf = vec![0u8; self.held];
        let mut got = 0;
        while got < buf.len() {
            match self.hold.read_out(&mut buf[got..]).map_err(pipe_fault)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            }
        }
        self.hold.push(&buf).map_err(pipe_fault)
    }

    /// Copies bytes the parser got from elsewhere into the hold pipe. Only bytes that came
    /// with the head take this way, before any batch: a few pages at most.
    fn hold_copy(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() > self.hold.capacity().saturating_sub(self.held) {
            return Err(fault("the hold pipe is full"));
        }
        self.hold.push(data).map_err(pipe_fault)?;
        self.held += data.len();
        Ok(())
    }
}

impl multipart::Source for TeeBody<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TeeBody::read(self, buf)
    }
    fn release(&mut self, offset: u64) -> io::Result<()> {
        TeeBody::release(self, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    /// A pipe holding `data` as one buffer per `piece` bytes, the way a client sending small
    /// segments fills it (each splice from a file adds a buffer of its own).
    fn pipe_in_pieces(data: &[u8], piece: usize, tag: &str) -> Pipe {
        let (mut file, path) = crate::sys::scratch_file(&format!("tee-{tag}"));
        file.write_all(data).expect("write");
        file.rewind().expect("rewind");
        let pipe = Pipe::new().expect("pipe");
        for chunk in data.chunks(piece) {
            assert_eq!(
                pipe.fill_from(&file, chunk.len()).expect("splice"),
                chunk.len()
            );
        }
        let _ = std::fs::remove_file(&path);
        pipe
    }

    #[test]
    fn bytes_in_many_small_pieces_reach_the_parser_and_the_hold_pipe_in_order() {
        // The hold pipe starts with 200 three-byte buffers (what a parser holds after a
        // trickle), the scan pipe with 200 five-byte ones: the first tee can duplicate only
        // part of the batch, and later ones find no free slot until the hold pipe is repacked.
        let held: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        let batch: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut p = Pipes {
            scan: pipe_in_pieces(&batch, 5, "scan"),
            hold: pipe_in_pieces(&held, 3, "hold"),
            in_scan: batch.len(),
            teed: 0,
            held: held.len(),
            pending: 0,
            released: 0,
        };
        assert!(
            p.hold.capacity() >= MIN_PIPE,
            "1 MiB pipes are available here"
        );
        let mut parsed = Vec::new();
        let mut out = [0u8; BUFFER_SIZE];
        let mut partial = false;
        while p.in_scan > 0 {
            let n = p.read_scanned(&mut out).expect("read");
            partial |= n < batch.len() && parsed.is_empty();
            parsed.extend_from_slice(&out[..n]);
        }
        assert!(partial, "the first tee duplicated only part of the batch");
        assert_eq!(parsed, batch);
        let mut in_hold = vec![0u8; p.held];
        let mut got = 0;
        while got < in_hold.len() {
            got += p.hold.read_out(&mut in_hold[got..]).expect("hold");
        }
        assert_eq!(&in_hold[..held.len()], &held[..]);
        assert_eq!(&in_hold[held.len()..], &batch[..]);
    }
}
