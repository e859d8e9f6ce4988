//! What a long signed roster costs a push.
//!
//! Starts a real `mdropd`, creates two matters with the real `mdrop`, grows
//! one of them to `--statements` roster statements (an attorney's signed
//! `set-scope` statements, sent over QUIC with her key), and then times
//! `mdrop push` of a small file on both matters, interleaved, `--rounds`
//! times. The first push on the long matter verifies every statement (a
//! client that never saw them); later ones verify only new statements and
//! read the rest from the client's cache.
//!
//! ```text
//! cargo build --release -p matterdrop -p matterdrop-server -p matterdrop-benches
//! target/release/roster --statements 1000 --rounds 15
//! ```

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use matterdrop_common::proto::{
    self, ClientRequest, RosterAppendRequest, RosterGetRequest, ServerResponse,
};
use matterdrop_common::roles::Task;
use matterdrop_common::roster::{Change, Check, Roster, Statement};
use serde_json::Value;

const FRESH: &str = "2026-RB-FRESH";
const LONG: &str = "2026-RB-LONG";

struct Options {
    statements: u64,
    rounds: usize,
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        statements: 1000,
        rounds: 15,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--statements" => o.statements = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse()?,
            "-h" | "--help" => {
                println!("usage: roster [--statements N (1000)] [--rounds N (15)]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    ensure!(
        (3..=100_000).contains(&o.statements),
        "--statements 3..=100000"
    );
    ensure!((1..=200).contains(&o.rounds), "--rounds 1..=200");
    Ok(o)
}

/// The release (or debug) directory this binary runs from.
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("binary directory")
}

struct Server {
    child: Child,
    addr: String,
    fingerprint: String,
    invite: String,
}

