//! dealflow: a terminal client for a trustworthy AI sales agent.
//!
//! Dependencies point one way: `core` (pure) ← `store`, `config`, `llm`, `agent` ← `cli`.

pub mod agent;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod core;
pub mod llm;
pub mod mcp;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod tui;
