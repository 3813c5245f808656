//! Weft control plane (in progress).
