//! Harness for the end-to-end tests: runs the real `mdropd` and `mdrop`
//! binaries on loopback with real files.
//!
//! The binaries are looked up next to the test executable (cargo puts them
//! in `target/<profile>/`), or in `$MDROP_BIN_DIR`. `cargo test --workspace`
//! builds them because the server and client packages have integration
//! tests of their own.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("MDROP_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/e2e-hash → target/debug
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not built: run `cargo test --workspace` (or `cargo build --bins`) first",
        path.display()
    );
    path
}

/// An age v1.3 command this project did not write, for the post-quantum
/// (`mlkem768x25519`) and classic recipient types: typage (npm
/// `age-encryption`) behind `tests/interop/age.mjs`, which takes `-d -i
/// FILE`, `-r RECIPIENT`, `-o OUT` like the stock `age`, and `--keygen`.
/// `tests/run` installs Node.js and the package. (Debian's `age` is 1.1.1,
/// which predates hybrid keys; the tests use it for classic keys only.)
pub fn age_v13() -> Command {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop");
    assert!(
        dir.join("node_modules/age-encryption/package.json")
            .is_file(),
        "{}/node_modules is missing: run `bash tests/run`, which installs it (npm ci)",
        dir.display()
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("age.mjs"));
    cmd
}

/// A running `mdropd serve`. Killed on drop.
#[derive(Debug)]
pub struct Server {
    /// Its data directory.
    pub data: PathBuf,
    /// Bound address.
    pub addr: String,
    /// Key fingerprint.
    pub fingerprint: String,
    /// Bootstrap admin invite, when this start initialized the directory.
    pub invite: Option<String>,
    /// Where its log goes.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts a server on `127.0.0.1:0` with data in `data` (initializing a
    /// fresh directory).
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// [`Server::start`] with extra `mdropd serve` arguments.
    pub fn start_with(data: &Path, extra: &[&str]) -> Self {
        let log = data.with_extension(format!("log.{}", std::process::id()));
        let mut cmd = Command::new(bin("mdropd"));
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--shutdown-grace",
            "5s",
            "--data",
        ])
        .arg(data)
        .args(extra);
        let (child, lines) = spawn_server(cmd, &log);
        let mut invite = None;
        loop {
            let line = next_line(&lines, &log);
            let v: Value = serde_json::from_str(&line).expect("mdropd --json line");
            if let Some(i) = v["invite"].as_str() {
                invite = Some(i.to_owned());
                continue;
            }
            return Self {
                data: data.to_path_buf(),
                addr: v["listen"].as_str().expect("listen").to_owned(),
                fingerprint: v["fingerprint"].as_str().expect("fingerprint").to_owned(),
                invite,
                log,
                child: Some(child),
            };
        }
    }

    /// Starts `mdropd serve` as a person would, in `dir`, with its embedded
    /// defaults (data in `dir/mdrop-data`) except the address
    /// (`127.0.0.1:0`), and reads the address, fingerprint and bootstrap
    /// invite from its human-readable output.
    pub fn start_human(dir: &Path) -> Self {
        let data = dir.join("mdrop-data");
        let log = dir.with_extension(format!("mdropd-log.{}", std::process::id()));
        let mut cmd = Command::new(bin("mdropd"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("MDROPD_DATA");
        let (child, lines) = spawn_server(cmd, &log);
        let (mut invite, mut addr) = (None, None);
        let mut invite_next = false;
        loop {
            let line = next_line(&lines, &log);
            if invite_next {
                invite = Some(line.trim().to_owned());
                invite_next = false;
            } else if line.contains("bootstrap admin invite") {
                invite_next = true;
            } else if let Some(a) = line.strip_prefix("mdropd listening on ") {
                addr = Some(a.trim().to_owned());
            } else if let (Some(addr), Some(fp)) =
                (&addr, line.strip_prefix("server fingerprint: "))
            {
                return Self {
                    data,
                    addr: addr.clone(),
                    fingerprint: fp.trim().to_owned(),
                    invite,
                    log,
                    child: Some(child),
                };
            }
        }
    }

    /// Sends SIGTERM and waits (up to 30 s: the shutdown grace, the final
    /// flushes, a loaded machine); returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        for _ in 0..600 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Stops the server gracefully, lets `edit` change its stopped data
    /// directory (as an operator could), and starts it again on the same
    /// data (on a new port: repoint clients with [`User::repoint`]).
    pub fn restart_after(&mut self, edit: impl FnOnce(&Path)) {
        self.restart_with(&[], edit);
    }

    /// [`Server::restart_after`], starting again with extra `mdropd serve`
    /// arguments.
    pub fn restart_with(&mut self, extra: &[&str], edit: impl FnOnce(&Path)) {
        assert!(self.stop(), "mdropd did not stop cleanly");
        edit(&self.data);
        // The same data directory appends to the same log file.
        let data = self.data.clone();
        *self = Self::start_with(&data, extra);
    }

    /// Kills the process with SIGKILL (no chance to clean up).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Spawns `cmd` (an `mdropd serve`) with stderr appended to `log`; its
/// stdout lines arrive on the channel.
fn spawn_server(mut cmd: Command, log: &Path) -> (Child, mpsc::Receiver<String>) {
    let logfile = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(logfile)
        .spawn()
        .expect("spawn mdropd");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The next line `mdropd` printed, waiting up to 60 s for it to start.
fn next_line(lines: &mpsc::Receiver<String>, log: &Path) -> String {
    lines
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "mdropd did not start; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
}

/// Result of one `mdrop` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Parses stdout as one JSON object.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:?}");
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Every file under `dir`, sorted (none if it does not exist).
/// Copies a directory tree (a stopped server's data, a home) as it is.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs `mdrop pull ID --out OUT` as `user` and checks it is refused as
/// tampered: exit 4, the descriptor mismatch named, nothing written under
/// `out`. `what` says which tampering, for the failure message.
pub fn pull_refused_as_tampered(user: &User, id: &str, out: &Path, what: &str) -> Run {
    let r = user.run(&["pull", id, "--out", out.to_str().expect("utf-8 path")]);
    assert_eq!(r.code, 4, "{what}: {r:?}");
    assert!(
        r.stderr.contains("does not match the signed descriptor"),
        "{what}: {r:?}"
    );
    assert!(
        walk(out).is_empty(),
        "{what}: no output file may be written"
    );
    r
}

/// A user with a client home.
#[derive(Debug, Clone)]
pub struct User {
    /// The home directory.
    pub home: PathBuf,
}

impl User {
    /// A user whose home is `dir/name` (not created yet).
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            home: dir.join(name),
        }
    }

    /// Runs `mdrop --home HOME args…`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs `mdrop` with extra environment.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(bin("mdrop"));
        cmd.arg("--home")
            .arg(&self.home)
            .args(args)
            .stdin(Stdio::null());
        cmd.env_remove("MDROP_PASSPHRASE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run mdrop").into()
    }

    /// Starts `mdrop --home HOME args…` without waiting for it (output
    /// discarded), to be killed or waited for.
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(bin("mdrop"))
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env_remove("MDROP_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mdrop")
    }

    /// Runs with `--json` and expects success.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.run(&all).ok().json()
    }

    /// Points this user's home at `server`'s (new) address.
    pub fn repoint(&self, server: &Server) {
        self.repoint_addr(&server.addr);
    }

    /// Points this user's home at `addr` (a relay in front of the server).
    pub fn repoint_addr(&self, addr: &str) {
        let path = self.home.join("server.json");
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("server.json")).expect("JSON");
        v["server"] = addr.into();
        std::fs::write(&path, v.to_string()).expect("write server.json");
    }

    /// This user's safety code, as `mdrop whoami` shows it (what they read
    /// to an attorney who adds them to a matter).
    #[track_caller]
    pub fn code(&self) -> String {
        self.json(&["whoami"])["safety_code"]
            .as_str()
            .expect("safety code")
            .to_owned()
    }

    /// `matter add MATTER ID --role ROLE` run by this user (an attorney),
    /// with `target`'s safety code.
    #[track_caller]
    pub fn add_member(&self, matter: &str, target: &Self, id: &str, role: &str) -> Run {
        let code = target.code();
        self.run(&[
            "matter",
            "add",
            matter,
            id,
            "--role",
            role,
            "--expect-code",
            &code,
        ])
    }

    /// keygen + enroll with `invite`.
    #[track_caller]
    pub fn enroll(&self, server: &Server, invite: &str, id: &str) -> Value {
        self.json(&["keygen"]);
        self.json(&[
            "enroll",
            &server.addr,
            "--fingerprint",
            &server.fingerprint,
            "--invite",
            invite,
            "--id",
            id,
            "--name",
            id,
        ])
    }
}

