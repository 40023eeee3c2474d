//! Integration tests: the real binary on 127.0.0.1, real sockets, real files.
//! One test binary; modules by subject; the harness is shared, not copied.

#![allow(
    clippy::cast_possible_truncation,
    reason = "test data generators truncate on purpose; sizes here are small"
)]

mod access;
mod albums;
mod catalogue;
mod conditional;
mod gps;
mod harness;
mod hooks;
mod hosts;
mod http_core;
mod links;
mod login;
mod metrics;
mod proxy;
#[cfg(feature = "s3")]
mod s3;
mod state;
mod thumbnails;
mod tus;
mod uploads;
