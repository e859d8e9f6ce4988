//! The tamper-evident audit log, end to end: export, offline verification,
//! and every kind of tampering with the server's log on disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use matterdrop_common::bundle;
use matterdrop_tests::{Server, User, World, bin, copy_dir};

const MATTER: &str = "2026-PI-0042";

struct Scene {
    w: World,
    alice: User,
    bob: User,
    audrey: User,
}

/// A matter with allowed and denied events by members and non-members.
fn scene() -> Scene {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
    let carl = w.user("carl@lpo-1");
    let audrey = w.user("audrey@firm-a");
    let ack = w.tmp.path().join("ack.txt");
    std::fs::write(&ack, "Confidential.\n").unwrap();
    alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Doe",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        "document-review",
    ]);
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    alice
        .add_member(MATTER, &audrey, "audrey@firm-a", "auditor")
        .ok();
    bob.run(&["matter", "show", MATTER]).code(3); // denied: not acknowledged
    bob.json(&["ack", MATTER, "--yes"]);
    bob.json(&["matter", "show", MATTER]);
    carl.run(&["matter", "show", MATTER]).code(3); // denied: not a member
    Scene {
        w,
        alice,
        bob,
        audrey,
    }
}

fn export(user: &User, matter: Option<&str>, out: &Path) {
    let mut args = vec!["audit", "export", "--out", out.to_str().unwrap()];
    if let Some(m) = matter {
        args.extend(["--matter", m]);
    }
    user.json(&args);
}

#[test]
fn matter_export_verifies_and_shows_denials() {
    let s = scene();
    let out = s.w.tmp.path().join("m.bundle");
    export(&s.audrey, Some(MATTER), &out);
    let v = s.audrey.json(&["audit", "verify", out.to_str().unwrap()]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["matter"], MATTER);
    assert!(v["denials"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(
        v["per_principal"]["carl@lpo-1"], 1,
        "non-member attempts are in the matter's log: {v}"
    );
    let denied = s
        .audrey
        .json(&["audit", "show", out.to_str().unwrap(), "--denied"]);
    let rows = denied["entries"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["principal"] == "bob@lpo-1" && r["rule"] == "not-acknowledged"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r["principal"] == "carl@lpo-1" && r["rule"] == "not-member"),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r["allowed"] == false));
    let acks = s.audrey.json(&[
        "audit",
        "show",
        out.to_str().unwrap(),
        "--action",
        "ack-sign",
        "--principal",
        "bob@lpo-1",
    ]);
    assert_eq!(acks["entries"].as_array().unwrap().len(), 1);
    let text = s
        .audrey
        .run(&["audit", "show", out.to_str().unwrap()])
        .ok()
        .stdout;
    assert!(
        text.contains("DENIED") && text.contains("carl@lpo-1"),
        "{text}"
    );

    // Who may export: the matter's auditors, attorneys (for the evaluation
    // report) and admins; not providers.
    let by_attorney = s.w.tmp.path().join("attorney.bundle");
    s.alice.json(&[
        "audit",
        "export",
        "--matter",
        MATTER,
        "--out",
        by_attorney.to_str().unwrap(),
    ]);
    s.bob
        .run(&["audit", "export", "--matter", MATTER, "--out", "/dev/null"])
        .code(3);
    s.audrey
        .run(&["audit", "export", "--out", "/dev/null"])
        .code(3);
    let full = s.w.tmp.path().join("full.bundle");
    export(&s.w.admin, None, &full);
    let v = s.w.admin.json(&["audit", "verify", full.to_str().unwrap()]);
    assert!(v["per_action"]["enroll"].as_u64().unwrap() >= 5, "{v}");
    // A second verify on a grown log proves consistency with the first.
    s.bob.json(&["matter", "show", MATTER]);
    export(&s.w.admin, None, &full);
    let v = s.w.admin.json(&["audit", "verify", full.to_str().unwrap()]);
    assert_eq!(v["consistent_with_previous_checkpoint"], true);
    export(&s.audrey, Some(MATTER), &out);
    let v = s.audrey.json(&["audit", "verify", out.to_str().unwrap()]);
    assert_eq!(v["consistent_with_previous_checkpoint"], true);
}

