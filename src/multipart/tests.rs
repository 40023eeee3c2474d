//! Parser tests: the shared corpus of real browser captures and python-multipart edge cases at
//! every split point, tiny buffers, and random bodies checked against the bodies' construction.

#![allow(
    clippy::cast_possible_truncation,
    clippy::type_complexity,
    reason = "random test data truncates on purpose; expected-part tuples stay local"
)]

use super::*;
use std::path::PathBuf;

/// A reader that yields its data in pieces of the given sizes (cycled).
struct Chunked<'a> {
    data: &'a [u8],
    pieces: Vec<usize>,
    k: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = self.pieces[self.k % self.pieces.len()].max(1);
        self.k += 1;
        let n = want.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The smallest buffer that still holds the corpus' largest part-header block.
const TINY: usize = 512;

#[derive(Debug, PartialEq, Eq)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

fn parse_all(
    body: &[u8],
    boundary: &str,
    pieces: &[usize],
    cap: usize,
) -> Result<Vec<Part>, MultipartError> {
    let src = Chunked {
        data: body,
        pieces: pieces.to_vec(),
        k: 0,
    };
    let mut mp = Multipart::new(src, boundary, cap, 1000);
    let mut parts: Vec<Part> = Vec::new();
    loop {
        match mp.next_event() {
            Ok(Event::Part(h)) => parts.push(Part {
                name: h.name,
                filename: h.filename,
                content_type: h.content_type,
                data: Vec::new(),
            }),
            Ok(Event::Data(d)) => {
                assert!(!d.is_empty(), "empty data events are noise");
                let d = d.to_vec();
                // The hold pipe (upload/tee.rs) finds a file's bytes by these offsets.
                let end = mp.consumed() as usize;
                assert_eq!(&body[end - d.len()..end], &d[..], "data ends at consumed()");
                parts
                    .last_mut()
                    .expect("data belongs to a part")
                    .data
                    .extend_from_slice(&d)
            }
            Ok(Event::PartEnd) => {}
            Ok(Event::End) => return Ok(parts),
            Err(ParseError::Format(e)) => return Err(e),
            Err(ParseError::Io(e)) => panic!("io error from an in-memory reader: {e}"),
        }
    }
}

/// The shared corpus beside the repository (`../shared`), when it is there: its tests run in
/// addition to the in-repo corpus, and say on stderr when it is absent.
fn shared_corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/multipart");
    if !dir.is_dir() {
        eprintln!(
            "note: no shared corpus at {}; only the in-repo corpus runs",
            dir.display()
        );
        return None;
    }
    Some(dir)
}

/// The corpus recorded from real clients by `scripts/record-corpus.sh`.
fn recorded_corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/multipart")
}

/// The corpus's base64 (YAML block scalars: wrapped lines), through the tus header decoder.
fn base64(s: &str) -> Vec<u8> {
    let joined: String = s.split_whitespace().collect();
    crate::tus::headers::decode_base64(&joined).expect("corpus base64")
}

/// The subset of the corpus YAML that the cases use.
struct Case {
    boundary: String,
    expected: Result<Vec<(String, Option<String>, Vec<u8>)>, ()>,
}

fn read_case(yaml: &str) -> Case {
    let mut boundary = String::new();
    let mut parts: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
    let mut error = false;
    let mut in_data = false;
    let mut data = String::new();
    let unquote = |v: &str| v.trim().trim_matches('\'').trim_matches('"').to_string();
    for line in yaml.lines() {
        let t = line.trim();
        if in_data && !t.is_empty() && !t.contains(": ") && !t.starts_with("- ") {
            data.push_str(t);
            continue;
        }
        if in_data {
            parts.last_mut().expect("part").2 = base64(&data);
            data.clear();
            in_data = false;
        }
        if let Some(v) = t.strip_prefix("boundary:") {
            boundary = unquote(v);
        } else if t.starts_with("error:") {
            error = true;
        } else if let Some(v) = t.strip_prefix("- name:") {
            parts.push((unquote(v), None, Vec::new()));
        } else if let Some(v) = t.strip_prefix("file_name:") {
            parts.last_mut().expect("part").1 = Some(unquote(v));
        } else if let Some(v) = t.strip_prefix("data:") {
            if v.contains("!!binary") {
                in_data = true;
            } else {
                parts.last_mut().expect("part").2 = unquote(v).into_bytes();
            }
        }
    }
    if in_data {
        parts.last_mut().expect("part").2 = base64(&data);
    }
    Case {
        boundary,
        expected: if error { Err(()) } else { Ok(parts) },
    }
}

/// Cases whose parts use base64 / quoted-printable: pidrop refuses them (RFC 7578 §4.7)
/// rather than store undecoded bytes.
fn uses_refused_encoding(body: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(body).to_ascii_lowercase();
    lower.contains("transfer-encoding: base64")
        || lower.contains("transfer-encoding: quoted-printable")
}

