//! Grant tables (placeholder).
