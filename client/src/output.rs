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

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(escape("a\u{1b}[2Jb", false), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\u{202e}y\u{9b}", false), "x\\u{202e}y\\u{9b}");
        assert_eq!(escape("one\ntwo\r", true), "one\ntwo\\u{d}");
        assert_eq!(escape("one\ntwo", false), "one\\u{a}two");
        assert_eq!(escape("Müller v. 日本", false), "Müller v. 日本");
    }
}
