//! Weft data plane (in progress).
