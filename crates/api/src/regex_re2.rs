//! Regex semantics shared with the proxy: see the `weft-re2` crate.

pub use weft_re2::{VALIDATION_SIZE_LIMIT, compile, compile_with};
