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
    /// The Ed25519 key itself (hex), when known: with `age`, what the
    /// safety code is computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Keys this pin moved away from along attorney-signed statements
    /// (`rekey`, e.g. after `keys upgrade`): another matter whose roster
    /// has not been rekeyed yet may still name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<EarlierKeys>,
}

/// Keys a principal had before a rekey this client followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierKeys {
    /// Fingerprint of the Ed25519 key.
    pub signing_key: String,
    /// age recipient.
    pub age: String,
}

impl Pin {
    /// The safety code of `principal` with the pinned keys, when both are
    /// known.
    pub fn safety_code(&self, principal: &str) -> Option<String> {
        let hex = self.key.as_deref()?;
        let mut raw = [0u8; 32];
        if hex.len() != 64 {
            return None;
        }
        for (i, b) in raw.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(matterdrop_common::keys::safety_code(
            principal,
            &raw,
            self.age.as_deref()?,
        ))
    }
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
            key: Some(signing_key.iter().map(|b| format!("{b:02x}")).collect()),
            earlier: self
                .keys
                .get(principal)
                .map(|p| p.earlier.clone())
                .unwrap_or_default(),
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

    /// Checks the keys a roster gives `principal` (`current`: the latest)
    /// against the pin. No pin: they are pinned (an attorney vouched for
    /// them in a signed statement). A pin equal to keys in
    /// `verified_before` — keys this client had already verified in this
    /// chain before the statements that replaced them — moves to `current`:
    /// an attorney-signed change this client followed, and the old keys are
    /// kept as `earlier`. Keys in `earlier` are accepted as they are (another
    /// matter not yet rekeyed; returned as `Some(note)` for the caller to
    /// show). Any other difference is exit 4, and no flag overrides it.
    pub fn check_roster_member(
        &mut self,
        principal: &str,
        current: &MemberKeys,
        verified_before: &[MemberKeys],
    ) -> CmdResult<Option<String>> {
        let matches = |pin: &Pin, k: &MemberKeys| {
            pin.signing_key == fp(&k.signing_key)
                && pin.age.as_deref().is_none_or(|a| a == k.age.recipient())
        };
        let new = Pin {
            signing_key: fp(&current.signing_key),
            age: Some(current.age.recipient().to_owned()),
            key: Some(
                current
                    .signing_key
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            ),
            earlier: Vec::new(),
        };
        let was_earlier = |pin: &Pin| {
            pin.earlier.iter().any(|e| {
                e.signing_key == fp(&current.signing_key) && e.age == current.age.recipient()
            })
        };
        match self.keys.get(principal) {
            Some(old) if matches(old, current) => {
                if old.age.is_none() || old.key.is_none() {
                    let mut new = new;
                    new.earlier.clone_from(&old.earlier);
                    self.keys.insert(principal.to_owned(), new);
                    self.dirty = true;
                }
                Ok(None)
            }
            Some(old) if was_earlier(old) => Ok(Some(format!(
                "{principal} still has the keys they had before a rekey this client followed \
                 (now {}): an attorney of this matter gives them their new keys with \
                 `mdrop matter rekey`",
                old.age.as_deref().map_or_else(
                    || "-".to_owned(),
                    |a| {
                        matterdrop_common::agekey::AgeKey::from_recipient(a)
                            .map_or_else(|_| a.chars().take(20).collect(), |k| k.fingerprint())
                    }
                )
            ))),
            Some(old) if !verified_before.iter().any(|k| matches(old, k)) => Err(Fail::new(
                exit::VERIFY,
                format!(
                    "the roster gives {principal} the keys {} ({}), but this client knows \
                     {principal} by {} ({})",
                    new.signing_key,
                    current.age.recipient(),
                    old.signing_key,
                    old.age.as_deref().unwrap_or("-")
                ),
            )),
            Some(old) => {
                // Moved along a signed statement: remember where from.
                let mut new = new;
                new.earlier.clone_from(&old.earlier);
                if let Some(age) = &old.age {
                    new.earlier.push(EarlierKeys {
                        signing_key: old.signing_key.clone(),
                        age: age.clone(),
                    });
                }
                self.keys.insert(principal.to_owned(), new);
                self.dirty = true;
                Ok(None)
            }
            None => {
                self.keys.insert(principal.to_owned(), new);
                self.dirty = true;
                Ok(None)
            }
        }
    }

    /// The pin of `principal`, if any.
    pub fn get(&self, principal: &str) -> Option<&Pin> {
        self.keys.get(principal)
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
