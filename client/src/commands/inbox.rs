//! `mdrop inbox`: what waits for me, as people read it.
//!
//! The server lists ids, matters and states; everything else shown comes
//! from evidence the client checks. Each item's signed descriptor (asked
//! for with `PacketPeek`, which the server logs as a look, not a pull) is
//! verified against the matter's signed roster like a pull verifies it,
//! and its manifest is decrypted with this user's age key to show the file
//! names, sizes and the sender's note. The matter's title comes from the
//! signed roster. What was verified and decrypted is kept in
//! `HOME/cache/packets/ID.json` (0600, folder 0700: it holds file names),
//! so each packet costs its round trips once; a cached descriptor is
//! checked against the roster again on every listing. An item whose
//! descriptor does not check refuses the whole listing (exit 4), naming
//! it, as `sent` does.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::stream::{self, StreamExt as _};
use matterdrop_common::agekey::AgeIdentity;
use matterdrop_common::packet::{Descriptor, Kind, validate_id};
use matterdrop_common::proto::{
    ClientRequest, InboxItem, InboxRequest, PacketInfo, PacketRef, ServerResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Ctx;
use super::review::OpenedReview;
use crate::cli::InboxArgs;
use crate::conn::{Session, unexpected};
use crate::error::{CmdResult, Fail, exit};
use crate::home::Home;
use crate::identity;
use crate::output::{escape, human_size};
use crate::roster::Synced;
use crate::when;

/// Packets whose descriptor and manifest are fetched at once.
const CONCURRENT: usize = 4;

/// How long a manifest may take to arrive before the listing gives up.
const MANIFEST_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Files named per item in the terminal listing.
const NAMES_SHOWN: usize = 3;

/// What the cache keeps of a packet: its signed descriptor, as the server
/// gave it, and what its manifest said (none if it is not encrypted to
/// this user).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    descriptor: String,
    signature: String,
    sender_key: String,
    contents: Option<Contents>,
    /// Why a manifest encrypted to this user could not be read (its
    /// sender's doing: its bytes are the ones the descriptor names).
    #[serde(default)]
    problem: Option<String>,
}

/// The readable part of a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contents {
    /// The sender's note.
    pub note: String,
    /// Path and size of each file.
    pub files: Vec<(String, u64)>,
}

/// What the inbox shows of an item beyond the server's listing.
#[derive(Debug)]
pub enum Preview {
    /// The signed descriptor checked: what it says, and the decrypted
    /// manifest's names and note (`None` when the packet is not encrypted
    /// to this user's key, or its manifest could not be read: `problem`).
    Checked {
        /// From the signed descriptor.
        signed: Signed,
        /// From the decrypted manifest.
        contents: Option<Contents>,
        /// Why a manifest encrypted to this user could not be read.
        problem: Option<String>,
    },
    /// The server would not show the descriptor, and the signed roster
    /// agrees it need not (a provider whose acknowledgment is not
    /// current): listed with the server's fields only, said so.
    Withheld(String),
}

/// What the inbox shows from a checked descriptor (not the whole of it:
/// a descriptor may be large).
#[derive(Debug, Clone)]
pub struct Signed {
    /// Packet or deliverable.
    pub kind: Kind,
    /// Task type.
    pub task: String,
    /// Due (Unix seconds).
    pub due: Option<u64>,
    /// Sent (Unix seconds).
    pub created_at: u64,
    /// Total ciphertext size.
    pub size: u64,
}

impl Signed {
    fn of(d: &Descriptor) -> Self {
        Self {
            kind: d.kind,
            task: d.task.clone(),
            due: d.due,
            created_at: d.created_at,
            size: d.total_size(),
        }
    }
}

fn cache_dir(home: &Home) -> PathBuf {
    home.path("cache").join("packets")
}

fn cache_path(home: &Home, id: &str) -> Option<PathBuf> {
    // Only a well-formed id names a file (ids come from the server).
    validate_id(id).then(|| cache_dir(home).join(format!("{id}.json")))
}

