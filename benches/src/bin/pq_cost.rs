//! `pq-cost`: what hybrid post-quantum age recipients cost against classic
//! X25519 ones, in-process, for 1, 5 and 50 readers.
//!
//! Every file part Matterdrop stores is one age file whose header wraps the
//! file key to each reader (`common::agekey::Recipients`, what `push`,
//! `deliver` use). For each reader count and key type this measures, in
//! one run and interleaved:
//!
//! - **prepare**: parsing the readers' keys into `Recipients`, which a push
//!   does once, median of `--iters`;
//! - **wrap**: the time to build the encryptor and write the header of one
//!   age file (all the per-reader public-key work of one part), median of
//!   `--iters` files, and that time per reader;
//! - **header bytes**: the age header of one part (the per-part overhead on
//!   the wire and on disk; payload overhead is the same for both types);
//! - **unwrap**: the time for one reader to open that header (its identity
//!   tried against every stanza, as on pull);
//! - **1 GiB** (`--size-mib`): encrypt then decrypt `--size-mib` MiB in
//!   parts of 32 MiB, from and to memory, as push and pull do (every part a
//!   new age file with its own header), MB/s of plaintext, and the hybrid
//!   figure's ratio to classic.
//!
//! ```text
//! cargo build --release -p matterdrop-benches && target/release/pq-cost --size-mib 1024 --iters 20
//! ```

use std::io::{Read as _, Write as _};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use matterdrop_common::agekey::{AgeIdentity, AgeKey, Recipients};

const PART: usize = 32 << 20;

fn arg(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .context("missing value")?
            .parse()
            .with_context(|| name.to_owned()),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One age file of `plain` to `r`.
fn encrypt(r: &Recipients, plain: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plain.len() + 4096);
    let mut w = r.encryptor()?.wrap_output(&mut out)?;
    w.write_all(plain)?;
    w.finish()?;
    Ok(out)
}

fn decrypt(id: &AgeIdentity, file: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let dec = age::Decryptor::new_buffered(file)?;
    let mut r = dec.decrypt(std::iter::once(id as &dyn age::Identity))?;
    out.clear();
    r.read_to_end(out)?;
    Ok(())
}

fn header_len(file: &[u8]) -> Result<usize> {
    let end = file
        .windows(4)
        .position(|w| w == b"\n---")
        .context("no header end")?;
    let mac_end = file[end + 1..]
        .iter()
        .position(|&b| b == b'\n')
        .context("no MAC line end")?;
    Ok(end + 1 + mac_end + 1)
}

