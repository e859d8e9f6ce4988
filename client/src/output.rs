//! Output: one JSON object on stdout with `--json`, human text otherwise.

use std::io::Write as _;

use serde::Serialize;

/// Where command results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json` was given.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `text` for people.
    pub fn emit<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = serde_json::to_writer(&mut out, value);
            let _ = writeln!(out);
        } else {
            let _ = write!(out, "{}", text());
        }
        let _ = out.flush();
    }
}
