//! Canonical signed messages (placeholder, being written).
