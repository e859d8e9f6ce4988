//! Matterdrop server library behind the `mdropd` binary.
//!
//! [`datadir`] creates and loads the data directory, [`store`] keeps
//! metadata behind a small trait, [`policy`] decides every access question,
//! [`audit`] appends every decision to the tamper-evident log (stored by
//! [`auditlog`]), [`witness`] has witnesses cosign it, [`handler`] answers
//! requests and [`server`] runs the QUIC endpoint.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod audit;
pub mod auditlog;
pub mod cli;
pub mod datadir;
pub mod flood;
pub mod handler;
pub mod notify;
pub mod paths;
pub mod policy;
pub mod server;
pub mod store;
pub mod witness;
