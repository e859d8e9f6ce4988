//! RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and proof
//! verification.
//!
//! Leaves are hashed as `SHA-256(0x00 || entry)`, interior nodes as
//! `SHA-256(0x01 || left || right)`, and the tree over `n` leaves splits at
//! the largest power of two strictly smaller than `n` (RFC 9162 §2.1.1).

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Why a Merkle proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not smaller than the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old tree of a consistency proof is larger than the new one.
    #[error("old tree size {old_size} is greater than new tree size {new_size}")]
    SizeOrder {
        /// The old (first) tree size.
        old_size: u64,
        /// The new (second) tree size.
        new_size: u64,
    },
    /// A consistency proof from the empty tree was requested or checked.
    ///
    /// Every tree extends the empty tree, so such a proof proves nothing;
    /// a client whose trusted state is the empty tree needs no proof.
    #[error("consistency proof from the empty tree is meaningless")]
    EmptyOldTree,
    /// The proof does not have the number of hashes its sizes call for.
    #[error("wrong proof length {got}, expected {expected}")]
    WrongProofLength {
        /// The number of hashes in the proof.
        got: usize,
        /// The number of hashes the tree sizes call for.
        expected: usize,
    },
    /// The root computed from the proof differs from the expected root.
    #[error("computed root does not match the expected root")]
    RootMismatch,
    /// A compact range does not have one hash per set bit of its size.
    #[error("compact range for tree size {size} needs {expected} hashes, got {got}")]
    InvalidFrontier {
        /// The claimed tree size.
        size: u64,
        /// The number of hashes the size calls for.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
}