/// Removes the cached listings of `matter`'s packets (`mdrop purge`);
/// returns the packet ids whose entries went.
pub(crate) fn purge_cache(home: &Home, matter: &str) -> Vec<String> {
    let mut gone = Vec::new();
    let Ok(dir) = fs::read_dir(cache_dir(home)) else {
        return gone;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        let of_matter = load(home, id)
            .and_then(|c| B64.decode(&c.descriptor).ok())
            .and_then(|d| Descriptor::parse(&d).ok())
            .is_some_and(|d| d.matter == matter);
        if of_matter && fs::remove_file(e.path()).is_ok() {
            gone.push(id.to_owned());
        }
    }
    gone
}

fn load(home: &Home, id: &str) -> Option<Cached> {
    let bytes = fs::read(cache_path(home, id)?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn store(home: &Home, id: &str, entry: &Cached) -> CmdResult {
    let Some(path) = cache_path(home, id) else {
        return Ok(());
    };
    let dir = cache_dir(home);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    fs::set_permissions(home.path("cache"), fs::Permissions::from_mode(0o700))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let bytes = serde_json::to_vec(entry).map_err(|e| Fail::other(e.to_string()))?;
    crate::home::write_replace(&path, &bytes, 0o600)
}

fn refuse(id: &str, why: impl std::fmt::Display) -> Fail {
    Fail::new(
        exit::VERIFY,
        format!(
            "the server's inbox entry {} {why}; nothing is shown",
            escape(id, false)
        ),
    )
}

fn decode(id: &str, what: &str, v: &str) -> CmdResult<Vec<u8>> {
    B64.decode(v)
        .map_err(|_| refuse(id, format!("has a damaged cached {what}")))
}

/// What the caller needs to check items.
struct Checker<'a> {
    session: &'a Session,
    home: &'a Home,
    me: &'a str,
    signing: ed25519_dalek::VerifyingKey,
    rosters: &'a HashMap<String, Synced>,
    ids: Option<&'a [AgeIdentity]>,
}

impl Checker<'_> {
    /// Checks one item: its descriptor (cached or peeked) against the
    /// roster; its manifest decrypted if it is new and readable.
    async fn preview(&self, item: &InboxItem, cached: Option<Cached>) -> CmdResult<Preview> {
        let fresh = cached.is_none();
        // A re-share to this user, as the server presents it (checked
        // below before anything is read with it).
        let mut share = None;
        let entry = match cached {
            Some(c) => c,
            None => {
                let resp = match self
                    .session
                    .request(&ClientRequest::PacketPeek(PacketRef {
                        id: item.id.clone(),
                    }))
                    .await
                {
                    // Listed but not to be looked at: believed only where
                    // the signed roster agrees (this user is a provider
                    // whose acknowledgment is not current); otherwise the
                    // server is hiding what it lists.
                    Err(f) if f.code == exit::DENIED => {
                        return if self.must_renew_ack(&item.matter) {
                            Ok(Preview::Withheld(f.message))
                        } else {
                            Err(refuse(
                                &item.id,
                                format!(
                                    "is listed, but the server refuses its signed descriptor ({})",
                                    escape(&f.message, false)
                                ),
                            ))
                        };
                    }
                    r => r?,
                };
                let ServerResponse::Packet(info) = resp else {
                    return Err(unexpected(&resp));
                };
                share = info.share;
                Cached {
                    descriptor: B64.encode(&info.descriptor),
                    signature: B64.encode(&info.signature),
                    sender_key: B64.encode(info.sender_key),
                    contents: None,
                    problem: None,
                }
            }
        };
        let info = PacketInfo {
            share,
            id: item.id.clone(),
            descriptor: decode(&item.id, "descriptor", &entry.descriptor)?,
            signature: decode(&item.id, "signature", &entry.signature)?,
            sender_key: decode(&item.id, "key", &entry.sender_key)?
                .try_into()
                .map_err(|_| refuse(&item.id, "has a damaged cached key"))?,
            review: None,
            expired: None,
        };
        let d = Descriptor::parse(&info.descriptor)
            .map_err(|e| refuse(&item.id, format!("has no valid descriptor: {e}")))?;
        if d.id != item.id
            || d.matter != item.matter
            || d.sender != item.sender
            || d.packet != item.packet
            || (d.kind == Kind::Packet) != (item.kind == "packet")
        {
            return Err(refuse(
                &item.id,
                format!(
                    "holds the descriptor of {} of matter {} sent by {}",
                    escape(&d.id, false),
                    escape(&d.matter, false),
                    escape(&d.sender, false)
                ),
            ));
        }
        let roster = self
            .rosters
            .get(&d.matter)
            .map(|s| &s.roster)
            .ok_or_else(|| {
                Fail::other(format!(
                    "internal error: no roster for {}",
                    escape(&d.matter, false)
                ))
            })?;
        super::packets::verify_descriptor(&d, &info, roster, self.me, &self.signing)?;
        let signed = Signed::of(&d);
        if !fresh {
            return Ok(Preview::Checked {
                signed,
                contents: entry.contents,
                problem: entry.problem,
            });
        }
        let recipient = |ids: &[AgeIdentity]| {
            d.recipients.iter().any(|r| {
                r.principal == self.me && ids.iter().any(|i| i.public().recipient() == r.age)
            })
        };
        let mine = match self.ids {
            Some(ids) if recipient(ids) => Some(ids),
            // Re-shared to this user: the share is checked as `pull`
            // checks it, and its headers open the manifest.
            Some(ids) if info.share.is_some() => {
                super::packets::verify_share(self.session, &d, &info, roster, self.me, ids)?;
                Some(ids)
            }
            _ => None,
        };
        let (contents, problem) = match mine {
            Some(ids) => {
                // The bytes must be the ones the descriptor names (else the
                // server swapped them: the listing is refused); a manifest
                // that then does not decrypt or parse is its sender's doing
                // and makes only this item unreadable.
                let fetched = tokio::time::timeout(
                    MANIFEST_WAIT,
                    super::packets::fetch_manifest_cipher(self.session, &d),
                )
                .await;
                let Ok(cipher) = fetched else {
                    // Slow, not wrong: this item only, and not cached, so
                    // the next listing tries again.
                    return Ok(Preview::Checked {
                        signed,
                        contents: None,
                        problem: Some(format!(
                            "its manifest did not arrive within {} s; run inbox again",
                            MANIFEST_WAIT.as_secs()
                        )),
                    });
                };
                let cipher = cipher?;
                match super::packets::decrypt_manifest(&cipher, &d, ids) {
                    Ok((m, _)) => (
                        Some(Contents {
                            note: m.note,
                            files: m.files.into_iter().map(|f| (f.path, f.size)).collect(),
                        }),
                        None,
                    ),
                    Err(f) => (None, Some(f.message)),
                }
            }
            None => (None, None),
        };
        let entry = Cached {
            contents: contents.clone(),
            problem: problem.clone(),
            ..entry
        };
        store(self.home, &item.id, &entry)?;
        Ok(Preview::Checked {
            signed,
            contents,
            problem,
        })
    }

    /// Whether the signed roster has this user as a provider of `matter`
    /// without a current acknowledgment (so that the server rightly
    /// withholds the matter's packets until it signs).
    fn must_renew_ack(&self, matter: &str) -> bool {
        let Some(s) = self.rosters.get(matter) else {
            return false;
        };
        let provider = s
            .roster
            .members
            .get(self.me)
            .is_some_and(|m| m.role == matterdrop_common::roles::Role::Provider);
        provider && !s.roster.has_current_ack(self.me, &s.acks)
    }
}

