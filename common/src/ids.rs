//! Identifier syntax for principals, organizations and matters.
//!
//! Identifiers travel in log entries, signed messages and file names on the
//! server, so they are restricted to a small, unambiguous alphabet.

use thiserror::Error;

/// Whether `c` must not reach a terminal as it is: a control character
/// (C0, DEL, C1) or a Unicode bidirectional formatting character, either of
/// which can move the cursor, rewrite the screen or reorder what is shown.
pub fn is_terminal_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Whether `c` is refused in text another party signs (acknowledgment
/// text): terminal-unsafe characters except newline and tab.
pub fn is_unsafe_in_signed_text(c: char) -> bool {
    c != '\n' && c != '\t' && is_terminal_unsafe(c)
}

/// Longest accepted identifier, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// An identifier that does not follow the documented syntax.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Principal ids look like `alice@firm-a`.
    #[error(
        "invalid principal id {0:?}: expected NAME@ORG, lowercase letters, digits, '.', '_' and '-', at most 64 characters"
    )]
    Principal(String),
    /// Organization ids look like `firm-a`.
    #[error(
        "invalid organization id {0:?}: expected lowercase letters, digits and '-', starting with a letter or digit, at most 64 characters"
    )]
    Org(String),
    /// Matter ids look like `2026-PI-0042`.
    #[error(
        "invalid matter id {0:?}: expected letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters"
    )]
    Matter(String),
}

fn simple(s: &str, extra: &[u8], upper: bool) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes().all(|b| {
            b.is_ascii_digit()
                || b.is_ascii_lowercase()
                || (upper && b.is_ascii_uppercase())
                || extra.contains(&b)
        })
}

/// Checks an organization id (`firm-a`).
pub fn validate_org(s: &str) -> Result<(), IdError> {
    if simple(s, b"-", false) {
        Ok(())
    } else {
        Err(IdError::Org(s.to_owned()))
    }
}

/// Checks a principal id (`alice@firm-a`) and returns its organization part.
pub fn validate_principal(s: &str) -> Result<&str, IdError> {
    let err = || IdError::Principal(s.to_owned());
    let (local, domain) = s.split_once('@').ok_or_else(err)?;
    if s.len() > MAX_ID_LEN || !simple(local, b"._-", false) || validate_org(domain).is_err() {
        return Err(err());
    }
    Ok(domain)
}

/// Checks a matter id (`2026-PI-0042`).
pub fn validate_matter(s: &str) -> Result<(), IdError> {
    if simple(s, b"._-", true) {
        Ok(())
    } else {
        Err(IdError::Matter(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_ids() {
        assert_eq!(validate_principal("alice@firm-a"), Ok("firm-a"));
        assert_eq!(validate_principal("a.b_c-d@x1"), Ok("x1"));
        for bad in [
            "",
            "alice",
            "@firm",
            "alice@",
            "Alice@firm",
            "alice@firm@x",
            "al ice@firm",
            "../x@firm",
            "alice@-firm",
            &format!("{}@f", "a".repeat(64)),
        ] {
            assert!(validate_principal(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn org_and_matter_ids() {
        assert!(validate_org("lpo-1").is_ok());
        assert!(validate_org("LPO").is_err());
        assert!(validate_org("a/b").is_err());
        assert!(validate_org("").is_err());
        assert!(validate_matter("2026-PI-0042").is_ok());
        assert!(validate_matter("..").is_err());
        assert!(validate_matter("a/b").is_err());
        assert!(validate_matter(&"m".repeat(65)).is_err());
    }
}
