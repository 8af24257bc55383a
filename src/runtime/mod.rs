//! The runtime wires adapters to the pure core and runs effects. Every surface (CLI,
//! TUI, MCP, batch) goes through it, so every surface gets the same gates.

pub mod auth0;
pub mod batch;
pub mod chat;
pub mod credentials;
pub mod facts;
pub mod identity;
pub mod pipeline;
pub mod review;
pub mod seal;
pub mod suggester;
pub mod trust;
