//! `mdrop-witness`, a real process on loopback, cosigning the checkpoints of
//! a real `mdropd`: it cosigns the log as it grows, and refuses a forked
//! history — the operator putting back an old copy of the data directory
//! and writing a different future under the same log key.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use matterdrop_common::bundle;
use matterdrop_common::tlog::cosignature::{CosignatureVerifier, Cosigner};
use matterdrop_common::tlog::{self, Hash};
use matterdrop_tests::{User, World, bin};

/// A running witness, killed on drop.
struct WitnessProc {
    child: Child,
    addr: String,
    vkey: String,
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_witness(dir: &Path, log_vkey: &str) -> WitnessProc {
    let st = Command::new(bin("mdrop-witness"))
        .args(["init", "--name", "witness-a.example", "--data"])
        .arg(dir)
        .output()
        .expect("mdrop-witness init");
    assert!(st.status.success(), "{st:?}");
    let mut child = Command::new(bin("mdrop-witness"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--log",
            log_vkey,
            "--data",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mdrop-witness serve");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("witness start line");
    WitnessProc {
        child,
        addr: v["listen"].as_str().unwrap().to_owned(),
        vkey: v["vkey"].as_str().unwrap().to_owned(),
    }
}

/// POST /add-checkpoint over plain HTTP/1.1: (status, body).
fn add_checkpoint(w: &WitnessProc, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(&w.addr).unwrap();
    write!(
        s,
        "POST /add-checkpoint HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        w.addr,
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The whole log as the admin exports it: (checkpoint note, leaf hashes).
fn snapshot(admin: &User, dir: &Path, name: &str) -> (String, Vec<Hash>) {
    let out = dir.join(format!("{name}.bundle"));
    admin.json(&["audit", "export", "--out", out.to_str().unwrap()]);
    let mut r = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
    let header = bundle::read_header(&mut r).unwrap();
    let leaves = (0..header.count)
        .map(|_| tlog::leaf_hash(&bundle::read_record(&mut r, false).unwrap().record))
        .collect();
    (header.checkpoint, leaves)
}

fn request(old: u64, leaves: &[Hash], note: &str) -> String {
    let mut s = format!("old {old}\n");
    if old > 0 && (old as usize) < leaves.len() {
        for h in tlog::consistency_proof(leaves, old).unwrap() {
            s.push_str(&base64::engine::general_purpose::STANDARD.encode(h));
            s.push('\n');
        }
    }
    s.push('\n');
    s.push_str(note);
    s
}

fn busy(w: &World, n: usize) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for _ in 0..n {
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        w.admin.json(&[
            "admin",
            "org",
            "create",
            &format!("org-{i}-{}", std::process::id() % 1000),
            "--kind",
            "firm",
        ]);
    }
}

#[test]
fn a_real_witness_cosigns_growth_and_refuses_a_fork() {
    let mut w = World::new();
    let log_vkey = w.admin.json(&["whoami"])["log_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let tmp = w.tmp.path().to_path_buf();
    let witness = start_witness(&tmp.join("witness"), &log_vkey);
    let verifier = CosignatureVerifier::from_vkey(&witness.vkey).unwrap();

    let (c1, l1) = snapshot(&w.admin, &tmp, "c1");
    let (status, line) = add_checkpoint(&witness, &request(0, &l1, &c1));
    assert_eq!(status, 200, "{line}");
    assert!(verifier.verify_note(&format!("{c1}{line}")).is_ok());

    // The operator keeps a copy of the data directory as it is now.
    let old = tmp.join("data-at-c1");
    w.server.restart_after(|data| {
        Command::new("cp")
            .arg("-a")
            .arg(data)
            .arg(&old)
            .status()
            .unwrap();
    });
    w.admin.repoint(&w.server);
    busy(&w, 3);
    let (c2, l2) = snapshot(&w.admin, &tmp, "c2");
    let (status, line) = add_checkpoint(&witness, &request(l1.len() as u64, &l2, &c2));
    assert_eq!(status, 200, "{line}");
    assert!(verifier.verify_note(&format!("{c2}{line}")).is_ok());
    // A stale submission is told the witness's size.
    let (status, body) = add_checkpoint(&witness, &request(l1.len() as u64, &l2, &c2));
    assert_eq!(
        (status, body.as_str()),
        (409, format!("{}\n", l2.len()).as_str())
    );

    // The fork: the old copy put back, a different and longer future.
    w.server.restart_after(|data| {
        std::fs::remove_dir_all(data).unwrap();
        std::fs::rename(&old, data).unwrap();
    });
    w.admin.repoint(&w.server);
    busy(&w, 8);
    // The admin's client, which saw c2, refuses the forked log outright...
    let refused = tmp.join("refused.bundle");
    w.admin
        .run(&["audit", "export", "--out", refused.to_str().unwrap()])
        .code(4);
    // ...so the operator hands the witness the fork from a fresh client.
    std::fs::remove_file(w.admin.home.join("audit-checkpoint.txt")).unwrap();
    let (c3, l3) = snapshot(&w.admin, &tmp, "c3");
    assert!(
        l3.len() > l2.len(),
        "the fork must outgrow what was witnessed"
    );
    let (status, body) = add_checkpoint(&witness, &request(l2.len() as u64, &l3, &c3));
    assert_eq!(status, 422, "the witness cosigned a fork: {body}");
}

/// The size in a checkpoint note (its second line).
fn note_size(note: &str) -> u64 {
    note.lines().nth(1).unwrap().parse().unwrap()
}

/// Waits until `mdropd` has kept a cosigned checkpoint of the witness
/// that covers the whole log, and returns it.
fn wait_cosigned(server: &matterdrop_tests::Server, w: &WitnessProc) -> String {
    let path = server.data.join("log/witnessed/witness-a.example");
    let verifier = CosignatureVerifier::from_vkey(&w.vkey).unwrap();
    for _ in 0..400 {
        let current = std::fs::read_to_string(server.data.join("log/checkpoint")).unwrap();
        if let Ok(cosigned) = std::fs::read_to_string(&path) {
            if cosigned.starts_with(&current) {
                verifier
                    .verify_note(&cosigned)
                    .expect("a valid cosignature");
                return cosigned;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "the witness never cosigned the current checkpoint; server log:\n{}",
        server.log()
    );
}

/// `mdropd serve --witness URL=VKEY` submits every new checkpoint to a real
/// witness by itself, and refuses to start on a log shorter than the one
/// the witness cosigned (an old copy of the log put back, the checkpoint
/// file deleted) or on a fork of it.
#[test]
fn mdropd_has_its_log_witnessed_and_refuses_to_start_truncated() {
    let mut w = World::new();
    let log_vkey = w.admin.json(&["whoami"])["log_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let witness = start_witness(&w.tmp.path().join("witness"), &log_vkey);
    let flag = format!("http://{}={}", witness.addr, witness.vkey);
    let extra = ["--witness", flag.as_str()];
    w.server.restart_with(&extra, |_| {});
    w.admin.repoint(&w.server);
    // Cosigned at start-up, and again as the log grows, with no client
    // waiting for it.
    let first = wait_cosigned(&w.server, &witness);
    busy(&w, 3);
    let second = wait_cosigned(&w.server, &witness);
    assert!(note_size(&second) > note_size(&first));

    // An export carries the witness's cosignature of its checkpoint (or a
    // newer one, with a consistency proof); the auditor requires it.
    let bundle = w.tmp.path().join("witnessed.bundle");
    let v = w.admin.json(&[
        "audit",
        "export",
        "--out",
        bundle.to_str().unwrap(),
        "--witness",
        &witness.vkey,
    ]);
    assert!(v["entries"].as_u64().unwrap() > 0);
    let v = w.admin.json(&["audit", "verify", bundle.to_str().unwrap()]);
    assert_eq!(v["witnesses"], serde_json::json!(["witness-a.example"]));
    // The same bundle with the cosignatures stripped: exit 4, the witness
    // named, and the auditor's stored checkpoint does not move.
    let stripped = w.tmp.path().join("stripped.bundle");
    {
        let mut r = std::io::BufReader::new(std::fs::File::open(&bundle).unwrap());
        let mut header = bundle::read_header(&mut r).unwrap();
        assert!(!header.witnessed.is_empty());
        header.witnessed.clear();
        let mut out = std::fs::File::create(&stripped).unwrap();
        bundle::write_header(&mut out, &header).unwrap();
        std::io::copy(&mut r, &mut out).unwrap();
    }
    let seen = std::fs::read(w.admin.home.join("audit-checkpoint.txt")).unwrap();
    let r = w
        .admin
        .run(&["audit", "verify", stripped.to_str().unwrap()])
        .code(4);
    assert!(
        r.stderr.contains("witness") && r.stderr.contains("witness-a.example"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read(w.admin.home.join("audit-checkpoint.txt")).unwrap(),
        seen
    );
    // A quorum of two, with a witness that never saw this log: exit 4,
    // naming the missing one.
    let other = Cosigner::new(
        "witness-b.example",
        ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
    )
    .unwrap();
    let r = w
        .admin
        .run(&[
            "audit",
            "verify",
            bundle.to_str().unwrap(),
            "--witness",
            &witness.vkey,
            "--witness",
            &other.vkey(),
            "--quorum",
            "2",
        ])
        .code(4);
    assert!(
        r.stderr.contains("1 of the required 2") && r.stderr.contains("witness-b.example"),
        "{r:?}"
    );
    w.admin
        .json(&["audit", "verify", bundle.to_str().unwrap(), "--quorum", "1"]);

    // Keep a copy of the log, grow it further, and have that cosigned.
    let backup = w.tmp.path().join("log-backup");
    w.server.restart_with(&extra, |data| {
        copy_dir(&data.join("log"), &backup);
    });
    w.admin.repoint(&w.server);
    busy(&w, 3);
    let cosigned = wait_cosigned(&w.server, &witness);
    let cosigned_size = note_size(&cosigned);
    assert!(w.server.stop());

    // The operator puts the old log back and deletes the checkpoint file.
    let log = w.server.data.join("log");
    std::fs::remove_dir_all(&log).unwrap();
    copy_dir(&backup, &log);
    std::fs::remove_file(log.join("checkpoint")).unwrap();
    let _ = std::fs::remove_dir_all(log.join("witnessed"));
    let out = run_mdropd(&w.server.data, &extra);
    assert!(!out.status.success(), "mdropd started on a truncated log");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("witness-a.example")
            && err.contains(&format!("cosigned {cosigned_size} entries"))
            && err.contains("refusing to start"),
        "{err}"
    );
    // Without the witness it would start: the witness is what remembers.
    // And the witness still holds the longer tree.
    // (The log's own note: the cosigned one without the witness's line.)
    let (log_note, _) = first.trim_end_matches('\n').rsplit_once('\n').unwrap();
    let (status, body) = add_checkpoint(&witness, &format!("old 0\n\n{log_note}\n"));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body.trim(), cosigned_size.to_string());

    // Without the witness it starts (the witness is what remembers); the
    // operator writes a different future past the witnessed size...
    let data = w.server.data.clone();
    w.server = matterdrop_tests::Server::start(&data);
    w.admin.repoint(&w.server);
    while note_size(&std::fs::read_to_string(log.join("checkpoint")).unwrap()) <= cosigned_size {
        busy(&w, 1);
    }
    assert!(w.server.stop());
    // ...and the witness, shown it at start-up, refuses the fork.
    let out = run_mdropd(&w.server.data, &extra);
    assert!(!out.status.success(), "mdropd started on a forked log");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("witness-a.example")
            && err.contains("forked")
            && err.contains("refusing to start"),
        "{err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Runs `mdropd serve` on `data` and waits (bounded) for it to exit.
fn run_mdropd(data: &Path, extra: &[&str]) -> std::process::Output {
    let mut child = Command::new(bin("mdropd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--json", "--data"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "mdropd kept running on a truncated log:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A receipt made while `mdropd` has a witness carries the witness's
/// cosignature of its checkpoint; `receipt verify --witness` requires it
/// (exit 4 when it is stripped).
#[test]
fn receipts_carry_witness_cosignatures() {
    let mut w = World::new();
    let log_vkey = w.admin.json(&["whoami"])["log_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let witness = start_witness(&w.tmp.path().join("witness"), &log_vkey);
    let flag = format!("http://{}={}", witness.addr, witness.vkey);
    w.server.restart_with(&["--witness", flag.as_str()], |_| {});
    w.admin.repoint(&w.server);
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
    let tmp = w.tmp.path();
    std::fs::write(tmp.join("ack.txt"), "Confidential.\n").unwrap();
    alice.json(&[
        "matter",
        "create",
        "2026-W-1",
        "--title",
        "Witnessed",
        "--ack-file",
        tmp.join("ack.txt").to_str().unwrap(),
        "--scope",
        "medical-chronology",
    ]);
    alice
        .add_member("2026-W-1", &bob, "bob@lpo-1", "provider")
        .ok();
    bob.json(&["ack", "2026-W-1", "--yes"]);
    std::fs::write(tmp.join("records.txt"), "ER visit\n").unwrap();
    let packet = alice.json(&[
        "push",
        "2026-W-1",
        tmp.join("records.txt").to_str().unwrap(),
        "--task",
        "medical-chronology",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.json(&["pull", &packet, "--out", tmp.join("in").to_str().unwrap()]);
    std::fs::write(tmp.join("chronology.txt"), "Jan 2: ER visit\n").unwrap();
    let d = bob.json(&[
        "deliver",
        "2026-W-1",
        "--packet",
        &packet,
        tmp.join("chronology.txt").to_str().unwrap(),
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let receipt = tmp.join("receipt.json");
    alice.json(&[
        "review",
        "approve",
        "--yes",
        &d,
        "--receipt",
        receipt.to_str().unwrap(),
    ]);
    let v = alice.json(&[
        "receipt",
        "verify",
        receipt.to_str().unwrap(),
        "--witness",
        &witness.vkey,
    ]);
    assert_eq!(v["witnesses"], serde_json::json!(["witness-a.example"]));
    // Stripped of its cosignatures: exit 4, the witness named (the policy
    // is remembered from the run above).
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert!(!json["log"]["witnessed"].as_array().unwrap().is_empty());
    json["log"].as_object_mut().unwrap().remove("witnessed");
    let stripped = tmp.join("stripped.json");
    std::fs::write(&stripped, json.to_string()).unwrap();
    let r = alice
        .run(&["receipt", "verify", stripped.to_str().unwrap()])
        .code(4);
    assert!(
        r.stderr.contains("witness") && r.stderr.contains("witness-a.example"),
        "{r:?}"
    );
}
