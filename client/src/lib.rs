//! Matterdrop client library behind the `mdrop` binary.
//!
//! [`cli`] holds the argument types, [`commands`] one module per command
//! family, [`conn`] the mutually authenticated QUIC session, [`home`] and
//! [`identity`] the user's files and keys.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cli;
pub mod commands;
pub mod conn;
pub mod error;
pub mod home;
pub mod hygiene;
pub mod identity;
pub mod keyaudit;
pub mod output;
pub mod pins;
pub mod roster;
pub mod when;
pub mod witnesses;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