/// Rewrites a matter bundle without its record number `drop`.
fn drop_record(src: &Path, dst: &Path, drop: usize) -> u64 {
    let mut r = std::io::BufReader::new(std::fs::File::open(src).unwrap());
    let mut header = bundle::read_header(&mut r).unwrap();
    let with_proof = header.matter.is_some();
    let mut recs = Vec::new();
    for _ in 0..header.count {
        recs.push(bundle::read_record(&mut r, with_proof).unwrap());
    }
    let dropped = recs.remove(drop).index;
    header.count -= 1;
    let mut w = std::fs::File::create(dst).unwrap();
    bundle::write_header(&mut w, &header).unwrap();
    for rec in recs {
        bundle::write_record(&mut w, rec.index, &rec.record, rec.proof.as_deref()).unwrap();
    }
    dropped
}

#[test]
fn dropping_an_entry_from_a_matter_export_is_detected() {
    let s = scene();
    let out = s.w.tmp.path().join("m.bundle");
    export(&s.audrey, Some(MATTER), &out);
    for drop in [1, 3] {
        let bad = s.w.tmp.path().join(format!("m-{drop}.bundle"));
        let dropped = drop_record(&out, &bad, drop);
        let r = s
            .audrey
            .run(&["audit", "verify", bad.to_str().unwrap()])
            .code(4);
        assert!(
            r.stderr.contains(&format!("first bad index: {dropped}")),
            "{r:?}"
        );
    }
    // Dropping the newest entry (the export itself) is detected too.
    let mut r = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
    let count = bundle::read_header(&mut r).unwrap().count as usize;
    let bad = s.w.tmp.path().join("m-last.bundle");
    drop_record(&out, &bad, count - 1);
    let r = s
        .audrey
        .run(&["audit", "verify", bad.to_str().unwrap()])
        .code(4);
    assert!(r.stderr.contains("own export entry"), "{r:?}");
    // A bundle verified against another log key fails.
    let other = "mdropd-00000000+00000000+AXG2B8bc2MXw3GOKRJtFz8BiVBqfEt2pt7DfePJ1MUB3";
    s.audrey
        .run(&["audit", "verify", out.to_str().unwrap(), "--log-key", other])
        .code_any(&[2, 4]);
}

trait CodeAny {
    fn code_any(self, codes: &[i32]) -> Self;
}

impl CodeAny for matterdrop_tests::Run {
    #[track_caller]
    fn code_any(self, codes: &[i32]) -> Self {
        assert!(
            codes.contains(&self.code),
            "exit {} not in {codes:?}: {self:?}",
            self.code
        );
        self
    }
}

/// Byte ranges of the records in a log `entries` file.
fn records(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(at..at + 8 + len);
        at += 8 + len;
    }
    out
}

