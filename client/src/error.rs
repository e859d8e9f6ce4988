//! Failures as the user sees them: a message, what to do next, and the
//! documented exit code (SPEC §7).

use std::fmt;

/// Exit codes.
pub mod exit {
    /// Other error.
    pub const OTHER: u8 = 1;
    /// Usage error.
    pub const USAGE: u8 = 2;
    /// Denied by access control.
    pub const DENIED: u8 = 3;
    /// Verification failed.
    pub const VERIFY: u8 = 4;
    /// Cannot reach or authenticate the server.
    pub const CONNECT: u8 = 5;
}

/// A command's failure.
#[derive(Debug)]
pub struct Fail {
    /// Exit code.
    pub code: u8,
    /// What went wrong.
    pub message: String,
    /// What to do next.
    pub hint: Option<String>,
    /// The connection was lost (not refused, not tampered with): the
    /// operation may be resumed on a new connection.
    pub retryable: bool,
}

impl Fail {
    /// A failure with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
            retryable: false,
        }
    }

    /// The failure for an error answer from the server.
    pub fn from_server(e: matterdrop_common::proto::ErrorResponse) -> Self {
        // The server's words reach the terminal: escaped like any other
        // party's text.
        Self::new(e.code.exit_code(), crate::output::escape(&e.message, true))
    }

    /// Exit code 1.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(exit::OTHER, message)
    }

    /// Exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }

    /// Exit code 5.
    pub fn connect(message: impl Into<String>) -> Self {
        Self::new(exit::CONNECT, message)
    }

    /// Exit code 5, for a connection lost or a server not answering:
    /// worth another try on a new connection.
    pub fn lost(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            ..Self::connect(message)
        }
    }

    /// Adds a recommendation.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Self {
        Self::other(format!("{e:#}"))
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Self::other(e.to_string())
    }
}

/// Result of a command.
pub type CmdResult<T = ()> = Result<T, Fail>;
