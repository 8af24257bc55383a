//! Suggester (placeholder).
