//! The agent: tool registry, suggester and offline planner (adapters around the pure FSM in `core::agent`).

pub mod tools;
