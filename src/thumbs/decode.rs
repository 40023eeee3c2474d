//! Decoding images into small, upright RGB thumbnails in bounded memory: the dimension checks,
//! the scaled or row-by-row decoders per format, the box-filter downscaler, EXIF orientation,
//! and the JPEG encoding of the result. See the parent module for the memory rules.

use std::fmt;
use std::io::{BufReader, Read};
use std::path::Path;

/// The longest side of a thumbnail, in pixels.
pub const THUMB_SIZE: u32 = 256;
/// Images with more pixels than this are not decoded at all (dimension bombs).
pub const MAX_PIXELS: u64 = 50_000_000;
/// Formats decoded whole are decoded only up to this many pixels.
pub const MAX_WHOLE_PIXELS: u64 = 4_000_000;
const JPEG_QUALITY: u8 = 80;

/// Why no thumbnail could be made. None of these fails the upload.
#[derive(Debug)]
pub enum ThumbError {
    Unsupported,
    TooLarge {
        width: u64,
        height: u64,
    },
    Decode(String),
    Io(std::io::Error),
    /// The decoder panicked (a bug in it, or an input it cannot take): caught, never fatal.
    Panicked,
}

impl fmt::Display for ThumbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThumbError::Unsupported => write!(f, "no thumbnails for this type"),
            ThumbError::TooLarge { width, height } => {
                write!(f, "image of {width}x{height} is too large to decode")
            }
            ThumbError::Decode(e) => write!(f, "cannot decode image: {e}"),
            ThumbError::Io(e) => write!(f, "i/o error: {e}"),
            ThumbError::Panicked => write!(f, "the decoder panicked"),
        }
    }
}

fn decode_err(e: impl fmt::Display) -> ThumbError {
    ThumbError::Decode(e.to_string())
}

/// Whether pidrop makes thumbnails for this stored type.
pub fn supported(mime: &str) -> bool {
    matches!(
        mime,
        "image/jpeg" | "image/png" | "image/gif" | "image/webp"
    )
}

/// Output size keeping the aspect ratio, longest side `THUMB_SIZE` (never upscaled).
fn fit(w: u32, h: u32) -> (u32, u32) {
    let long = w.max(h).max(1);
    if long <= THUMB_SIZE {
        return (w.max(1), h.max(1));
    }
    let scale = |v: u32| {
        ((u64::from(v) * u64::from(THUMB_SIZE) + u64::from(long) / 2) / u64::from(long)).max(1)
    };
    (
        u32::try_from(scale(w)).unwrap_or(1),
        u32::try_from(scale(h)).unwrap_or(1),
    )
}

fn check_pixels(w: u32, h: u32, max: u64) -> Result<(), ThumbError> {
    let (width, height) = (u64::from(w), u64::from(h));
    if width == 0 || height == 0 || width * height > max {
        return Err(ThumbError::TooLarge { width, height });
    }
    Ok(())
}

/// Box-filter downscaler fed one RGB row at a time; holds one output row of sums.
struct Shrink {
    src_w: u32,
    src_h: u32,
    w: u32,
    h: u32,
    sums: Vec<u32>,
    counts: Vec<u32>,
    row: u32,
    current: u32,
    out: Vec<u8>,
}

impl Shrink {
    fn new(src_w: u32, src_h: u32) -> Shrink {
        let (w, h) = fit(src_w, src_h);
        Shrink {
            src_w,
            src_h,
            w,
            h,
            sums: vec![0; w as usize * 3],
            counts: vec![0; w as usize],
            row: 0,
            current: 0,
            out: Vec::with_capacity(w as usize * h as usize * 3),
        }
    }

    fn flush(&mut self) {
        for x in 0..self.w as usize {
            let n = self.counts[x].max(1);
            for c in 0..3 {
                self.out
                    .push(u8::try_from(self.sums[x * 3 + c] / n).unwrap_or(255));
            }
        }
        self.sums.iter_mut().for_each(|s| *s = 0);
        self.counts.iter_mut().for_each(|c| *c = 0);
    }

    /// One source row as RGB (3 bytes per pixel, `src_w` pixels).
    fn push(&mut self, rgb: &[u8]) {
        let target = u32::try_from(u64::from(self.row) * u64::from(self.h) / u64::from(self.src_h))
            .unwrap_or(0);
        while self.current < target {
            self.flush();
            self.current += 1;
        }
        for x in 0..self.src_w as usize {
            let tx =
                usize::try_from(x as u64 * u64::from(self.w) / u64::from(self.src_w)).unwrap_or(0);
            for c in 0..3 {
                self.sums[tx * 3 + c] += u32::from(rgb.get(x * 3 + c).copied().unwrap_or(0));
            }
            self.counts[tx] += 1;
        }
        self.row += 1;
    }

    fn finish(mut self) -> (u32, u32, Vec<u8>) {
        while self.current < self.h {
            self.flush();
            self.current += 1;
        }
        (self.w, self.h, self.out)
    }
}

