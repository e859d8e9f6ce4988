//! Merkle log (placeholder, being written).
