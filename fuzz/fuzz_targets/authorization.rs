//! The `Authorization` header parser on arbitrary text: never panics, and a Basic credential it
//! accepts is the one the header encodes (a name without `:`; encoding it again gives it back).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pidrop::access::{parse_authorization, Credentials};
use pidrop::tus::headers::encode_base64;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_authorization(text) {
        Some(Credentials::Basic { name, password }) => {
            assert!(!name.contains(':'));
            let again = format!("Basic {}", encode_base64(format!("{name}:{password}").as_bytes()));
            assert_eq!(parse_authorization(&again), Some(Credentials::Basic { name, password }));
        }
        Some(Credentials::Bearer(token)) => assert!(!token.is_empty() && !token.contains(' ')),
        None => {}
    }
});
