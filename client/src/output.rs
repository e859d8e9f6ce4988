//! Output: one JSON object on stdout with `--json`, human text otherwise.

use std::io::Write as _;

use serde::Serialize;

use crate::error::{CmdResult, Fail};

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

/// Text from another party (a note, a title, an id), made safe for a
/// terminal: control characters (C0, DEL, C1) and the Unicode bidirectional
/// formatting characters become `\u{…}` escapes, so that such text can
/// neither move the cursor, rewrite the screen, nor reorder what is shown.
/// Newlines are kept when `keep_newlines` (multi-line notes and
/// acknowledgment texts).
pub fn escape(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (c == '\n' && keep_newlines) || !matterdrop_common::ids::is_terminal_unsafe(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    out
}

/// Shows `what` on standard error and asks `question` (answered by typing
/// `yes`), unless `yes` (`--yes`) was given. Without a terminal to ask on,
/// refuses (usage, exit 2) and says to pass `--yes`; any other answer
/// refuses with `declined`.
pub fn confirm(yes: bool, what: &str, question: &str, declined: &str) -> CmdResult {
    use std::io::BufRead as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{what}");
    if yes {
        return Ok(());
    }
    can_confirm(yes)?;
    let _ = write!(err, "{question} Type 'yes' to sign: ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(Fail::other(declined.to_owned()));
    }
    Ok(())
}

/// Refuses at once (usage, exit 2) when [`confirm`] could not ask: no
/// `--yes` and no terminal. Call before work that should not be done for
/// nothing.
pub fn can_confirm(yes: bool) -> CmdResult {
    use std::io::IsTerminal as _;
    if yes || std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(Fail::usage(
            "confirmation needed: run in a terminal or pass --yes",
        ))
    }
}

/// A size for people: `512 B`, `1.5 KiB`, `32.0 MiB`, `1.2 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::{escape, human_size};

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(32 << 20), "32.0 MiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(escape("a\u{1b}[2Jb", false), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\u{202e}y\u{9b}", false), "x\\u{202e}y\\u{9b}");
        assert_eq!(escape("one\ntwo\r", true), "one\ntwo\\u{d}");
        assert_eq!(escape("one\ntwo", false), "one\\u{a}two");
        assert_eq!(escape("Müller v. 日本", false), "Müller v. 日本");
    }
}
