//! The offline planner, for when there is no API key: deterministic rules over the
//! pipeline for suggestions, and simple chat intents. It produces the same tool calls
//! the model would (`propose_action` inputs, action tool calls), so everything goes
//! through the same validation, FSM and pipeline. All output is labelled offline.

use crate::core::agent::ToolCall;
use crate::core::domain::{Contact, Deal, Millis};
use serde_json::Value;

mod intents;
mod model;
mod parse;
mod rules;

pub use intents::plan_chat;
pub use model::OfflineModel;
pub use parse::{parse_amount_cents, requested_time};
pub use rules::{rule_proposals, suggest_offline};

pub const OFFLINE_LABEL: &str = "[offline planner - no AI model]";
const DAY: Millis = 86_400_000;
const HOUR: Millis = 3_600_000;
/// A deal untouched this long gets a follow-up.
pub const STALE_DAYS: i64 = 7;

fn contact_for<'a>(deal: &Deal, contacts: &'a [Contact]) -> Option<&'a Contact> {
    contacts.iter().find(|c| c.account == deal.account)
}

fn first_name(c: &Contact) -> &str {
    c.name.split_whitespace().next().unwrap_or(&c.name)
}

/// A chat reply from the intents: labelled text plus the tool calls to file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OfflinePlan {
    pub text: String,
    /// (tool name, input) — ids are assigned by the caller.
    pub calls: Vec<(String, Value)>,
    /// Later rounds, each sent once the previous round's results are back (a chain such
    /// as deal → calendar → draft runs through the same agent loop a model's would).
    pub then: Vec<Vec<(String, Value)>>,
}

/// The plan's calls with ids, as the FSM sees them.
pub fn plan_calls(plan: &OfflinePlan, prefix: &str) -> Vec<ToolCall> {
    plan.calls
        .iter()
        .enumerate()
        .map(|(i, (name, input))| ToolCall {
            id: format!("{prefix}_{i}"),
            name: name.clone(),
            input: input.clone(),
        })
        .collect()
}
