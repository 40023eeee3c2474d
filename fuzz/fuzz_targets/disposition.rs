//! Content-Disposition and file-name decoding: never panics, and the cleaned original name never
//! holds a path separator, a control character or a bidi override.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pidrop::multipart::disposition;
use pidrop::validate::{extension, original_name};

fuzz_target!(|data: &[u8]| {
    if let Some(d) = disposition::parse(data) {
        if let Some(raw) = d.filename {
            if let Some(name) = original_name(&raw) {
                assert!(!name.contains('/') && !name.contains('\\'));
                assert!(!name.chars().any(|c| c.is_control()));
                assert!(name != "." && name != ".." && !name.is_empty());
                assert!(name.len() <= 255);
                let ext = extension(&name);
                assert!(ext.bytes().all(|b| b.is_ascii_alphanumeric()));
            }
        }
    }
});
