//! Range parsing: never panics, and a partial range always lies inside the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pidrop::http::range::{parse, ByteRange};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
    let Ok(header) = std::str::from_utf8(&data[8..]) else { return };
    if let ByteRange::Partial(a, b) = parse(header, len) {
        assert!(a <= b && b < len);
    }
});
