//! One module per subcommand family.

pub mod admin;
pub mod audit;
pub mod identity;
pub mod inbox;
pub mod keys;
pub mod matter;
pub mod packets;
pub mod purge;
pub mod report;
pub mod review;
pub mod sent;
pub mod share;

use crate::home::Home;
use crate::output::Output;

/// What every command gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Client home.
    pub home: Home,
    /// Output mode.
    pub out: Output,
}