struct Case {
    kind: &'static str,
    readers: usize,
    ids: Vec<AgeIdentity>,
    keys: Vec<AgeKey>,
    recipients: Recipients,
    prepare: Vec<f64>,
    wrap: Vec<f64>,
    unwrap: Vec<f64>,
    header: usize,
    enc: Vec<f64>,
    dec: Vec<f64>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = usize::try_from(arg(&args, "--size-mib", 1024)?)? << 20;
    let iters = arg(&args, "--iters", 20)?;
    let rounds = arg(&args, "--rounds", 3)?;
    let mut cases = Vec::new();
    for readers in [1usize, 5, 50] {
        for kind in ["classic", "hybrid"] {
            let ids: Vec<AgeIdentity> = (0..readers)
                .map(|_| {
                    if kind == "hybrid" {
                        AgeIdentity::generate_hybrid()
                    } else {
                        AgeIdentity::generate_classic()
                    }
                })
                .collect();
            let keys: Vec<AgeKey> = ids.iter().map(AgeIdentity::public).collect();
            let recipients = Recipients::new(&keys).map_err(|e| anyhow!(e))?;
            cases.push(Case {
                kind,
                readers,
                ids,
                keys,
                recipients,
                prepare: Vec::new(),
                wrap: Vec::new(),
                unwrap: Vec::new(),
                header: 0,
                enc: Vec::new(),
                dec: Vec::new(),
            });
        }
    }
    // Key wrapping and header size, interleaved.
    for _ in 0..iters {
        for c in &mut cases {
            let t = Instant::now();
            c.recipients = Recipients::new(&c.keys).map_err(|e| anyhow!(e))?;
            c.prepare.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let file = encrypt(&c.recipients, b"")?;
            c.wrap.push(t.elapsed().as_secs_f64() * 1000.0);
            c.header = header_len(&file)?;
            // The last reader's stanza is tried last: the worst case.
            let last = c.ids.last().context("no reader")?;
            let mut out = Vec::new();
            let t = Instant::now();
            decrypt(last, &file, &mut out)?;
            c.unwrap.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    // Whole transfers' crypto, 5 readers, interleaved classic/hybrid.
    let mut data = vec![0u8; PART];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for b in data.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *b = s as u8;
    }
    let parts = size.div_ceil(PART);
    let mut out = Vec::with_capacity(PART);
    for _ in 0..rounds {
        for c in cases.iter_mut().filter(|c| c.readers == 5) {
            let mut files = Vec::with_capacity(parts);
            let t = Instant::now();
            for p in 0..parts {
                let n = PART.min(size - p * PART);
                files.push(encrypt(&c.recipients, &data[..n])?);
            }
            c.enc.push(size as f64 / t.elapsed().as_secs_f64() / 1e6);
            let t = Instant::now();
            for f in &files {
                decrypt(&c.ids[0], f, &mut out)?;
            }
            c.dec.push(size as f64 / t.elapsed().as_secs_f64() / 1e6);
        }
    }

    println!(
        "pq-cost: {iters} files per case (wrap/unwrap medians), {} MiB in 32 MiB parts × {rounds} rounds (5 readers), one thread",
        size >> 20
    );
    println!(
        "| readers | key type | prepare readers (once per push), ms | wrap one part, ms | per reader, ms | header bytes per part | unwrap, ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for c in &mut cases {
        let w = median(&mut c.wrap);
        println!(
            "| {} | {} | {:.3} | {w:.3} | {:.3} | {} | {:.3} |",
            c.readers,
            c.kind,
            median(&mut c.prepare),
            w / c.readers as f64,
            c.header,
            median(&mut c.unwrap)
        );
    }
    let (classic, hybrid): (Vec<&mut Case>, Vec<&mut Case>) = cases
        .iter_mut()
        .filter(|c| c.readers == 5)
        .partition(|c| c.kind == "classic");
    let (c, h) = (&classic[0], &hybrid[0]);
    let (ce, cd) = (median(&mut c.enc.clone()), median(&mut c.dec.clone()));
    let (he, hd) = (median(&mut h.enc.clone()), median(&mut h.dec.clone()));
    println!(
        "| {} MiB, 5 readers | encrypt MB/s | decrypt MB/s |",
        size >> 20
    );
    println!("|---|---|---|");
    println!("| classic | {ce:.0} | {cd:.0} |");
    println!(
        "| hybrid | {he:.0} ({:.3}× classic) | {hd:.0} ({:.3}× classic) |",
        he / ce,
        hd / cd
    );
    // A 1 GiB packet is 32 parts and a manifest: 33 age files, readers
    // prepared once.
    let mut packet = |kind: &str| -> Result<f64> {
        let c = cases
            .iter_mut()
            .find(|c| c.readers == 50 && c.kind == kind)
            .context("50 readers")?;
        Ok(median(&mut c.prepare) + 33.0 * median(&mut c.wrap))
    };
    let (h, c) = (packet("hybrid")?, packet("classic")?);
    println!(
        "key work of a 1 GiB push (33 age files) to 50 readers: hybrid {h:.1} ms, classic {c:.1} ms: hybrid adds {:.1} ms",
        h - c
    );
    println!(
        "reproduce: cargo build --release -p matterdrop-benches && target/release/pq-cost --size-mib {} --iters {iters} --rounds {rounds}",
        size >> 20
    );
    Ok(())
}