/// Converts a row of `channels` bytes per pixel (gray, gray+alpha, RGB, RGBA) to RGB,
/// compositing alpha over white.
fn to_rgb(row: &[u8], channels: usize, out: &mut Vec<u8>) {
    out.clear();
    for px in row.chunks_exact(channels) {
        let (r, g, b, a) = match channels {
            1 => (px[0], px[0], px[0], 255),
            2 => (px[0], px[0], px[0], px[1]),
            3 => (px[0], px[1], px[2], 255),
            _ => (px[0], px[1], px[2], px[3]),
        };
        let over = |v: u8| {
            u8::try_from((u32::from(v) * u32::from(a) + 255 * (255 - u32::from(a))) / 255)
                .unwrap_or(255)
        };
        out.extend_from_slice(&[over(r), over(g), over(b)]);
    }
}

/// Makes a thumbnail of the file at `path` (stored type `mime`): JPEG bytes.
pub fn make(path: &Path, mime: &str) -> Result<Vec<u8>, ThumbError> {
    use std::os::unix::fs::OpenOptionsExt;
    // Never through a link: only a file pidrop stored itself is decoded.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(ThumbError::Io)?;
    let reader = BufReader::new(file);
    let (w, h, rgb, orientation) = match mime {
        "image/jpeg" => jpeg(reader)?,
        "image/png" => png_image(reader)?,
        "image/gif" => gif_image(reader)?,
        "image/webp" => webp(reader)?,
        _ => return Err(ThumbError::Unsupported),
    };
    let (w, h, rgb) = orient(w, h, rgb, orientation);
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
    let (w16, h16) = (
        u16::try_from(w).map_err(decode_err)?,
        u16::try_from(h).map_err(decode_err)?,
    );
    enc.encode(&rgb, w16, h16, jpeg_encoder::ColorType::Rgb)
        .map_err(decode_err)?;
    Ok(out)
}

type Image = (u32, u32, Vec<u8>, u8);

fn jpeg<R: Read>(reader: R) -> Result<Image, ThumbError> {
    let mut dec = jpeg_decoder::Decoder::new(reader);
    dec.read_info().map_err(decode_err)?;
    let info = dec.info().ok_or_else(|| decode_err("no header"))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    check_pixels(w, h, MAX_PIXELS)?;
    if info.coding_process != jpeg_decoder::CodingProcess::DctSequential {
        // Progressive JPEGs keep every coefficient of the full image while decoding.
        check_pixels(w, h, MAX_WHOLE_PIXELS)?;
    }
    let orientation = dec.exif_data().map(exif_orientation).unwrap_or(1);
    let tw = u16::try_from(THUMB_SIZE).unwrap_or(256);
    let (sw, sh) = dec.scale(tw, tw).map_err(decode_err)?;
    let pixels = dec.decode().map_err(decode_err)?;
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => return Err(decode_err(format!("pixel format {other:?}"))),
    };
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    Ok(shrink_whole(sw, sh, &pixels, channels, orientation))
}

fn png_image<R: std::io::BufRead + std::io::Seek>(reader: R) -> Result<Image, ThumbError> {
    let mut dec = png::Decoder::new(reader);
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    dec.set_limits(png::Limits { bytes: 32 << 20 });
    let mut r = dec.read_info().map_err(decode_err)?;
    let (w, h, interlaced) = {
        let info = r.info();
        (info.width, info.height, info.interlaced)
    };
    check_pixels(w, h, MAX_PIXELS)?;
    let channels = match r.output_color_type().0 {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        _ => 4,
    };
    let mut shrink = Shrink::new(w, h);
    let mut rgb = Vec::new();
    if interlaced {
        check_pixels(w, h, MAX_WHOLE_PIXELS)?;
        let size = r
            .output_buffer_size()
            .ok_or_else(|| decode_err("too large"))?;
        let mut buf = vec![0; size];
        let out = r.next_frame(&mut buf).map_err(decode_err)?;
        for line in buf[..out.buffer_size()].chunks_exact(out.line_size) {
            to_rgb(line, channels, &mut rgb);
            shrink.push(&rgb);
        }
    } else {
        while let Some(row) = r.next_row().map_err(decode_err)? {
            to_rgb(row.data(), channels, &mut rgb);
            shrink.push(&rgb);
        }
    }
    let (w, h, out) = shrink.finish();
    Ok((w, h, out, 1))
}

fn gif_image<R: Read>(reader: R) -> Result<Image, ThumbError> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let limit =
        std::num::NonZeroU64::new(MAX_WHOLE_PIXELS * 4).ok_or_else(|| decode_err("limit"))?;
    opts.set_memory_limit(gif::MemoryLimit::Bytes(limit));
    let mut dec = opts.read_info(reader).map_err(decode_err)?;
    check_pixels(
        u32::from(dec.width()),
        u32::from(dec.height()),
        MAX_WHOLE_PIXELS,
    )?;
    let frame = dec
        .read_next_frame()
        .map_err(decode_err)?
        .ok_or_else(|| decode_err("no frame"))?;
    let (w, h) = (u32::from(frame.width), u32::from(frame.height));
    check_pixels(w, h, MAX_WHOLE_PIXELS)?;
    Ok(shrink_whole(w, h, &frame.buffer, 4, 1))
}

