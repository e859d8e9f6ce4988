//! Shared helpers for the benchmark binaries.

pub mod harness;
pub mod link;
