//! One test binary for the agent: the offline planner, the suggestion engine, the
//! Messages API client and the chat runtime (one binary instead of five, issue 17).

mod agent_offline;
mod agent_suggest;
mod chat_runtime;
#[path = "../support/chat_turn.rs"]
mod chat_turn;
mod llm_client;
mod suggester;
