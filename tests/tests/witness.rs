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
use matterdrop_common::tlog::cosignature::CosignatureVerifier;
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
    for i in 0..n {
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
