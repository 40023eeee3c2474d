//! A strict, bounded decoder for `Transfer-Encoding: chunked` (RFC 9112 §7.1).
//!
//! It is a pure state machine over byte slices, so it can be fed any split of the input (tests
//! feed every split; a fuzz target feeds random ones). It keeps no buffer of its own: the size
//! line and trailers are checked byte by byte and counted against fixed limits, so no input can
//! make it allocate. Bare LF, a size that overflows `u64`, a missing CRLF after the data, or
//! control bytes in an extension are errors.

use crate::error::HttpError;

/// The longest chunk-size line we accept, extensions included.
pub const MAX_SIZE_LINE: u32 = 1024;
/// The largest trailer section we read (and discard).
pub const MAX_TRAILERS: u32 = 8 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size {
        digits: u32,
    },
    /// Whitespace after the digits: only more of it, `;` or CR may follow (RFC 9112 §7.1.1).
    SizeWs,
    /// Inside `;ext` (after the first `;`).
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (an empty one ends the body).
    TrailerStart,
    TrailerLine,
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Decoder state for one body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line: u32,
    trailers: u32,
}

/// What one call made of the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input used up (framing and data).
    pub consumed: usize,
    /// Where the body data is inside the input: `input[data.0..data.1]`.
    pub data: (usize, usize),
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            line: 0,
            trailers: 0,
        }
    }

    /// Gives back `n` data bytes the caller could not take: they will be returned again.
    pub fn unread(&mut self, n: u64) {
        if n > 0 {
            self.size += n;
            self.state = State::Data;
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing bytes until it reaches data (returned as a range of `input`), the end of
    /// the input, or the end of the body.
    pub fn decode(&mut self, input: &[u8]) -> Result<Progress, HttpError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let n = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Progress {
                    consumed: i + n,
                    data: (i, i + n),
                });
            }
            if self.state == State::Done {
                break;
            }
            self.step(input[i])?;
            i += 1;
        }
        Ok(Progress {
            consumed: i,
            data: (i, i),
        })
    }

    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        use State::*;
        if matches!(self.state, Size { .. } | SizeWs | Ext | SizeLf) {
            self.line += 1;
            if self.line > MAX_SIZE_LINE {
                return Err(HttpError::BadChunk("chunk size line too long"));
            }
        }
        if matches!(self.state, TrailerStart | TrailerLine | TrailerLf { .. }) {
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(HttpError::BadChunk("trailers too large"));
            }
        }
        self.state = match (self.state, b) {
            (Size { digits }, _) if b.is_ascii_hexdigit() => {
                if self.size > (u64::MAX >> 4) {
                    return Err(HttpError::BadChunk("chunk size overflows"));
                }
                let v = (b as char).to_digit(16).unwrap_or(0);
                self.size = (self.size << 4) | u64::from(v);
                Size { digits: digits + 1 }
            }
            (Size { digits: 0 }, _) => return Err(HttpError::BadChunk("missing chunk size")),
            (Size { .. }, b'\r') => SizeLf,
            (Size { .. } | SizeWs, b' ' | b'\t') => SizeWs,
            (Size { .. } | SizeWs, b';') => Ext,
            (SizeWs, b'\r') => SizeLf,
            (Ext, b'\r') => SizeLf,
            (Ext, b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => Ext,
            (SizeLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size { digits: 0 },
            (TrailerStart, b'\r') => TrailerLf { empty: true },
            (TrailerLine, b'\r') => TrailerLf { empty: false },
            (TrailerStart | TrailerLine, b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => {
                TrailerLine
            }
            (TrailerLf { empty: true }, b'\n') => Done,
            (TrailerLf { empty: false }, b'\n') => TrailerStart,
            (DataCr | DataLf, _) => return Err(HttpError::BadChunk("missing CRLF after chunk")),
            _ => return Err(HttpError::BadChunk("invalid chunk framing")),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of the given sizes (cycled); returns the body.
    fn decode_split(input: &[u8], pieces: &[usize]) -> Result<(Vec<u8>, usize), HttpError> {
        let mut dec = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut k = 0;
        while pos < input.len() && !dec.is_done() {
            let end = (pos + pieces[k % pieces.len()]).min(input.len());
            k += 1;
            let mut slice = &input[pos..end];
            while !slice.is_empty() && !dec.is_done() {
                let p = dec.decode(slice)?;
                out.extend_from_slice(&slice[p.data.0..p.data.1]);
                slice = &slice[p.consumed..];
                pos += p.consumed;
            }
        }
        if !dec.is_done() {
            return Err(HttpError::BadChunk("truncated"));
        }
        Ok((out, pos))
    }

    #[test]
    fn decodes_at_every_split_point() {
        let body = b"5 \t\r\nhello\r\n1 ;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let expect = b"hello 0123456789".to_vec();
        for a in 1..body.len() {
            let (out, used) = decode_split(body, &[a, 1, 3]).expect("valid");
            assert_eq!(out, expect, "split {a}");
            assert_eq!(
                &body[used..],
                b"NEXT",
                "must stop exactly at the end of the body"
            );
        }
        let (out, _) = decode_split(body, &[1]).expect("valid");
        assert_eq!(out, expect);
    }

    #[test]
    fn refuses_bad_framing() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"\r\n",
            b"g\r\n",
            b"-1\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            // Only whitespace, `;` or CRLF may follow the size: "5 6" is not 5 (smuggling).
            b"5 6\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"5\tx;a=1\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0 x\r\n\r\n",
        ] {
            assert!(
                decode_split(bad, &[1000]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn limits_are_enforced_without_buffering() {
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE as usize));
        assert!(matches!(
            decode_split(&long, &[7]),
            Err(HttpError::BadChunk(_))
        ));
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X: 1\r\n");
        }
        assert!(matches!(
            decode_split(&trailers, &[64]),
            Err(HttpError::BadChunk(_))
        ));
        // Sizes near u64::MAX parse but never overflow.
        let mut dec = ChunkedDecoder::new();
        let p = dec
            .decode(b"FFFFFFFFFFFFFFFF\r\nab")
            .expect("size fits u64");
        assert_eq!(p.data, (18, 20));
    }
}
