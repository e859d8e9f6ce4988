//! README's walkthrough, run as written.
//!
//! Every command of every `sh` block under "## Walkthrough" runs verbatim, in
//! order, in one `bash` whose state (variables, `export`s) carries from step
//! to step, against the real `mdropd` and `mdrop` binaries on loopback. The
//! few things a test cannot take literally are filled in, each by an explicit
//! rule below, never by skipping a command:
//!
//! - `127.0.0.1:4433` is the test server's real address (it binds port 0);
//! - `SHA256:...` and `mdi1_...` are the fingerprint and the bootstrap invite
//!   that `mdropd` printed, read from its human output as README tells a
//!   reader to copy them;
//! - `p-…` and `d-…` are the packet and deliverable id most recently printed
//!   by an earlier step;
//! - README's build lines (`cargo build --release --bin mdrop` and the
//!   `export PATH=…` after it) are replaced by the binaries this test run
//!   built;
//! - `age` is an age v1.3 implementation, first on `PATH`: typage behind
//!   `tests/interop/age.mjs` ([`matterdrop_tests::age_v13`]), since
//!   Debian's `age` is 1.1.1, which predates the hybrid post-quantum keys
//!   README's `age -d` decrypts.
//!
//! `~` is a fresh `HOME` in a temporary directory, and every command runs in
//! a fresh working directory beside it. Each command gets a pseudo-terminal
//! on stdin with the answer a reader types at a prompt (`yes`). A command is
//! expected to exit 0 unless its line ends with a comment `# exit N`. The test
//! fails on the first step that does not do what README says.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use matterdrop_tests::{Server, age_v13, bin};

/// How long one README command may take on a loaded 2-core machine.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// What a reader types at any prompt of the walkthrough.
const ANSWER: &[u8] = b"yes\n";

/// The lines README uses to build the client, and what stands in for them.
const BUILD_LINE: &str = "cargo build --release --bin mdrop";
const PATH_LINE: &str = r#"export PATH="$PWD/target/release:$PATH""#;

/// README's command that starts the server.
const SERVER_LINE: &str = "cargo run --release --bin mdropd";

/// One command of the walkthrough.
#[derive(Debug)]
struct Step {
    /// README line number where the command starts.
    line: usize,
    /// The numbered part of the walkthrough it belongs to (`**5. …**`).
    part: String,
    /// The command, continuation lines joined.
    text: String,
    /// Exit code README promises (`# exit N`), 0 otherwise.
    expect: i32,
}

/// The `sh` code blocks of `section` (a `## ` heading), as (first line
/// number, part heading, lines).
fn sh_blocks(readme: &str, section: &str) -> Vec<(usize, String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut in_section = false;
    let mut part = String::new();
    let mut block: Option<(usize, Vec<String>)> = None;
    for (i, line) in readme.lines().enumerate() {
        let n = i + 1;
        if let Some((_, lines)) = &mut block {
            if line.trim_start().starts_with("```") {
                let (start, lines) = block.take().expect("open block");
                blocks.push((start, part.clone(), lines));
            } else {
                lines.push(line.to_owned());
            }
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            in_section = h.trim() == section;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some(rest) = line.strip_prefix("**") {
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                part = rest.split("**").next().unwrap_or(rest).to_owned();
            }
        }
        if line.trim() == "```sh" {
            block = Some((n + 1, Vec::new()));
        }
    }
    assert!(block.is_none(), "README: unterminated code block");
    blocks
}

/// The commands of the walkthrough, in order.
fn steps(readme: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for (start, part, lines) in sh_blocks(readme, "Walkthrough") {
        let mut text = String::new();
        let mut first = 0;
        for (k, line) in lines.iter().enumerate() {
            let trimmed = line.trim();
            if text.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
                continue;
            }
            if text.is_empty() {
                first = start + k;
            }
            if let Some(head) = line.strip_suffix('\\') {
                text.push_str(head);
                text.push(' ');
                continue;
            }
            text.push_str(line);
            let expect = expected_exit(&text);
            out.push(Step {
                line: first,
                part: part.clone(),
                text: std::mem::take(&mut text),
                expect,
            });
        }
        assert!(
            text.is_empty(),
            "README line {first}: dangling continuation"
        );
    }
    out
}