/// A started server with an enrolled admin.
#[derive(Debug)]
pub struct World {
    /// Temporary directory holding everything.
    pub tmp: tempfile::TempDir,
    /// The server.
    pub server: Server,
    /// The bootstrap admin.
    pub admin: User,
}

impl World {
    /// Starts a fresh server and enrolls `admin@operator`.
    pub fn new() -> Self {
        Self::with_server_args(|_| Vec::new())
    }

    /// [`World::new`] whose server gets the extra `mdropd serve`
    /// arguments `extra` makes (given the world's temporary directory).
    pub fn with_server_args(extra: impl FnOnce(&Path) -> Vec<String>) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let extra = extra(tmp.path());
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let server = Server::start_with(&tmp.path().join("data"), &extra);
        let admin = User::new(tmp.path(), "admin");
        let invite = server.invite.clone().expect("bootstrap invite");
        admin.enroll(&server, &invite, "admin@operator");
        Self { tmp, server, admin }
    }

    /// Creates an organization.
    pub fn org(&self, id: &str, kind: &str) {
        self.admin
            .json(&["admin", "org", "create", id, "--kind", kind]);
    }

    /// Mints an invite for `org`.
    pub fn invite(&self, org: &str) -> String {
        self.admin.json(&["admin", "invite", "--org", org])["invite"]
            .as_str()
            .expect("invite")
            .to_owned()
    }

    /// A new enrolled user `id` (its org must exist).
    pub fn user(&self, id: &str) -> User {
        let org = id.split('@').nth(1).expect("org");
        let user = User::new(self.tmp.path(), id);
        let invite = self.invite(org);
        user.enroll(&self.server, &invite, id);
        user
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// A protocol-level client for tests that need to do what `mdrop` never
/// would (forged signatures, several requests on one connection).
#[derive(Debug)]
pub struct RawClient {
    endpoint: quinn::Endpoint,
    /// The connection.
    pub conn: quinn::Connection,
    /// The key it authenticated with.
    pub key: ed25519_dalek::SigningKey,
}

impl RawClient {
    /// Connects to `server` with `key`.
    pub async fn connect_with(server: &Server, key: ed25519_dalek::SigningKey) -> Self {
        matterdrop_common::tls::install_crypto_provider();
        let pin = matterdrop_common::tls::ServerPin::Fingerprint(server.fingerprint.clone());
        let (cfg, _) = matterdrop_common::tls::client_config(&key, &pin).expect("client config");
        let endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        let conn = endpoint
            .connect_with(cfg, server.addr.parse().expect("server addr"), "localhost")
            .expect("connect")
            .await
            .expect("handshake");
        Self {
            endpoint,
            conn,
            key,
        }
    }

    /// Connects as `user`, with the signing key from its home.
    pub async fn connect(server: &Server, user: &User) -> Self {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let pem = std::fs::read_to_string(user.home.join("signing-key.pem")).expect("key file");
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).expect("unencrypted PKCS#8 key");
        Self::connect_with(server, key).await
    }

    /// Sends raw bytes on a new stream and decodes the answer.
    pub async fn exchange(&self, bytes: &[u8]) -> matterdrop_common::proto::ServerResponse {
        let (mut send, mut recv) = self.conn.open_bi().await.expect("open stream");
        send.write_all(bytes).await.expect("write");
        let _ = send.finish();
        let buf = recv
            .read_to_end(matterdrop_common::proto::MAX_FRAME + 4)
            .await
            .expect("read answer");
        matterdrop_common::proto::decode_frame(&buf).expect("decode answer")
    }

    /// Sends one request.
    pub async fn request(
        &self,
        req: &matterdrop_common::proto::ClientRequest,
    ) -> matterdrop_common::proto::ServerResponse {
        self.exchange(&matterdrop_common::proto::encode(req).expect("encode"))
            .await
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// The error code of a response, panicking if it is not an error.
#[track_caller]
pub fn error_code(
    r: &matterdrop_common::proto::ServerResponse,
) -> matterdrop_common::proto::ErrorCode {
    match r {
        matterdrop_common::proto::ServerResponse::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}
