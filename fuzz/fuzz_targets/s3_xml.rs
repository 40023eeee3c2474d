//! What an S3 server answers (listings, upload ids, errors) read by `s3::xml` on arbitrary
//! text: a broken or hostile server never panics pidrop, and escaping then reading gives the
//! text back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pidrop::s3::xml::{elements, escape, text, unescape};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for item in elements(s, "Contents") {
        let _ = text(item, "Key");
        let _ = text(item, "Size");
    }
    let _ = text(s, "UploadId");
    assert_eq!(unescape(&escape(s)), s);
});
