//! Writes a test JPEG of the given size (a gradient): `make_jpeg WIDTH HEIGHT OUT.jpg`.
//! Used by bench/bench.py to measure thumbnail memory and time on large photos.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(w), Some(h), Some(out)) = (
        args.get(1).and_then(|v| v.parse::<u16>().ok()),
        args.get(2).and_then(|v| v.parse::<u16>().ok()),
        args.get(3),
    ) else {
        eprintln!("usage: make_jpeg WIDTH HEIGHT OUT.jpg");
        std::process::exit(2);
    };
    let mut rgb = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for y in 0..h {
        for x in 0..w {
            let r = u8::try_from(u32::from(x) * 255 / u32::from(w)).unwrap_or(255);
            let g = u8::try_from(u32::from(y) * 255 / u32::from(h)).unwrap_or(255);
            rgb.extend_from_slice(&[r, g, 128]);
        }
    }
    let enc = jpeg_encoder::Encoder::new_file(out, 90).expect("create");
    enc.encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
}
