//! Matterdrop common: everything the client and the server must agree on.
//!
//! The wire protocol ([`proto`]), identifier syntax ([`ids`]), key
//! fingerprints ([`keys`]), canonical signed messages ([`sign`]), transport
//! security ([`tls`]) and the Merkle log ([`tlog`]). Nothing here touches
//! the disk; the only network code is [`net`], the frame adapter over QUIC
//! streams that both sides share, and [`tls`] only builds configurations.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod agekey;
pub mod alloc;
pub mod audit;
pub mod bundle;
pub mod congestion;
pub mod custody;
pub mod evaluation;
mod hybrid_wrap;
pub mod ids;
pub mod keys;
pub mod net;
pub mod packet;
pub mod proto;
pub mod receipt;
pub mod reshare;
pub mod retention;
pub mod roles;
pub mod roster;
pub mod sha256pair;
pub mod sign;
pub mod streamfile;
pub mod timer;
pub mod tlog;
pub mod tls;