/// A record with a valid frame (length and CRC), as a careful attacker
/// would write it.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Copies the data dir, lets `tamper` rewrite its log's entries, exports
/// the log straight from disk and verifies it as `verifier`.
fn tampered(
    data: &Path,
    tmp: &Path,
    name: &str,
    verifier: &User,
    tamper: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> matterdrop_tests::Run {
    let copy = tmp.join(format!("data-{name}"));
    copy_dir(data, &copy);
    let entries = copy.join("log/entries");
    let bytes = std::fs::read(&entries).unwrap();
    std::fs::write(&entries, tamper(bytes)).unwrap();
    let out = tmp.join(format!("{name}.bundle"));
    let st = Command::new(bin("mdropd"))
        .args(["export-log", "--data"])
        .arg(&copy)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    // The server itself refuses to start on a log that no longer matches
    // its own checkpoint (or whose frames are damaged).
    let start = Command::new(bin("mdropd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&copy)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&start.stderr).into_owned();
    if name != "rollback" {
        assert!(
            !start.status.success(),
            "{name}: server started on a tampered log"
        );
        assert!(log.contains("audit log"), "{name}: {log}");
    }
    verifier.run(&["audit", "verify", out.to_str().unwrap()])
}

#[test]
fn tampering_on_the_servers_disk_is_detected_with_its_index() {
    let mut s = scene();
    let data = s.w.server.data.clone();
    let tmp = s.w.tmp.path().to_path_buf();
    // An early copy of the log, for the rollback case.
    let old = tmp.join("old-log");
    copy_dir(&data.join("log"), &old);
    let old_size = records(&std::fs::read(old.join("entries")).unwrap()).len() as u64;
    s.bob.json(&["matter", "show", MATTER]);
    s.bob.json(&["matter", "show", MATTER]);
    // The admin verifies the whole log once: it now remembers the checkpoint.
    let full = tmp.join("full.bundle");
    export(&s.w.admin, None, &full);
    s.w.admin.json(&["audit", "verify", full.to_str().unwrap()]);
    assert!(s.w.server.stop());
    let n = records(&std::fs::read(data.join("log/entries")).unwrap()).len();
    assert!(n > 10);
    let admin = s.w.admin.clone();

    // A flipped byte inside entry 5 (its frame rewritten to stay valid).
    let r = tampered(&data, &tmp, "flip", &admin, |mut b| {
        let recs = records(&b);
        let rec = recs[5].clone();
        let mut payload = b[rec.start + 8..rec.end].to_vec();
        let mid = payload.len() / 2;
        payload[mid] ^= 0x20;
        b.splice(rec, frame(&payload));
        b
    });
    let r = r.code(4);
    assert!(r.stderr.contains("first bad index: 5"), "{r:?}");

    // A flipped byte without fixing the CRC.
    let r = tampered(&data, &tmp, "flip-raw", &admin, |mut b| {
        let rec = records(&b)[7].clone();
        b[rec.start + 12] ^= 1;
        b
    });
    let r = r.code(4);
    assert!(r.stderr.contains("first bad index: 7"), "{r:?}");

    // Entry 4 deleted.
    let r = tampered(&data, &tmp, "delete", &admin, |mut b| {
        let rec = records(&b)[4].clone();
        b.drain(rec);
        b
    });
    let r = r.code(4);
    assert!(r.stderr.contains("first bad index: 4"), "{r:?}");

    // Entries 6 and 7 swapped.
    let r = tampered(&data, &tmp, "swap", &admin, |b| {
        let recs = records(&b);
        let mut out = b[..recs[6].start].to_vec();
        out.extend_from_slice(&b[recs[7].clone()]);
        out.extend_from_slice(&b[recs[6].clone()]);
        out.extend_from_slice(&b[recs[7].end..]);
        out
    });
    let r = r.code(4);
    assert!(r.stderr.contains("first bad index: 6"), "{r:?}");

    // The tail cut off in the middle of the last entry.
    let r = tampered(&data, &tmp, "truncate", &admin, |mut b| {
        let last = records(&b).last().unwrap().clone();
        b.truncate(last.start + 5);
        b
    });
    let r = r.code(4);
    assert!(
        r.stderr.contains(&format!("first bad index: {}", n - 1)),
        "{r:?}"
    );

    // The whole log replaced with an older copy (entries and checkpoint).
    let copy = tmp.join("data-rollback2");
    copy_dir(&data, &copy);
    std::fs::remove_dir_all(copy.join("log")).unwrap();
    copy_dir(&old, &copy.join("log"));
    // The rolled-back server starts (its log is self-consistent) and serves
    // a bundle; the client that saw the newer checkpoint catches it.
    let rolled = Server::start(&copy);
    let server_json = admin.home.join("server.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server_json).unwrap()).unwrap();
    v["server"] = rolled.addr.clone().into();
    std::fs::write(&server_json, v.to_string()).unwrap();
    let back = tmp.join("rolled.bundle");
    // The export itself is refused (nothing written), naming the rollback.
    let r = admin
        .run(&["audit", "export", "--out", back.to_str().unwrap()])
        .code(4);
    assert!(!back.exists(), "a refused bundle is not written");
    for r in [r, {
        // The same bundle, fetched by a client with no history, then given
        // to this one: `audit verify` catches it too.
        let fresh = tmp.join("fresh-admin");
        copy_dir(&admin.home, &fresh);
        std::fs::remove_file(fresh.join("audit-checkpoint.txt")).unwrap();
        let fresh = User { home: fresh };
        fresh.json(&["audit", "export", "--out", back.to_str().unwrap()]);
        admin
            .run(&["audit", "verify", back.to_str().unwrap()])
            .code(4)
    }] {
        assert!(r.stderr.contains("rollback"), "{r:?}");
        // The rolled-back log grew by the exports' own entries since.
        assert!(
            (old_size..=old_size + 2).any(|i| r.stderr.contains(&format!("first bad index: {i})"))),
            "{r:?}"
        );
    }
}

/// Points a home at a (restarted) server's new address.
fn repoint(user: &User, server: &Server) {
    let path = user.home.join("server.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["server"] = server.addr.clone().into();
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn kill_9_loses_no_acknowledged_event() {
    let mut s = scene();
    let data: PathBuf = s.w.server.data.clone();
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..3 {
        let bob = s.bob.clone();
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            // Bounded: at most 200 requests per thread.
            for _ in 0..200 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let r = bob.run(&["matter", "show", MATTER]);
                if r.code == 0 {
                    acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }));
    }
    // Let some requests land, then pull the plug mid-stream.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while acknowledged.load(std::sync::atomic::Ordering::SeqCst) < 10
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.w.server.kill();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    assert!(acked >= 10, "the load never got going");

    let restarted = Server::start(&data);
    repoint(&s.w.admin, &restarted);
    let full = s.w.tmp.path().join("after-kill.bundle");
    export(&s.w.admin, None, &full);
    s.w.admin.json(&["audit", "verify", full.to_str().unwrap()]);
    let shows = s.w.admin.json(&[
        "audit",
        "show",
        full.to_str().unwrap(),
        "--action",
        "matter-show",
        "--principal",
        "bob@lpo-1",
    ]);
    let allowed = shows["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["allowed"] == true)
        .count() as u64;
    // One allowed show happened in scene(); every acknowledged one is logged.
    assert!(
        allowed > acked,
        "acknowledged {acked} shows, log has {allowed}"
    );
}

/// A matter export ends with the entry that logs this client's nonce and
/// signs the matter's entry count. An operator who puts back an older copy
/// of the data directory (or cuts the log and deletes its checkpoint) is
/// caught by a client that saw a newer checkpoint: the export is refused,
/// nothing is written, and the client's stored checkpoint stays.
#[test]
fn exports_are_complete_fresh_and_not_rolled_back() {
    let mut s = scene();
    let old = s.w.tmp.path().join("data-snapshot");
    // The operator's snapshot, taken now (the server stopped for a moment).
    s.w.server.restart_after(|data| copy_dir(data, &old));
    for u in [&s.alice, &s.bob, &s.audrey, &s.w.admin] {
        u.repoint(&s.w.server);
    }
    s.alice.json(&["matter", "show", MATTER]);
    let b1 = s.w.tmp.path().join("b1.bundle");
    export(&s.audrey, Some(MATTER), &b1);
    let v = s.audrey.json(&["audit", "verify", b1.to_str().unwrap()]);
    assert_eq!(v["export"]["by"], "audrey@firm-a");
    assert_eq!(v["export"]["by_this_client"], true, "{v}");
    // Another auditor verifying Audrey's bundle is told whose export it is.
    let carol = s.w.user("carol@firm-a");
    let log_key = s.audrey.json(&["whoami"])["log_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = carol.json(&[
        "audit",
        "verify",
        b1.to_str().unwrap(),
        "--log-key",
        &log_key,
    ]);
    assert_eq!(v["export"]["by_this_client"], false, "{v}");
    assert_eq!(v["export"]["by"], "audrey@firm-a");
    let checkpoint = std::fs::read(s.audrey.home.join("audit-checkpoint.txt")).unwrap();

    // The operator puts the old data directory back and restarts.
    s.w.server.restart_after(|data| {
        std::fs::remove_dir_all(data).unwrap();
        copy_dir(&old, data);
    });
    for u in [&s.alice, &s.bob, &s.audrey, &s.w.admin] {
        u.repoint(&s.w.server);
    }
    let b2 = s.w.tmp.path().join("b2.bundle");
    let r = s
        .audrey
        .run(&[
            "audit",
            "export",
            "--matter",
            MATTER,
            "--out",
            b2.to_str().unwrap(),
        ])
        .code(4);
    assert!(r.stderr.contains("rollback"), "{r:?}");
    assert!(!b2.exists(), "a refused bundle is not written");
    assert_eq!(
        std::fs::read(s.audrey.home.join("audit-checkpoint.txt")).unwrap(),
        checkpoint,
        "the stored checkpoint did not move"
    );
}

/// Ids are checked before they reach the log: a request naming a matter
/// with a newline and an escape sequence is refused and logs nothing, and
/// `audit show` prints every text from the log with control characters
/// escaped, in a table or as CSV.
#[test]
fn nothing_forged_reaches_the_log_or_the_terminal() {
    use matterdrop_common::proto::{ClientRequest, ErrorCode, MatterRef};
    let s = scene();
    let forged = "2026-PI-0042\n      9  2026-01-01T00:00:00Z  alice@firm-a  review  \u{1b}[2J";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = matterdrop_tests::RawClient::connect(&s.w.server, &s.bob).await;
        let r = c
            .request(&ClientRequest::MatterShow(MatterRef {
                matter: forged.into(),
            }))
            .await;
        assert_eq!(matterdrop_tests::error_code(&r), ErrorCode::BadRequest);
        c.close().await;
    });
    let out = s.w.tmp.path().join("all.bundle");
    export(&s.w.admin, None, &out);
    let table =
        s.w.admin
            .run(&["audit", "show", out.to_str().unwrap()])
            .ok()
            .stdout;
    assert!(!table.contains('\u{1b}'), "{table}");
    assert!(!table.contains("2J"), "nothing of the forged id was logged");
    // Transfers are one row each, with parts and bytes; CSV has a header
    // and one line per row.
    let f = s.w.tmp.path().join("f.txt");
    std::fs::write(&f, "x\n").unwrap();
    s.alice.json(&[
        "push",
        MATTER,
        f.to_str().unwrap(),
        "--task",
        "document-review",
    ]);
    export(&s.w.admin, None, &out);
    let table =
        s.w.admin
            .run(&[
                "audit",
                "show",
                out.to_str().unwrap(),
                "--action",
                "push-upload",
            ])
            .ok()
            .stdout;
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "one row per transfer: {table}");
    assert!(
        rows[0].contains("2 parts") && rows[0].contains("committed"),
        "{table}"
    );
    let every =
        s.w.admin
            .run(&[
                "audit",
                "show",
                out.to_str().unwrap(),
                "--action",
                "push-upload",
                "--every-part",
            ])
            .ok()
            .stdout;
    assert_eq!(every.lines().count(), 3, "{every}");
    let csv =
        s.w.admin
            .run(&[
                "audit",
                "show",
                out.to_str().unwrap(),
                "--format",
                "csv",
                "--denied",
            ])
            .ok()
            .stdout;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("index,time,principal,action,matter,object,outcome,rule,reason,parts,bytes,completed")
    );
    let denied: Vec<&str> = lines.collect();
    assert!(
        !denied.is_empty() && denied.iter().all(|l| l.contains(",DENIED,")),
        "{csv}"
    );
    // A window that excludes everything.
    let none =
        s.w.admin
            .run(&[
                "audit",
                "show",
                out.to_str().unwrap(),
                "--until",
                "2000-01-01",
            ])
            .ok()
            .stdout;
    assert_eq!(none.lines().count(), 1, "{none}");
}

