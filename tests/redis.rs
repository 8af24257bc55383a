//! Everything that needs a Redis server of its own or the shared one through the real
//! binary: the CLI on a Redis store, a team's per-member ACL users, and the store over
//! TLS. One binary, so CI links it once.

#![allow(clippy::unwrap_used)]

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/tls.rs"]
mod tls;

#[path = "redis/cli.rs"]
mod cli;
#[path = "redis/team_acl.rs"]
mod team_acl;
#[path = "redis/tls_store.rs"]
mod tls_store;
