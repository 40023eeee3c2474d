//! Log output: `env_logger` for filtering (`RUST_LOG` or `--log`), with our own format. Under
//! systemd (`JOURNAL_STREAM` set) lines carry a syslog priority prefix and no timestamp, since
//! journald adds its own; elsewhere they start with an RFC 3339 UTC time.

use std::io::Write;

pub fn init(level: &str) {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let mut b = env_logger::Builder::new();
    b.parse_filters(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(move |buf, record| {
        if journald {
            let prio = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{prio}>{}", record.args())
        } else {
            let now = crate::time::rfc3339_millis(std::time::SystemTime::now());
            writeln!(buf, "{now} {:<5} {}", record.level(), record.args())
        }
    });
    let _ = b.try_init();
}
