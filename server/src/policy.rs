//! Access policy (placeholder, being written).
