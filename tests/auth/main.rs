//! One test binary for sign-in and secrets: the Auth0 client against the emulator (and
//! the emulator's own conformance), the auth CLI, and the canaries that no secret
//! reaches a log, the screen or the model (one binary instead of four, issue 17).

mod auth_canary;
mod auth_cli;
mod auth_client;
#[path = "../support/chat_turn.rs"]
mod chat_turn;
mod secret_canary;
