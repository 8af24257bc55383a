//! dealflow: a terminal client for a trustworthy AI sales agent.
//!
//! Dependencies point one way:
//! `core` (pure: domain, the consent rule table over gate facts, permissions, audit
//! chain, calibration, agent FSM, text escaping) ← adapters (`store` with its keyring
//! anchor seam, `auth`, `llm`, `connectors`, `config`, `agent`) ← `runtime` (facts from
//! the store, consent seal and audit checkpoint, identity, review, pipeline, batch,
//! chat, the suggestion engine) ← `tui`, `mcp` ← `cli` (the composition root, which
//! also wires `sandbox`). The sandbox is still reached from a few runtime and auth
//! helpers (clock, ids, sandbox wiring); moving those out is issue 17's.

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
