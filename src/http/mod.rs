//! pidrop's own HTTP/1.1 server: strict framing, fixed limits, a bounded thread pool.
//!
//! The rest of pidrop sees three things: a [`Request`] (head + body `Read`), a [`Response`],
//! and the [`Service`] trait it implements. See `server.rs` for the threading model.

pub mod chunked;
pub mod conditional;
mod conn;
pub mod head;
pub mod range;
pub mod request;
pub mod response;
pub mod server;

pub use head::HeadLimits;
pub use request::{body_error, Forwarded, MinRate, Request};
pub use response::{Payload, Response};
pub use server::{run, Load, ServerConfig, Service};
