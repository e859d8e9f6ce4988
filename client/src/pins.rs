//! Pins of other principals' keys (like `known_hosts`).
//!
//! The first time this client encrypts to, or verifies a signature of,
//! a principal, it records that principal's keys in `HOME/known-keys.json`.
//! Afterwards a different key is refused unless the user accepts the change
//! explicitly (`--accept-key-change`).

use std::collections::BTreeMap;

use matterdrop_common::keys::ed25519_fingerprint;
use serde::{Deserialize, Serialize};

use crate::error::{CmdResult, Fail, exit};
use crate::home::{Home, write_replace};

const FILE: &str = "known-keys.json";

/// One principal's pinned keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// Fingerprint of the Ed25519 key.
    pub signing_key: String,
    /// age recipient, when known.
    pub age: Option<String>,
}

/// The pin file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Pins {
    keys: BTreeMap<String, Pin>,
    #[serde(skip)]
    dirty: bool,
}

fn fp(key: &[u8; 32]) -> String {
    ed25519_dalek::VerifyingKey::from_bytes(key).map_or_else(
        |_| {
            format!(
                "invalid key {}",
                key.iter().map(|x| format!("{x:02x}")).collect::<String>()
            )
        },
        |k| ed25519_fingerprint(&k),
    )
}

impl Pins {
    /// Loads the pin file (empty if none).
    pub fn load(home: &Home) -> CmdResult<Self> {
        match std::fs::read(home.path(FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Fail::other(format!("{FILE} is damaged: {e}"))),
            Err(_) => Ok(Self::default()),
        }
    }

    /// Checks `principal`'s keys against the pin, pinning them on first
    /// use. A change is refused (exit 4) unless `accept_change`.
    pub fn check(
        &mut self,
        principal: &str,
        signing_key: &[u8; 32],
        age: Option<&str>,
        accept_change: bool,
    ) -> CmdResult {
        let new = Pin {
            signing_key: fp(signing_key),
            age: age.map(str::to_owned),
        };
        match self.keys.get(principal) {
            None => {}
            Some(old) => {
                let key_changed = old.signing_key != new.signing_key;
                let age_changed = matches!((&old.age, &new.age), (Some(a), Some(b)) if a != b);
                if !key_changed && !age_changed {
                    if old.age.is_none() && new.age.is_some() {
                        self.keys.insert(principal.to_owned(), new);
                        self.dirty = true;
                    }
                    return Ok(());
                }
                if !accept_change {
                    let what = if key_changed {
                        format!(
                            "signing key changed from {} to {}",
                            old.signing_key, new.signing_key
                        )
                    } else {
                        format!(
                            "age recipient changed from {} to {}",
                            old.age.as_deref().unwrap_or("-"),
                            age.unwrap_or("-")
                        )
                    };
                    return Err(Fail::new(exit::VERIFY, format!("the keys of {principal} are not the ones pinned: {what}"))
                        .hint("confirm the new key with them out of band, then re-run with --accept-key-change"));
                }
            }
        }
        self.keys.insert(principal.to_owned(), new);
        self.dirty = true;
        Ok(())
    }

    /// Writes the pin file if anything changed.
    pub fn save(&self, home: &Home) -> CmdResult {
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Fail::other(e.to_string()))?;
        write_replace(&home.path(FILE), &bytes, 0o600)
    }
}
