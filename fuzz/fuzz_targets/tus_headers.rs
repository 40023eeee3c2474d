//! tus's `Upload-Metadata` and `Upload-Checksum` parsers, and base64, on arbitrary text: never
//! panic, stay bounded, and what they accept round-trips (each decoded value, encoded again,
//! decodes to itself; each checksum accepted has a digest of its algorithm's size).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pidrop::tus::headers::{decode_base64, encode_base64, parse_checksum, parse_metadata, MAX_PAIRS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(pairs) = parse_metadata(text) {
        assert!(pairs.len() <= MAX_PAIRS);
        for (key, value) in &pairs {
            assert!(!key.is_empty() && !key.contains(',') && !key.contains(' '));
            assert_eq!(decode_base64(&encode_base64(value)).as_deref(), Some(value.as_slice()));
        }
    }
    if let Ok(mut expected) = parse_checksum(text) {
        expected.update(data);
        let _ = expected.matches();
    }
    if let Some(bytes) = decode_base64(text) {
        assert!(bytes.len() <= text.len());
        let again = encode_base64(&bytes);
        assert_eq!(decode_base64(&again), Some(bytes));
    }
});