impl Server {
    fn start(dir: &Path, data: &Path) -> Result<Self> {
        let log = std::fs::File::create(data.with_extension("log"))?;
        let mut child = Command::new(dir.join("mdropd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--json", "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("mdropd (build it in release first)")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut invite = String::new();
        loop {
            let line = lines.next().context("mdropd exited")??;
            let v: Value = serde_json::from_str(&line)?;
            if let Some(i) = v["invite"].as_str() {
                invite = i.to_owned();
                continue;
            }
            return Ok(Self {
                child,
                addr: v["listen"].as_str().context("listen")?.to_owned(),
                fingerprint: v["fingerprint"].as_str().context("fp")?.to_owned(),
                invite,
            });
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Mdrop {
    bin: PathBuf,
}

impl Mdrop {
    fn run(&self, home: &Path, args: &[&str]) -> Result<(Value, Duration)> {
        let start = Instant::now();
        let out = Command::new(&self.bin)
            .arg("--home")
            .arg(home)
            .arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        let took = start.elapsed();
        ensure!(
            out.status.success(),
            "mdrop {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((serde_json::from_slice(&out.stdout)?, took))
    }

    fn enroll(&self, home: &Path, server: &Server, invite: &str, id: &str) -> Result<()> {
        self.run(home, &["keygen"])?;
        self.run(
            home,
            &[
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
            ],
        )?;
        Ok(())
    }
}

/// Sends `n` signed `set-scope` statements on `matter` as `key`'s owner,
/// over one QUIC connection.
async fn grow(server: &Server, key: SigningKey, me: &str, matter: &str, n: u64) -> Result<()> {
    matterdrop_common::tls::install_crypto_provider();
    let pin = matterdrop_common::tls::ServerPin::Fingerprint(server.fingerprint.clone());
    let (cfg, _) = matterdrop_common::tls::client_config(&key, &pin)?;
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let conn = endpoint
        .connect_with(cfg, server.addr.parse()?, "localhost")?
        .await?;
    let request = async |req: &ClientRequest| -> Result<ServerResponse> {
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(&proto::encode(req)?).await?;
        send.finish()?;
        let buf = recv.read_to_end(proto::MAX_FRAME + 4).await?;
        Ok(proto::decode_frame(&buf)?)
    };
    let ServerResponse::Roster(info) = request(&ClientRequest::RosterGet(RosterGetRequest {
        matter: matter.into(),
        from: 0,
    }))
    .await?
    else {
        bail!("no roster");
    };
    let mut roster = Roster::from_chain(&info.statements, Check::Signatures)?;
    for i in 0..n {
        let scope = if i % 2 == 0 {
            vec![Task::DocumentReview, Task::Drafting]
        } else {
            vec![Task::DocumentReview]
        };
        let entry = Statement {
            matter: matter.into(),
            seq: roster.len,
            prev: Some(roster.head),
            time: roster.time,
            signer: me.into(),
            signer_key: key.verifying_key().to_bytes(),
            change: Change::SetScope { scope },
        }
        .sign(&key)?;
        match request(&ClientRequest::RosterAppend(RosterAppendRequest {
            matter: matter.into(),
            entry: entry.clone(),
            text: None,
        }))
        .await?
        {
            ServerResponse::Roster(_) => roster.apply(&entry, Check::Cached)?,
            other => bail!("statement {} refused: {other:?}", roster.len),
        }
    }
    conn.close(0u32.into(), b"");
    endpoint.wait_idle().await;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let o = parse_args()?;
    let dir = bin_dir()?;
    let md = Mdrop {
        bin: dir.join("mdrop"),
    };
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let server = Server::start(&dir, &root.join("data"))?;
    let admin = root.join("admin");
    md.enroll(&admin, &server, &server.invite.clone(), "admin@operator")?;
    md.run(
        &admin,
        &["admin", "org", "create", "firm-a", "--kind", "firm"],
    )?;
    md.run(
        &admin,
        &["admin", "org", "create", "lpo-1", "--kind", "provider"],
    )?;
    let invite = |org: &str| -> Result<String> {
        Ok(
            md.run(&admin, &["admin", "invite", "--org", org])?.0["invite"]
                .as_str()
                .context("invite")?
                .to_owned(),
        )
    };
    let alice = root.join("alice");
    let bob = root.join("bob");
    md.enroll(&alice, &server, &invite("firm-a")?, "alice@firm-a")?;
    md.enroll(&bob, &server, &invite("lpo-1")?, "bob@lpo-1")?;
    let code = md.run(&bob, &["whoami"])?.0["safety_code"]
        .as_str()
        .context("code")?
        .to_owned();
    let ack = root.join("ack.txt");
    std::fs::write(&ack, "Confidential.\n")?;
    for matter in [FRESH, LONG] {
        md.run(
            &alice,
            &[
                "matter",
                "create",
                matter,
                "--title",
                "Bench",
                "--ack-file",
                ack.to_str().context("path")?,
                "--scope",
                "document-review",
            ],
        )?;
        md.run(
            &alice,
            &[
                "matter",
                "add",
                matter,
                "bob@lpo-1",
                "--role",
                "provider",
                "--expect-code",
                &code,
            ],
        )?;
        md.run(&bob, &["ack", matter, "--yes"])?;
    }
    let pem = std::fs::read_to_string(alice.join("signing-key.pem"))?;
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| anyhow!("alice's key: {e}"))?;
    let grow_start = Instant::now();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(grow(&server, key, "alice@firm-a", LONG, o.statements - 2))?;
    let grew = grow_start.elapsed();

    let file = root.join("note.txt");
    std::fs::write(&file, "a small file\n")?;
    let f = file.to_str().context("path")?;
    let push = |matter: &str| -> Result<Duration> {
        let (v, took) = md.run(&alice, &["push", matter, f, "--task", "document-review"])?;
        ensure!(
            v["recipients"] == serde_json::json!(["alice@firm-a", "bob@lpo-1"]),
            "unexpected recipients {v}"
        );
        Ok(took)
    };
    push(FRESH)?;
    let cold = push(LONG)?;
    let (mut fresh, mut long) = (Vec::new(), Vec::new());
    for _ in 0..o.rounds {
        fresh.push(push(FRESH)?.as_secs_f64() * 1e3);
        long.push(push(LONG)?.as_secs_f64() * 1e3);
    }
    let cache = std::fs::metadata(alice.join("rosters").join(format!("{LONG}.json")))?.len();
    let (mf, ml) = (median(fresh.clone()), median(long.clone()));
    println!(
        "roster benchmark: {} statements on {LONG} (grown in {:.1} s over QUIC), {} rounds",
        o.statements,
        grew.as_secs_f64(),
        o.rounds
    );
    println!("  push, fresh matter (3 statements), median:     {mf:7.1} ms");
    println!(
        "  push, {}-statement matter, cached, median: {ml:7.1} ms  (difference {:+.1} ms)",
        o.statements,
        ml - mf
    );
    println!(
        "  first push on the long matter (verifies all {} statements): {:.1} ms",
        o.statements,
        cold.as_secs_f64() * 1e3
    );
    println!("  roster cache file: {} KiB", cache / 1024);
    println!("  every round (fresh / long, ms):");
    for (a, b) in fresh.iter().zip(&long) {
        println!("    {a:6.1} / {b:6.1}");
    }
    println!(
        "reproduce: cargo build --release -p matterdrop -p matterdrop-server -p matterdrop-benches && target/release/roster --statements {} --rounds {}",
        o.statements, o.rounds
    );
    Ok(())
}
