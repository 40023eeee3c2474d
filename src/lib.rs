//! pidrop as a library: the modules the binary (`main.rs`) is built from, public so that the
//! fuzz targets in `fuzz/` can drive the parsers directly.
//!
//! The flow of a request: `http` (listener, pool, head, body) → `routes` (method + path, the one
//! error → status mapping) → `upload` (multipart via `multipart`, PUT; one `Ingest` per file,
//! checks via `validate`) or `tus` (resumable uploads, through the same `Ingest`) → `storage`
//! (the catalogue and the blob backend) or `serve` (downloads).

pub mod access;
pub mod after_commit;
pub mod announce;
pub mod assets;
pub mod config;
pub mod error;
pub mod gate;
pub mod hooks;
pub mod hosts;
pub mod http;
pub mod json;
pub mod links;
pub mod logger;
pub mod login;
pub mod metrics;
pub mod multipart;
pub mod proxy;
pub mod refusals;
pub mod routes;
#[cfg(feature = "s3")]
pub mod s3;
pub mod serve;
pub mod storage;
pub mod sys;
#[cfg(feature = "thumbnails")]
pub mod thumbs;
pub mod time;
pub mod tus;
pub mod upload;
pub mod validate;
