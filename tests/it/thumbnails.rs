//! Thumbnails from real images made here: sizes, EXIF orientation, bombs and corrupt images
//! (upload accepted, no thumbnail, no crash), deletion.
#![cfg(feature = "thumbnails")]

use std::time::Duration;

use crate::harness::*;

/// Left half red, right half blue.
fn halves(w: u32, h: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for _y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(if x < w / 2 {
                &[230, 20, 20]
            } else {
                &[20, 20, 230]
            });
        }
    }
    rgb
}

pub fn make_jpeg(w: u16, h: u16, orientation: Option<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    if let Some(o) = orientation {
        // EXIF, little-endian TIFF, IFD0 with one entry: Orientation (0x0112, SHORT) = o.
        let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
        exif.extend_from_slice(&[o, 0, 0, 0, 0, 0, 0, 0]);
        enc.add_app_segment(1, exif).expect("app1");
    }
    enc.encode(
        &halves(w.into(), h.into()),
        w,
        h,
        jpeg_encoder::ColorType::Rgb,
    )
    .expect("jpeg");
    out
}

fn make_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().expect("png header");
        wr.write_image_data(&halves(w, h)).expect("png data");
    }
    out
}

fn make_gif(w: u16, h: u16) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette = [230, 20, 20, 20, 20, 230];
        let mut enc = gif::Encoder::new(&mut out, w, h, &palette).expect("gif");
        let indices: Vec<u8> = (0..u32::from(h))
            .flat_map(|_| (0..w).map(move |x| u8::from(x >= w / 2)))
            .collect();
        let frame = gif::Frame {
            width: w,
            height: h,
            buffer: indices.into(),
            ..Default::default()
        };
        enc.write_frame(&frame).expect("frame");
    }
    out
}

