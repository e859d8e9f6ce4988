//! Transfers survive the network: a `push` and a `pull` through a userspace
//! link (`benches/src/link.rs`) that is cut for 10 s in the middle of the
//! transfer, while the server restarts behind it on another port, complete
//! on their own, resume from what was acknowledged or verified, and give
//! back the same bytes.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use matterdrop_benches::link::{Link, Profile};
use matterdrop_tests::{User, World, bin};
use sha2::{Digest as _, Sha256};

const MATTER: &str = "2026-RS-0001";
const MIB: u64 = 1 << 20;
/// Four parts: 32 + 32 + 32 + 4 MiB.
const SIZE: u64 = 100 * MIB;
/// The cut comes once this much has crossed the link: with two parts
/// uploading at once, at least two are acknowledged by then.
const CUT_AFTER: u64 = 72 * MIB;
const CUT: Duration = Duration::from_secs(10);

/// A short, fast link: the cut is what matters here.
const PROFILE: Profile = Profile {
    name: "test",
    rtt: Duration::from_millis(10),
    rate_bps: 200_000_000,
    loss: 0.0,
    queue: Duration::from_millis(30),
};

fn spawn(user: &User, args: &[&str]) -> Child {
    Command::new(bin("mdrop"))
        .arg("--home")
        .arg(&user.home)
        .arg("--json")
        .args(args)
        .env_remove("MDROP_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mdrop")
}

/// Waits (bounded) for `child`; returns its exit code, stdout and stderr.
fn finish(mut child: Child, within: Duration) -> (i32, String, String) {
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code().unwrap_or(-1);
        }
        if start.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    (code, out, err)
}

/// Waits until `bytes()` passes `at` (or the transfer ends first).
fn wait_for(child: &mut Child, at: u64, bytes: impl Fn() -> u64) {
    let start = Instant::now();
    while bytes() < at {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the transfer ended before the cut"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the transfer stalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sha256_file(path: &Path) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).expect("open");
    std::io::copy(&mut f, &mut h).expect("hash");
    h.finalize().into()
}

/// A server with alice@firm-a, attorney of `MATTER` (scope
/// document-review).
fn firm_with_matter() -> (World, User) {
    let w = World::new();
    w.org("firm-a", "firm");
    let alice = w.user("alice@firm-a");
    let ack = w.tmp.path().join("ack.txt");
    std::fs::write(&ack, "Confidential.\n").unwrap();
    alice.json(&[
        "matter",
        "create",
        MATTER,
        "--title",
        "Resume",
        "--ack-file",
        ack.to_str().unwrap(),
        "--scope",
        "document-review",
    ]);
    (w, alice)
}

#[test]
fn push_and_pull_resume_across_a_cut_link_and_a_server_restart() {
    let (mut w, alice) = firm_with_matter();
    // 100 MiB that compress to nothing useful.
    let file = w.tmp.path().join("production.bin");
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..SIZE / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    let link = Link::start(w.server.addr.parse().unwrap(), PROFILE, 1).expect("link");
    alice.repoint_addr(&link.addr().to_string());

    // Push: cut the link well into the upload and restart the server
    // behind it while nothing gets through.
    let mut child = spawn(
        &alice,
        &[
            "push",
            MATTER,
            file.to_str().unwrap(),
            "--task",
            "document-review",
        ],
    );
    wait_for(&mut child, CUT_AFTER, || link.counts().0.bytes);
    link.cut_for(CUT);
    let cut_at = Instant::now();
    w.server.restart_after(|_| {});
    link.repoint(w.server.addr.parse().unwrap());
    assert!(cut_at.elapsed() < CUT, "the restart outlasted the cut");
    let (code, out, err) = finish(child, Duration::from_secs(240));
    eprintln!("push done {:?} after the cut:\n{err}", cut_at.elapsed());
    assert_eq!(code, 0, "push across the cut: {out}\n{err}");
    assert!(err.contains("reconnecting"), "{err}");
    assert!(err.contains("resumed at"), "{err}");
    let pushed: serde_json::Value = serde_json::from_str(out.trim()).expect("push JSON");
    let resumed = pushed["resumed_bytes"].as_u64().expect("resumed_bytes");
    assert!(
        resumed >= 32 * MIB,
        "the push started over ({resumed} bytes resumed): {err}"
    );
    let id = pushed["id"].as_str().expect("id").to_owned();

    // Pull: the same, while the download is past two parts.
    let down_before = link.counts().1.bytes;
    let out_dir = w.tmp.path().join("pulled");
    let mut child = spawn(&alice, &["pull", &id, "--out", out_dir.to_str().unwrap()]);
    wait_for(&mut child, CUT_AFTER, || {
        link.counts().1.bytes - down_before
    });
    link.cut_for(CUT);
    let cut_at = Instant::now();
    w.server.restart_after(|_| {});
    link.repoint(w.server.addr.parse().unwrap());
    let (code, out, err) = finish(child, Duration::from_secs(240));
    eprintln!("pull done {:?} after the cut:\n{err}", cut_at.elapsed());
    assert_eq!(code, 0, "pull across the cut: {out}\n{err}");
    assert!(err.contains("reconnecting"), "{err}");
    assert!(err.contains("resumed at part"), "{err}");
    assert_eq!(
        sha256_file(&out_dir.join("production.bin")),
        sha256_file(&file),
        "the pulled file differs"
    );
    // Nothing of the interrupted pull is left behind.
    assert!(!alice.home.join("partial").join(&id).exists());
}

/// With the server's window budget spent (`--window-budget-mib 1`: every
/// connection gets the 2 MiB floor), a 40 MiB push and its pull still
/// complete byte-identical: the budget slows connections, never breaks
/// them.
#[test]
fn a_spent_window_budget_slows_but_never_breaks_a_transfer() {
    let (mut w, alice) = firm_with_matter();
    w.server.restart_with(&["--window-budget-mib", "1"], |_| {});
    alice.repoint(&w.server);
    let file = w.tmp.path().join("budget.bin");
    let data: Vec<u8> = (0..40 * MIB).map(|i| (i * 7 + i / 4099) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let pushed = alice.json(&[
        "push",
        MATTER,
        file.to_str().unwrap(),
        "--task",
        "document-review",
    ]);
    let id = pushed["id"].as_str().unwrap();
    let out = w.tmp.path().join("budget-out");
    alice.json(&["pull", id, "--out", out.to_str().unwrap()]);
    assert!(std::fs::read(out.join("budget.bin")).unwrap() == data);
}
