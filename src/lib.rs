//! dealflow: a terminal client for a trustworthy AI sales agent.
//!
//! Dependencies point one way: `core` (pure) ← `store`, `config`, `llm`, `agent` ← `cli`.

pub mod auth;
pub mod agent;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod core;
pub mod mcp;
pub mod runtime;
pub mod llm;
pub mod sandbox;
pub mod store;
