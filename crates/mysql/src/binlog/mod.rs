//! Binlog decoding (placeholder; see the decoder task).
