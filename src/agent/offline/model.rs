//! The offline planner as a [`LanguageModel`]: each turn answers the person's last
//! message with the planned calls, then the chain's later rounds as results come back.

use super::OFFLINE_LABEL;
use super::intents::plan_chat;
use crate::agent::suggest::Snapshot;
use crate::llm::{
    AssistantTurn, ContentBlock, LanguageModel, LlmEvent, Role, StopReason, TurnRequest,
    TurnStream, Usage,
};

/// The offline planner as a [`LanguageModel`], so chat without an API key runs through
/// the very same FSM and pipeline.
#[derive(Debug, Clone)]
pub struct OfflineModel {
    snapshot: Snapshot,
}

impl OfflineModel {
    pub fn new(snapshot: Snapshot) -> Self {
        OfflineModel { snapshot }
    }

    /// The turn the planner gives for this request.
    pub fn turn(&self, req: &TurnRequest) -> AssistantTurn {
        let last = req.messages.last();
        let results: Vec<(&String, bool)> = last
            .filter(|m| m.role == Role::User)
            .map(|m| {
                m.content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::ToolResult {
                            content, is_error, ..
                        } => Some((content, *is_error)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut content = Vec::new();
        let n = req.messages.len();
        let stop_reason = if !results.is_empty() {
            let lines: Vec<String> = results
                .iter()
                .map(|(c, err)| {
                    let c = crate::agent::tools::readable(c);
                    if *err { format!("Not done: {c}") } else { c }
                })
                .collect();
            content.push(ContentBlock::text(format!(
                "{OFFLINE_LABEL} {}",
                lines.join("\n")
            )));
            // A chain goes on with its next round, unless a step failed (then the person
            // decides what next, as they would with a model).
            let (asked, rounds_done) = asked_and_rounds(&req.messages);
            let plan = plan_chat(&asked, &self.snapshot);
            let failed = results.iter().any(|(_, err)| *err);
            match plan.then.get(rounds_done.saturating_sub(1)) {
                Some(next) if !failed => {
                    for (i, (name, input)) in next.iter().enumerate() {
                        content.push(ContentBlock::ToolUse {
                            id: format!("offline_{n}_{i}"),
                            name: name.clone(),
                            input: input.clone(),
                        });
                    }
                    StopReason::ToolUse
                }
                _ => StopReason::EndTurn,
            }
        } else {
            let text = last
                .map(|m| {
                    m.content
                        .iter()
                        .filter_map(|b| match b {
                            ContentBlock::Text { text } => Some(text.as_str()),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let plan = plan_chat(&text, &self.snapshot);
            content.push(ContentBlock::text(plan.text));
            for (i, (name, input)) in plan.calls.into_iter().enumerate() {
                content.push(ContentBlock::ToolUse {
                    id: format!("offline_{n}_{i}"),
                    name,
                    input,
                });
            }
            if content.len() > 1 {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            }
        };
        AssistantTurn {
            message_id: format!("offline_{}", req.messages.len()),
            content,
            stop_reason,
            usage: Usage::default(),
            request_id: None,
        }
    }
}

/// The person's last typed message, and how many rounds of tool results came back since.
fn asked_and_rounds(messages: &[crate::llm::Message]) -> (String, usize) {
    let mut rounds = 0;
    for m in messages.iter().rev() {
        if m.role != Role::User {
            continue;
        }
        let text: Vec<&str> = m
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        if m.content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolResult { .. }))
        {
            rounds += 1;
        } else if !text.is_empty() {
            return (text.join(" "), rounds);
        }
    }
    (String::new(), rounds)
}

impl LanguageModel for OfflineModel {
    fn stream_turn(&self, request: TurnRequest) -> TurnStream {
        let turn = self.turn(&request);
        let mut events = vec![Ok(LlmEvent::Started {
            message_id: turn.message_id.clone(),
            model: self.name(),
        })];
        for b in &turn.content {
            match b {
                ContentBlock::Text { text } => events.push(Ok(LlmEvent::TextDelta(text.clone()))),
                ContentBlock::ToolUse { id, name, input } => events.push(Ok(LlmEvent::ToolUse {
                    id: id.clone(),
                    name: name.clone(),
                    input: input.clone(),
                })),
                _ => {}
            }
        }
        events.push(Ok(LlmEvent::Done(turn)));
        TurnStream::from_events(events)
    }

    fn name(&self) -> String {
        "offline planner".into()
    }
}
