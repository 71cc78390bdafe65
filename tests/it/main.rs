//! The one integration-test binary: small helpers in `common`, one module per area.

mod audit;
mod bad_input;
mod common;
mod dlp;
mod generation;
mod gguf;
mod hub;
mod parity;
mod pipeline;
mod train;