/// Split points for a body: every one for small bodies, ~300 spread over large ones plus the
/// buffer edges.
fn split_points(len: usize) -> Vec<usize> {
    let step = (len / 300).max(1);
    let mut v: Vec<usize> = (1..=len).step_by(step).collect();
    v.extend(
        [1, 2, 3, 511, 512, 513, 4096, 8191, 8192, 8193]
            .iter()
            .filter(|s| **s <= len),
    );
    v
}

/// Every `NAME.http` + `NAME.yaml` case in `dir`, at many split points and two buffer sizes.
/// Returns how many cases ran.
fn check_cases(dir: &std::path::Path) -> usize {
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("http") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let body = std::fs::read(&path).expect("body");
        let mut case =
            read_case(&std::fs::read_to_string(path.with_extension("yaml")).expect("yaml"));
        if stem == "single_field_blocks" {
            // Its YAML says `--boundary`, but the body is delimited by `boundary` (upstream feeds
            // this case to a test of its own with that boundary).
            case.boundary = "boundary".to_string();
        }
        for split in split_points(body.len()) {
            for cap in [BUFFER_SIZE, TINY] {
                check_case(&stem, &body, &case, split, cap);
            }
        }
        seen += 1;
    }
    seen
}

fn check_case(stem: &str, body: &[u8], case: &Case, split: usize, cap: usize) {
    let got = parse_all(body, &case.boundary, &[split, 1, 2], cap);
    if uses_refused_encoding(body) {
        assert_eq!(got, Err(MultipartError::UnsupportedEncoding), "{stem}");
        return;
    }
    match &case.expected {
        Err(()) => assert!(got.is_err(), "{stem} at split {split} must fail: {got:?}"),
        Ok(want) => {
            let got = got.unwrap_or_else(|e| panic!("{stem} split {split}: {e}"));
            assert_eq!(got.len(), want.len(), "{stem}");
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g.name, w.0, "{stem}");
                assert_eq!(g.data, w.2, "{stem} split {split} cap {cap}");
                if let Some(f) = &w.1 {
                    if !f.contains('?') {
                        assert_eq!(g.filename.as_deref(), Some(f.as_str()), "{stem}");
                    }
                }
            }
        }
    }
}

#[test]
fn recorded_clients_at_every_split_point() {
    let seen = check_cases(&recorded_corpus());
    assert!(
        seen >= 8,
        "expected the recorded corpus (8 clients), saw {seen}"
    );
}

#[test]
fn shared_edge_cases_at_every_split_point() {
    let Some(dir) = shared_corpus() else { return };
    let seen = check_cases(&dir.join("edge-cases"));
    assert!(
        seen >= 25,
        "expected the whole edge-case corpus, saw {seen}"
    );
}

#[test]
fn shared_browser_captures_at_every_split_point() {
    let Some(dir) = shared_corpus() else { return };
    let dir = dir.join("browsers");
    let cases = [
        (
            "firefox3-2png1txt",
            "---------------------------186454651713519341951581030105",
        ),
        (
            "firefox3-2pnglongtext",
            "---------------------------14904044739787191031754711748",
        ),
        ("opera8-2png1txt", "----------zEO9jQKmLc2Cq88c23Dx19"),
        ("webkit3-2png1txt", "----WebKitFormBoundaryjdSFhcARk8fyGNy6"),
        ("ie6-2png1txt", "---------------------------7d91b03a20128"),
    ];
    for (name, boundary) in cases {
        let d = dir.join(name);
        let body = std::fs::read(d.join("request.http")).expect("capture");
        let f1 = std::fs::read(d.join("file1.png")).expect("file1");
        let f2 = std::fs::read(d.join("file2.png")).expect("file2");
        let mut text = std::fs::read(d.join("text.txt")).expect("text");
        // The expected-value file ends with a newline that the form field does not have.
        if text.ends_with(b"\n") {
            text.pop();
        }
        // And it was stored with LF line endings where the browser sent CRLF.
        let text = String::from_utf8_lossy(&text)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes();
        let step = (body.len() / 200).max(1);
        for split in (1..body.len())
            .step_by(step)
            .chain([1, 2, 3, 4096, 8191, 8192, 8193])
        {
            let parts = parse_all(&body, boundary, &[split, 7, 8192], BUFFER_SIZE)
                .unwrap_or_else(|e| panic!("{name} split {split}: {e}"));
            let files: Vec<&Part> = parts.iter().filter(|p| p.filename.is_some()).collect();
            assert_eq!(files.len(), 2, "{name}");
            assert_eq!(files[0].data, f1, "{name} split {split}");
            assert_eq!(files[1].data, f2, "{name} split {split}");
            assert_eq!(
                files[0]
                    .content_type
                    .as_deref()
                    .map(|c| c.starts_with("image/")),
                Some(true)
            );
            let t = parts.iter().find(|p| p.name == "text").expect("text field");
            assert_eq!(t.data, text, "{name}");
        }
    }
}

