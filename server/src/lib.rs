//! Matterdrop server library behind the `mdropd` binary.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod policy;
