//! Retention, legal hold and closing: the server deletes what the signed
//! roster lets it delete and nothing else, and what it claims to have
//! deleted is checked by clients and auditors against that roster.

use std::path::Path;
use std::time::{Duration, Instant};

use matterdrop_tests::{Run, User, World, walk};

const MATTER: &str = "2026-PI-0077";
/// Sweeps often, so a retention of seconds runs out inside the test.
const SWEEP: [&str; 2] = ["--expiry-interval", "1s"];

struct Team {
    w: World,
    alice: User,
    bob: User,
    audrey: User,
}

impl Team {
    fn users(&self) -> [&User; 3] {
        [&self.alice, &self.bob, &self.audrey]
    }

    fn push(&self, name: &str, text: &str) -> String {
        let dir = self.w.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.txt")), text).unwrap();
        self.alice.json(&[
            "push",
            MATTER,
            dir.to_str().unwrap(),
            "--task",
            "document-review",
        ])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn pull(&self, id: &str, out: &str) -> Run {
        let out = self.w.tmp.path().join(out);
        self.bob
            .run(&["--json", "pull", id, "--out", out.to_str().unwrap()])
    }

    /// Exports the matter's audit log as the auditor and verifies it.
    fn audit(&self, name: &str) -> Run {
        let bundle = self.w.tmp.path().join(name);
        let export = self.audrey.run(&[
            "--json",
            "audit",
            "export",
            "--matter",
            MATTER,
            "--out",
            bundle.to_str().unwrap(),
        ]);
        if export.code != 0 {
            return export;
        }
        self.audrey
            .run(&["--json", "audit", "verify", bundle.to_str().unwrap()])
    }

    fn blobs(&self) -> usize {
        walk(&self.w.server.data.join("blobs")).len()
    }
}

fn team() -> Team {
    let w = World::with_server_args(|_| SWEEP.iter().map(|s| (*s).to_owned()).collect());
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
    let audrey = w.user("audrey@firm-a");
    let ack = w.tmp.path().join("ack.txt");
    std::fs::write(&ack, "Delete everything when the work is done.\n").unwrap();
    alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Roe",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        "document-review",
    ]);
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    alice
        .add_member(MATTER, &audrey, "audrey@firm-a", "auditor")
        .ok();
    bob.json(&["ack", MATTER, "--yes"]);
    Team {
        w,
        alice,
        bob,
        audrey,
    }
}

/// Runs `f` until it returns `Some`, for at most 20 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn files_expire_under_the_signed_retention_and_never_under_a_hold() {
    let t = team();
    let first = t.push("first", "PLAINTEXT-MARKER first packet\n");
    let before = t.blobs();
    assert!(before >= 2, "a manifest and a file");

    // Only attorneys sign lifecycle changes.
    let r = t.bob.run(&["matter", "hold", MATTER]).code(3);
    assert!(r.stderr.contains("only an attorney"), "{r:?}");
    let r = t
        .alice
        .run(&["matter", "set-retention", MATTER, "90", "--yes"])
        .code(2);
    assert!(r.stderr.contains("retention"), "{r:?}");

    // A hold first, then a retention of two seconds: nothing goes.
    let v = t.alice.json(&[
        "matter",
        "hold",
        MATTER,
        "--reason",
        "Roe v. Doe preservation letter",
    ]);
    assert_eq!(v["legal_hold"]["by"], "alice@firm-a", "{v}");
    let r = t.alice.run(&["matter", "hold", MATTER]).code(3);
    assert!(r.stderr.contains("already under the legal hold"), "{r:?}");
    let v = t
        .alice
        .json(&["matter", "set-retention", MATTER, "2s", "--yes"]);
    assert_eq!(v["retention_seconds"], 2, "{v}");
    let shown = t.bob.run(&["matter", "show", MATTER]).ok();
    assert!(
        shown.stdout.contains("legal hold:") && shown.stdout.contains("preservation letter"),
        "{shown:?}"
    );
    std::thread::sleep(Duration::from_secs(4));
    t.pull(&first, "held").ok();
    assert_eq!(t.blobs(), before, "nothing deleted under the hold");
    // The provider's own copies are held too.
    let r = t.bob.run(&["purge", MATTER, "--yes"]).code(3);
    assert!(
        r.stderr.contains("legal hold") && r.stderr.contains("nothing was deleted"),
        "{r:?}"
    );
    assert!(!walk(&t.w.tmp.path().join("held")).is_empty());

    // Released: the sweep deletes the packet's files and logs it.
    t.alice.json(&["matter", "release", MATTER, "--yes"]);
    eventually("the packet's files to go", || {
        (t.blobs() == before - 2).then_some(())
    });
    let r = t.pull(&first, "after").code(1);
    assert!(
        r.stderr.contains("expired") && r.stderr.contains("retention"),
        "{r:?}"
    );
    assert!(
        walk(&t.w.tmp.path().join("after")).is_empty(),
        "nothing written"
    );
    let inbox = t.bob.json(&["inbox", "--matter", MATTER, "--all"]);
    assert!(!inbox.to_string().contains(&first), "{inbox}");
    // The auditor's verifier replays the roster and accepts the expiry.
    let v = t.audit("released.bundle").ok().json();
    assert_eq!(v["per_action"]["expired"], 1, "{v}");
    // Now the provider may purge, and the turnaround report carries the
    // signed attestation.
    t.bob.json(&["purge", MATTER, "--yes"]);
    let report = t.alice.json(&["report", "turnaround", "--matter", MATTER]);
    assert_eq!(
        report["destructions"][0]["principal"], "bob@lpo-1",
        "{report}"
    );
    let text = t
        .alice
        .run(&["report", "turnaround", "--matter", MATTER])
        .ok();
    assert!(
        text.stdout.contains("Destruction attestations") && text.stdout.contains("bob@lpo-1"),
        "{text:?}"
    );
}

