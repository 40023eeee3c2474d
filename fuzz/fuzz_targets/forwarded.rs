//! `--trusted-proxies` ranges and `--base-path` on arbitrary text: never a panic, a range
//! contains its own network address, and a base path is already in its normal form.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pidrop::proxy::{parse_base_path, parse_list, Cidr};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(list) = parse_list(s) {
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let c = Cidr::parse(part).expect("parse_list accepted it");
            let addr = part.split('/').next().unwrap_or(part).parse().expect("an address");
            assert!(c.contains(addr), "{part}");
        }
        let _ = list;
    }
    if let Some(base) = parse_base_path(s) {
        assert_eq!(parse_base_path(&base).as_deref(), Some(base.as_str()));
    }
});
