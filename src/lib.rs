//! dealflow: a terminal client for a trustworthy AI sales agent.
//!
//! Dependencies point one way:
//! `core` (pure: domain, the consent rule table over gate facts, permissions, audit
//! chain, calibration, agent FSM, text escaping) ← adapters (`store` with its keyring
//! anchor seam, `auth`, `llm`, `connectors`, `config`, `agent`) ← `runtime` (facts from
//! the store, consent seal and audit checkpoint, identity, review, pipeline, batch,
//! chat, the suggestion engine, store leases) ← `tui`, `mcp`, `sandbox` (the emulated
//! Auth0, providers and CRM, and the pipeline wired to them) ← `cli` (the composition
//! root). `wall` holds the wall clock (its only reader, as `clippy.toml` enforces) and
//! random ids, the two impure inputs, for everyone outside `core`; code that decides
//! with time takes it as a parameter. Nothing outside `cli` reaches into `sandbox` or
//! `tui`: signing in to a sandbox is `sandbox::sign_in`, wiring the pipeline to one is
//! `sandbox::wiring`, and `tests/gate/layering.rs` fails on a path that breaks this.
//! Inside `core` nothing is circular: calibration reads the consent bands one way (the
//! target pattern both use is the domain's), and permissions hold budgets one way (the
//! address keys both compare by are the domain's; a budget change is the permissions').
//!
//! Inside `tui` (see `docs/tui.md`): `app` is the model (state and `update(Msg) ->
//! Vec<Effect>`, by feature) and `view` the pure render; both read `layout` and `tab`,
//! never each other. Effects are typed by who runs them (`Store`, `Pipeline`, `Chat`,
//! `Ui`) and `driver` is the one place they run: store effects through `executor` behind
//! one `spawn_blocking` boundary, the rest through the signed-in `services` (held by the
//! app until they exist). The chat machine (`core::agent::Agent`) is the Chat tab's;
//! `runtime::chat::ChatIo` is only its IO.

pub mod agent;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod core;
pub mod files;
pub mod llm;
pub mod mcp;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod tui;
pub mod wall;
