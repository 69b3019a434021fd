//! GTID sets (placeholder).