fn make_webp(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image_webp::WebPEncoder::new(&mut out)
        .encode(&halves(w, h), w, h, image_webp::ColorType::Rgb8)
        .expect("webp");
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid PNG signature and IHDR claiming `w`×`h`, then a tiny IDAT: a dimension bomb.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

/// Uploads, then fetches the thumbnail: (status, decoded width, height, RGB pixels).
fn thumb_of(srv: &Server, name: &str, data: &[u8]) -> (u16, u16, u16, Vec<u8>, String) {
    let resp = request(srv.addr, "PUT", &format!("/upload/{name}"), &[], data);
    assert_eq!(resp.status, 201, "{name}: {}", resp.text());
    let stored = name_of(&resp);
    let t = srv.get(&format!("/thumbnails/{stored}"));
    if t.status != 200 {
        return (t.status, 0, 0, Vec::new(), stored);
    }
    assert_eq!(t.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(t.header("X-Content-Type-Options"), Some("nosniff"));
    let mut dec = jpeg_decoder::Decoder::new(&t.body[..]);
    let pixels = dec.decode().expect("a JPEG thumbnail");
    let info = dec.info().expect("info");
    (200, info.width, info.height, pixels, stored)
}

#[test]
fn every_supported_format_gets_a_thumbnail_of_the_right_size() {
    let srv = Server::start(&[]);
    for (name, data, w, h) in [
        ("photo.jpg", make_jpeg(1200, 800, None), 256, 171),
        ("screen.png", make_png(1000, 500), 256, 128),
        ("anim.gif", make_gif(300, 150), 256, 128),
        ("pic.webp", make_webp(600, 300), 256, 128),
        ("small.png", make_png(100, 40), 100, 40),
    ] {
        let (status, tw, th, px, _) = thumb_of(&srv, name, &data);
        assert_eq!((status, tw, th), (200, w, h), "{name}");
        // Left is red, right is blue: the picture survived the trip.
        let at = |x: usize, y: usize| {
            let i = (y * tw as usize + x) * 3;
            (px[i], px[i + 1], px[i + 2])
        };
        let (r, _, b) = at(2, th as usize / 2);
        assert!(
            r > 150 && b < 100,
            "{name}: left should be red, got {:?}",
            at(2, th as usize / 2)
        );
        let (r, _, b) = at(tw as usize - 3, th as usize / 2);
        assert!(b > 150 && r < 100, "{name}: right should be blue");
    }
    let listing = srv.get("/files").json();
    for f in listing["files"].as_array().expect("files") {
        let name = f["name"].as_str().expect("name");
        assert_eq!(f["thumbnail_url"], format!("/thumbnails/{name}").as_str());
    }
}

#[test]
fn exif_orientation_makes_portrait_photos_upright() {
    let srv = Server::start(&[]);
    // Stored landscape (400×200, red left) with "rotate 90° clockwise to display" (6).
    let (status, w, h, px, _) = thumb_of(&srv, "portrait.jpg", &make_jpeg(400, 200, Some(6)));
    assert_eq!((status, w, h), (200, 128, 256));
    let at = |x: usize, y: usize| px[(y * w as usize + x) * 3];
    assert!(
        at(64, 5) > 150,
        "red (the stored left) must be on top after rotation"
    );
    assert!(at(64, 250) < 100, "blue at the bottom");
    // 8: rotate 90° counter-clockwise: red ends at the bottom.
    let (_, w, h, px, _) = thumb_of(&srv, "ccw.jpg", &make_jpeg(400, 200, Some(8)));
    assert_eq!((w, h), (128, 256));
    assert!(px[(250 * w as usize + 64) * 3] > 150);
    // 3: upside down: red on the right.
    let (_, w, h, px, _) = thumb_of(&srv, "flip.jpg", &make_jpeg(400, 200, Some(3)));
    assert_eq!((w, h), (256, 128));
    assert!(px[(64 * w as usize + 250) * 3] > 150);
}

#[test]
fn bombs_and_corrupt_images_are_stored_without_a_thumbnail() {
    let mut srv = Server::start(&[]);
    let base = srv.rss_kib();
    let mut corrupt = make_jpeg(64, 64, None);
    corrupt.truncate(40);
    corrupt.extend(bytes(5, 5000));
    for (name, data) in [
        ("bomb.png", png_bomb(50_000, 50_000)),
        ("wide.png", png_bomb(4_000_000, 20)),
        ("corrupt.jpg", corrupt),
        ("broken.png", png(2000)),
        (
            "broken.webp",
            b"RIFF\x10\0\0\0WEBPVP8 \x04\0\0\0abcd".to_vec(),
        ),
    ] {
        let (status, ..) = thumb_of(&srv, name, &data);
        assert_eq!(status, 404, "{name}: no thumbnail");
    }
    assert!(srv.alive());
    let listing = srv.get("/files").json();
    let files = listing["files"].as_array().expect("files");
    assert_eq!(files.len(), 5, "every upload is kept");
    assert!(
        files.iter().all(|f| f["thumbnail_url"].is_null()),
        "{listing}"
    );
    assert!(
        srv.rss_kib() < base + 16 * 1024,
        "RSS {} KiB from {base} KiB",
        srv.rss_kib()
    );
}

#[test]
fn deleting_a_file_deletes_its_thumbnail_and_missing_ones_are_remade() {
    let srv = Server::start(&[]);
    let (status, _, _, _, stored) = thumb_of(&srv, "d.jpg", &make_jpeg(640, 480, None));
    assert_eq!(status, 200);
    let cached = srv.dir.join(format!(".pidrop/thumbs/{stored}.jpg"));
    assert!(eventually(Duration::from_secs(5), || cached.exists()));
    // Removed behind pidrop's back: made again on the next request.
    std::fs::remove_file(&cached).expect("rm");
    assert_eq!(srv.get(&format!("/thumbnails/{stored}")).status, 200);
    assert!(cached.exists());
    assert_eq!(
        request(srv.addr, "DELETE", &format!("/files/{stored}"), &[], b"").status,
        204
    );
    assert!(!cached.exists());
    assert_eq!(srv.get(&format!("/thumbnails/{stored}")).status, 404);
}

/// A decoder panic stays inside one thumbnail: the server, the worker and every later
/// thumbnail live on (the debug binary panics on GIFs when asked to).
#[test]
fn a_decoder_panic_costs_one_thumbnail_only() {
    let srv = Server::start_with_env(&[], &[("PIDROP_DEBUG_THUMBS", "panic:image/gif")]);
    let (status, ..) = thumb_of(&srv, "a.gif", &make_gif(64, 64));
    assert_eq!(status, 404, "no thumbnail for the image that panicked");
    // The worker (after an upload) and requests still make thumbnails.
    for i in 0..3 {
        let (status, w, ..) = thumb_of(&srv, &format!("p{i}.png"), &make_png(400, 300));
        assert_eq!((status, w), (200, 256), "thumbnail {i} after the panic");
    }
    // The worker's own panic (after an upload) is caught too: the listing stops advertising it.
    let put = request(srv.addr, "PUT", "/upload/b.gif", &[], &make_gif(32, 32));
    let name = name_of(&put);
    assert!(eventually(Duration::from_secs(5), || {
        let list = srv.get("/files").json();
        let b = list["files"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["name"] == name.as_str()).cloned());
        b.is_some_and(|b| b["thumbnail_url"].is_null())
    }));
    let (status, w, ..) = thumb_of(&srv, "last.png", &make_png(400, 300));
    assert_eq!((status, w), (200, 256), "and still makes thumbnails");
}

/// While one slow thumbnail is being made, other thumbnail requests wait at most a second and
/// get 503 with Retry-After; short requests are answered meanwhile.
#[test]
fn a_slow_thumbnail_never_holds_request_workers() {
    let srv = Server::start_with_env(
        &["--workers", "4"],
        &[("PIDROP_DEBUG_THUMBS", "sleep:4000")],
    );
    let mut names = Vec::new();
    for i in 0..6 {
        let r = request(
            srv.addr,
            "PUT",
            &format!("/upload/{i}.png"),
            &[],
            &make_png(64, 64),
        );
        names.push(name_of(&r));
    }
    let addr = srv.addr;
    let started = std::time::Instant::now();
    let askers: Vec<_> = names
        .iter()
        .map(|n| {
            let path = format!("/thumbnails/{n}");
            std::thread::spawn(move || {
                let t = std::time::Instant::now();
                let r = request(addr, "GET", &path, &[], b"");
                (
                    r.status,
                    r.header("Retry-After").map(str::to_string),
                    t.elapsed(),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let health = request(addr, "GET", "/healthz", &[], b"");
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "healthz answered while thumbnails wait"
    );
    let mut busy = 0;
    for a in askers {
        let (status, retry, took) = a.join().expect("asker");
        if status == 503 {
            busy += 1;
            assert_eq!(retry.as_deref(), Some("1"));
            assert!(
                took < Duration::from_secs(3),
                "a 503 comes within the wait bound: {took:?}"
            );
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(
        busy >= 4,
        "most requests were told to come back ({busy} of 6)"
    );
}

/// A file replaced under its name (by hand, a restore from backup) never shows its old
/// thumbnail: a cached thumbnail older than its file is made again.
#[test]
fn a_replaced_file_gets_a_new_thumbnail() {
    let srv = Server::start(&[]);
    let (status, w, h, _, stored) = thumb_of(&srv, "r.jpg", &make_jpeg(640, 480, None));
    assert_eq!((status, w, h), (200, 256, 192));
    let cached = srv.dir.join(format!(".pidrop/thumbs/{stored}.jpg"));
    assert!(eventually(Duration::from_secs(5), || cached.exists()));
    srv.wait_for_check();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(srv.dir.join(&stored), make_jpeg(480, 640, None)).expect("replace");
    let t = srv.get(&format!("/thumbnails/{stored}"));
    assert_eq!(t.status, 200);
    let mut dec = jpeg_decoder::Decoder::new(&t.body[..]);
    dec.decode().expect("jpeg");
    let info = dec.info().expect("info");
    assert_eq!(
        (info.width, info.height),
        (192, 256),
        "the new picture's thumbnail"
    );
}