#[test]
fn ie7_sends_a_full_windows_path() {
    let Some(dir) = shared_corpus() else { return };
    let raw = std::fs::read(dir.join("browsers/ie7_full_path_request.http")).expect("ie7");
    // This capture was stored with LF line endings; the wire had CRLF.
    let body = String::from_utf8_lossy(&raw)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes();
    let text = String::from_utf8_lossy(&body);
    let boundary = text
        .lines()
        .next()
        .expect("line")
        .trim()
        .strip_prefix("--")
        .expect("boundary line")
        .to_string();
    let parts = parse_all(&body, &boundary, &[100], BUFFER_SIZE).expect("parses");
    let f = parts
        .iter()
        .find_map(|p| p.filename.clone())
        .expect("a file part");
    // This capture carries a bare name; full Windows paths are covered in validate.rs.
    assert_eq!(f, "Sellersburg Town Council Meeting 02-22-2010doc.doc");
}

#[test]
fn boundary_from_content_type() {
    assert_eq!(
        boundary("multipart/form-data; boundary=abc").as_deref(),
        Ok("abc")
    );
    assert_eq!(
        boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
        Ok("a b")
    );
    assert!(boundary("multipart/form-data").is_err());
    assert!(boundary("application/json; boundary=x").is_err());
    assert!(boundary("multipart/form-data; boundary=").is_err());
    assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
}

#[test]
fn missing_closing_boundary_is_an_error() {
    let body =
        b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhello";
    assert_eq!(
        parse_all(body, "b", &[5], 64),
        Err(MultipartError::Truncated)
    );
    let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nhello\r\n--b";
    assert_eq!(
        parse_all(body, "b", &[5], 64),
        Err(MultipartError::Truncated)
    );
}

