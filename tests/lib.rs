//! Interop test support.
