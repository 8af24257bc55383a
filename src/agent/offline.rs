//! Offline planner (placeholder).
