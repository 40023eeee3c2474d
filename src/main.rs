//! temp
mod error;
mod http;
mod multipart;
mod time;
fn main() {}