#[test]
fn limits() {
    let mut body = Vec::new();
    for i in 0..5 {
        body.extend_from_slice(
            format!("--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(b"--b--\r\n");
    let mut mp = Multipart::new(&body[..], "b", 64, 3);
    let mut err = None;
    for _ in 0..100 {
        match mp.next_event() {
            Ok(Event::End) => break,
            Ok(_) => {}
            Err(ParseError::Format(e)) => {
                err = Some(e);
                break;
            }
            Err(ParseError::Io(e)) => panic!("{e}"),
        }
    }
    assert_eq!(err, Some(MultipartError::TooManyParts { limit: 3 }));
    let huge = format!(
        "--b\r\nContent-Disposition: form-data; name=\"f\"\r\nX: {}\r\n\r\nx\r\n--b--",
        "y".repeat(9000)
    );
    assert!(matches!(
        parse_all(huge.as_bytes(), "b", &[4096], BUFFER_SIZE),
        Err(MultipartError::PartHeadersTooLarge { .. })
    ));
}

/// xorshift64*: deterministic randomness for property tests without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bodies_with_look_alikes_and_random_chunking() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        let boundary = ["b", "----WebKitFormBoundaryAbC", "xyz-123", "--"][round % 4];
        let delim = format!("\r\n--{boundary}");
        let nparts = rng.below(4);
        let mut want = Vec::new();
        let mut body = Vec::new();
        for i in 0..nparts {
            let mut data = Vec::new();
            for _ in 0..rng.below(40) {
                match rng.below(6) {
                    // A proper prefix of the delimiter: looks like a boundary, is content.
                    0 => data.extend_from_slice(&delim.as_bytes()[..rng.below(delim.len())]),
                    1 => data.extend_from_slice(b"\r\n"),
                    // The delimiter followed by something other than CRLF or "--".
                    2 => {
                        data.extend_from_slice(delim.as_bytes());
                        data.push(b'Q');
                    }
                    3 => data.extend((0..rng.below(3000)).map(|_| rng.next() as u8)),
                    _ => data.extend_from_slice(b"plain text "),
                }
            }
            // Content must not end in a way that completes a delimiter with what follows.
            let name = format!("f{i}");
            let filename = (rng.below(2) == 0).then(|| format!("file{i}.bin"));
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match &filename {
                Some(f) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n");
            want.push(Part {
                name,
                content_type: filename
                    .as_ref()
                    .map(|_| "application/octet-stream".to_string()),
                filename,
                data,
            });
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        if nparts == 0 {
            continue; // "--b--" alone is covered by the corpus (empty_message)
        }
        let pieces: Vec<usize> = (0..5).map(|_| 1 + rng.below(9000)).collect();
        let cap = [BUFFER_SIZE, TINY, 300, 4096][rng.below(4)];
        let got = parse_all(&body, boundary, &pieces, cap)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(got, want, "round {round}, pieces {pieces:?}, cap {cap}");
    }
}

/// A naive in-memory parser with the same rules, written for clarity, not speed: the whole body
/// as one slice, `find` instead of a streaming search. The differential test below checks the
/// streaming parser against it on random, often broken, bodies.
fn naive(body: &[u8], boundary: &str) -> Result<Vec<(String, Option<String>, Vec<u8>)>, ()> {
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        (from..=hay.len().saturating_sub(needle.len())).find(|&i| hay[i..].starts_with(needle))
    };
    let dash = format!("--{boundary}").into_bytes();
    let delim = format!("\r\n--{boundary}").into_bytes();
    let mut pos = body
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    if !body[pos..].starts_with(&dash) {
        return Err(());
    }
    pos += dash.len();
    let mut parts = Vec::new();
    // After a delimiter: "--" ends the body; padding + CRLF starts a part; else not a delimiter.
    let after = |pos: usize| -> Option<Option<usize>> {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Some(None);
        }
        let pad = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        if pad <= MAX_PADDING && rest[pad..].starts_with(b"\r\n") {
            return Some(Some(pos + pad + 2));
        }
        None
    };
    let mut next = match after(pos) {
        Some(n) => n,
        None => return Err(()),
    };
    while let Some(start) = next {
        let mut slots = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
        let (len, headers) = match httparse::parse_headers(&body[start..], &mut slots) {
            Ok(httparse::Status::Complete(done)) => done,
            _ => return Err(()),
        };
        let head = part_head(headers).map_err(|_| ())?;
        let data_start = start + len;
        let mut search = data_start;
        loop {
            let at = find(body, &delim, search).ok_or(())?;
            if let Some(n) = after(at + delim.len()) {
                parts.push((
                    head.name.clone(),
                    head.filename.clone(),
                    body[data_start..at].to_vec(),
                ));
                next = n;
                break;
            }
            search = at + 1;
        }
    }
    Ok(parts)
}

#[test]
fn streaming_parser_agrees_with_the_naive_parser_on_random_bodies() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let pieces_of = |rng: &mut Rng, boundary: &str| -> Vec<Vec<u8>> {
        vec![
            format!("--{boundary}").into_bytes(),
            format!("\r\n--{boundary}").into_bytes(),
            format!("\r\n--{boundary}--").into_bytes(),
            b"\r\n".to_vec(),
            b"\r\n\r\n".to_vec(),
            b"--".to_vec(),
            b"\r".to_vec(),
            b" \t".to_vec(),
            b"Content-Disposition: form-data; name=\"a\"".to_vec(),
            b"Content-Disposition: form-data; name=\"f\"; filename=\"x.bin\"".to_vec(),
            b"Content-Type: text/plain".to_vec(),
            (0..rng.below(40)).map(|_| rng.next() as u8).collect(),
            b"data".to_vec(),
        ]
    };
    let mut agreed_ok = 0;
    for round in 0..3000 {
        let boundary = ["b", "xY-9", "----WebKitFormBoundaryQ"][round % 3];
        // Well-formed parts whose data holds random look-alike pieces…
        let mut body = Vec::new();
        for i in 0..1 + rng.below(3) {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            if i % 2 == 0 {
                body.extend_from_slice(
                    b"Content-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\r\n",
                );
            } else {
                body.extend_from_slice(b"Content-Disposition: form-data; name=\"a\"\r\n\r\n");
            }
            for _ in 0..rng.below(8) {
                let pieces = pieces_of(&mut rng, boundary);
                body.extend_from_slice(&pieces[rng.below(pieces.len())]);
            }
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        // …then, one time in three, broken: a byte flipped, or the body cut short.
        match rng.below(6) {
            0 => {
                let i = rng.below(body.len());
                body[i] = rng.next() as u8;
            }
            1 => body.truncate(rng.below(body.len())),
            _ => {}
        }
        let reference = naive(&body, boundary);
        let pieces: Vec<usize> = (0..3).map(|_| 1 + rng.below(50)).collect();
        let streamed = parse_all(&body, boundary, &pieces, TINY).map(|parts| {
            parts
                .into_iter()
                .map(|p| (p.name, p.filename, p.data))
                .collect::<Vec<_>>()
        });
        match (&reference, &streamed) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "round {round}: {:?}", String::from_utf8_lossy(&body));
                agreed_ok += 1;
            }
            (Err(()), Err(_)) => {}
            _ => panic!(
                "round {round}: naive {reference:?} vs streaming {streamed:?} on {:?}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
    assert!(
        agreed_ok > 300,
        "too few valid bodies generated ({agreed_ok})"
    );
}
