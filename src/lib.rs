//! dealflow: a terminal client for a trustworthy AI sales agent.
//!
//! Dependencies point one way: `core` (pure) ← `store`, `config` ← `cli`.

pub mod cli;
pub mod config;
pub mod core;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod tui;
