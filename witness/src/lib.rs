//! A C2SP `tlog-witness` (<https://c2sp.org/tlog-witness>) for Matterdrop
//! audit logs.
//!
//! A witness keeps, per log (origin), the latest tree size and root it
//! cosigned. It cosigns a new checkpoint only if the log's key signed it and
//! a consistency proof shows it extends that tree, and it saves its new
//! state durably before it answers. So a log operator cannot show one
//! history to some and a forked one to others once they check cosignatures.
//!
//! `add-checkpoint` request body: `old <size>\n`, zero to 63 base64
//! consistency-proof lines, an empty line, then the signed checkpoint note.
//! Answers (this implementation follows the current text of the spec):
//!
//! | status | when |
//! |---|---|
//! | 200 | cosigned: the body is the cosignature line (`— name base64`) |
//! | 400 | malformed request, or `old` larger than the checkpoint's size |
//! | 403 | the note carries no valid signature by the origin's trusted key |
//! | 404 | unknown origin |
//! | 409 | `old` is not the size this witness last cosigned; body: that size and a newline, `Content-Type: text/x.tlog.size` |
//! | 422 | the consistency proof does not verify, or the same size with another root |

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use matterdrop_common::tlog::cosignature::Cosigner;
use matterdrop_common::tlog::{self, Hash, NoteVerifier};
use serde::{Deserialize, Serialize};

/// Most consistency-proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// `Content-Type` of a 409 answer.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// What the witness remembers of one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// Tree size last cosigned.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
}

/// An HTTP answer, independent of the server library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Answer {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// A witness: its key, the logs it trusts, its state on disk.
#[derive(Debug)]
pub struct Witness {
    cosigner: Cosigner,
    logs: Vec<NoteVerifier>,
    path: PathBuf,
    state: Mutex<BTreeMap<String, LogState>>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Witness {
    /// Opens the witness whose state lives in `path` (created empty if
    /// missing), cosigning with `cosigner` for the logs of `logs`.
    pub fn open(path: &Path, cosigner: Cosigner, logs: Vec<NoteVerifier>) -> anyhow::Result<Self> {
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            cosigner,
            logs,
            path: path.to_path_buf(),
            state: Mutex::new(state),
        })
    }

    /// The witness's verifier key.
    pub fn vkey(&self) -> String {
        self.cosigner.vkey()
    }

    fn save(&self, state: &BTreeMap<String, LogState>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(state)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    }

    /// Handles one `add-checkpoint` request at time `now` (Unix seconds).
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Answer {
        if body.len() > MAX_BODY {
            return Answer::text(400, "request too large\n");
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return Answer::text(400, "not UTF-8\n");
        };
        let Some((head, note)) = text.split_once("\n\n") else {
            return Answer::text(400, "missing the empty line before the checkpoint\n");
        };
        let mut lines = head.split('\n');
        let Some(old) = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return Answer::text(400, "the first line must be `old <size>`\n");
        };
        let mut proof: Vec<Hash> = Vec::new();
        for l in lines {
            match STANDARD
                .decode(l)
                .ok()
                .and_then(|b| <Hash>::try_from(b).ok())
            {
                Some(h) if proof.len() < MAX_PROOF_LINES => proof.push(h),
                _ => return Answer::text(400, "bad consistency-proof line\n"),
            }
        }
        // The origin names the log; only its trusted key may sign.
        let origin = note.split('\n').next().unwrap_or_default();
        let known: Vec<&NoteVerifier> = self.logs.iter().filter(|v| v.name() == origin).collect();
        if known.is_empty() {
            return Answer::text(404, "unknown log\n");
        }
        let Some(cp) = known
            .iter()
            .find_map(|v| tlog::open_checkpoint(note, v).ok())
        else {
            return Answer::text(403, "no valid signature by the log's trusted key\n");
        };
        if cp.origin != origin {
            return Answer::text(400, "checkpoint origin mismatch\n");
        }
        if old > cp.size {
            return Answer::text(400, "old size is larger than the checkpoint's\n");
        }
        if old == 0 && !proof.is_empty() {
            return Answer::text(400, "no consistency proof is needed from size 0\n");
        }
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let (have_size, have_root) = match state.get(origin) {
            Some(s) => (s.size, s.root.clone()),
            None => (0, String::new()),
        };
        if old != have_size {
            return Answer {
                status: 409,
                content_type: SIZE_CONTENT_TYPE,
                body: format!("{have_size}\n"),
            };
        }
        let consistent = if old == 0 {
            proof.is_empty()
        } else if old == cp.size {
            proof.is_empty() && have_root == hex(&cp.root)
        } else {
            let mut root = [0u8; 32];
            let ok_root = have_root.len() == 64
                && have_root.bytes().all(|b| b.is_ascii_hexdigit())
                && (0..32).all(|i| {
                    u8::from_str_radix(&have_root[2 * i..2 * i + 2], 16)
                        .map(|b| root[i] = b)
                        .is_ok()
                });
            ok_root && tlog::verify_consistency(old, cp.size, &proof, &root, &cp.root).is_ok()
        };
        if !consistent {
            return Answer::text(
                422,
                "the checkpoint is not consistent with the tree this witness cosigned\n",
            );
        }
        let mut next = state.clone();
        next.insert(
            origin.to_owned(),
            LogState {
                size: cp.size,
                root: hex(&cp.root),
            },
        );
        if let Err(e) = self.save(&next) {
            tracing::error!(error = %e, "cannot save the witness state");
            return Answer::text(500, "the witness cannot save its state\n");
        }
        *state = next;
        // The body of a checkpoint note is everything before its signatures.
        let body_end = note.rfind("\n\n").map_or(note.len(), |i| i + 1);
        let line = self.cosigner.cosign(&note[..body_end], now.max(1));
        Answer {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: line,
        }
    }
}

#[cfg(test)]
mod tests;