/// `# exit N` at the end of a command: the exit code README promises.
fn expected_exit(text: &str) -> i32 {
    text.split_once("# exit ")
        .and_then(|(_, rest)| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

/// Values the test fills into README's placeholders.
#[derive(Debug, Default)]
struct Fill {
    addr: String,
    fingerprint: String,
    invite: String,
    packet: Option<String>,
    deliverable: Option<String>,
}

impl Fill {
    /// `text` with every placeholder filled; an unknown one is an error.
    fn apply(&self, text: &str) -> Result<String, String> {
        let mut out = text.replace("127.0.0.1:4433", &self.addr);
        for dots in ["...", "…"] {
            while let Some(at) = out.find(dots) {
                let start = out[..at]
                    .rfind(|c: char| {
                        !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-')
                    })
                    .map_or(0, |p| p + 1);
                let prefix = &out[start..at];
                let value = match prefix {
                    "SHA256:" => Some(self.fingerprint.clone()),
                    "mdi1_" => Some(self.invite.clone()),
                    "p-" => self.packet.clone(),
                    "d-" => self.deliverable.clone(),
                    other => {
                        return Err(format!(
                            "placeholder {other:?}{dots} has no rule to fill it"
                        ));
                    }
                };
                let value = value.ok_or_else(|| {
                    format!("placeholder {prefix}{dots}: no earlier step printed such an id")
                })?;
                out.replace_range(start..at + dots.len(), &value);
            }
        }
        Ok(out)
    }

    /// Remembers the last packet and deliverable ids in a step's output.
    fn learn(&mut self, output: &str) {
        for word in output.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let Some((prefix, rand)) = word.split_once('-') else {
                continue;
            };
            if rand.len() != 32 || !rand.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            match prefix {
                "p" => self.packet = Some(word.to_owned()),
                "d" => self.deliverable = Some(word.to_owned()),
                _ => {}
            }
        }
    }
}

/// One `bash` that runs the steps, keeping its state between them.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    done: mpsc::Receiver<String>,
    scratch: PathBuf,
}

/// What one step did.
#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Shell {
    fn start(work: &Path, home: &Path, scratch: &Path) -> Self {
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(work)
            .env("HOME", home)
            .env_remove("MDROP_HOME")
            .env_remove("MDROP_PASSPHRASE")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("bash");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut shell = Self {
            child,
            stdin,
            done,
            scratch: scratch.to_path_buf(),
        };
        shell.send("set -o pipefail\n");
        shell
    }

    fn send(&mut self, text: &str) {
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|()| self.stdin.flush())
            .expect("write to bash");
    }

    /// Runs `command` as step `n` with a terminal on stdin holding the
    /// reader's answer; its output goes to files.
    fn run(&mut self, n: usize, command: &str) -> Result<Outcome, String> {
        let tty = Tty::new(ANSWER);
        let out = self.scratch.join(format!("step-{n}.out"));
        let err = self.scratch.join(format!("step-{n}.err"));
        self.send(&format!(
            "{{ {command}\n}} <'{}' >'{}' 2>'{}'; echo \"__step_done__ {n} $?\"\n",
            tty.slave.display(),
            out.display(),
            err.display(),
        ));
        let deadline = Instant::now() + STEP_TIMEOUT;
        let code = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(&format!("__step_done__ {n} ")) {
                        break rest.trim().parse::<i32>().expect("exit status");
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("did not finish within {STEP_TIMEOUT:?}"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("bash exited (a syntax error in the command?)".into());
                }
            }
        };
        drop(tty);
        Ok(Outcome {
            code,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        })
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // The whole process group: bash and anything a step left running.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// A pseudo-terminal whose input already holds what the reader types.
struct Tty {
    _master: rustix::fd::OwnedFd,
    slave: PathBuf,
}

impl Tty {
    fn new(typed: &[u8]) -> Self {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave = PathBuf::from(name.to_str().expect("pts name"));
        let written = rustix::io::write(&master, typed).expect("type the answer");
        assert_eq!(
            written,
            typed.len(),
            "the answer fits the terminal's buffer"
        );
        Self {
            _master: master,
            slave,
        }
    }
}

/// Starts `mdropd` as README's first command does (embedded defaults, data
/// in `./mdrop-data`), but on a free port, and reads what README tells the
/// reader to copy from its output.
fn start_server(work: &Path) -> (Server, Fill) {
    let server = Server::start_human(work);
    let fill = Fill {
        addr: server.addr.clone(),
        fingerprint: server.fingerprint.clone(),
        invite: server.invite.clone().expect("bootstrap invite printed"),
        ..Fill::default()
    };
    (server, fill)
}

