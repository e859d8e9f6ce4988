//! Notifications: `mdropd serve --notify-webhook` POSTs each event (a new
//! packet, deliverable, return, approval, share) to a local webhook
//! receiver, signed with HMAC-SHA-256 and retried after a failure, and
//! `--smtp` mails it to the principals who set an address, through a real
//! SMTP server (aiosmtpd, which `tests/run` installs). Neither carries a
//! file name or a note.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use matterdrop_tests::World;

const MATTER: &str = "2026-PI-0042";
const SECRET: &str = "webhook-secret-of-the-test-0123456789";
const NOTE: &str = "NOTE-MARKER do not leak";
const NAME: &str = "FILENAME-MARKER.txt";

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
struct Hook {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hook {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A minimal HTTP/1.1 receiver on 127.0.0.1: answers its first request
/// with 500 (so the server must retry) and the rest with 204; keeps them.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<Hook>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.trim().to_owned(), v.trim().to_owned()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    break;
                }
                let first = {
                    let mut g = seen.lock().unwrap();
                    g.push(Hook { headers, body });
                    g.len() == 1
                };
                let answer: &[u8] = if first {
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 204 No Content\r\n\r\n"
                };
                if r.get_mut().write_all(answer).is_err() {
                    break;
                }
            }
        }
    });
    (url, got)
}

