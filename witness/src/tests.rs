use ed25519_dalek::SigningKey;
use matterdrop_common::tlog::cosignature::CosignatureVerifier;
use matterdrop_common::tlog::{
    Checkpoint, NoteSigner, consistency_proof, leaf_hash, root, sign_checkpoint,
};

use super::*;

struct Log {
    signer: NoteSigner,
    leaves: Vec<Hash>,
}

impl Log {
    fn new(name: &str, seed: u8) -> Self {
        Self {
            signer: NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap(),
            leaves: Vec::new(),
        }
    }

    fn grow(&mut self, n: usize, tag: u8) {
        for i in 0..n {
            self.leaves.push(leaf_hash(&[tag, i as u8]));
        }
    }

    fn note(&self) -> String {
        sign_checkpoint(
            &Checkpoint {
                origin: self.signer.name().to_owned(),
                size: self.leaves.len() as u64,
                root: root(&self.leaves),
            },
            &self.signer,
        )
    }

    fn request(&self, old: u64) -> String {
        let mut s = format!("old {old}\n");
        if old > 0 && old < self.leaves.len() as u64 {
            for h in consistency_proof(&self.leaves, old).unwrap() {
                s.push_str(&STANDARD.encode(h));
                s.push('\n');
            }
        }
        s.push('\n');
        s.push_str(&self.note());
        s
    }
}

fn witness(dir: &Path, log: &Log) -> Witness {
    Witness::open(
        &dir.join("state.json"),
        Cosigner::new("w.example", SigningKey::from_bytes(&[42; 32])).unwrap(),
        vec![log.signer.verifier()],
    )
    .unwrap()
}

#[test]
fn cosigns_only_consistent_growth_and_remembers_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new("mdropd-test", 1);
    let w = witness(dir.path(), &log);
    let v = CosignatureVerifier::from_vkey(&w.vkey()).unwrap();
    log.grow(5, 0);
    let a = w.add_checkpoint(log.request(0).as_bytes(), 100);
    assert_eq!(a.status, 200, "{a:?}");
    let cosigned = format!("{}{}", log.note(), a.body);
    assert_eq!(v.verify_note(&cosigned), Ok(100));
    log.grow(3, 1);
    assert_eq!(w.add_checkpoint(log.request(5).as_bytes(), 101).status, 200);
    // Stale old size: 409 with the size this witness has.
    let a = w.add_checkpoint(log.request(5).as_bytes(), 102);
    assert_eq!(
        (a.status, a.body.as_str(), a.content_type),
        (409, "8\n", SIZE_CONTENT_TYPE)
    );
    // A fork: same size, another root.
    let mut fork = Log::new("mdropd-test", 1);
    fork.grow(8, 9);
    assert_eq!(
        w.add_checkpoint(fork.request(8).as_bytes(), 103).status,
        422
    );
    // A fork that grows from the witnessed size with a proof from another tree.
    fork.grow(2, 9);
    assert_eq!(
        w.add_checkpoint(fork.request(8).as_bytes(), 104).status,
        422
    );
    // The log's own next checkpoint is fine.
    log.grow(2, 2);
    assert_eq!(w.add_checkpoint(log.request(8).as_bytes(), 105).status, 200);
    // Unknown origin; known origin with another key; old beyond the size.
    let other = Log::new("other-log", 2);
    assert_eq!(
        w.add_checkpoint(other.request(0).as_bytes(), 106).status,
        404
    );
    let impostor = Log::new("mdropd-test", 3);
    assert_eq!(
        w.add_checkpoint(impostor.request(10).as_bytes(), 107)
            .status,
        403
    );
    assert_eq!(w.add_checkpoint(log.request(0).as_bytes(), 108).status, 409);
    let mut big = log.request(10);
    big.replace_range(..6, "old 99");
    assert_eq!(w.add_checkpoint(big.as_bytes(), 109).status, 400);
    assert_eq!(w.add_checkpoint(b"garbage", 110).status, 400);
    // The state survives a restart.
    drop(w);
    let w = witness(dir.path(), &log);
    let a = w.add_checkpoint(log.request(0).as_bytes(), 111);
    assert_eq!((a.status, a.body.as_str()), (409, "10\n"));
}