/// Hashes a log entry into a leaf hash: `SHA-256(0x00 || entry)`.
#[must_use]
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// Hashes two children into their parent: `SHA-256(0x01 || left || right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The right edge ("compact range" `[0, size)`) of a Merkle tree.
///
/// Holds the roots of the perfect subtrees the tree decomposes into, from
/// the largest (leftmost) to the smallest, one per set bit of the size: at
/// most 64 hashes whatever the size. Appending a leaf costs amortised O(1)
/// hashes, computing the root O(log n).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from a size and the subtree roots returned by
    /// [`Frontier::nodes`] (for instance after reading them back from
    /// storage).
    ///
    /// # Errors
    ///
    /// [`ProofError::InvalidFrontier`] if `nodes` does not hold exactly one
    /// hash per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Self, ProofError> {
        let expected = size.count_ones() as usize;
        if nodes.len() != expected {
            return Err(ProofError::InvalidFrontier {
                size,
                expected,
                got: nodes.len(),
            });
        }
        Ok(Self { size, nodes })
    }

    /// Appends a leaf hash (see [`leaf_hash`]) to the tree.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        // Every trailing set bit of the size is a perfect subtree of the
        // same height as `hash` which now gets a right sibling.
        while size & 1 == 1 {
            let Some(left) = self.nodes.pop() else {
                break; // Unreachable: one node per set bit of the size.
            };
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// The number of leaves in the tree.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees making up the tree, largest first.
    #[must_use]
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// The Merkle tree hash of the whole tree ([`EMPTY_ROOT`] when empty).
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut rest = self.nodes.iter().rev();
        match rest.next() {
            None => EMPTY_ROOT,
            Some(last) => rest.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// The Merkle tree hash (root) of the tree made of `leaves` (leaf hashes).
///
/// O(n) hashing and O(log n) memory.
#[must_use]
pub fn root(leaves: &[Hash]) -> Hash {
    let mut frontier = Frontier::new();
    for leaf in leaves {
        frontier.push(*leaf);
    }
    frontier.root()
}

/// The largest power of two strictly smaller than `n`; `n` must be >= 2.
fn split_point(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// RFC 9162 §2.1.3.1 `PATH(m, D_n)`: siblings from the leaf up to the root.
/// Each sibling subtree is hashed once and they are disjoint: O(n) total.
fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// RFC 9162 §2.1.4.1 `SUBPROOF(m, D_n, b)`, for `0 < m <= n`.
fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// The inclusion proof (audit path, RFC 9162 §2.1.3.1) of leaf `index` in
/// the tree made of all `leaves`, ordered from the leaf level up.
///
/// O(n) hashing.
///
/// # Errors
///
/// [`ProofError::IndexOutOfRange`] if `index >= leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let out_of_range = ProofError::IndexOutOfRange {
        index,
        size: leaves.len() as u64,
    };
    let m = usize::try_from(index).map_err(|_| out_of_range.clone())?;
    if m >= leaves.len() {
        return Err(out_of_range);
    }
    let mut proof = Vec::new();
    path(m, leaves, &mut proof);
    Ok(proof)
}

/// The consistency proof (RFC 9162 §2.1.4.1) from the tree made of the first
/// `old_size` leaves to the tree made of all `leaves`.
///
/// Empty when `old_size == leaves.len()`. O(n) hashing.
///
/// # Errors
///
/// [`ProofError::EmptyOldTree`] if `old_size` is 0, and
/// [`ProofError::SizeOrder`] if it is greater than `leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new_size = leaves.len() as u64;
    if old_size > new_size {
        return Err(ProofError::SizeOrder { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    let m = usize::try_from(old_size).map_err(|_| ProofError::SizeOrder { old_size, new_size })?;
    let mut proof = Vec::new();
    subproof(m, leaves, true, &mut proof);
    Ok(proof)
}

/// Splits the inclusion proof of `index` in a tree of `size` (`index < size`)
/// into its inner part (below the point where the paths to `index` and to
/// the last leaf meet) and its border part (left siblings above it).
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    (inner, border)
}

/// Chains `seed` with inner proof hashes, placing each on the side given by
/// the bits of `index`.
fn chain_inner(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 0 {
            seed = node_hash(&seed, h);
        } else {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

/// Like [`chain_inner`] but only uses the hashes that are left siblings.
fn chain_inner_right(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

/// Chains `seed` with border hashes, which are all left siblings.
fn chain_border_right(seed: Hash, proof: &[Hash]) -> Hash {
    proof.iter().fold(seed, |acc, h| node_hash(h, &acc))
}

/// The root implied by an inclusion proof of `leaf` at `index` in a tree of
/// `size` leaves (RFC 9162 §2.1.3.2 without the final comparison).
///
/// # Errors
///
/// [`ProofError::IndexOutOfRange`] if `index >= size` and
/// [`ProofError::WrongProofLength`] if the proof is not exactly as long as
/// `index` and `size` call for.
pub fn root_from_inclusion_proof(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            expected: inner + border,
        });
    }
    let (inner_proof, border_proof) = proof.split_at(inner);
    let hash = chain_inner(*leaf, inner_proof, index);
    Ok(chain_border_right(hash, border_proof))
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
///
/// # Errors
///
/// [`ProofError::IndexOutOfRange`] if `index >= size` (so always for the
/// empty tree), [`ProofError::WrongProofLength`] if the proof length does
/// not match, [`ProofError::RootMismatch`] if the proof leads elsewhere.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion_proof(leaf, index, size, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the
/// tree of `size1` leaves with root `root1` (RFC 9162 §2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots. A proof from the empty
/// tree (`size1 == 0`) is rejected with [`ProofError::EmptyOldTree`], as
/// the reference test vectors require: callers whose trusted state is the
/// empty tree must not ask for a proof.
///
/// # Errors
///
/// [`ProofError::SizeOrder`] if `size1 > size2`,
/// [`ProofError::EmptyOldTree`] if `size1 == 0`,
/// [`ProofError::WrongProofLength`] if the proof length does not match the
/// sizes, and [`ProofError::RootMismatch`] if either root differs from the
/// one the proof leads to.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizeOrder {
            old_size: size1,
            new_size: size2,
        });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                expected: 0,
            });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }

    // Now 0 < size1 < size2. The proof is the part of the inclusion proof of
    // leaf size1 - 1 in the tree of size2 that lies above the largest
    // perfect subtree ending at size1 (of 2^shift leaves), preceded by that
    // subtree's root unless it is the whole old tree (given as root1).
    let (inner, border) = decompose(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    let inner = inner - shift; // shift < inner since size1 < size2.
    let start = usize::from(size1 != 1u64 << shift);
    let expected = start + inner + border;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            expected,
        });
    }
    let (seed, proof) = match proof.split_first() {
        Some((first, rest)) if start == 1 => (*first, rest),
        _ => (*root1, proof),
    };
    let (inner_proof, border_proof) = proof.split_at(inner);
    let mask = (size1 - 1) >> shift;

    let hash1 = chain_border_right(chain_inner_right(seed, inner_proof, mask), border_proof);
    if hash1 != *root1 {
        return Err(ProofError::RootMismatch);
    }
    let hash2 = chain_border_right(chain_inner(seed, inner_proof, mask), border_proof);
    if hash2 != *root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Independent recursive reference implementation of RFC 9162 MTH.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest(b"").into(),
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Flips bit `bit` of `h`.
    fn flipped(h: &Hash, bit: usize) -> Hash {
        let mut h = *h;
        h[bit / 8] ^= 1 << (bit % 8);
        h
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT, <[u8; 32]>::from(Sha256::digest(b"")));
        assert_eq!(root(&[]), EMPTY_ROOT);
        assert_eq!(Frontier::new().root(), EMPTY_ROOT);
    }

    /// Roots of the RFC 6962 test tree (the leaves used by the vectors in
    /// tests/testdata/tlog), computed independently with Python's hashlib.
    #[test]
    fn known_answer_roots() {
        let entries: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let want = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let mut frontier = Frontier::new();
        for (n, want) in want.iter().enumerate() {
            assert_eq!(hex(&root(&hashes[..n])), *want, "root of size {n}");
            assert_eq!(hex(&frontier.root()), *want, "frontier of size {n}");
            if let Some(h) = hashes.get(n) {
                frontier.push(*h);
            }
        }
    }

    #[test]
    fn frontier_roundtrips_through_parts_and_rejects_bad_parts() {
        let mut f = Frontier::new();
        for l in leaves(13) {
            f.push(l);
        }
        assert_eq!(f.nodes().len(), 3);
        let g = Frontier::from_parts(f.size(), f.nodes().to_vec()).unwrap();
        assert_eq!(f, g);
        assert!(matches!(
            Frontier::from_parts(12, f.nodes().to_vec()),
            Err(ProofError::InvalidFrontier { .. })
        ));
    }

    #[test]
    fn frontier_matches_reference_root_for_all_sizes_up_to_300() {
        let all = leaves(300);
        let mut f = Frontier::new();
        for n in 0..=all.len() {
            assert_eq!(f.size(), n as u64);
            assert_eq!(f.root(), reference_root(&all[..n]), "size {n}");
            assert_eq!(f.nodes().len(), n.count_ones() as usize);
            if let Some(l) = all.get(n) {
                f.push(*l);
            }
        }
    }

    #[test]
    fn generator_errors() {
        let l = leaves(5);
        assert_eq!(
            inclusion_proof(&l, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert!(inclusion_proof(&[], 0).is_err());
        assert_eq!(consistency_proof(&l, 0), Err(ProofError::EmptyOldTree));
        assert_eq!(
            consistency_proof(&l, 6),
            Err(ProofError::SizeOrder {
                old_size: 6,
                new_size: 5
            })
        );
        assert_eq!(consistency_proof(&l, 5), Ok(vec![]));
        assert_eq!(inclusion_proof(&l[..1], 0), Ok(vec![]));
    }

    #[test]
    fn wrong_index_or_size_fails() {
        let l = leaves(11);
        let r = root(&l);
        let p = inclusion_proof(&l, 6).unwrap();
        verify_inclusion(&l[6], 6, 11, &p, &r).unwrap();
        assert!(verify_inclusion(&l[6], 7, 11, &p, &r).is_err());
        // The size is not committed to by the root: a proof for size 11 is also
        // valid for size 12 or 16 (same shape), but not for size 7.
        assert!(verify_inclusion(&l[6], 6, 7, &p, &r).is_err());
        assert!(verify_inclusion(&l[7], 6, 11, &p, &r).is_err());
        assert!(verify_inclusion(&l[6], 6, 11, &p[..p.len() - 1], &r).is_err());
        let c = consistency_proof(&l, 6).unwrap();
        let r6 = root(&l[..6]);
        verify_consistency(6, 11, &c, &r6, &r).unwrap();
        assert!(verify_consistency(5, 11, &c, &r6, &r).is_err());
        assert!(verify_consistency(6, 8, &c, &r6, &r).is_err());
        assert!(verify_consistency(6, 11, &c, &r, &r6).is_err());
    }

    #[test]
    fn every_proof_of_small_trees_verifies() {
        let all = leaves(40);
        for size in 1..=all.len() {
            let l = &all[..size];
            let r = root(l);
            for i in 0..size {
                check_inclusion(l, &r, i, &[]);
            }
            for old in 1..=size {
                check_consistency(l, &r, old, &[]);
            }
        }
    }

    fn check_inclusion(l: &[Hash], r: &Hash, index: usize, flip_bits: &[usize]) {
        let size = l.len() as u64;
        let i = index as u64;
        let p = inclusion_proof(l, i).unwrap();
        verify_inclusion(&l[index], i, size, &p, r).unwrap();
        for &bit in flip_bits {
            assert!(verify_inclusion(&l[index], i, size, &p, &flipped(r, bit)).is_err());
            assert!(verify_inclusion(&flipped(&l[index], bit), i, size, &p, r).is_err());
            for j in 0..p.len() {
                let mut q = p.clone();
                q[j] = flipped(&q[j], bit);
                assert!(verify_inclusion(&l[index], i, size, &q, r).is_err());
            }
        }
    }

    fn check_consistency(l: &[Hash], r: &Hash, old: usize, flip_bits: &[usize]) {
        let (s1, s2) = (old as u64, l.len() as u64);
        let r1 = root(&l[..old]);
        let p = consistency_proof(l, s1).unwrap();
        verify_consistency(s1, s2, &p, &r1, r).unwrap();
        for &bit in flip_bits {
            assert!(verify_consistency(s1, s2, &p, &flipped(&r1, bit), r).is_err());
            assert!(verify_consistency(s1, s2, &p, &r1, &flipped(r, bit)).is_err());
            for j in 0..p.len() {
                let mut q = p.clone();
                q[j] = flipped(&q[j], bit);
                assert!(verify_consistency(s1, s2, &q, &r1, r).is_err());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Proofs for random trees verify; flipping a bit anywhere (proof
        /// element, leaf, either root) breaks them. The flipped bits are the
        /// first and last bit of each hash plus a random sample, which
        /// covers every bit position across runs at a fraction of the cost.
        #[test]
        fn proofs_verify_and_tampering_fails(
            size in 0usize..=2048,
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 8),
            random_bits in proptest::collection::vec(0usize..256, 6),
        ) {
            let l = leaves(size);
            let r = root(&l);
            prop_assert_eq!(r, reference_root(&l));
            let mut frontier = Frontier::new();
            for leaf in &l {
                frontier.push(*leaf);
            }
            prop_assert_eq!(frontier.size(), size as u64);
            prop_assert_eq!(frontier.root(), r);
            let mut bits = vec![0, 255];
            bits.extend(random_bits);
            if size == 0 {
                prop_assert!(inclusion_proof(&l, 0).is_err());
                prop_assert!(verify_inclusion(&leaf_hash(b""), 0, 0, &[], &r).is_err());
                return Ok(());
            }
            // Every index for small trees, otherwise a sample plus the ends.
            let indices: Vec<usize> = if size <= 64 {
                (0..size).collect()
            } else {
                let mut v: Vec<usize> = picks.iter().map(|p| p.index(size)).collect();
                v.extend([0, size - 1, size / 2]);
                v
            };
            for (n, &i) in indices.iter().enumerate() {
                check_inclusion(&l, &r, i, if n == 0 { &bits } else { &[] });
            }
            // Old sizes 1..=size: every one for small trees, else a sample.
            let olds: Vec<usize> = if size <= 64 {
                (1..=size).collect()
            } else {
                let mut v: Vec<usize> = picks.iter().map(|p| 1 + p.index(size)).collect();
                v.extend([1, size, size - 1, size.next_power_of_two() / 2]);
                v
            };
            for (n, &old) in olds.iter().enumerate() {
                check_consistency(&l, &r, old, if n == 0 { &bits } else { &[] });
            }
        }
    }
}
