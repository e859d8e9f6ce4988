//! [`MetaStore`](super::MetaStore) on sled 0.34.
//!
//! Trees: `principals` (id → record), `keys` (Ed25519 key → id), `orgs`
//! (id → record), `invites` (SHA-256 of token → record), `matters` (id →
//! record), `packets` (id → record), `claims` (blob hash ‖ uploader → ()),
//! `review_notes` (deliverable id → review), `deliveries` (packet id ‖ 0 ‖
//! principal → signed delivery statement), and three indexes of packets,
//! written in the same transaction as the packet: `by_recipient`
//! (principal ‖ 0 ‖ packet id → ()), `by_sender` (the same for its
//! sender) and `answers` (packet id ‖ 0 ‖ deliverable id → ()). `meta`
//! holds the index version; a store without it, or with an older one, has
//! its indexes built at open. Values are postcard.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{DeliveryRecord, DestructionRecord, ExpiredRecord, ShareRecord};
use super::{
    InviteRecord, MatterRecord, MetaRead, MetaWrite, OrgRecord, PacketRecord, PrincipalRecord,
    Refusal, ReviewNoteRecord, StoreError,
};

/// sled-backed metadata store.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    principals: sled::Tree,
    keys: sled::Tree,
    orgs: sled::Tree,
    invites: sled::Tree,
    matters: sled::Tree,
    packets: sled::Tree,
    claims: sled::Tree,
    by_recipient: sled::Tree,
    answers: sled::Tree,
    /// Deliverable id → its [`ReviewNoteRecord`] (a tree of its own: the
    /// packet record's encoding stays as it was).
    review_notes: sled::Tree,
    deliveries: sled::Tree,
    by_sender: sled::Tree,
    /// Principal → notification email address (UTF-8).
    emails: sled::Tree,
    /// Matter id ‖ 0 ‖ log index (u64 big-endian) → [`DestructionRecord`].
    destructions: sled::Tree,
    /// Packet id ‖ 0 ‖ recipient → [`ShareRecord`].
    shares: sled::Tree,
    /// Packet id → [`ExpiredRecord`]: deleted under the matter's retention.
    expired: sled::Tree,
    /// Matter id ‖ 0 ‖ version (u32 big-endian) → role definition text.
    role_defs: sled::Tree,
    /// Packet id ‖ 0 ‖ recipient ‖ 0 ‖ first 8 bytes of the statement's
    /// SHA-256 ‖ index (u32 big-endian) → header.
    share_headers: sled::Tree,
}

/// The `meta` key that says the packet indexes are complete.
const INDEX_VERSION_KEY: &[u8] = b"packet-indexes";
/// 2: `by_sender` added.
const INDEX_VERSION: &[u8] = b"2";

fn index_key(owner: &str, packet: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.len() + 1 + packet.len());
    k.extend_from_slice(owner.as_bytes());
    k.push(0);
    k.extend_from_slice(packet.as_bytes());
    k
}

