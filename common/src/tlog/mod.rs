//! The Merkle log: RFC 6962 / RFC 9162 Merkle trees, inclusion and
//! consistency proofs, and C2SP checkpoints carried in Ed25519 signed notes.
//!
//! Everything here is pure computation, without I/O.
//!
//! - [`leaf_hash`], [`node_hash`], [`root`], [`Frontier`]: tree hashing,
//!   in one pass or incrementally with O(log n) memory.
//! - [`inclusion_proof`], [`consistency_proof`], [`verify_inclusion`],
//!   [`verify_consistency`]: proofs (RFC 9162 §2.1.3 and §2.1.4).
//! - [`NoteSigner`], [`NoteVerifier`], [`sign_note`], [`open_note`]: C2SP
//!   signed notes (<https://c2sp.org/signed-note>).
//! - [`Checkpoint`], [`sign_checkpoint`], [`open_checkpoint`]: C2SP tree
//!   heads (<https://c2sp.org/tlog-checkpoint>).

mod checkpoint;
pub mod cosignature;
mod merkle;
mod note;

pub use checkpoint::{Checkpoint, open_checkpoint, sign_checkpoint};
pub use merkle::{
    EMPTY_ROOT, Frontier, Hash, ProofError, consistency_proof, inclusion_proof, leaf_hash,
    node_hash, root, root_from_inclusion_proof, verify_consistency, verify_inclusion,
};
pub use note::{
    MAX_NOTE_SIGNATURES, MAX_NOTE_SIZE, NoteError, NoteSigner, NoteVerifier, check_note_body,
    is_valid_key_name, open_note, sign_note,
};
