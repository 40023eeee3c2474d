//! `--strip-gps`: the GPS tags of a JPEG's EXIF removed as the file streams in, before anything
//! is stored, so that guests who download a photo do not learn where it was taken.
//!
//! The EXIF segment (APP1, `Exif\0\0`, at most 64 KiB) sits before the image data, so only the
//! head of a file is held — up to `HOLD_LIMIT` bytes, in the buffer that holds the first bytes
//! for the content check (`Ingest`) — until the segment has been seen; its GPS directory is then
//! emptied in place: every GPS entry's out-of-line value zeroed,
//! the entries zeroed, the count set to 0. The segment keeps its length and every other byte of
//! the file is unchanged (the other tags, the thumbnail, the image data). What is stored is
//! hashed, so the sha256 is of the stripped file.
//!
//! Not covered: GPS in XMP packets (some editing apps add them), and PNG, WebP and HEIC files
//! (their EXIF chunks are passed through as they are). A JPEG whose head runs past the limit
//! before its EXIF segment is stored unchanged and reported as not stripped.

/// The most of a file's head held while looking for its EXIF segment.
pub const HOLD_LIMIT: usize = 256 << 10;

/// The EXIF tag of the GPS directory's offset in IFD0.
const GPS_IFD_TAG: u16 = 0x8825;

/// Whether `head`, the first bytes of a JPEG, must grow before its EXIF segment can be found
/// (never past `HOLD_LIMIT`).
pub fn needs_more(head: &[u8]) -> bool {
    head.len() < HOLD_LIMIT && matches!(scan(head), Scan::NeedMore)
}

/// Empties the GPS directory of the EXIF segment in `head`, in place. True if it had GPS tags.
pub fn strip(head: &mut [u8]) -> bool {
    match scan(head) {
        Scan::Exif(start, end) => strip_tiff(&mut head[start..end]),
        Scan::NeedMore | Scan::NoExif => false,
    }
}

enum Scan {
    NeedMore,
    NoExif,
    /// The TIFF data of the EXIF segment: `held[start..end]`.
    Exif(usize, usize),
}

/// Walks the JPEG's segments up to its EXIF segment or its image data.
fn scan(b: &[u8]) -> Scan {
    if b.len() < 2 {
        return Scan::NeedMore;
    }
    if b[..2] != [0xFF, 0xD8] {
        return Scan::NoExif;
    }
    let mut at = 2;
    loop {
        let Some(&[ff, marker]) = b.get(at..at + 2) else {
            return Scan::NeedMore;
        };
        if ff != 0xFF {
            return Scan::NoExif;
        }
        // Start of scan, end of image, or a marker without a length: the metadata is over.
        if marker == 0xDA || marker == 0xD9 || (0xD0..=0xD8).contains(&marker) || marker == 0x01 {
            return Scan::NoExif;
        }
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        let Some(len) = b
            .get(at + 2..at + 4)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return Scan::NeedMore;
        };
        if len < 2 {
            return Scan::NoExif;
        }
        let end = at + 2 + len;
        if marker == 0xE1 {
            let Some(payload) = b.get(at + 4..end) else {
                return Scan::NeedMore;
            };
            if payload.starts_with(b"Exif\0\0") {
                return Scan::Exif(at + 10, end);
            }
        }
        at = end;
    }
}

/// Reads TIFF integers in the file's byte order.
struct Tiff<'a> {
    b: &'a [u8],
    le: bool,
}

impl Tiff<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let s: [u8; 2] = self.b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    }

    fn u32(&self, at: usize) -> Option<usize> {
        let s: [u8; 4] = self.b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        let v = if self.le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        };
        usize::try_from(v).ok()
    }
}

/// Bytes per value of each TIFF type (1 BYTE … 12 DOUBLE); 0 for unknown types.
fn type_size(t: u16) -> usize {
    match t {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 => 4,
        5 | 10 | 12 => 8,
        _ => 0,
    }
}

/// Empties the GPS directory of the TIFF data `t` in place. True if there was one with tags.
fn strip_tiff(t: &mut [u8]) -> bool {
    let Some((gps, entries)) = gps_ifd(t) else {
        return false;
    };
    let mut zero: Vec<(usize, usize)> = Vec::with_capacity(entries + 1);
    {
        let tiff = Tiff {
            b: t,
            le: t[0] == b'I',
        };
        for i in 0..entries {
            let e = gps + 2 + 12 * i;
            let (Some(kind), Some(count)) = (tiff.u16(e + 2), tiff.u32(e + 4)) else {
                break;
            };
            let size = count.saturating_mul(type_size(kind));
            if size > 4 {
                if let Some(off) = tiff
                    .u32(e + 8)
                    .filter(|o| o.saturating_add(size) <= t.len())
                {
                    zero.push((off, off + size));
                }
            }
        }
    }
    zero.push((gps + 2, gps + 2 + 12 * entries));
    for (a, b) in zero {
        t[a..b].fill(0);
    }
    t[gps..gps + 2].fill(0); // no entries left
    entries > 0
}