fn webp<R: std::io::BufRead + std::io::Seek>(reader: R) -> Result<Image, ThumbError> {
    let mut dec = image_webp::WebPDecoder::new(reader).map_err(decode_err)?;
    let (w, h) = dec.dimensions();
    check_pixels(w, h, MAX_WHOLE_PIXELS)?;
    let size = dec
        .output_buffer_size()
        .ok_or_else(|| decode_err("too large"))?;
    let mut buf = vec![0; size];
    dec.read_image(&mut buf).map_err(decode_err)?;
    let channels = if dec.has_alpha() { 4 } else { 3 };
    Ok(shrink_whole(w, h, &buf, channels, 1))
}

/// Shrinks a whole decoded image (`channels` bytes per pixel, rows of `w` pixels).
fn shrink_whole(w: u32, h: u32, pixels: &[u8], channels: usize, orientation: u8) -> Image {
    let mut shrink = Shrink::new(w, h);
    let mut rgb = Vec::new();
    for line in pixels.chunks_exact(w as usize * channels) {
        to_rgb(line, channels, &mut rgb);
        shrink.push(&rgb);
    }
    let (w, h, out) = shrink.finish();
    (w, h, out, orientation)
}

/// The Orientation tag (0x0112) of the first IFD in raw EXIF (TIFF) data; 1 if absent.
pub fn exif_orientation(exif: &[u8]) -> u8 {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let le = match tiff.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return 1,
    };
    let u16_at = |i: usize| -> Option<u16> {
        // Offsets come from the file: checked, since on 32-bit targets they can overflow.
        let b = tiff.get(i..i.checked_add(2)?)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let b = tiff.get(i..i.checked_add(4)?)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let find = || -> Option<u8> {
        let ifd = usize::try_from(u32_at(4)?).ok()?;
        let count = usize::from(u16_at(ifd)?);
        for k in 0..count.min(256) {
            let entry = ifd.checked_add(2 + k * 12)?;
            if u16_at(entry)? == 0x0112 {
                let v = u16_at(entry.checked_add(8)?)?;
                return u8::try_from(v).ok().filter(|v| (1..=8).contains(v));
            }
        }
        None
    };
    find().unwrap_or(1)
}

/// Applies EXIF orientation 1–8 to a small RGB image.
fn orient(w: u32, h: u32, rgb: Vec<u8>, o: u8) -> (u32, u32, Vec<u8>) {
    if o <= 1 || o > 8 {
        return (w, h, rgb);
    }
    let (w, h) = (w as usize, h as usize);
    let swap = o >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut out = vec![0u8; ow * oh * 3];
    for y in 0..h {
        for x in 0..w {
            let (nx, ny) = match o {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (h - 1 - y, x),
                7 => (h - 1 - y, w - 1 - x),
                _ => (y, w - 1 - x), // 8
            };
            let (s, d) = ((y * w + x) * 3, (ny * ow + nx) * 3);
            out[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
        }
    }
    let dim = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    (dim(ow), dim(oh), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting() {
        assert_eq!(fit(6000, 4000), (256, 171));
        assert_eq!(fit(4000, 6000), (171, 256));
        assert_eq!(fit(100, 50), (100, 50));
        assert_eq!(fit(50_000, 1), (256, 1));
    }

    #[test]
    fn orientation_from_exif() {
        // Little-endian TIFF, one IFD entry: Orientation = 6.
        let mut le = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
        le.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(exif_orientation(&le), 6);
        let mut be = b"MM\0*\0\0\0\x08\0\x01".to_vec();
        be.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0]);
        assert_eq!(exif_orientation(&be), 8);
        for junk in [
            &b""[..],
            b"Exif\0\0",
            b"II*\0\xff\xff\xff\xff",
            // IFD offsets whose arithmetic overflows a 32-bit usize (the qemu ARM runs check).
            b"II*\0\xfe\xff\xff\xff\x01\x00",
            b"MM\0*\xff\xff\xff\xf8",
            b"MM\0*\0\0\0\x08\xff\xff",
        ] {
            assert_eq!(exif_orientation(junk), 1);
        }
    }

    #[test]
    fn orient_rotates_and_mirrors() {
        // 2×1: red, blue.
        let img = vec![255, 0, 0, 0, 0, 255];
        assert_eq!(
            orient(2, 1, img.clone(), 6),
            (1, 2, vec![255, 0, 0, 0, 0, 255])
        );
        assert_eq!(
            orient(2, 1, img.clone(), 8),
            (1, 2, vec![0, 0, 255, 255, 0, 0])
        );
        assert_eq!(
            orient(2, 1, img.clone(), 2),
            (2, 1, vec![0, 0, 255, 255, 0, 0])
        );
        assert_eq!(orient(2, 1, img.clone(), 1), (2, 1, img));
    }
}