/// `mdrop inbox`.
pub async fn inbox(ctx: &Ctx, args: &InboxArgs) -> CmdResult {
    let key = identity::signing_key(&ctx.home)?;
    let (session, server) = Session::open(&ctx.home, &key).await?;
    let result = async {
        let resp = session
            .request(&ClientRequest::Inbox(InboxRequest {
                matter: args.matter.clone(),
                all: args.all,
            }))
            .await?;
        let ServerResponse::Inbox(items) = resp else {
            return Err(unexpected(&resp));
        };
        // Every matter's signed roster: titles, and the keys items are
        // checked with.
        let mut rosters = HashMap::new();
        for i in &items {
            if !rosters.contains_key(&i.matter) {
                let synced = crate::roster::sync(&ctx.home, &session, &i.matter).await?;
                rosters.insert(i.matter.clone(), synced);
            }
        }
        // The age key is needed (perhaps a passphrase asked for) only if
        // something is new or a review must be decrypted.
        let cached: Vec<Option<Cached>> = items.iter().map(|i| load(&ctx.home, &i.id)).collect();
        let needs_key = items
            .iter()
            .zip(&cached)
            .any(|(i, c)| i.review.is_some() || c.is_none());
        let ids = if needs_key {
            Some(identity::age_identities(&ctx.home)?)
        } else {
            None
        };
        let reviews = open_reviews(&items, &rosters, ids.as_deref())?;
        let checker = Checker {
            session: &session,
            home: &ctx.home,
            me: &server.principal,
            signing: key.verifying_key(),
            rosters: &rosters,
            ids: ids.as_deref(),
        };
        let previews: Vec<CmdResult<Preview>> = stream::iter(items.iter().zip(cached))
            .map(|(i, c)| checker.preview(i, c))
            .buffered(CONCURRENT)
            .collect()
            .await;
        let previews = previews.into_iter().collect::<CmdResult<Vec<_>>>()?;
        Ok((items, reviews, previews, rosters))
    }
    .await;
    session.close().await;
    let (items, reviews, previews, rosters) = result?;
    let now = when::now();
    let title = |m: &str| rosters.get(m).map(|s| s.roster.title.clone());
    // The version of the role definition that puts a packet's task under
    // attorney sign-off, if it does.
    // Only a packet whose signed descriptor was checked: not the
    // server's listing.
    let sign_off = |i: &InboxItem, p: &Preview| -> Option<u32> {
        let Preview::Checked { signed, .. } = p else {
            return None;
        };
        let def = rosters.get(&i.matter)?.roster.role_def.as_ref()?;
        (signed.kind == Kind::Packet && def.sign_off.iter().any(|t| t.as_str() == signed.task))
            .then_some(def.version)
    };
    let v = json!({"items": items.iter().zip(&reviews).zip(&previews).map(|((i, r), p)| {
        let (task, due, created_at, size) = shown(i, p);
        let (kind, contents, problem, withheld) = match p {
            Preview::Checked { signed, contents, problem } => (
                match signed.kind {
                    Kind::Packet => "packet",
                    Kind::Deliverable => "deliverable",
                },
                contents.as_ref(),
                problem.as_ref(),
                None,
            ),
            Preview::Withheld(why) => (i.kind.as_str(), None, None, Some(why)),
        };
        json!({
            "id": i.id, "kind": kind, "matter": i.matter, "matter_title": title(&i.matter),
            "sender": i.sender, "task": task,
            "due": due.map(when::utc), "size": size, "created_at": when::utc(created_at),
            "pulled": i.pulled, "packet": i.packet, "state": i.state,
            "checked": withheld.is_none(),
            "withheld": withheld,
            "unreadable": problem,
            "readable": contents.is_some(),
            "note": contents.map(|c| &c.note),
            "files": contents.map(|c| c.files.iter().map(|(path, size)| json!({"path": path, "size": size})).collect::<Vec<_>>()),
            "review": r.as_ref().map(OpenedReview::json),
            "needs_sign_off": sign_off(i, p).is_some(),
        })
    }).collect::<Vec<_>>()});
    ctx.out.emit(&v, || {
        let mut s = String::new();
        if items.is_empty() {
            s.push_str("Nothing waiting.\n");
            return s;
        }
        for ((i, r), p) in items.iter().zip(&reviews).zip(&previews) {
            describe(&mut s, (i, r.as_ref(), p), title(&i.matter).as_deref(), now);
            if let Some(v) = sign_off(i, p) {
                let _ = writeln!(
                    s,
                    "    this task needs attorney sign-off (role definition v{v}: `mdrop matter show {}`)",
                    escape(&i.matter, false)
                );
            }
        }
        s
    });
    Ok(())
}

