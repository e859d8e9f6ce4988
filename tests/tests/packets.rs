//! End-to-end encrypted case packets: push, inbox, pull, and what a
//! tampering server cannot get past the client.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use matterdrop_tests::{Server, User, World, age_v13, copy_dir, pull_refused_as_tampered, walk};

const MATTER: &str = "2026-PI-0042";

struct Team {
    w: World,
    alice: User,
    bob: User,
    audrey: User,
}

fn team() -> Team {
    let w = World::new();
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
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
        "document-review,medical-chronology",
    ]);
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    alice
        .add_member(MATTER, &audrey, "audrey@firm-a", "auditor")
        .ok();
    Team {
        w,
        alice,
        bob,
        audrey,
    }
}

fn pseudo_random(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// A folder of case files with the awkward sizes.
fn case_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root.join("records");
    let files = vec![
        (dir.join("empty.txt"), Vec::new()),
        (dir.join("one.bin"), vec![0x42]),
        (dir.join("exact-64k.bin"), pseudo_random(65_536, 1)),
        (dir.join("64k-plus-1.bin"), pseudo_random(65_537, 2)),
        (dir.join("scan.pdf"), pseudo_random(3 * 1024 * 1024 + 17, 3)),
        (
            dir.join("nested/deeper/intake form.txt"),
            b"PLAINTEXT-MARKER patient intake\n".to_vec(),
        ),
    ];
    for (p, data) in &files {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    files
}

fn push(user: &User, files: &[&Path], task: &str) -> serde_json::Value {
    let mut args = vec!["push", MATTER];
    args.extend(files.iter().map(|p| p.to_str().unwrap()));
    args.extend([
        "--task",
        task,
        "--due",
        "3d",
        "--note",
        "Please chronologize",
    ]);
    user.json(&args)
}

#[test]
fn round_trip_of_a_folder_is_byte_identical_and_server_sees_only_ciphertext() {
    let t = team();
    t.bob.json(&["ack", MATTER, "--yes"]);
    let files = case_files(t.w.tmp.path());
    let pushed = push(
        &t.alice,
        &[&t.w.tmp.path().join("records")],
        "medical-chronology",
    );
    let id = pushed["id"].as_str().unwrap().to_owned();
    let readers: Vec<&str> = pushed["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        readers,
        ["alice@firm-a", "bob@lpo-1"],
        "auditors are never recipients"
    );

    let inbox = t.bob.json(&["inbox"]);
    let item = &inbox["items"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["sender"], "alice@firm-a");
    assert_eq!(item["task"], "medical-chronology");
    assert!(item["due"].as_str().is_some());

    // A pull abandoned weeks ago left plaintext behind: the next pull
    // removes it (and says so); what is recent stays.
    let abandoned = t
        .bob
        .home
        .join("partial")
        .join("p-0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&abandoned).unwrap();
    std::fs::write(abandoned.join("0.plain"), b"old plaintext").unwrap();
    let weeks_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(20 * 86_400);
    for p in [abandoned.join("0.plain"), abandoned.clone()] {
        std::fs::File::open(&p)
            .unwrap()
            .set_modified(weeks_ago)
            .unwrap();
    }
    let out = t.w.tmp.path().join("bob-out");
    let r = t
        .bob
        .run(&["--json", "pull", &id, "--out", out.to_str().unwrap()])
        .ok();
    assert!(
        r.stderr.contains("removed 1 abandoned transfer folder"),
        "{r:?}"
    );
    assert!(!abandoned.exists());
    let pulled = r.json();
    assert_eq!(pulled["note"], "Please chronologize");
    for (path, data) in &files {
        let rel = path.strip_prefix(t.w.tmp.path()).unwrap();
        let got = std::fs::read(out.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        assert!(got == *data, "{} differs", rel.display());
        // Plaintext is this user's only, in folders that are too.
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out.join(rel)), 0o600, "{}", rel.display());
        let mut dir = out.join(rel);
        while dir.pop() && dir.starts_with(&out) {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
    }
    // Nothing is left in the staging folder, which is private too.
    let partial = t.bob.home.join("partial");
    assert_eq!(
        std::fs::metadata(&partial).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(walk(&partial).is_empty());
    // Pulled packets leave the inbox; --all still lists them.
    assert_eq!(t.bob.json(&["inbox"])["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        t.bob.json(&["inbox", "--all"])["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // An existing file is never overwritten without --force.
    let r = t
        .bob
        .run(&["pull", &id, "--out", out.to_str().unwrap()])
        .code(1);
    assert!(r.stderr.contains("refusing to overwrite"), "{r:?}");
    t.bob
        .json(&["pull", &id, "--out", out.to_str().unwrap(), "--force"]);

    // The server's disk holds no plaintext and no file names.
    for f in walk(&t.w.server.data) {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [
            &b"PLAINTEXT-MARKER"[..],
            b"intake form",
            b"Please chronologize",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?}",
                f.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }

    // --raw keeps the age files, which another age v1.3 implementation
    // decrypts with the (hybrid) identity file.
    let raw = t.w.tmp.path().join("raw");
    t.bob
        .json(&["pull", &id, "--out", raw.to_str().unwrap(), "--raw"]);
    let age_file = raw.join("records/one.bin.age");
    let dec = age_v13()
        .arg("-d")
        .arg("-i")
        .arg(t.bob.home.join("identity.txt"))
        .arg(&age_file)
        .output()
        .unwrap();
    assert!(dec.status.success(), "{dec:?}");
    assert_eq!(dec.stdout, vec![0x42]);
}

#[test]
fn who_can_read_what() {
    let t = team();
    let f = t.w.tmp.path().join("memo.txt");
    std::fs::write(&f, "memo").unwrap();
    // Pushed before bob acknowledged: bob is not a recipient, and the push
    // says so, as it names the auditor.
    let pushed = push(&t.alice, &[&f], "document-review");
    let early = pushed["id"].as_str().unwrap().to_owned();
    let left: Vec<(&str, &str)> = pushed["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["principal"].as_str().unwrap(),
                l["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(left.len(), 2, "{pushed}");
    assert!(left.contains(&(
        "bob@lpo-1",
        "a provider who has not signed version 1 of the matter's acknowledgment"
    )));
    assert!(
        left.iter()
            .any(|(p, why)| *p == "audrey@firm-a" && why.starts_with("an auditor"))
    );
    let r = t.bob.run(&["pull", &early]).code(3);
    assert!(r.stderr.contains("has not acknowledged"), "{r:?}");
    t.bob.run(&["inbox", "--matter", MATTER]).code(3);
    t.bob.json(&["ack", MATTER, "--yes"]);
    let r = t
        .bob
        .run(&[
            "pull",
            &early,
            "--out",
            t.w.tmp.path().join("e").to_str().unwrap(),
        ])
        .code(3);
    assert!(r.stderr.contains("was not encrypted to bob@lpo-1"), "{r:?}");
    // Pushed after: readable.
    let late = push(&t.alice, &[&f], "document-review")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    t.bob.json(&[
        "pull",
        &late,
        "--out",
        t.w.tmp.path().join("l").to_str().unwrap(),
    ]);
    // Auditors never read case files.
    let r = t
        .audrey
        .run(&[
            "pull",
            &late,
            "--out",
            t.w.tmp.path().join("a").to_str().unwrap(),
        ])
        .code(3);
    assert!(r.stderr.contains("auditor"), "{r:?}");
    // Someone outside the matter cannot even learn which matter it is in.
    let zed = t.w.user("zed@lpo-1");
    let r = zed.run(&["pull", &late]).code(3);
    assert!(
        r.stderr.contains("not found or not addressed to you") && !r.stderr.contains(MATTER),
        "{r:?}"
    );
    let r2 = zed
        .run(&["pull", "p-00000000000000000000000000000000"])
        .code(3);
    assert_eq!(
        r.stderr.replace(&late, "ID"),
        r2.stderr
            .replace("p-00000000000000000000000000000000", "ID")
    );
    // Out-of-scope and in-house tasks are refused before any byte is sent.
    let r = t
        .alice
        .run(&["push", MATTER, f.to_str().unwrap(), "--task", "drafting"])
        .code(3);
    assert!(r.stderr.contains("not in the scope"), "{r:?}");
    let r = t
        .alice
        .run(&[
            "push",
            MATTER,
            f.to_str().unwrap(),
            "--task",
            "legal-advice",
        ])
        .code(3);
    assert!(r.stderr.contains("stays in-house"), "{r:?}");
    // Providers do not push packets.
    t.bob
        .run(&[
            "push",
            MATTER,
            f.to_str().unwrap(),
            "--task",
            "document-review",
        ])
        .code(3);
}

fn blob_files(data: &Path) -> Vec<PathBuf> {
    let mut v = walk(&data.join("blobs"));
    v.sort();
    v
}

#[test]
fn a_tampered_part_is_caught_while_the_next_part_streams_in() {
    // `pull` asks for part j + 1 before part j is verified: a bad part must
    // still end the pull with exit 4 and write nothing, whether it is the
    // first (the next one already streaming in) or the last (after two
    // good ones were decrypted).
    let t = team();
    t.bob.json(&["ack", MATTER, "--yes"]);
    let part = usize::try_from(matterdrop_common::packet::PART_SIZE).unwrap();
    let f = t.w.tmp.path().join("scan.pdf");
    let data = pseudo_random(2 * part + 300_000, 17);
    std::fs::write(&f, &data).unwrap();
    let before: Vec<_> = blob_files(&t.w.server.data);
    let id = push(&t.alice, &[&f], "document-review")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut blobs: Vec<_> = blob_files(&t.w.server.data)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(blobs.len(), 4, "manifest and three parts");
    // Smallest first: manifest, last part, then the two full parts.
    blobs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let out = t.w.tmp.path().join("out");
    for bad in [&blobs[2..4], &blobs[1..2]] {
        let originals: Vec<_> = bad.iter().map(|p| std::fs::read(p).unwrap()).collect();
        for (p, original) in bad.iter().zip(&originals) {
            let mut flipped = original.clone();
            flipped[original.len() - 100] ^= 0x40;
            std::fs::write(p, &flipped).unwrap();
        }
        pull_refused_as_tampered(&t.bob, &id, &out, &format!("{} bad parts", bad.len()));
        for (p, original) in bad.iter().zip(&originals) {
            std::fs::write(p, original).unwrap();
        }
    }
    t.bob.json(&["pull", &id, "--out", out.to_str().unwrap()]);
    assert!(
        std::fs::read(out.join("scan.pdf")).unwrap() == data,
        "the pulled file differs"
    );
}

#[test]
fn tampered_blobs_and_descriptors_are_detected() {
    let mut t = team();
    t.bob.json(&["ack", MATTER, "--yes"]);
    let a = t.w.tmp.path().join("a.txt");
    let b = t.w.tmp.path().join("b.txt");
    std::fs::write(&a, pseudo_random(200_000, 7)).unwrap();
    std::fs::write(&b, pseudo_random(1_000, 8)).unwrap();
    let before: Vec<_> = blob_files(&t.w.server.data);
    let id = push(&t.alice, &[&a], "document-review")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let blobs: Vec<_> = blob_files(&t.w.server.data)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(blobs.len(), 2, "manifest and one file");
    let big = blobs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();
    let original = std::fs::read(&big).unwrap();
    let other_id = push(&t.alice, &[&b], "document-review")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = t.w.tmp.path().join("out");

    // One flipped byte.
    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 1;
    std::fs::write(&big, &flipped).unwrap();
    pull_refused_as_tampered(&t.bob, &id, &out, "one flipped byte");

    // Another blob swapped in.
    let other_blob = blob_files(&t.w.server.data)
        .into_iter()
        .find(|p| {
            !blobs.contains(p) && !before.contains(p) && std::fs::metadata(p).unwrap().len() > 500
        })
        .unwrap();
    std::fs::copy(&other_blob, &big).unwrap();
    t.bob
        .run(&["pull", &id, "--out", out.to_str().unwrap()])
        .code(4);
    assert!(walk(&out).is_empty());

    // The blob dropped.
    std::fs::remove_file(&big).unwrap();
    let r = t.bob.run(&["pull", &id, "--out", out.to_str().unwrap()]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(walk(&out).is_empty());
    std::fs::write(&big, &original).unwrap();
    t.bob.json(&["pull", &id, "--out", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out.join("a.txt")).unwrap(),
        std::fs::read(&a).unwrap()
    );

    // The descriptor re-signed by another key (the server rewrites it).
    assert!(t.w.server.stop());
    {
        use matterdrop_server::store::{MetaRead as _, MetaWrite as _, SledStore};
        let store = SledStore::open(&t.w.server.data.join("db")).unwrap();
        let mut p = store.packet(&other_id).unwrap().unwrap();
        let d = matterdrop_common::packet::Descriptor::parse(&p.descriptor).unwrap();
        let forger = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        p.signature = d.sign(&forger).unwrap().to_vec();
        store.put_packet(&p).unwrap();
    }
    let restarted = Server::start(&t.w.server.data);
    let path = t.bob.home.join("server.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["server"] = restarted.addr.clone().into();
    std::fs::write(&path, v.to_string()).unwrap();
    let out2 = t.w.tmp.path().join("out2");
    let r = t
        .bob
        .run(&["pull", &other_id, "--out", out2.to_str().unwrap()])
        .code(4);
    assert!(r.stderr.contains("not validly signed"), "{r:?}");
    assert!(walk(&out2).is_empty());
}

fn dir_bytes(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Waits (bounded) until `f` holds.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn repoint(user: &User, server: &Server) {
    let path = user.home.join("server.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["server"] = server.addr.clone().into();
    std::fs::write(&path, v.to_string()).unwrap();
}

/// Bytes the server's log says it received in uploads, over all its runs
/// (`… upload ended bytes=N …` lines).
fn upload_bytes(server: &Server) -> u64 {
    server
        .log()
        .lines()
        .filter_map(|l| l.split_once("upload ended bytes=").map(|(_, rest)| rest))
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().expect("a byte count")
        })
        .sum()
}

/// Uploads the server's log shows started and ended, over all its runs.
fn uploads_started_ended(server: &Server) -> (usize, usize) {
    let log = server.log();
    let started = log
        .lines()
        .filter(|l| l.contains("request=\"blob-stream\"") && l.contains("outcome=\"ok\""))
        .count();
    (started, log.matches("upload ended").count())
}

/// Bytes of the parts the spools in `home` record as acknowledged.
fn spooled_bytes(home: &Path) -> u64 {
    walk(&home.join("spool"))
        .iter()
        .filter(|p| p.ends_with("spool.json"))
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .flat_map(|v| {
            v["files"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|f| f["parts"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| p["size"].as_u64())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Bytes in the files of `dir` whose names end with `suffix`.
fn bytes_named(dir: &Path, suffix: &str) -> u64 {
    walk(dir)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn interrupted_push_and_pull_resume_where_they_stopped() {
    let mut t = team();
    t.bob.json(&["ack", MATTER, "--yes"]);
    // 200 MiB: seven parts. Tiles of random data, each tagged with its
    // index, so a part out of order would show.
    let big = t.w.tmp.path().join("big.bin");
    let tile = pseudo_random(8 << 20, 11);
    let mut data = Vec::with_capacity(200 << 20);
    for i in 0u64..25 {
        data.extend_from_slice(&i.to_be_bytes());
        data.extend_from_slice(&tile[8..]);
    }
    std::fs::write(&big, &data).unwrap();
    let data_dir = t.w.server.data.clone();
    // Without automatic retries: this is the resume of a command run again
    // by hand (tests/tests/resume.rs has the automatic one).
    let push_args = |file: &Path| {
        [
            "push",
            MATTER,
            file.to_str().unwrap(),
            "--task",
            "document-review",
            "--retries",
            "0",
        ]
        .map(str::to_owned)
    };
    let args = push_args(&big);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // 1. kill -9 the client once two parts are acknowledged and a third is
    // on its way; run the push again: it sends only what the server lacks.
    let mut client = t.alice.spawn(&args);
    wait_until("two acknowledged parts and a partial one", || {
        spooled_bytes(&t.alice.home) >= (64 << 20)
            && dir_bytes(&data_dir.join("staging")) > (1 << 20)
    });
    client.kill().unwrap();
    client.wait().unwrap();
    let acknowledged = spooled_bytes(&t.alice.home);
    let pushed = t.alice.json(&args);
    let resumed = pushed["resumed_bytes"].as_u64().unwrap();
    assert!(resumed >= acknowledged, "did not resume: {pushed}");
    let size = pushed["size"].as_u64().unwrap();
    // The dead client's upload stays open on the server until its
    // connection times out; then the log accounts for every byte received.
    wait_until("every upload to end", || {
        let (started, ended) = uploads_started_ended(&t.w.server);
        started == ended
    });
    let received = upload_bytes(&t.w.server);
    assert!(
        received >= size,
        "the server log must account for every byte: {received} < {size}"
    );
    assert!(
        received < size + size / 2,
        "the server received {received} bytes in all for {size}"
    );
    assert!(
        walk(&data_dir.join("staging")).is_empty(),
        "the dead upload left its staging file"
    );
    assert!(walk(&t.alice.home.join("spool")).is_empty());
    let id = pushed["id"].as_str().unwrap().to_owned();

    // 2. kill -9 the server mid-upload of another file: nothing becomes
    // visible, and the push run again succeeds from where it was.
    let second = t.w.tmp.path().join("second.bin");
    std::fs::write(&second, &data[..80 << 20]).unwrap();
    let args2 = push_args(&second);
    let alice = t.alice.clone();
    let pusher = std::thread::spawn(move || {
        let a: Vec<&str> = args2.iter().map(String::as_str).collect();
        alice.run(&a)
    });
    wait_until("an acknowledged part of the second file", || {
        spooled_bytes(&t.alice.home) >= (32 << 20)
    });
    t.w.server.kill();
    let killed = pusher.join().unwrap();
    assert_ne!(killed.code, 0, "the push cannot have finished: {killed:?}");
    let mut server = Server::start(&data_dir);
    repoint(&t.alice, &server);
    repoint(&t.bob, &server);
    let inbox = t.bob.json(&["inbox"]);
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "only the finished packet is visible: {inbox}"
    );
    assert_eq!(items[0]["id"], id.as_str());
    let again = t.alice.json(
        &push_args(&second)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        again["resumed_bytes"].as_u64().unwrap() >= (32 << 20),
        "did not resume: {again}"
    );

    // 3. Pull; kill the server once a part is verified in bob's home.
    let partial = t.bob.home.join("partial").join(&id);
    let out = t.w.tmp.path().join("pulled");
    let bob = t.bob.clone();
    let (id2, out2) = (id.clone(), out.clone());
    let puller = std::thread::spawn(move || {
        bob.run(&[
            "--json",
            "pull",
            &id2,
            "--out",
            out2.to_str().unwrap(),
            "--retries",
            "0",
        ])
    });
    wait_until("a verified part", || {
        bytes_named(&partial, ".state") > 0 && bytes_named(&partial, ".plain") > (40 << 20)
    });
    server.kill();
    let first = puller.join().unwrap();
    assert_ne!(first.code, 0, "the pull cannot have finished: {first:?}");
    assert!(
        walk(&out).is_empty(),
        "nothing is written before verification"
    );
    let server = Server::start(&data_dir);
    repoint(&t.bob, &server);
    let pulled = t.bob.json(&["pull", &id, "--out", out.to_str().unwrap()]);
    assert!(
        pulled["resumed_bytes"].as_u64().unwrap() >= (32 << 20),
        "did not resume: {pulled}"
    );
    assert!(std::fs::read(out.join("big.bin")).unwrap() == data);
    assert!(walk(&partial).is_empty());
    drop(server);
}

#[test]
fn the_inbox_shows_what_a_packet_holds_checked_and_decrypted() {
    use matterdrop_server::store::{MetaRead as _, MetaWrite as _, SledStore};
    let mut t = team();
    t.bob.json(&["ack", MATTER, "--yes"]);
    let dir = t.w.tmp.path().join("intake");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mri report.pdf"), pseudo_random(3 << 20, 7)).unwrap();
    for name in ["a.txt", "b.txt", "c.txt"] {
        std::fs::write(dir.join(name), name).unwrap();
    }
    // Both users one hour east of UTC; a date alone is the end of that
    // day there.
    let tz = [("TZ", "XXX-1")];
    let year = 1970
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 31_556_952
        + 2;
    let due_date = format!("{year}-01-15");
    let note = "MRI first\u{1b}[2J please";
    let pushed = t
        .alice
        .run_env(
            &[
                "--json",
                "push",
                MATTER,
                dir.to_str().unwrap(),
                "--task",
                "medical-chronology",
                "--due",
                &due_date,
                "--note",
                note,
            ],
            &tz,
        )
        .ok()
        .json();
    let id = pushed["id"].as_str().unwrap().to_owned();
    // A date in the past is refused, and nothing is pushed.
    let r = t
        .alice
        .run(&[
            "push",
            MATTER,
            dir.to_str().unwrap(),
            "--task",
            "medical-chronology",
            "--due",
            "2020-01-01",
        ])
        .code(2);
    assert!(r.stderr.contains("in the past"), "{r:?}");

    let inbox = t.bob.run_env(&["--json", "inbox"], &tz).ok().json();
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{inbox}");
    let item = &items[0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["matter_title"], "Doe");
    assert_eq!(item["checked"], true);
    assert_eq!(item["readable"], true);
    assert_eq!(item["note"], note);
    assert_eq!(item["due"], format!("{year}-01-15T22:59:00Z").as_str());
    let mut files: Vec<(String, u64)> = item["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("intake/a.txt".to_owned(), 5),
            ("intake/b.txt".to_owned(), 5),
            ("intake/c.txt".to_owned(), 5),
            ("intake/mri report.pdf".to_owned(), 3 << 20),
        ]
    );

    // For people: local time, due as a distance, sizes, names; the note's
    // escape sequence arrives escaped.
    let text = t.bob.run_env(&["inbox"], &tz).ok().stdout;
    let due_local = format!("({year}-01-15 23:59 XXX)");
    for want in [
        "\"Doe\"",
        "from alice@firm-a",
        "task medical-chronology",
        "due in ",
        due_local.as_str(),
        "4 files, 3.0 MiB",
        "intake/a.txt (5 B)",
        "and 1 more",
        "note: MRI first\\u{1b}[2J please",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(!text.contains('\u{1b}'), "{text}");

    // Looking is not pulling: it stays in the inbox. What was decrypted
    // is cached for bob only.
    assert_eq!(t.bob.json(&["inbox"])["items"].as_array().unwrap().len(), 1);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let cache = t.bob.home.join("cache");
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&cache.join("packets")), 0o700);
    assert_eq!(
        mode(&cache.join("packets").join(format!("{id}.json"))),
        0o600
    );

    // The operator edits the stopped server's database, from a copy taken
    // now; bob's cache is emptied each time, so the listing must check
    // what the server sends.
    let other = push(&t.alice, &[&dir.join("a.txt")], "document-review")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let backup = t.w.tmp.path().join("db-backup");
    let db = |data: &Path| data.join("db");
    t.w.server
        .restart_after(|data| copy_dir(&db(data), &backup));
    let (server, bob) = (&mut t.w.server, &t.bob);
    let mut operator = |edit: &dyn Fn(&SledStore)| {
        server.restart_after(|data| {
            std::fs::remove_dir_all(db(data)).unwrap();
            copy_dir(&backup, &db(data));
            let store = SledStore::open(&db(data)).unwrap();
            edit(&store);
            store.flush().unwrap();
        });
        bob.repoint(server);
        let _ = std::fs::remove_dir_all(bob.home.join("cache"));
    };
    let refused = |why: &str| {
        let r = bob.run(&["inbox"]).code(4);
        assert!(
            r.stderr.contains(&id) && r.stderr.contains(why),
            "{why}: {r:?}"
        );
        assert!(!r.stdout.contains("mri report"), "{r:?}");
    };
    // The other packet's genuine descriptor under this packet's id.
    operator(&|s| {
        let mut p = s.packet(&id).unwrap().unwrap();
        let o = s.packet(&other).unwrap().unwrap();
        (p.descriptor, p.signature) = (o.descriptor, o.signature);
        s.put_packet(&p).unwrap();
    });
    refused(&format!("holds the descriptor of {other}"));
    // A signature alice never made.
    operator(&|s| {
        let mut p = s.packet(&id).unwrap().unwrap();
        p.signature[0] ^= 1;
        s.put_packet(&p).unwrap();
    });
    refused("not validly signed by its sender alice@firm-a");
    // The untouched copy lists both again.
    operator(&|_| {});
    assert_eq!(bob.json(&["inbox"])["items"].as_array().unwrap().len(), 2);
}

/// Points `user` at a restarted server.
fn follow(user: &User, server: &Server) {
    let path = user.home.join("server.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["server"] = server.addr.clone().into();
    std::fs::write(&path, v.to_string()).unwrap();
}

/// `share`: a packet pushed before the provider acknowledged is re-shared
/// to it afterwards without being uploaded again (only new age headers
/// reach the server), and the provider pulls it byte-identical. Only the
/// roster's readers get a share; the operator can neither forge one for
/// another member nor swap a re-share header unnoticed (exit 4, nothing
/// written).
#[test]
fn a_packet_is_reshared_to_a_provider_who_acknowledged_later() {
    let mut t = team();
    let files = case_files(t.w.tmp.path());
    let before = blob_files(&t.w.server.data);
    let id = push(
        &t.alice,
        &[&t.w.tmp.path().join("records")],
        "medical-chronology",
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = blob_files(&t.w.server.data);
    let blobs = stored.len() - before.len();

    // Not before bob signed the acknowledgment, never to an auditor or a
    // stranger, and never by someone who cannot read it.
    let r = t.alice.run(&["share", &id, "--to", "bob@lpo-1"]).code(3);
    assert!(r.stderr.contains("until they sign version 1"), "{r:?}");
    let r = t
        .alice
        .run(&["share", &id, "--to", "audrey@firm-a"])
        .code(3);
    assert!(r.stderr.contains("an auditor"), "{r:?}");
    let r = t.alice.run(&["share", &id, "--to", "zed@lpo-1"]).code(3);
    assert!(r.stderr.contains("not a current member"), "{r:?}");
    t.bob.json(&["ack", MATTER, "--yes"]);
    let r = t.bob.run(&["share", &id, "--to", "bob@lpo-1"]).code(3);
    assert!(r.stderr.contains("not encrypted to bob@lpo-1"), "{r:?}");
    let r = t.bob.run(&["pull", &id]).code(3);
    assert!(
        r.stderr.contains("was not encrypted to bob@lpo-1") && r.stderr.contains("mdrop share"),
        "{r:?}"
    );

    // Shared: one new header per blob, no blob uploaded again.
    let shared = t.alice.json(&["share", &id[..8], "--to", "bob@lpo-1"]);
    assert_eq!(shared["id"], id.as_str());
    assert_eq!(shared["headers"], blobs as u64, "{shared}");
    assert_eq!(blob_files(&t.w.server.data), stored);
    let r = t.alice.run(&["share", &id, "--to", "bob@lpo-1"]);
    assert_ne!(r.code, 0, "shared twice: {r:?}");
    assert!(r.stderr.contains("already shared"), "{r:?}");

    // bob's inbox shows it, decrypted; bob pulls it byte-identical.
    let inbox = t.bob.json(&["inbox", "--matter", MATTER]);
    let item = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{inbox}"));
    assert_eq!(item["note"], "Please chronologize", "{item}");
    let out = t.w.tmp.path().join("bob-out");
    let r = t
        .bob
        .run(&["--json", "pull", &id, "--out", out.to_str().unwrap()])
        .ok();
    let pulled = r.json();
    assert!(
        pulled["delivery_log_index"].is_u64(),
        "{pulled} {}",
        r.stderr
    );
    for (path, data) in &files {
        let rel = path.strip_prefix(t.w.tmp.path()).unwrap();
        assert_eq!(
            &std::fs::read(out.join(rel)).unwrap(),
            data,
            "{}",
            rel.display()
        );
    }
    let r = t
        .bob
        .run(&[
            "pull",
            &id,
            "--raw",
            "--out",
            t.w.tmp.path().join("raw").to_str().unwrap(),
        ])
        .code(2);
    assert!(r.stderr.contains("re-shared"), "{r:?}");

    // The matter's log has the share, with its statement, and verifies
    // offline (the statement's signature included).
    let bundle = t.w.tmp.path().join("m.bundle");
    t.audrey.json(&[
        "audit",
        "export",
        "--matter",
        MATTER,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(
        t.audrey
            .json(&["audit", "verify", bundle.to_str().unwrap()])["ok"],
        true
    );
    let shares = t.audrey.json(&[
        "audit",
        "show",
        bundle.to_str().unwrap(),
        "--action",
        "shared",
    ]);
    let rows = shares["entries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{shares}");
    assert_eq!(rows[0]["principal"], "alice@firm-a");
    assert_eq!(rows[0]["object"], id.as_str());
    // alice's client checked every blob before re-wrapping its header: one
    // row per share (the second was refused after its reads), one part
    // per blob.
    let reads = t.audrey.json(&[
        "audit",
        "show",
        bundle.to_str().unwrap(),
        "--action",
        "pull-blob",
        "--principal",
        "alice@firm-a",
    ]);
    let reads = reads["entries"].as_array().unwrap();
    assert_eq!(reads.len(), 2, "{reads:?}");
    for r in reads {
        assert_eq!(r["for_share"], true);
        assert_eq!(r["parts"], blobs as u64);
    }

    // The operator plays: a share to carol (a paralegal added later)
    // forged with its own key from bob's headers, and bob's first two
    // headers swapped.
    let carol = t.w.user("carol@firm-a");
    t.alice
        .add_member(MATTER, &carol, "carol@firm-a", "paralegal")
        .ok();
    assert!(t.w.server.stop());
    {
        use matterdrop_common::custody::ShareStatement;
        use matterdrop_server::store::{MetaRead as _, MetaWrite as _, SledStore};
        let store = SledStore::open(&t.w.server.data.join("db")).unwrap();
        let bobs = store.share(&id, "bob@lpo-1").unwrap().unwrap();
        let headers: Vec<Vec<u8>> = (0..bobs.total)
            .map(|i| store.share_header(&id, "bob@lpo-1", i).unwrap().unwrap())
            .collect();
        let mut st = ShareStatement::parse(&bobs.signed).unwrap();
        st.recipient = "carol@firm-a".into();
        st.age = store
            .principal("carol@firm-a")
            .unwrap()
            .unwrap()
            .age_recipient;
        let forger = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let signed = st.to_signed_bytes().unwrap();
        let mut forged = bobs.clone();
        forged.signature = matterdrop_common::sign::sign(&forger, &signed).to_vec();
        forged.sharer_key = forger.verifying_key().to_bytes();
        forged.signed = signed;
        forged.received = 0;
        store
            .put_share(&id, "carol@firm-a", &forged, 0, &headers)
            .unwrap();
        let mut swapped = headers.clone();
        swapped.swap(0, 1);
        let mut again = bobs.clone();
        again.received = 0;
        // Same statement: the stored headers are replaced in place.
        store
            .put_share(&id, "bob@lpo-1", &again, 0, &swapped)
            .unwrap();
    }
    let restarted = Server::start(&t.w.server.data);
    follow(&t.bob, &restarted);
    follow(&carol, &restarted);
    let out2 = t.w.tmp.path().join("carol-out");
    let r = carol
        .run(&["pull", &id, "--out", out2.to_str().unwrap()])
        .code(4);
    assert!(
        r.stderr
            .contains("re-share is signed with a key the roster")
            && r.stderr.contains("never gave alice@firm-a"),
        "{r:?}"
    );
    assert!(walk(&out2).is_empty());
    let out3 = t.w.tmp.path().join("bob-out-2");
    let r = t
        .bob
        .run(&["pull", &id, "--out", out3.to_str().unwrap()])
        .code(4);
    assert!(r.stderr.contains("does not name"), "{r:?}");
    assert!(walk(&out3).is_empty());
}

/// `purge`: a provider destroys its copies of a matter's files — what it
/// pulled (still as pulled), partial downloads, cached listings — and
/// signs an attestation the server logs; `matter show` lists it, checked
/// against the roster, and an altered one is refused (exit 4). A file
/// changed since it was pulled is kept and named unless `--force`; a
/// removed member can still purge and attest.
#[test]
fn purge_destroys_local_copies_and_signs_a_destruction_attestation() {
    let mut t = team();
    t.bob.json(&["ack", MATTER, "--yes"]);
    let files = case_files(t.w.tmp.path());
    let id = push(
        &t.alice,
        &[&t.w.tmp.path().join("records")],
        "medical-chronology",
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = t.w.tmp.path().join("bob-out");
    t.bob.json(&["pull", &id, "--out", out.to_str().unwrap()]);
    t.bob.json(&["inbox", "--matter", MATTER, "--all"]);
    assert!(
        t.bob
            .home
            .join("cache/packets")
            .join(format!("{id}.json"))
            .exists()
    );
    let pulled = walk(&out);
    assert_eq!(pulled.len(), files.len());
    // bob changes one file, and another is already gone.
    let changed = out.join("records/one.bin");
    std::fs::write(&changed, b"bob's own notes").unwrap();
    std::fs::remove_file(out.join("records/empty.txt")).unwrap();

    // An interrupted pull of a packet never listed here leaves plaintext
    // in a partial folder marked with its matter; another matter's stays.
    let ours = t
        .bob
        .home
        .join("partial/p-0000000000000000000000000000aaaa");
    let theirs = t
        .bob
        .home
        .join("partial/p-0000000000000000000000000000bbbb");
    for (dir, matter) in [(&ours, MATTER), (&theirs, "OTHER-MATTER")] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("matter"), matter).unwrap();
        std::fs::write(dir.join("0.plain"), b"PLAINTEXT-MARKER").unwrap();
    }
    let r = t.bob.run(&["--json", "purge", MATTER, "--yes"]).ok();
    let v = r.json();
    assert!(!ours.exists() && theirs.exists(), "{v}");
    assert_eq!(v["deleted"], (files.len() - 2) as u64, "{v}");
    assert_eq!(v["missing"], 1);
    assert_eq!(v["kept"][0]["path"], changed.to_str().unwrap());
    assert!(
        r.stderr.contains("were not deleted") && r.stderr.contains("one.bin"),
        "{r:?}"
    );
    assert_eq!(walk(&out), vec![changed.clone()]);
    assert!(
        !t.bob
            .home
            .join("cache/packets")
            .join(format!("{id}.json"))
            .exists()
    );
    // --force takes the changed one too.
    let v = t.bob.json(&["purge", MATTER, "--yes", "--force"]);
    assert_eq!(v["deleted"], 1, "{v}");
    assert!(walk(&out).is_empty());

    // Both attestations, checked, in matter show; the log verifies them.
    let shown = t.alice.json(&["matter", "show", MATTER]);
    let d = shown["destructions"].as_array().unwrap();
    assert_eq!(d.len(), 2, "{shown}");
    assert_eq!(d[0]["principal"], "bob@lpo-1");
    assert_eq!(
        d[0]["packets"],
        serde_json::json!(["p-0000000000000000000000000000aaaa", id])
    );
    assert_eq!(
        (d[0]["deleted"].as_u64(), d[0]["kept"].as_u64()),
        (Some(4), Some(1))
    );
    let bundle = t.w.tmp.path().join("m.bundle");
    t.audrey.json(&[
        "audit",
        "export",
        "--matter",
        MATTER,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(
        t.audrey
            .json(&["audit", "verify", bundle.to_str().unwrap()])["ok"],
        true
    );

    // A removed member still attests.
    t.alice.json(&["matter", "remove", MATTER, "bob@lpo-1"]);
    t.bob.json(&["purge", MATTER, "--yes"]);
    assert_eq!(
        t.alice.json(&["matter", "show", MATTER])["destructions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The operator alters an attestation's counts: refused.
    assert!(t.w.server.stop());
    {
        use matterdrop_server::store::{MetaRead as _, MetaWrite as _, SledStore};
        let store = SledStore::open(&t.w.server.data.join("db")).unwrap();
        let mut first = store.destructions(MATTER).unwrap().remove(0);
        let text = String::from_utf8(first.signed.clone()).unwrap();
        first.signed = text.replace("kept=1", "kept=0").into_bytes();
        store.put_destruction(MATTER, &first).unwrap();
    }
    let restarted = Server::start(&t.w.server.data);
    follow(&t.alice, &restarted);
    let r = t.alice.run(&["matter", "show", MATTER]).code(4);
    assert!(r.stderr.contains("forged or altered"), "{r:?}");
}
