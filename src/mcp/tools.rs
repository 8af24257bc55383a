//! The MCP view of the one tool registry (`agent::tools`, shared with the chat agent),
//! plus `get_action_status`. Annotations say truthfully what each tool does.

use crate::core::domain::ActionKind;
use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Value, json};
use std::sync::Arc;

pub const STATUS_TOOL: &str = "get_action_status";

fn annotations(kind: ActionKind) -> ToolAnnotations {
    let risk = kind.risk();
    let mut a = ToolAnnotations::new()
        .read_only(kind.is_read())
        // Reads touch only the rep's own data; writes reach people outside (email, Slack, invites).
        .open_world(matches!(
            kind,
            ActionKind::SendEmail | ActionKind::ScheduleMeeting | ActionKind::PostSlack
        ));
    if !kind.is_read() {
        a = a
            .destructive(!risk.reversible)
            // Calendar ids and CRM upserts derive from the action id, but each call is a new action.
            .idempotent(false);
    }
    a.title = Some(kind.as_str().replace('_', " "));
    a
}

fn object(v: Value) -> Arc<serde_json::Map<String, Value>> {
    Arc::new(match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    })
}

/// Every tool, writes included only when the user allows MCP writes.
pub fn list(writes_enabled: bool) -> Vec<Tool> {
    let mut out: Vec<Tool> = ActionKind::ALL
        .into_iter()
        .filter(|k| k.is_read() || writes_enabled)
        .map(|k| {
            let spec = crate::agent::tools::action_tool(k);
            let mut t = Tool::new(spec.name, spec.description, object(spec.input_schema));
            t.annotations = Some(annotations(k));
            t
        })
        .collect();
    let mut status = Tool::new(
        STATUS_TOOL,
        "How a write this client requested ended (or whether it still waits for the device).",
        object(
            json!({"type": "object", "properties": {"action_id": {"type": "string"}}, "required": ["action_id"], "additionalProperties": false}),
        ),
    );
    status.annotations = Some(ToolAnnotations::new().read_only(true).open_world(false));
    out.push(status);
    out
}

pub fn kind_of(name: &str) -> Option<ActionKind> {
    ActionKind::parse(name)
}