/// The task, due date, sending time and size shown: from the signed
/// descriptor, except a deliverable's due date, its packet's (the server's
/// word, as in `sent`); an item withheld has only the server's.
fn shown<'a>(i: &'a InboxItem, p: &'a Preview) -> (&'a str, Option<u64>, u64, u64) {
    match p {
        Preview::Checked { signed, .. } if signed.kind == Kind::Packet => {
            (&signed.task, signed.due, signed.created_at, signed.size)
        }
        Preview::Checked { signed, .. } => (&signed.task, i.due, signed.created_at, signed.size),
        Preview::Withheld(_) => (&i.task, i.due, i.created_at, i.size),
    }
}

/// One item for the terminal: a heading, then what it holds. Every text
/// from another party (names, note, titles, ids) is escaped.
fn describe(
    s: &mut String,
    (i, review, p): (&InboxItem, Option<&OpenedReview>, &Preview),
    title: Option<&str>,
    now: u64,
) {
    let (task, due, created_at, size) = shown(i, p);
    let checked = matches!(p, Preview::Checked { .. });
    let kind = match (&i.packet, &i.state) {
        (Some(packet), Some(st)) => format!(
            "deliverable ({}) for {}",
            escape(st, false),
            escape(packet, false)
        ),
        (Some(packet), None) => format!("deliverable for {}", escape(packet, false)),
        (None, _) => "packet".to_owned(),
    };
    let matter = match title {
        Some(t) => format!("{} \"{}\"", escape(&i.matter, false), escape(t, false)),
        None => escape(&i.matter, false),
    };
    let _ = writeln!(
        s,
        "{}  {kind}  {matter}{}",
        escape(&i.id, false),
        if checked {
            ""
        } else {
            "  (UNCHECKED: the server's listing)"
        }
    );
    let _ = write!(
        s,
        "    from {}  task {}  sent {}",
        escape(&i.sender, false),
        escape(task, false),
        when::local(created_at)
    );
    // A deliverable's due date is its packet's, as the server says.
    let whose = match p {
        Preview::Checked { signed, .. } if signed.kind == Kind::Deliverable => ", server",
        _ => "",
    };
    match due {
        Some(due) => {
            let _ = writeln!(
                s,
                "  due {} ({}{whose})",
                when::relative(due, now),
                when::local(due)
            );
        }
        None => s.push('\n'),
    }
    match p {
        Preview::Checked {
            contents: Some(c), ..
        } => {
            let total = c.files.iter().fold(0u64, |t, (_, n)| t.saturating_add(*n));
            let names: Vec<String> = c
                .files
                .iter()
                .take(NAMES_SHOWN)
                .map(|(path, size)| format!("{} ({})", escape(path, false), human_size(*size)))
                .collect();
            let more = c.files.len().saturating_sub(NAMES_SHOWN);
            let _ = write!(
                s,
                "    {} {}, {}: {}",
                c.files.len(),
                if c.files.len() == 1 { "file" } else { "files" },
                human_size(total),
                names.join(", ")
            );
            if more > 0 {
                let _ = write!(s, " and {more} more");
            }
            s.push('\n');
            if !c.note.is_empty() {
                let _ = writeln!(s, "    note: {}", escape(&c.note, false));
            }
        }
        Preview::Checked {
            problem: Some(why), ..
        } => {
            let _ = writeln!(
                s,
                "    {} of ciphertext; its manifest cannot be read: {}",
                human_size(size),
                escape(why, false)
            );
        }
        Preview::Checked { .. } => {
            let _ = writeln!(
                s,
                "    {} of ciphertext, not encrypted to your key (ask its sender to share it)",
                human_size(size)
            );
        }
        Preview::Withheld(why) => {
            let _ = writeln!(
                s,
                "    {} (not checked; the server withholds it: {})",
                human_size(size),
                escape(why, false)
            );
        }
    }
    if let Some(r) = review {
        let _ = writeln!(s, "    {}", r.describe().trim_end().replace('\n', "\n    "));
    }
}

/// The reviews the server attached to inbox items, each checked against
/// the matter's signed roster and decrypted. A review that does not check
/// refuses the whole listing (exit 4), naming the deliverable.
fn open_reviews(
    items: &[InboxItem],
    rosters: &HashMap<String, Synced>,
    ids: Option<&[AgeIdentity]>,
) -> CmdResult<Vec<Option<OpenedReview>>> {
    items
        .iter()
        .map(|i| match (&i.review, rosters.get(&i.matter), ids) {
            (Some(r), Some(synced), Some(ids)) => Ok(Some(super::review::open_review(
                r,
                (&i.id, &i.matter),
                None,
                &synced.roster,
                ids,
            )?)),
            _ => Ok(None),
        })
        .collect()
}