#[test]
fn a_closed_matter_takes_no_new_work_until_reopened() {
    let t = team();
    let v = t.alice.json(&["matter", "close", MATTER, "--yes"]);
    assert_eq!(v["closed"]["by"], "alice@firm-a", "{v}");
    let dir = t.w.tmp.path().join("late");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("late.txt"), "late\n").unwrap();
    let r = t
        .alice
        .run(&[
            "push",
            MATTER,
            dir.to_str().unwrap(),
            "--task",
            "document-review",
        ])
        .code(3);
    assert!(r.stderr.contains("closed"), "{r:?}");
    let r = t
        .alice
        .run(&["matter", "set-scope", MATTER, "--scope", "drafting"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("closed"), "{r:?}");
    let r = t.alice.run(&["matter", "close", MATTER, "--yes"]);
    assert_ne!(r.code, 0, "{r:?}");
    // A hold and a retention still change; reopening lets work in again.
    t.alice.json(&["matter", "hold", MATTER]);
    t.alice.json(&["matter", "reopen", MATTER, "--yes"]);
    let id = t.push("again", "again\n");
    t.pull(&id, "again-out").ok();
}

/// The operator marks a held packet expired and deletes its files, and
/// writes a matching `expired` entry with the log key it holds: the
/// provider's client and the auditor's verifier both refuse (exit 4).
#[test]
fn a_deletion_under_hold_is_caught_by_client_and_auditor() {
    let mut t = team();
    t.alice
        .json(&["matter", "set-retention", MATTER, "1h", "--yes"]);
    t.alice
        .json(&["matter", "hold", MATTER, "--reason", "subpoena"]);
    let id = t.push("held", "PLAINTEXT-MARKER held packet\n");
    let roster_len = t.alice.json(&["matter", "show", MATTER])["roster"]["statements"]
        .as_u64()
        .unwrap();
    t.w.server
        .restart_with(&SWEEP, |data| forge_expiry(data, &id, roster_len));
    for u in t.users() {
        u.repoint(&t.w.server);
    }
    let r = t.pull(&id, "forged").code(4);
    assert!(
        r.stderr.contains("does not allow") && r.stderr.contains("legal hold"),
        "{r:?}"
    );
    assert!(walk(&t.w.tmp.path().join("forged")).is_empty());
    let r = t.audit("forged.bundle").code(4);
    assert!(
        r.stderr.contains("expired entry") && r.stderr.contains("legal hold"),
        "{r:?}"
    );
}

/// What a hostile operator can do with the stopped server's files: record
/// an expiry in the database, delete the blobs, and log it with the log
/// key from the data directory.
fn forge_expiry(data: &Path, id: &str, roster_len: u64) {
    use matterdrop_common::tlog::NoteSigner;
    use matterdrop_server::audit::{AuditLog, Event};
    use matterdrop_server::store::{ExpiredRecord, MetaRead as _, MetaWrite as _};

    let dir = matterdrop_server::datadir::load(data).unwrap();
    let signer = NoteSigner::new(&dir.config.log_name, dir.log_key.clone()).unwrap();
    let log = AuditLog::open(
        &data.join("log"),
        dir.log_key.clone(),
        signer,
        dir.config.log_name.clone(),
    )
    .unwrap();
    let store = &dir.store;
    let p = store.packet(id).unwrap().unwrap();
    let details = vec![
        ("kind".into(), "packet".into()),
        ("uploaded".into(), p.created_at.to_string()),
        ("retention".into(), "3600".into()),
        ("roster_len".into(), roster_len.to_string()),
        ("files".into(), p.blobs.len().to_string()),
        ("size".into(), p.size().to_string()),
    ];
    let index = log
        .record(vec![
            Event::server("server", "expired", Some(id), None, details).in_matter(MATTER),
        ])
        .unwrap();
    store
        .put_expired(
            id,
            &ExpiredRecord {
                at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
                index,
                roster_len,
                files_deleted: true,
            },
        )
        .unwrap();
    store.flush().unwrap();
    for (h, _) in &p.blobs {
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::remove_file(data.join("blobs").join(&hex[..2]).join(&hex)).unwrap();
    }
}
