//! Matterdrop server library behind the `mdropd` binary.
//!
//! [`datadir`] creates and loads the data directory, [`store`] keeps
//! metadata behind a small trait, [`policy`] decides every access question,
//! [`handler`] answers requests and [`server`] runs the QUIC endpoint.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cli;
pub mod datadir;
pub mod handler;
pub mod policy;
pub mod server;
pub mod store;

/// The audit-log key in signed-note verifier form (`name+hash+key`).
pub fn log_verifier_key(name: &str, key: &ed25519_dalek::SigningKey) -> String {
    matterdrop_common::tlog::NoteVerifier::new(name, key.verifying_key()).to_vkey()
}
