//! Pins of other principals' keys (like `known_hosts`).
//!
//! The first time this client encrypts to, or verifies a signature of,
//! a principal, it records that principal's keys in `HOME/known-keys.json`.
//! Afterwards a different key is refused unless the user accepts the change
//! explicitly (`--accept-key-change`).

use std::collections::BTreeMap;

use matterdrop_common::keys::ed25519_fingerprint;
use matterdrop_common::roster::MemberKeys;
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

    /// Checks a roster member's current keys against the pin. No pin: the
    /// roster's keys are pinned (an attorney vouched for them in a signed
    /// statement). A pin the chain itself replaced (an earlier key of this
    /// member in `history`, changed by an attorney-signed statement) moves to
    /// the current keys. Any other difference is exit 4: the roster gives
    /// this principal keys this client never saw it use, and no flag
    /// overrides that (an attorney must sign a `rekey` after checking the new
    /// safety code).
    pub fn check_roster_member(
        &mut self,
        principal: &str,
        current: &MemberKeys,
        history: &[MemberKeys],
    ) -> CmdResult {
        let matches = |pin: &Pin, k: &MemberKeys| {
            pin.signing_key == fp(&k.signing_key)
                && pin.age.as_deref().is_none_or(|a| a == k.age.recipient())
        };
        let new = Pin {
            signing_key: fp(&current.signing_key),
            age: Some(current.age.recipient().to_owned()),
        };
        match self.keys.get(principal) {
            Some(old) if matches(old, current) => {
                if old.age.is_none() {
                    self.keys.insert(principal.to_owned(), new);
                    self.dirty = true;
                }
                Ok(())
            }
            Some(old) if !history.iter().any(|k| matches(old, k)) => Err(Fail::new(
                exit::VERIFY,
                format!(
                    "the roster gives {principal} the signing key {}, but this client knows \
                     {principal} by {}",
                    new.signing_key, old.signing_key
                ),
            )),
            _ => {
                self.keys.insert(principal.to_owned(), new);
                self.dirty = true;
                Ok(())
            }
        }
    }

    /// The pinned signing-key fingerprint of `principal`, if any.
    pub fn signing_key_fingerprint(&self, principal: &str) -> Option<&str> {
        self.keys.get(principal).map(|p| p.signing_key.as_str())
    }

    /// Forgets a principal's pin.
    pub fn forget(&mut self, principal: &str) -> bool {
        let had = self.keys.remove(principal).is_some();
        self.dirty |= had;
        had
    }

    /// Every pin.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Pin)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v))
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