/// The GPS directory's offset and entry count, if IFD0 points to a sound one.
fn gps_ifd(t: &[u8]) -> Option<(usize, usize)> {
    let le = match t.get(..4)? {
        [b'I', b'I', 42, 0] => true,
        [b'M', b'M', 0, 42] => false,
        _ => return None,
    };
    let tiff = Tiff { b: t, le };
    let ifd0 = tiff.u32(4)?;
    let n = usize::from(tiff.u16(ifd0)?);
    let gps = (0..n).find_map(|i| {
        let e = ifd0 + 2 + 12 * i;
        (tiff.u16(e)? == GPS_IFD_TAG)
            .then(|| tiff.u32(e + 8))
            .flatten()
    })?;
    let entries = usize::from(tiff.u16(gps)?);
    // The whole directory must lie inside the segment.
    (gps + 2 + 12 * entries + 4 <= t.len()).then_some((gps, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF with IFD0 (Make, GPS pointer) and a GPS IFD (version, latitude).
    fn tiff_with_gps() -> Vec<u8> {
        let mut t = b"II*\0\x08\0\0\0".to_vec();
        // IFD0 at 8: 2 entries, next 0.
        t.extend(2u16.to_le_bytes());
        t.extend([0x0f, 0x01, 2, 0, 6, 0, 0, 0, 50, 0, 0, 0]); // Make, ASCII "Pixel" at 50
        t.extend([0x25, 0x88, 4, 0, 1, 0, 0, 0, 56, 0, 0, 0]); // GPS IFD at 56
        t.extend(0u32.to_le_bytes());
        t.resize(50, 0);
        t.extend(b"Pixel\0");
        // GPS IFD at 56: 2 entries.
        t.extend(2u16.to_le_bytes());
        t.extend([0x00, 0x00, 1, 0, 4, 0, 0, 0, 2, 2, 0, 0]); // GPSVersionID inline
        t.extend([0x02, 0x00, 5, 0, 3, 0, 0, 0, 90, 0, 0, 0]); // GPSLatitude, 3 rationals at 90
        t.extend(0u32.to_le_bytes());
        t.resize(90, 0);
        for v in [52u32, 1, 31, 1, 12, 1] {
            t.extend(v.to_le_bytes());
        }
        t
    }

    fn jpeg_with(tiff: &[u8]) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        j.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        let len = u16::try_from(2 + 6 + tiff.len()).expect("small");
        j.extend([0xFF, 0xE1]);
        j.extend(len.to_be_bytes());
        j.extend(b"Exif\0\0");
        j.extend(tiff);
        j.extend([0xFF, 0xDA, 0, 8, 1, 2, 3, 4, 5, 6]);
        j.extend(b"image data that must not change");
        j.extend([0xFF, 0xD9]);
        j
    }

    /// As `Ingest` does: hold the head while `needs_more`, then strip it, then pass the rest.
    fn run(input: &[u8], step: usize) -> (Vec<u8>, bool) {
        let mut head = Vec::new();
        let mut out = Vec::new();
        let mut stripped = None;
        for chunk in input.chunks(step) {
            if stripped.is_some() {
                out.extend_from_slice(chunk);
                continue;
            }
            head.extend_from_slice(chunk);
            if !needs_more(&head) {
                stripped = Some(strip(&mut head));
                out.append(&mut head);
            }
        }
        if stripped.is_none() {
            stripped = Some(strip(&mut head));
            out.append(&mut head);
        }
        (out, stripped.unwrap_or(false))
    }

    #[test]
    fn gps_tags_are_emptied_and_nothing_else_changes_however_the_bytes_arrive() {
        let original = jpeg_with(&tiff_with_gps());
        for step in [1, 7, 64, 4096] {
            let (out, stripped) = run(&original, step);
            assert!(stripped, "step {step}");
            assert_eq!(out.len(), original.len());
            let changed: Vec<usize> = (0..out.len()).filter(|&i| out[i] != original[i]).collect();
            // Inside the TIFF (which starts at 30): the GPS count, the two entries, the rationals.
            let tiff = 30;
            assert!(
                changed
                    .iter()
                    .all(|&i| (tiff + 56..tiff + 56 + 2 + 24).contains(&i)
                        || (tiff + 90..tiff + 114).contains(&i)),
                "{changed:?}"
            );
            assert!(out.ends_with(b"image data that must not change\xff\xd9"));
            assert_eq!(&out[tiff + 50..tiff + 56], b"Pixel\0", "other tags kept");
        }
    }

    #[test]
    fn files_without_gps_or_not_jpeg_pass_unchanged() {
        let mut no_gps = tiff_with_gps();
        no_gps[10 + 12] = 0x10; // the pointer's tag becomes another tag
        for input in [
            jpeg_with(&no_gps),
            b"\x89PNG\r\n\x1a\nrest".to_vec(),
            vec![0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 9, 9],
            vec![0xFF],
        ] {
            let (out, stripped) = run(&input, 3);
            assert_eq!(out, input);
            assert!(!stripped);
        }
        // Damaged offsets never panic.
        let mut bad = tiff_with_gps();
        bad[10 + 12 + 8] = 0xF0;
        let (out, _) = run(&jpeg_with(&bad), 5);
        assert_eq!(out.len(), jpeg_with(&bad).len());
    }
}
