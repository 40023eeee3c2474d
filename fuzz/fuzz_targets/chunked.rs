//! The chunked decoder on arbitrary bytes, split at a point chosen by the first byte: never
//! panics, never returns data outside its input, and decodes the same whatever the split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pidrop::http::chunked::ChunkedDecoder;

fn decode(pieces: &[&[u8]]) -> Option<Vec<u8>> {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() && !dec.is_done() {
            let p = dec.decode(rest).ok()?;
            assert!(p.data.0 <= p.data.1 && p.data.1 <= p.consumed && p.consumed <= rest.len());
            out.extend_from_slice(&rest[p.data.0..p.data.1]);
            if p.consumed == 0 {
                break;
            }
            rest = &rest[p.consumed..];
        }
    }
    dec.is_done().then_some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, body)) = data.split_first() else { return };
    let split = usize::from(k) % (body.len() + 1);
    let whole = decode(&[body]);
    let parts = decode(&[&body[..split], &body[split..]]);
    assert_eq!(whole, parts);
});