/// Where header `index` of the share `record` of `packet` to `recipient`
/// is kept.
fn share_header_key(packet: &str, recipient: &str, signed: &[u8], index: u32) -> Vec<u8> {
    use sha2::Digest as _;
    let mut k = index_key(packet, recipient);
    k.push(0);
    k.extend_from_slice(&sha2::Sha256::digest(signed)[..8]);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn index_prefix(owner: &str) -> Vec<u8> {
    let mut k = owner.as_bytes().to_vec();
    k.push(0);
    k
}

/// The index entries of `packet`: one per recipient, one under its
/// sender, and one under the packet a deliverable answers.
fn index_entries(packet: &PacketRecord) -> (Vec<Vec<u8>>, Vec<u8>, Option<Vec<u8>>) {
    (
        packet
            .recipients
            .iter()
            .map(|r| index_key(r, &packet.id))
            .collect(),
        index_key(&packet.sender, &packet.id),
        packet
            .for_packet
            .as_deref()
            .map(|answered| index_key(answered, &packet.id)),
    )
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn dec<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// How long [`SledStore::open`] waits for a lock that sled itself is still
/// releasing.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl SledStore {
    /// Opens (or creates) the database at `path`. Fails if another process
    /// holds it.
    ///
    /// sled releases its file lock only when its background I/O threads
    /// let go of the file, a moment after the last handle is dropped; so a
    /// reopen in the same process (`init` then `load`) can find the lock
    /// still held. A held lock is retried for up to [`LOCK_WAIT`] before it
    /// is reported as another process's.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let started = std::time::Instant::now();
        let db = loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => break db,
                // sled reports a held lock as `Other` with this text.
                Err(sled::Error::Io(io))
                    if io.to_string().starts_with("could not acquire lock") =>
                {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(StoreError::Backend(format!(
                            "database {} is in use by another process (is mdropd running?)",
                            path.display()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(other) => return Err(backend(other)),
            }
        };
        let store = Self {
            principals: db.open_tree("principals").map_err(backend)?,
            keys: db.open_tree("keys").map_err(backend)?,
            orgs: db.open_tree("orgs").map_err(backend)?,
            invites: db.open_tree("invites").map_err(backend)?,
            matters: db.open_tree("matters").map_err(backend)?,
            packets: db.open_tree("packets").map_err(backend)?,
            claims: db.open_tree("claims").map_err(backend)?,
            by_recipient: db.open_tree("by_recipient").map_err(backend)?,
            answers: db.open_tree("answers").map_err(backend)?,
            review_notes: db.open_tree("review_notes").map_err(backend)?,
            deliveries: db.open_tree("deliveries").map_err(backend)?,
            by_sender: db.open_tree("by_sender").map_err(backend)?,
            shares: db.open_tree("shares").map_err(backend)?,
            expired: db.open_tree("expired").map_err(backend)?,
            role_defs: db.open_tree("role_defs").map_err(backend)?,
            emails: db.open_tree("emails").map_err(backend)?,
            destructions: db.open_tree("destructions").map_err(backend)?,
            share_headers: db.open_tree("share_headers").map_err(backend)?,
            db,
        };
        store.build_indexes()?;
        Ok(store)
    }

    /// Builds the packet indexes of a store written before they existed
    /// (idempotent: an interrupted build is redone at the next open).
    fn build_indexes(&self) -> Result<(), StoreError> {
        let meta = self.db.open_tree("meta").map_err(backend)?;
        if meta.get(INDEX_VERSION_KEY).map_err(backend)?.as_deref() == Some(INDEX_VERSION) {
            return Ok(());
        }
        for v in self.packets.iter().values() {
            let packet: PacketRecord = dec(&v.map_err(backend)?)?;
            let (recipients, sender, answer) = index_entries(&packet);
            for k in recipients {
                self.by_recipient.insert(k, &[][..]).map_err(backend)?;
            }
            self.by_sender.insert(sender, &[][..]).map_err(backend)?;
            if let Some(k) = answer {
                self.answers.insert(k, &[][..]).map_err(backend)?;
            }
        }
        self.flush()?;
        meta.insert(INDEX_VERSION_KEY, INDEX_VERSION)
            .map_err(backend)?;
        self.flush()
    }

    /// The packets named by the index entries under `prefix` in `tree`.
    fn indexed(&self, tree: &sled::Tree, owner: &str) -> Result<Vec<PacketRecord>, StoreError> {
        let prefix = index_prefix(owner);
        let mut out = Vec::new();
        for k in tree.scan_prefix(&prefix).keys() {
            let k = k.map_err(backend)?;
            let id = std::str::from_utf8(&k[prefix.len()..])
                .map_err(|_| StoreError::Corrupt("packet index key is not UTF-8".into()))?;
            // An entry without its packet (none is written that way) is
            // skipped rather than trusted.
            if let Some(p) = self.packet(id)? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Writes `packet` and its index entries in one transaction; with
    /// `create`, refuses an existing id.
    fn write_packet(&self, packet: &PacketRecord, create: bool) -> Result<(), StoreError> {
        let bytes = enc(packet)?;
        let (recipients, sender, answer) = index_entries(packet);
        let result = (
            &self.packets,
            &self.by_recipient,
            &self.by_sender,
            &self.answers,
        )
            .transaction(|(packets, by_recipient, by_sender, answers)| {
                let old = packets.insert(packet.id.as_bytes(), bytes.as_slice())?;
                if let Some(old) = old {
                    if create {
                        return Err(ConflictableTransactionError::Abort(Refusal::PacketExists(
                            packet.id.clone(),
                        )));
                    }
                    // Entries of recipients no longer on the packet go.
                    if let Ok(old) = postcard::from_bytes::<PacketRecord>(&old) {
                        for r in old
                            .recipients
                            .iter()
                            .filter(|r| !packet.recipients.contains(r))
                        {
                            by_recipient.remove(index_key(r, &packet.id))?;
                        }
                    }
                }
                for k in &recipients {
                    by_recipient.insert(k.as_slice(), &[][..])?;
                }
                by_sender.insert(sender.as_slice(), &[][..])?;
                if let Some(k) = &answer {
                    answers.insert(k.as_slice(), &[][..])?;
                }
                Ok(())
            });
        match result {
            Ok(()) => self.flush(),
            Err(TransactionError::Abort(r)) => Err(StoreError::Refused(r)),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
        }
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        tree.get(key).map_err(backend)?.map(|v| dec(&v)).transpose()
    }
}

impl MetaRead for SledStore {
    fn principal_by_key(&self, key: &[u8; 32]) -> Result<Option<PrincipalRecord>, StoreError> {
        let Some(id) = self.keys.get(key).map_err(backend)? else {
            return Ok(None);
        };
        Self::get(&self.principals, &id)
    }

    fn principal(&self, id: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        Self::get(&self.principals, id.as_bytes())
    }

    fn org(&self, id: &str) -> Result<Option<OrgRecord>, StoreError> {
        Self::get(&self.orgs, id.as_bytes())
    }

    fn orgs(&self) -> Result<Vec<OrgRecord>, StoreError> {
        self.orgs
            .iter()
            .values()
            .map(|v| dec(&v.map_err(backend)?))
            .collect()
    }

    fn principals(&self) -> Result<Vec<PrincipalRecord>, StoreError> {
        self.principals
            .iter()
            .values()
            .map(|v| dec(&v.map_err(backend)?))
            .collect()
    }

    fn invites(&self) -> Result<Vec<([u8; 32], InviteRecord)>, StoreError> {
        self.invites
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                let hash: [u8; 32] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("invite key is not a hash".into()))?;
                let invite = InviteRecord::decode(&v)
                    .ok_or_else(|| StoreError::Corrupt("an invite record is unreadable".into()))?;
                Ok((hash, invite))
            })
            .collect()
    }

    fn matter(&self, id: &str) -> Result<Option<MatterRecord>, StoreError> {
        Self::get(&self.matters, id.as_bytes())
    }

    fn matters(&self) -> Result<Vec<MatterRecord>, StoreError> {
        self.matters
            .iter()
            .values()
            .map(|v| dec(&v.map_err(backend)?))
            .collect()
    }

    fn packet(&self, id: &str) -> Result<Option<PacketRecord>, StoreError> {
        Self::get(&self.packets, id.as_bytes())
    }

    fn packets(&self) -> Result<Vec<PacketRecord>, StoreError> {
        self.packets
            .iter()
            .values()
            .map(|v| dec(&v.map_err(backend)?))
            .collect()
    }

    fn packets_for(&self, principal: &str) -> Result<Vec<PacketRecord>, StoreError> {
        self.indexed(&self.by_recipient, principal)
    }

    fn deliverables_for(&self, packet: &str) -> Result<Vec<PacketRecord>, StoreError> {
        self.indexed(&self.answers, packet)
    }

    fn packets_from(&self, principal: &str) -> Result<Vec<PacketRecord>, StoreError> {
        self.indexed(&self.by_sender, principal)
    }

    fn deliveries(&self, packet: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries
            .scan_prefix(index_prefix(packet))
            .values()
            .map(|v| dec(&v.map_err(backend)?))
            .collect()
    }

    fn has_claim(&self, uploader: &str, sha256: &[u8; 32]) -> Result<bool, StoreError> {
        let mut key = sha256.to_vec();
        key.extend_from_slice(uploader.as_bytes());
        self.claims.contains_key(key).map_err(backend)
    }

    fn destructions(&self, matter: &str) -> Result<Vec<DestructionRecord>, StoreError> {
        self.destructions
            .scan_prefix(index_prefix(matter))
            .values()
            .map(|v| dec(&v.map_err(backend)?))
            .collect()
    }

    fn role_def(&self, matter: &str, version: u32) -> Result<Option<String>, StoreError> {
        let mut key = index_prefix(matter);
        key.extend_from_slice(&version.to_be_bytes());
        Ok(self
            .role_defs
            .get(key)
            .map_err(backend)?
            .and_then(|v| String::from_utf8(v.to_vec()).ok()))
    }

    fn expired(&self, packet: &str) -> Result<Option<ExpiredRecord>, StoreError> {
        Self::get(&self.expired, packet.as_bytes())
    }

    fn email(&self, principal: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .emails
            .get(principal.as_bytes())
            .map_err(backend)?
            .and_then(|v| String::from_utf8(v.to_vec()).ok()))
    }

    fn share(&self, packet: &str, recipient: &str) -> Result<Option<ShareRecord>, StoreError> {
        Self::get(&self.shares, &index_key(packet, recipient))
    }

    fn share_header(
        &self,
        packet: &str,
        recipient: &str,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(record) = self.share(packet, recipient)? else {
            return Ok(None);
        };
        Ok(self
            .share_headers
            .get(share_header_key(packet, recipient, &record.signed, index))
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn review_note(&self, deliverable: &str) -> Result<Option<ReviewNoteRecord>, StoreError> {
        Self::get(&self.review_notes, deliverable.as_bytes())
    }
}

/// The invite stored under `token_hash`, inside a transaction: refused as
/// unknown when there is none (or it cannot be read), as used when it was.
fn unused_invite(
    invites: &sled::transaction::TransactionalTree,
    token_hash: &[u8; 32],
) -> Result<InviteRecord, ConflictableTransactionError<Refusal>> {
    let abort = ConflictableTransactionError::Abort;
    let raw = invites
        .get(token_hash)?
        .ok_or(abort(Refusal::InviteUnknown))?;
    let invite = InviteRecord::decode(&raw).ok_or(abort(Refusal::InviteUnknown))?;
    if invite.used_by.is_some() {
        return Err(abort(Refusal::InviteUsed));
    }
    Ok(invite)
}

impl MetaWrite for SledStore {
    fn create_invite(
        &self,
        token_hash: &[u8; 32],
        invite: &InviteRecord,
    ) -> Result<(), StoreError> {
        self.invites
            .compare_and_swap(token_hash, None as Option<&[u8]>, Some(enc(invite)?))
            .map_err(backend)?
            .map_err(|_| StoreError::Backend("invite token collision".into()))?;
        self.flush()
    }

    fn revoke_invite(&self, token_hash: &[u8; 32], now: u64) -> Result<InviteRecord, StoreError> {
        let result = self.invites.transaction(|invites| {
            let abort = |r: Refusal| ConflictableTransactionError::Abort(r);
            let mut invite = unused_invite(invites, token_hash)?;
            if invite.revoked_at.is_none() {
                invite.revoked_at = Some(now);
                let bytes =
                    postcard::to_stdvec(&invite).map_err(|_| abort(Refusal::InviteUnknown))?;
                invites.insert(&token_hash[..], bytes)?;
            }
            Ok(invite)
        });
        let invite = match result {
            Ok(i) => i,
            Err(TransactionError::Abort(r)) => return Err(StoreError::Refused(r)),
            Err(TransactionError::Storage(e)) => return Err(backend(e)),
        };
        self.flush()?;
        Ok(invite)
    }

    fn enroll(
        &self,
        token_hash: &[u8; 32],
        principal: &PrincipalRecord,
        now: u64,
    ) -> Result<(), StoreError> {
        let result = (&self.invites, &self.principals, &self.keys).transaction(
            |(invites, principals, keys)| {
                let abort = |r: Refusal| ConflictableTransactionError::Abort(r);
                let mut invite = unused_invite(invites, token_hash)?;
                if invite.revoked_at.is_some() {
                    return Err(abort(Refusal::InviteRevoked));
                }
                if now >= invite.expires_at {
                    return Err(abort(Refusal::InviteExpired));
                }
                if let Some(for_id) = invite.for_id.as_ref().filter(|f| **f != principal.id) {
                    return Err(abort(Refusal::InviteForAnother {
                        for_id: for_id.clone(),
                        id: principal.id.clone(),
                    }));
                }
                if principal.org != invite.org {
                    return Err(abort(Refusal::InviteOrgMismatch {
                        invite_org: invite.org.clone().unwrap_or_else(|| "(none)".into()),
                        id: principal.id.clone(),
                        id_org: principal.id.split('@').nth(1).unwrap_or("").to_owned(),
                    }));
                }
                // The invite, not the request, decides admin rights.
                let mut principal = principal.clone();
                principal.admin = invite.admin;
                let principal_bytes =
                    postcard::to_stdvec(&principal).map_err(|_| abort(Refusal::InviteUnknown))?;
                if let Some(existing) = principals.get(principal.id.as_bytes())? {
                    // A revoked principal may enroll a new key under its id.
                    let revoked = postcard::from_bytes::<PrincipalRecord>(&existing)
                        .is_ok_and(|p| p.revoked_at.is_some());
                    if !revoked {
                        return Err(abort(Refusal::IdTaken(principal.id.clone())));
                    }
                }
                if let Some(owner) = keys.get(principal.signing_key)? {
                    return Err(abort(Refusal::KeyTaken(
                        String::from_utf8_lossy(&owner).into_owned(),
                    )));
                }
                invite.used_by = Some(principal.id.clone());
                let invite_bytes =
                    postcard::to_stdvec(&invite).map_err(|_| abort(Refusal::InviteUnknown))?;
                invites.insert(&token_hash[..], invite_bytes)?;
                principals.insert(principal.id.as_bytes(), principal_bytes)?;
                keys.insert(&principal.signing_key[..], principal.id.as_bytes())?;
                Ok(())
            },
        );
        match result {
            Ok(()) => self.flush(),
            Err(TransactionError::Abort(r)) => Err(StoreError::Refused(r)),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
        }
    }

    fn revoke(&self, id: &str, now: u64) -> Result<PrincipalRecord, StoreError> {
        let result = (&self.principals, &self.keys).transaction(|(principals, keys)| {
            let abort = |r: Refusal| ConflictableTransactionError::Abort(r);
            let Some(raw) = principals.get(id.as_bytes())? else {
                return Err(abort(Refusal::NoPrincipal(id.to_owned())));
            };
            let mut p: PrincipalRecord = postcard::from_bytes(&raw)
                .map_err(|_| abort(Refusal::NoPrincipal(id.to_owned())))?;
            if p.revoked_at.is_some() {
                return Err(abort(Refusal::NoPrincipal(id.to_owned())));
            }
            p.revoked_at = Some(now);
            keys.remove(&p.signing_key[..])?;
            let bytes =
                postcard::to_stdvec(&p).map_err(|_| abort(Refusal::NoPrincipal(id.to_owned())))?;
            principals.insert(id.as_bytes(), bytes)?;
            Ok(p)
        });
        match result {
            Ok(p) => {
                self.flush()?;
                Ok(p)
            }
            Err(TransactionError::Abort(r)) => Err(StoreError::Refused(r)),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
        }
    }

    fn set_age_recipient(&self, id: &str, age: &str) -> Result<PrincipalRecord, StoreError> {
        let result = self.principals.transaction(|principals| {
            let abort = |r: Refusal| ConflictableTransactionError::Abort(r);
            let Some(raw) = principals.get(id.as_bytes())? else {
                return Err(abort(Refusal::NoPrincipal(id.to_owned())));
            };
            let mut p: PrincipalRecord = postcard::from_bytes(&raw)
                .map_err(|_| abort(Refusal::NoPrincipal(id.to_owned())))?;
            if p.revoked_at.is_some() {
                return Err(abort(Refusal::NoPrincipal(id.to_owned())));
            }
            age.clone_into(&mut p.age_recipient);
            let bytes =
                postcard::to_stdvec(&p).map_err(|_| abort(Refusal::NoPrincipal(id.to_owned())))?;
            principals.insert(id.as_bytes(), bytes)?;
            Ok(p)
        });
        match result {
            Ok(p) => {
                self.flush()?;
                Ok(p)
            }
            Err(TransactionError::Abort(r)) => Err(StoreError::Refused(r)),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
        }
    }

    fn create_org(&self, org: &OrgRecord) -> Result<(), StoreError> {
        self.orgs
            .compare_and_swap(org.id.as_bytes(), None as Option<&[u8]>, Some(enc(org)?))
            .map_err(backend)?
            .map_err(|_| Refusal::OrgExists(org.id.clone()))?;
        self.flush()
    }

    fn create_matter(&self, matter: &MatterRecord) -> Result<(), StoreError> {
        self.matters
            .compare_and_swap(
                matter.id.as_bytes(),
                None as Option<&[u8]>,
                Some(enc(matter)?),
            )
            .map_err(backend)?
            .map_err(|_| Refusal::MatterExists(matter.id.clone()))?;
        self.flush()
    }

    fn put_matter(&self, matter: &MatterRecord) -> Result<(), StoreError> {
        self.matters
            .insert(matter.id.as_bytes(), enc(matter)?)
            .map_err(backend)?;
        self.flush()
    }

    fn create_packet(&self, packet: &PacketRecord) -> Result<(), StoreError> {
        self.write_packet(packet, true)
    }

    fn put_packet(&self, packet: &PacketRecord) -> Result<(), StoreError> {
        self.write_packet(packet, false)
    }

    fn put_review_note(
        &self,
        deliverable: &str,
        note: &ReviewNoteRecord,
    ) -> Result<(), StoreError> {
        self.review_notes
            .insert(deliverable.as_bytes(), enc(note)?)
            .map_err(backend)?;
        self.flush()
    }

    fn put_delivery(&self, packet: &str, delivery: &DeliveryRecord) -> Result<(), StoreError> {
        self.deliveries
            .insert(index_key(packet, &delivery.principal), enc(delivery)?)
            .map_err(backend)?;
        self.flush()
    }

    fn put_destruction(&self, matter: &str, record: &DestructionRecord) -> Result<(), StoreError> {
        let mut key = index_prefix(matter);
        key.extend_from_slice(&record.index.to_be_bytes());
        self.destructions
            .insert(key, enc(record)?)
            .map_err(backend)?;
        self.flush()
    }

    fn put_role_def(&self, matter: &str, version: u32, text: &str) -> Result<(), StoreError> {
        let mut key = index_prefix(matter);
        key.extend_from_slice(&version.to_be_bytes());
        self.role_defs
            .insert(key, text.as_bytes())
            .map_err(backend)?;
        self.flush()
    }

    fn put_expired(&self, packet: &str, record: &ExpiredRecord) -> Result<(), StoreError> {
        self.expired
            .insert(packet.as_bytes(), enc(record)?)
            .map_err(backend)?;
        self.flush()
    }

    fn set_email(&self, principal: &str, address: Option<&str>) -> Result<(), StoreError> {
        match address {
            Some(a) => self.emails.insert(principal.as_bytes(), a.as_bytes()),
            None => self.emails.remove(principal.as_bytes()),
        }
        .map_err(backend)?;
        self.flush()
    }

    fn put_share(
        &self,
        packet: &str,
        recipient: &str,
        record: &ShareRecord,
        first: u32,
        headers: &[Vec<u8>],
    ) -> Result<ShareRecord, StoreError> {
        let key = index_key(packet, recipient);
        let result = (&self.shares, &self.share_headers, &self.by_recipient).transaction(
            |(shares, share_headers, by_recipient)| {
                let fresh = || ShareRecord {
                    received: 0,
                    ..record.clone()
                };
                let mut now = match shares.get(&key)? {
                    Some(old) => match postcard::from_bytes::<ShareRecord>(&old) {
                        Ok(old) if old.signed == record.signed => old,
                        Ok(old) => {
                            // Another statement replaces this one: its
                            // headers go with it.
                            for i in 0..old.total {
                                share_headers.remove(share_header_key(
                                    packet,
                                    recipient,
                                    &old.signed,
                                    i,
                                ))?;
                            }
                            fresh()
                        }
                        Err(_) => fresh(),
                    },
                    None => fresh(),
                };
                for (i, h) in headers.iter().enumerate() {
                    let index = first + i as u32;
                    let k = share_header_key(packet, recipient, &now.signed, index);
                    if share_headers.insert(k, h.as_slice())?.is_none() {
                        now.received += 1;
                    }
                }
                let bytes = postcard::to_allocvec(&now)
                    .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                shares.insert(key.as_slice(), bytes)?;
                if now.complete() {
                    by_recipient.insert(index_key(recipient, packet), &[][..])?;
                }
                Ok(now)
            },
        );
        match result {
            Ok(now) => {
                self.flush()?;
                Ok(now)
            }
            Err(TransactionError::Abort(e)) => Err(StoreError::Backend(e)),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
        }
    }

    fn claim_blob(&self, uploader: &str, sha256: &[u8; 32]) -> Result<(), StoreError> {
        let mut key = sha256.to_vec();
        key.extend_from_slice(uploader.as_bytes());
        self.claims.insert(key, &[][..]).map_err(backend)?;
        self.flush()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matterdrop_common::proto::OrgKind;

    fn principal(id: &str, org: Option<&str>, key: u8) -> PrincipalRecord {
        PrincipalRecord {
            id: id.into(),
            name: "N".into(),
            org: org.map(Into::into),
            admin: false,
            signing_key: [key; 32],
            age_recipient: "age1x".into(),
            enrolled_at: 1,
            revoked_at: None,
        }
    }

    #[test]
    fn a_share_completes_in_batches_and_a_new_statement_replaces_its_headers() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let record = |signed: &[u8]| ShareRecord {
            signed: signed.to_vec(),
            signature: vec![1; 64],
            sharer_key: [2; 32],
            total: 3,
            received: 0,
            created_at: 1,
        };
        let h = |n: u8| vec![n; 10];
        let first = s
            .put_share("p1", "bob", &record(b"one"), 0, &[h(1), h(2)])
            .unwrap();
        assert!(!first.complete());
        assert!(s.packets_for("bob").unwrap().is_empty());
        // A batch sent twice counts once.
        let again = s
            .put_share("p1", "bob", &record(b"one"), 1, &[h(2)])
            .unwrap();
        assert_eq!(again.received, 2);
        let done = s
            .put_share("p1", "bob", &record(b"one"), 2, &[h(3)])
            .unwrap();
        assert!(done.complete());
        assert_eq!(s.share_header("p1", "bob", 1).unwrap(), Some(h(2)));
        assert!(s.by_recipient.contains_key(index_key("bob", "p1")).unwrap());
        // Another statement starts over; the old headers are gone.
        let other = s
            .put_share("p1", "bob", &record(b"two"), 0, &[h(9)])
            .unwrap();
        assert_eq!((other.received, other.complete()), (1, false));
        assert_eq!(s.share_header("p1", "bob", 0).unwrap(), Some(h(9)));
        assert_eq!(s.share_header("p1", "bob", 1).unwrap(), None);
        assert_eq!(s.share_headers.len(), 1);
    }

    #[test]
    fn invites_stored_by_the_previous_format_still_enroll() {
        #[derive(serde::Serialize)]
        struct V1 {
            org: Option<String>,
            admin: bool,
            created_at: u64,
            expires_at: u64,
            used_by: Option<String>,
        }
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.create_org(&OrgRecord {
            id: "firm-a".into(),
            kind: OrgKind::Firm,
            recovery_recipient: None,
            created_at: 1,
        })
        .unwrap();
        let old = postcard::to_stdvec(&V1 {
            org: Some("firm-a".into()),
            admin: false,
            created_at: 1,
            expires_at: 100,
            used_by: None,
        })
        .unwrap();
        s.invites.insert([7u8; 32], old).unwrap();
        let listed = s.invites().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.for_id, None);
        s.enroll(&[7; 32], &principal("a@firm-a", Some("firm-a"), 1), 2)
            .unwrap();
        assert_eq!(
            s.invites().unwrap()[0].1.used_by.as_deref(),
            Some("a@firm-a")
        );
    }

    fn invite(org: Option<&str>, expires_at: u64) -> InviteRecord {
        InviteRecord {
            org: org.map(Into::into),
            admin: false,
            created_at: 0,
            expires_at,
            used_by: None,
            for_id: None,
            revoked_at: None,
        }
    }

    fn packet(id: &str, recipients: &[&str], answers: Option<&str>) -> PacketRecord {
        PacketRecord {
            id: id.into(),
            matter: "m".into(),
            sender: "s@firm-a".into(),
            task: "t".into(),
            due: None,
            created_at: 1,
            descriptor: Vec::new(),
            signature: Vec::new(),
            sender_key: [0; 32],
            recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            blobs: Vec::new(),
            pulled_by: Vec::new(),
            delivered_to: Vec::new(),
            kind: if answers.is_some() {
                super::super::PacketKind::Deliverable
            } else {
                super::super::PacketKind::Packet
            },
            for_packet: answers.map(Into::into),
            state: None,
            reviews: Vec::new(),
        }
    }

    fn ids(v: Vec<PacketRecord>) -> Vec<String> {
        let mut v: Vec<String> = v.into_iter().map(|p| p.id).collect();
        v.sort();
        v
    }

    /// The recipient and answer indexes follow creates and updates (also
    /// a recipient taken off), a refused create changes none of them, and
    /// a store whose indexes are missing (written before they existed)
    /// gets them rebuilt at open.
    #[test]
    fn packet_indexes_follow_writes_and_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.create_packet(&packet("p1", &["a@x", "b@x"], None))
                .unwrap();
            s.create_packet(&packet("p2", &["b@x"], None)).unwrap();
            // "a@x" is a byte prefix of "a@xy": their entries must not mix.
            s.create_packet(&packet("p3", &["a@xy"], None)).unwrap();
            s.create_packet(&packet("d1", &["a@x"], Some("p1")))
                .unwrap();
            let dup = s.create_packet(&packet("p1", &["c@x"], None));
            assert!(matches!(
                dup,
                Err(StoreError::Refused(Refusal::PacketExists(_)))
            ));
            assert_eq!(ids(s.packets_for("a@x").unwrap()), ["d1", "p1"]);
            assert_eq!(ids(s.packets_for("b@x").unwrap()), ["p1", "p2"]);
            assert_eq!(ids(s.packets_for("a@xy").unwrap()), ["p3"]);
            assert!(s.packets_for("c@x").unwrap().is_empty());
            assert_eq!(ids(s.deliverables_for("p1").unwrap()), ["d1"]);
            assert!(s.deliverables_for("p2").unwrap().is_empty());
            s.put_packet(&packet("p2", &["c@x"], None)).unwrap();
            assert_eq!(ids(s.packets_for("b@x").unwrap()), ["p1"]);
            assert_eq!(ids(s.packets_for("c@x").unwrap()), ["p2"]);
            assert_eq!(
                ids(s.packets_from("s@firm-a").unwrap()),
                ["d1", "p1", "p2", "p3"]
            );
            assert!(s.packets_from("a@x").unwrap().is_empty());
            // As if written by a version without indexes.
            s.db.drop_tree("by_recipient").unwrap();
            s.db.drop_tree("by_sender").unwrap();
            s.db.drop_tree("answers").unwrap();
            s.db.drop_tree("meta").unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(ids(s.packets_for("a@x").unwrap()), ["d1", "p1"]);
        assert_eq!(ids(s.packets_for("c@x").unwrap()), ["p2"]);
        assert_eq!(ids(s.deliverables_for("p1").unwrap()), ["d1"]);
        assert_eq!(
            ids(s.packets_from("s@firm-a").unwrap()),
            ["d1", "p1", "p2", "p3"]
        );
    }

    #[test]
    fn reopen_right_after_drop_and_a_held_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Dropping and reopening at once is what `init` then `load` does;
        // sled lets go of its lock asynchronously (CI once caught it held).
        for i in 0..20u8 {
            let s = SledStore::open(dir.path()).unwrap();
            s.create_invite(&[i; 32], &invite(None, 100)).unwrap();
        }
        let held = SledStore::open(dir.path()).unwrap();
        let err = match SledStore::open(dir.path()) {
            Ok(_) => panic!("a second handle opened a held database"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("in use by another process"), "{err}");
        drop(held);
    }

    #[test]
    fn enroll_is_single_use_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.create_invite(&[1; 32], &invite(Some("firm-a"), 100))
            .unwrap();
        s.enroll(&[1; 32], &principal("a@firm-a", Some("firm-a"), 1), 10)
            .unwrap();
        assert_eq!(
            s.principal_by_key(&[1; 32]).unwrap().unwrap().id,
            "a@firm-a"
        );
        let again = s.enroll(&[1; 32], &principal("b@firm-a", Some("firm-a"), 2), 10);
        assert!(matches!(
            again,
            Err(StoreError::Refused(Refusal::InviteUsed))
        ));
        assert!(s.principal("b@firm-a").unwrap().is_none());
        assert!(s.principal_by_key(&[2; 32]).unwrap().is_none());
    }

    #[test]
    fn refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.create_invite(&[1; 32], &invite(Some("firm-a"), 100))
            .unwrap();
        let expired = s.enroll(&[1; 32], &principal("a@firm-a", Some("firm-a"), 1), 100);
        assert!(matches!(
            expired,
            Err(StoreError::Refused(Refusal::InviteExpired))
        ));
        let other_org = s.enroll(&[1; 32], &principal("a@firm-b", Some("firm-b"), 1), 10);
        assert!(matches!(
            other_org,
            Err(StoreError::Refused(Refusal::InviteOrgMismatch { .. }))
        ));
        let unknown = s.enroll(&[9; 32], &principal("a@firm-a", Some("firm-a"), 1), 10);
        assert!(matches!(
            unknown,
            Err(StoreError::Refused(Refusal::InviteUnknown))
        ));
        assert!(s.principal("a@firm-a").unwrap().is_none());
        // The invite is still usable after all those refusals.
        s.enroll(&[1; 32], &principal("a@firm-a", Some("firm-a"), 1), 10)
            .unwrap();
    }

    #[test]
    fn orgs_unique_and_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            let org = OrgRecord {
                id: "firm-a".into(),
                kind: OrgKind::Firm,
                recovery_recipient: None,
                created_at: 0,
            };
            s.create_org(&org).unwrap();
            assert!(matches!(
                s.create_org(&org),
                Err(StoreError::Refused(Refusal::OrgExists(_)))
            ));
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.org("firm-a").unwrap().unwrap().kind, OrgKind::Firm);
    }
}