#[test]
fn readme_walkthrough_runs_as_written() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");

    // The server command this test stands in for.
    let two = sh_blocks(&readme, "Two commands");
    assert_eq!(
        two.first().map(|(_, _, l)| l.join("\n")),
        Some(SERVER_LINE.to_owned()),
        "README's first set-up command changed; update this test's server start"
    );

    let steps = steps(&readme);
    let parts: BTreeSet<&str> = steps.iter().map(|s| s.part.as_str()).collect();
    assert!(
        steps.len() >= 40 && parts.len() >= 8,
        "the walkthrough should have its eight parts and their commands; found {} commands in {parts:?}",
        steps.len()
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let work = tmp.path().join("work");
    let scratch = tmp.path().join("scratch");
    for d in [&home, &work, &scratch] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let (server, mut fill) = start_server(&work);
    let bin_dir = bin("mdrop").parent().expect("bin dir").to_path_buf();
    let mut shell = Shell::start(&work, &home, &scratch);
    let shim = tmp.path().join("age-v13");
    std::fs::create_dir_all(&shim).expect("mkdir");
    let age = age_v13();
    let args: Vec<String> = age
        .get_args()
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    std::fs::write(
        shim.join("age"),
        format!("#!/bin/sh\nexec node {} \"$@\"\n", args.join(" ")),
    )
    .expect("write age shim");
    std::fs::set_permissions(
        shim.join("age"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    shell.send(&format!("export PATH=\"{}:$PATH\"\n", shim.display()));

    let mut transcript = String::new();
    let mut bob_checked = false;
    for (n, step) in steps.iter().enumerate() {
        let text = match step.text.trim() {
            BUILD_LINE => format!("test -x '{}/mdrop'", bin_dir.display()),
            PATH_LINE => format!("export PATH=\"{}:$PATH\"", bin_dir.display()),
            _ => fill.apply(&step.text).unwrap_or_else(|e| {
                panic!(
                    "README line {} ({}): {e}\n  {}",
                    step.line, step.part, step.text
                )
            }),
        };
        let outcome = shell.run(n, &text);
        let fail = |why: String| -> ! {
            panic!(
                "README walkthrough, line {} ({}):\n  {}\nran as:\n  {text}\n{why}\n\n\
                 --- earlier steps ---\n{transcript}\n--- server log (tail) ---\n{}",
                step.line,
                step.part,
                step.text.trim(),
                tail(&server.log(), 12),
            )
        };
        let o = outcome.unwrap_or_else(|e| fail(e));
        if o.code != step.expect {
            fail(format!(
                "exit {} (README expects {})\n--- stdout ---\n{}--- stderr ---\n{}",
                o.code, step.expect, o.stdout, o.stderr
            ));
        }
        fill.learn(&o.stdout);
        fill.learn(&o.stderr);
        // Bob's decrypted copy, once pulled, is the file Alice pushed.
        let bob_copy = work.join("bob-in/records/er.txt");
        if !bob_checked && bob_copy.exists() {
            let original =
                std::fs::read_to_string(work.join("case/records/er.txt")).expect("original");
            assert_eq!(
                std::fs::read_to_string(&bob_copy).expect("bob's decrypted copy"),
                original,
                "bob's copy is the file alice pushed"
            );
            bob_checked = true;
        }
        transcript.push_str(&format!(
            "$ {}\n{}{}",
            step.text.trim(),
            tail(&o.stdout, 6),
            tail(&o.stderr, 6)
        ));
    }

    // What the walkthrough promises, checked directly as well.
    assert!(bob_checked, "bob pulled the packet");
    assert!(
        !work.join("bob-in/records/er.txt").exists(),
        "bob's purge deleted his decrypted copy"
    );
    let receipt: serde_json::Value = serde_json::from_slice(
        &std::fs::read(work.join("receipt.json")).expect("receipt.json where README saved it"),
    )
    .expect("receipt JSON");
    assert!(
        receipt["signed"]
            .as_str()
            .is_some_and(|s| s.contains("decision=approve")),
        "the receipt records the approval: {receipt}"
    );
    drop(shell);
    drop(server);
}

/// The last `n` lines of `text`, each ending in a newline.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|l| format!("  {l}\n")).collect()
}

#[test]
fn steps_parse_continuations_comments_and_expected_codes() {
    let readme = "# T\n\n## Walkthrough\n\n**1. One.**\n\n```sh\n# a comment\nA=1\nmdrop x \\\n      --y z\nmdrop show   # exit 3: denied\n```\n\n## Next\n\n```sh\nnot-this\n```\n";
    let s = steps(readme);
    let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "A=1",
            "mdrop x        --y z",
            "mdrop show   # exit 3: denied"
        ]
    );
    assert_eq!(s.iter().map(|s| s.expect).collect::<Vec<_>>(), [0, 0, 3]);
    assert_eq!(s[1].line, 10);
    assert!(s.iter().all(|s| s.part == "1. One."));
}

#[test]
fn placeholders_fill_only_by_their_rules() {
    let mut fill = Fill {
        addr: "127.0.0.1:5555".into(),
        fingerprint: "SHA256:abc".into(),
        invite: "mdi1_xyz".into(),
        ..Fill::default()
    };
    assert!(
        fill.apply("mdrop pull p-… --out x").is_err(),
        "no packet seen yet"
    );
    fill.learn("Pushed p-0123456789abcdef0123456789abcdef (2 files); d-nothex");
    assert_eq!(
        fill.apply("enroll 127.0.0.1:4433 --fingerprint \"SHA256:...\" pull p-…")
            .as_deref(),
        Ok(
            "enroll 127.0.0.1:5555 --fingerprint \"SHA256:abc\" pull p-0123456789abcdef0123456789abcdef"
        )
    );
    assert_eq!(
        fill.apply("INVITE=mdi1_...").as_deref(),
        Ok("INVITE=mdi1_xyz")
    );
    assert!(fill.apply("review d-…").is_err(), "d-nothex is no id");
    assert!(fill.apply("cat x-…").is_err(), "unknown placeholder");
}
