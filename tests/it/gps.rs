//! `--strip-gps` through the real server on a phone-style photo recorded with exiftool
//! (`scripts/record-photos.sh`): the stored file differs from the upload only inside its EXIF
//! segment, where the GPS values were (the position's rationals are gone), with the same length
//! and the same image data; by PUT, multipart and split tus PATCHes. Without the flag it is
//! stored byte for byte. (CI also reads the results back with exiftool: tests/exiftool/.)

use crate::harness::{name_of, post_form, request, sha256_hex, Form, Server};

fn photo() -> Vec<u8> {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/photos/phone-gps.jpg"
    );
    std::fs::read(p).expect("the recorded photo")
}

/// Where the EXIF segment is: `data[start..end]`.
fn exif_segment(data: &[u8]) -> (usize, usize) {
    let mut at = 2;
    while at + 4 <= data.len() {
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        if data[at + 1] == 0xE1 && data[at + 4..].starts_with(b"Exif\0\0") {
            return (at, at + 2 + len);
        }
        at += 2 + len;
    }
    panic!("no EXIF segment");
}

/// The latitude 52° 30' 58.68" as exiftool wrote it: 52/1 30/1 1467/25, in the file's byte order.
fn contains_latitude(data: &[u8]) -> bool {
    let (s, e) = exif_segment(data);
    let seg = &data[s..e];
    let le = seg[10] == b'I';
    let word = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let mut lat = Vec::new();
    for v in [52u32, 1, 30, 1, 1467, 25] {
        lat.extend(word(v));
    }
    seg.windows(lat.len()).any(|w| w == lat.as_slice())
}

fn check_stripped(srv: &Server, json: &serde_json::Value, original: &[u8]) {
    assert_eq!(json["gps_stripped"], true, "{json}");
    let stored = srv.get(json["url"].as_str().expect("url")).body;
    assert_eq!(json["sha256"], sha256_hex(&stored).as_str());
    assert_eq!(stored.len(), original.len());
    let (s, e) = exif_segment(original);
    assert_eq!(stored[..s], original[..s]);
    assert_eq!(stored[e..], original[e..], "the image data is unchanged");
    assert_ne!(stored[s..e], original[s..e]);
    assert!(!contains_latitude(&stored), "the position is gone");
}

#[test]
fn gps_is_stripped_from_photos_by_put_multipart_and_tus_and_kept_without_the_flag() {
    let original = photo();
    assert!(
        contains_latitude(&original),
        "the recorded photo carries a position"
    );
    let srv = Server::start(&["--strip-gps", "on"]);
    let r = request(srv.addr, "PUT", "/upload/IMG_1.jpg", &[], &original);
    assert_eq!(r.status, 201, "{}", r.text());
    check_stripped(&srv, &r.json()["files"][0], &original);

    let r = post_form(
        srv.addr,
        Form::new().file("f", "IMG_2.jpg", "image/jpeg", &original),
    );
    check_stripped(&srv, &r.json()["files"][0], &original);

    let tus = ("Tus-Resumable", "1.0.0");
    let len = original.len().to_string();
    let r = request(
        srv.addr,
        "POST",
        "/tus",
        &[
            tus,
            ("Upload-Length", &len),
            ("Upload-Metadata", "filename SU1HXzMuanBn"),
        ],
        b"",
    );
    let loc = r.header("Location").expect("location").to_string();
    for (i, piece) in original.chunks(700).enumerate() {
        let off = (i * 700).to_string();
        let r = request(
            srv.addr,
            "PATCH",
            &loc,
            &[
                tus,
                ("Upload-Offset", &off),
                ("Content-Type", "application/offset+octet-stream"),
            ],
            piece,
        );
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let files = srv.get("/files").json();
    let tus_file = files["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["original_name"] == "IMG_3.jpg")
        .expect("listed")
        .clone();
    check_stripped(&srv, &tus_file, &original);

    let plain = Server::start(&[]);
    let r = request(plain.addr, "PUT", "/upload/IMG_4.jpg", &[], &original);
    assert_eq!(r.json()["files"][0]["gps_stripped"], false);
    let name = name_of(&r);
    assert_eq!(
        plain.get(&format!("/files/{name}")).body,
        original,
        "stored byte for byte"
    );
}