/// Chain of custody: a pull that verified every file is logged with the
/// recipient's signed delivery statement, which `audit verify` checks and
/// `audit show` reports; a download that was started but not verified is
/// shown as such.
#[test]
fn verified_deliveries_are_signed_and_told_apart_from_started_downloads() {
    use matterdrop_common::proto::{BlobGetRequest, ClientRequest, PacketRef, ServerResponse};
    let s = scene();
    let f = s.w.tmp.path().join("records.txt");
    std::fs::write(&f, "2025-01-02 ER visit\n").unwrap();
    let push = |_: ()| {
        s.alice.json(&[
            "push",
            MATTER,
            f.to_str().unwrap(),
            "--task",
            "document-review",
        ])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (p1, p2, p3) = (push(()), push(()), push(()));
    // Bob's inbox looks at all three (descriptor and manifest, for names).
    assert_eq!(s.bob.json(&["inbox"])["items"].as_array().unwrap().len(), 3);
    let out = s.w.tmp.path().join("bob-in");
    let v = s.bob.json(&["pull", &p1, "--out", out.to_str().unwrap()]);
    assert!(v["delivery_log_index"].as_u64().is_some(), "{v}");
    // p2: its descriptor and one blob fetched, nothing verified or confirmed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = matterdrop_tests::RawClient::connect(&s.w.server, &s.bob).await;
        let ServerResponse::Packet(info) = c
            .request(&ClientRequest::PacketGet(PacketRef { id: p2.clone() }))
            .await
        else {
            panic!("no descriptor");
        };
        let d = matterdrop_common::packet::Descriptor::parse(&info.descriptor).unwrap();
        let (mut send, mut recv) = c.conn.open_bi().await.unwrap();
        send.write_all(
            &matterdrop_common::proto::encode(&ClientRequest::BlobGet(BlobGetRequest {
                packet: p2.clone(),
                sha256: d.manifest.sha256,
                offset: 0,
                for_share: false,
            }))
            .unwrap(),
        )
        .await
        .unwrap();
        let _ = send.finish();
        let _ = recv.read_to_end(1 << 20).await;
        c.close().await;
    });
    let bundle = s.w.tmp.path().join("all.bundle");
    export(&s.w.admin, None, &bundle);
    s.w.admin
        .json(&["audit", "verify", bundle.to_str().unwrap()]);
    let shown =
        s.w.admin
            .run(&[
                "audit",
                "show",
                bundle.to_str().unwrap(),
                "--action",
                "pull-blob",
            ])
            .ok()
            .stdout;
    // The latest transfer row of each (the inbox looked at each first).
    let row = |p: &str| {
        shown
            .lines()
            .rfind(|l| l.contains(p))
            .unwrap_or_else(|| panic!("no row for {p}:\n{shown}"))
            .to_owned()
    };
    assert!(row(&p1).contains("delivered and verified"), "{shown}");
    assert!(row(&p2).contains("NOT confirmed delivered"), "{shown}");
    // p3 was only looked at in the inbox: no abandoned download.
    assert!(row(&p3).contains("the manifest for the inbox"), "{shown}");
    let delivered = s.w.admin.json(&[
        "audit",
        "show",
        bundle.to_str().unwrap(),
        "--action",
        "delivered",
    ]);
    let entries = delivered["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{delivered}");
    assert_eq!(entries[0]["principal"], "bob@lpo-1");
    assert_eq!(entries[0]["object"], p1.as_str());
}