/// A Python that has aiosmtpd (`MDROP_TEST_PYTHON`, else python3 on the
/// path or Debian's).
fn python() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("MDROP_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(["python3", "/usr/bin/python3"].map(PathBuf::from))
        .collect();
    for p in &candidates {
        let ok = Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return p.clone();
        }
    }
    panic!("no python with aiosmtpd ({candidates:?}); `bash tests/run` installs it");
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1 delivering into a Maildir.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> Self {
        let maildir = dir.join("maildir");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    /// The messages delivered so far.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(dir) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in dir.flatten() {
                    // Quoted-printable soft line breaks joined.
                    let m = std::fs::read_to_string(e.path()).unwrap_or_default();
                    out.push(m.replace("=\r\n", "").replace("=\n", ""));
                }
            }
        }
        out
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most 30 s) until `f` holds.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hmac_hex(body: &[u8]) -> String {
    matterdrop_common::sign::hmac_sha256(SECRET.as_bytes(), body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn events_reach_a_signed_webhook_and_real_email_without_names_or_notes() {
    let (url, hooks) = webhook_receiver();
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(smtp_dir.path());
    let port = smtp.port;
    let w = World::with_server_args(|dir| {
        let secret = dir.join("hook.secret");
        std::fs::write(&secret, SECRET).unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        vec![
            "--notify-webhook".into(),
            url.clone(),
            "--notify-webhook-secret-file".into(),
            secret.to_str().unwrap().into(),
            "--smtp".into(),
            format!("smtp://127.0.0.1:{port}"),
            "--smtp-from".into(),
            "mdropd@firm.example".into(),
        ]
    });
    w.org("firm-a", "firm");
    w.org("lpo-1", "provider");
    let alice = w.user("alice@firm-a");
    let bob = w.user("bob@lpo-1");
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
        "medical-chronology",
    ]);
    alice.add_member(MATTER, &bob, "bob@lpo-1", "provider").ok();
    bob.json(&["ack", MATTER, "--yes"]);

    // bob sets his address (bad ones are refused, naming why).
    let r = bob.run(&["notify", "email", "bob at lpo"]).code(2);
    assert!(r.stderr.contains("not an email address"), "{r:?}");
    // (Plainly no address: the client refuses, exit 2; the server's
    // stricter check refuses the rest, exit 1.)
    let r = bob.run(&["notify", "email", "bob@@lpo.example"]).code(1);
    assert!(r.stderr.contains("not an email address"), "{r:?}");
    let set = bob.json(&["notify", "email", "bob@lpo.example"]);
    assert_eq!(set["address"], "bob@lpo.example");
    assert_eq!(set["sends_email"], true);

    // A packet for bob: one webhook call (after one failed try) and one
    // email, naming the matter and the id only.
    let f = w.tmp.path().join(NAME);
    std::fs::write(&f, "records").unwrap();
    let packet = alice.json(&[
        "push",
        MATTER,
        f.to_str().unwrap(),
        "--task",
        "medical-chronology",
        "--note",
        NOTE,
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for("the packet's webhook retry", || {
        hooks.lock().unwrap().len() >= 2
    });
    {
        let got = hooks.lock().unwrap().clone();
        let (failed, ok) = (&got[0], &got[1]);
        assert_eq!(failed.body, ok.body, "a retry sends the same notice");
        assert_eq!(
            failed.header("x-matterdrop-delivery"),
            ok.header("x-matterdrop-delivery")
        );
        let v = ok.json();
        assert_eq!(v["event"], "packet");
        assert_eq!(v["matter"], MATTER);
        assert_eq!(v["id"], packet.as_str());
        assert_eq!(v["recipients"], serde_json::json!(["bob@lpo-1"]));
        assert_eq!(ok.header("x-matterdrop-event"), Some("packet"));
        assert_eq!(
            ok.header("x-matterdrop-signature"),
            Some(format!("sha256={}", hmac_hex(&ok.body)).as_str()),
            "HMAC-SHA-256 of the body under the secret"
        );
    }
    wait_for("bob's email", || !smtp.messages().is_empty());
    let mail = smtp.messages().remove(0);
    assert!(mail.contains("bob@lpo.example"), "{mail}");
    assert!(mail.contains(MATTER) && mail.contains(&packet), "{mail}");

    // bob delivers; alice returns it: alice's event, then bob's.
    bob.json(&[
        "pull",
        &packet,
        "--out",
        w.tmp.path().join("in").to_str().unwrap(),
    ]);
    let work = w.tmp.path().join("work.txt");
    std::fs::write(&work, "chronology").unwrap();
    let d = bob.json(&[
        "deliver",
        MATTER,
        "--packet",
        &packet,
        work.to_str().unwrap(),
        "--note",
        NOTE,
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let receipt = w.tmp.path().join("return.json");
    alice.json(&[
        "review",
        "return",
        "--yes",
        &d,
        "--note",
        NOTE,
        "--receipt",
        receipt.to_str().unwrap(),
    ]);
    wait_for("the deliverable's and the return's webhooks", || {
        hooks.lock().unwrap().len() >= 4
    });
    wait_for("bob's second email", || smtp.messages().len() >= 2);
    let got = hooks.lock().unwrap().clone();
    let events: Vec<(String, serde_json::Value)> = got[2..]
        .iter()
        .map(|h| {
            (
                h.json()["event"].as_str().unwrap().to_owned(),
                h.json()["recipients"].clone(),
            )
        })
        .collect();
    assert!(
        events.contains(&("deliverable".into(), serde_json::json!(["alice@firm-a"]))),
        "{events:?}"
    );
    assert!(
        events.contains(&("returned".into(), serde_json::json!(["bob@lpo-1"]))),
        "{events:?}"
    );
    // alice set no address: only bob was mailed.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(
        mails
            .iter()
            .any(|m| m.contains("returned") && m.contains(&d)),
        "{mails:?}"
    );

    // Nothing anywhere names a file or repeats a note.
    for h in got {
        let body = String::from_utf8_lossy(&h.body).into_owned();
        assert!(!body.contains("MARKER"), "{body}");
    }
    for m in &mails {
        assert!(!m.contains("MARKER"), "{m}");
    }

    // bob stops emails: the approval of his second delivery reaches the
    // webhook, and no mail is sent.
    let cleared = bob.json(&["notify", "email", "--clear"]);
    assert!(cleared["address"].is_null());
    let d2 = bob.json(&[
        "deliver",
        MATTER,
        "--packet",
        &packet,
        work.to_str().unwrap(),
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let receipt = w.tmp.path().join("approve.json");
    alice.json(&[
        "review",
        "approve",
        "--yes",
        &d2,
        "--receipt",
        receipt.to_str().unwrap(),
    ]);
    wait_for("the approval's webhook", || {
        hooks
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.json()["event"] == "approved" && h.json()["id"] == d2.as_str())
    });
    let approved = hooks
        .lock()
        .unwrap()
        .iter()
        .find(|h| h.json()["event"] == "approved")
        .unwrap()
        .json();
    assert_eq!(approved["recipients"], serde_json::json!(["bob@lpo-1"]));
    assert_eq!(smtp.messages().len(), 2, "no mail after --clear");
}

#[test]
fn a_relay_in_the_clear_off_this_machine_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(matterdrop_tests::bin("mdropd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args([
            "--smtp",
            "smtp://mail.firm.example:25",
            "--smtp-from",
            "mdropd@firm.example",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in the clear"), "{err}");
    // A webhook secret others can read is refused too.
    let secret = dir.path().join("open.secret");
    std::fs::write(&secret, SECRET).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = Command::new(matterdrop_tests::bin("mdropd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--notify-webhook", "http://127.0.0.1:9/hook"])
        .arg("--notify-webhook-secret-file")
        .arg(&secret)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}
