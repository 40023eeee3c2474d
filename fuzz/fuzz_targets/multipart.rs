//! The streaming multipart parser on arbitrary bodies, read in arbitrary pieces with a small
//! buffer: never panics, never yields an empty data event, and gives the same parts whatever the
//! chunking and buffer size; each data event is the input's bytes just before `consumed()`.
#![no_main]
use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use pidrop::multipart::{Event, Multipart};

struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    k: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = usize::from(self.sizes.get(self.k % self.sizes.len().max(1)).copied().unwrap_or(7)).max(1);
        self.k += 1;
        let n = want.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn parse(data: &[u8], sizes: &[u8], cap: usize) -> Result<Vec<(String, Option<String>, Vec<u8>)>, String> {
    let mut mp = Multipart::new(Pieces { data, sizes, k: 0 }, "b0undary", cap, 64);
    let mut parts: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
    for _ in 0..100_000 {
        match mp.next_event() {
            Ok(Event::Part(h)) => parts.push((h.name, h.filename, Vec::new())),
            Ok(Event::Data(d)) => {
                assert!(!d.is_empty());
                let d = d.to_vec();
                // The hold pipe (src/http/tee.rs) finds a file's bytes by these offsets.
                let end = usize::try_from(mp.consumed()).expect("small");
                assert_eq!(&data[end - d.len()..end], &d[..]);
                parts.last_mut().expect("data inside a part").2.extend_from_slice(&d);
            }
            Ok(Event::PartEnd) => {}
            Ok(Event::End) => return Ok(parts),
            Err(e) => return Err(format!("{e:?}")),
        }
    }
    panic!("no progress");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (sizes, body) = data.split_at(4);
    let a = parse(body, sizes, 8192);
    let b = parse(body, &[1], 512);
    // Header blocks larger than the small buffer legitimately differ; compare only successes.
    if let (Ok(a), Ok(b)) = (&a, &b) {
        assert_eq!(a, b);
    }
    if a.is_ok() && b.is_err() {
        assert!(b.as_ref().err().is_some_and(|e| e.contains("PartHeadersTooLarge")), "{b:?}");
    }
});
