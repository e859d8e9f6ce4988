//! What transfers leave in the home, and its removal once abandoned.
//!
//! An interrupted push keeps its spool folder (`HOME/spool/KEY`: which
//! parts the server holds) and an interrupted pull its partial download
//! (`HOME/partial/ID`: decrypted plaintext of the parts verified so far,
//! 0600 in 0700 folders), so that running the command again resumes. One
//! nobody resumed is removed once nothing in it changed for
//! [`DEFAULT_STALE_AFTER`] (or `MDROP_STALE_AFTER`, a duration such as
//! `3d`), when the next push or pull starts: plaintext must not outlive
//! the work it was for. A later run of that command starts afresh.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::home::Home;

/// How long an untouched spool or partial download is kept.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(14 * 86_400);

/// The folders of the home that hold one transfer per entry.
const TRANSFER_DIRS: [&str; 2] = ["spool", "partial"];

/// The least `MDROP_STALE_AFTER` may ask for: a transfer that another
/// `mdrop` is running right now (connecting, re-hashing what it verified)
/// must not look abandoned.
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(3_600);

/// How long untouched transfers are kept: `MDROP_STALE_AFTER` if it is a
/// duration (at least [`MIN_STALE_AFTER`]), else [`DEFAULT_STALE_AFTER`].
pub fn stale_after() -> Duration {
    std::env::var("MDROP_STALE_AFTER")
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .map_or(DEFAULT_STALE_AFTER, |d| d.max(MIN_STALE_AFTER))
}

/// Marks a transfer folder as in use now (a run that resumes it), so that
/// no other `mdrop`'s sweep takes it for abandoned.
pub fn touch(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// The newest modification time of `path` and, for a folder, of anything
/// in it (one level of sub-folders deep is enough for the home's layout;
/// deeper ones count by their own time).
fn last_touched(path: &Path) -> Option<SystemTime> {
    let mut newest = fs::symlink_metadata(path).ok()?.modified().ok()?;
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            if let Some(t) = e.metadata().ok().and_then(|m| m.modified().ok()) {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Folders (or files) removed.
    pub removed: Vec<std::path::PathBuf>,
    /// Those it could not remove (wholly or in part), with why.
    pub failed: Vec<(std::path::PathBuf, String)>,
}

/// Removes every spool and partial download untouched for `max_age`.
/// Entries are not followed through symlinks.
pub fn sweep(home: &Home, max_age: Duration) -> Swept {
    let now = SystemTime::now();
    let mut swept = Swept::default();
    for dir in TRANSFER_DIRS {
        let Ok(entries) = fs::read_dir(home.path(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let stale = last_touched(&path)
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > max_age);
            if !stale {
                continue;
            }
            let gone = match e.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
            match gone {
                Ok(()) => swept.removed.push(path),
                Err(e) => swept.failed.push((path, e.to_string())),
            }
        }
    }
    swept
}

/// [`sweep`] with [`stale_after`], saying on stderr what it removed.
pub fn sweep_and_tell(home: &Home) {
    let max_age = stale_after();
    let Swept { removed, failed } = sweep(home, max_age);
    for (path, why) in &failed {
        eprintln!(
            "mdrop: warning: could not remove the abandoned transfer folder {} ({why}); \
             remove it by hand",
            path.display()
        );
    }
    if !removed.is_empty() {
        eprintln!(
            "mdrop: removed {} abandoned transfer folder{} untouched for over {} \
             (MDROP_STALE_AFTER)",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" },
            humantime::format_duration(max_age)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, by: Duration) {
        let t = SystemTime::now() - by;
        let f = fs::File::open(path).unwrap();
        f.set_modified(t).unwrap();
    }

    #[test]
    fn only_transfers_untouched_for_long_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::resolve(Some(tmp.path().to_owned())).unwrap();
        let day = Duration::from_secs(86_400);
        let make = |rel: &str, file: &str, old: Duration| {
            let dir = tmp.path().join(rel);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(file), b"x").unwrap();
            age(&dir.join(file), old);
            age(&dir, old);
            dir
        };
        let old_spool = make("spool/old", "spool.json", 20 * day);
        let old_partial = make("partial/p-old", "0.plain", 15 * day);
        let fresh = make("partial/p-fresh", "0.plain", day);
        // An old folder with one recent file is in use.
        let touched = make("spool/touched", "spool.json", 30 * day);
        fs::write(touched.join("new"), b"y").unwrap();
        // Nothing outside the transfer folders is looked at.
        let other = make("rosters/m", "r.json", 90 * day);

        let mut removed = sweep(&home, 14 * day).removed;
        removed.sort();
        assert_eq!(removed, [old_partial.clone(), old_spool.clone()]);
        assert!(!old_spool.exists() && !old_partial.exists());
        assert!(fresh.exists() && touched.exists() && other.exists());
        // A shorter age takes the rest.
        assert_eq!(sweep(&home, Duration::from_secs(3_600)).removed.len(), 1);
        assert!(!fresh.exists());
    }
}
