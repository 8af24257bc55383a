//! The pure heart of dealflow: domain, consent engine, permissions and audit chain.
//!
//! Nothing in here does IO — no tokio, reqwest, ratatui or std::fs. `tests/core_purity.rs`
//! fails the build's tests if that ever changes. Time comes in as arguments.

pub mod agent;
pub mod audit;
pub mod budget;
pub mod calibration;
pub mod consent;
pub mod domain;
pub mod import;
pub mod permissions;
pub mod text;
