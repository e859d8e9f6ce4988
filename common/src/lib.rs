//! Matterdrop common: everything the client and the server must agree on.
//!
//! No I/O lives here: the wire protocol ([`proto`]), identity keys and
//! fingerprints ([`keys`]), canonical signed messages ([`sign`]), the
//! transport security configuration ([`tls`]) and the Merkle log ([`tlog`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod sign;
pub mod tlog;
