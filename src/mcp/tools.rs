//! The MCP view of the tool registry: one tool per action kind, plus
//! `get_action_status`. Annotations say truthfully what each tool does.

use crate::core::domain::ActionKind;
use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Value, json};
use std::sync::Arc;

pub const STATUS_TOOL: &str = "get_action_status";

fn email_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "to": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1},
            "cc": {"type": "array", "items": {"type": "string", "format": "email"}},
            "subject": {"type": "string"},
            "body": {"type": "string"},
            "deal_id": {"type": "string", "description": "the deal this email concerns"}
        },
        "required": ["to", "subject", "body"],
        "additionalProperties": false
    })
}

/// (description, input schema) per kind.
pub fn describe(kind: ActionKind) -> (&'static str, Value) {
    let stage = json!({"type": "string", "enum": ["prospecting", "qualified", "proposal", "negotiation", "closed_won", "closed_lost"]});
    match kind {
        ActionKind::ListDeals => (
            "List the rep's deals, optionally by stage.",
            json!({
            "type": "object", "properties": {"stage": stage}, "additionalProperties": false}),
        ),
        ActionKind::GetDeal => (
            "Get one deal by id.",
            json!({
            "type": "object", "properties": {"deal_id": {"type": "string"}}, "required": ["deal_id"], "additionalProperties": false}),
        ),
        ActionKind::SearchContacts => (
            "Search contacts by name, email, account or title.",
            json!({
            "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"], "additionalProperties": false}),
        ),
        ActionKind::CheckCalendar => (
            "List calendar events between two times (ms since the Unix epoch).",
            json!({
            "type": "object", "properties": {"from": {"type": "integer"}, "to": {"type": "integer"}}, "required": ["from", "to"], "additionalProperties": false}),
        ),
        ActionKind::ListSlackChannels => (
            "List Slack channels.",
            json!({
            "type": "object", "properties": {}, "additionalProperties": false}),
        ),
        ActionKind::SendEmail => (
            "Send an email from the rep's Gmail. Needs approval on the user's phone.",
            email_schema(),
        ),
        ActionKind::DraftEmail => (
            "Save an email draft in the rep's Gmail. Needs approval on the user's phone.",
            email_schema(),
        ),
        ActionKind::ScheduleMeeting => (
            "Book a meeting on the rep's calendar and invite attendees. Needs approval on the user's phone.",
            json!({
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "attendees": {"type": "array", "items": {"type": "string", "format": "email"}},
                "start": {"type": "integer", "description": "ms since the Unix epoch"},
                "end": {"type": "integer", "description": "ms since the Unix epoch"},
                "description": {"type": "string"}
            },
            "required": ["title", "attendees", "start", "end"], "additionalProperties": false}),
        ),
        ActionKind::PostSlack => (
            "Post a message to a Slack channel. Needs approval on the user's phone.",
            json!({
            "type": "object", "properties": {"channel": {"type": "string"}, "text": {"type": "string"}},
            "required": ["channel", "text"], "additionalProperties": false}),
        ),
        ActionKind::CreateDeal => (
            "Create a deal in the CRM. Needs approval on the user's phone.",
            json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "account": {"type": "string"}, "amount_cents": {"type": "integer", "minimum": 0}, "stage": stage},
            "required": ["name", "account", "amount_cents"], "additionalProperties": false}),
        ),
        ActionKind::UpdateDeal => (
            "Update a deal's stage, amount or notes. Needs approval on the user's phone.",
            json!({
            "type": "object",
            "properties": {"deal_id": {"type": "string"}, "stage": stage, "amount_cents": {"type": "integer", "minimum": 0}, "notes": {"type": "string"}},
            "required": ["deal_id"], "additionalProperties": false}),
        ),
        ActionKind::CloseDeal => (
            "Close a deal as won or lost. Irreversible. Needs approval on the user's phone.",
            json!({
            "type": "object",
            "properties": {"deal_id": {"type": "string"}, "won": {"type": "boolean"}, "amount_cents": {"type": "integer", "minimum": 0}},
            "required": ["deal_id", "won"], "additionalProperties": false}),
        ),
    }
}

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
            let (desc, schema) = describe(k);
            let mut t = Tool::new(k.as_str(), desc, object(schema));
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
