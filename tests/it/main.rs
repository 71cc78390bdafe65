//! The one integration-test binary: small helpers in `common`, one module per area.

mod common;
mod gguf;
mod parity;
