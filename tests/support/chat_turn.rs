//! One chat turn driven as the TUI drives it: the Chat tab's machine
//! (`tui::chat::ChatTab`, holding `core::agent::Agent`) and the real IO
//! (`runtime::chat::ChatIo`: the model client, the one pipeline, the device), joined by
//! a channel as the event loop joins them. The test plays the person: it answers each
//! step-up prompt from a list, as `y` or `n` would.
//!
//! [`Shown`] is the turn as the tab showed it, in order — what the assertions read.

use dealflow::core::agent::{Event, GateOutcome, Io, TurnEnd, describe_end};
use dealflow::runtime::chat::ChatIo;
use dealflow::tui::chat::ChatTab;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
#[allow(dead_code)]
pub enum Shown {
    /// Streamed assistant text.
    Text(String),
    /// The model called a tool (folded in the conversation).
    ToolCall { name: String, summary: String },
    /// Step-up: exactly what will happen, and why it needs a yes.
    Confirm {
        call_id: String,
        prompt: String,
        reason: String,
    },
    /// Waiting for the device until `deadline`.
    Device {
        call_id: String,
        binding_message: String,
        deadline: i64,
    },
    /// The device wait ended.
    DeviceDone {
        call_id: String,
        approved: bool,
        detail: String,
    },
    /// A tool finished, or was refused.
    ToolResult {
        name: String,
        ok: bool,
        text: String,
    },
    /// The turn ended ("done", "cancelled", "failed: …").
    TurnEnded(String),
}

/// Runs one turn of `tab` over `io`, answering step-up prompts from `answers` in order
/// (no once they run out). A guard against a hang, not a timing assertion: 30 s.
#[allow(dead_code)]
pub async fn run_turn(
    tab: &mut ChatTab,
    io: &Arc<ChatIo>,
    text: &str,
    answers: Vec<bool>,
) -> (Vec<Shown>, TurnEnd) {
    run_turn_with(tab, io, text, answers, &mut || {}).await
}

/// [`run_turn`], with `meanwhile` run while each prompt is on screen, before it is
/// answered (what someone else does to the store in that time).
#[allow(dead_code)]
pub async fn run_turn_with(
    tab: &mut ChatTab,
    io: &Arc<ChatIo>,
    text: &str,
    answers: Vec<bool>,
    meanwhile: &mut dyn FnMut(),
) -> (Vec<Shown>, TurnEnd) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let report: dealflow::runtime::chat::Report = Arc::new(move |ev| {
        let _ = tx.send(ev);
    });
    let mut shown = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut answers = answers.into_iter();
    let mut now = dealflow::wall::now_ms();
    let mut pending = tab.send(text.into(), now);
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            for i in std::mem::take(&mut pending) {
                match &i {
                    Io::SubmitTool { call } => {
                        names.insert(call.id.clone(), call.name.clone());
                        if let Some(dealflow::tui::chat::ChatLine::Tool { summary, .. }) =
                            tab.lines.last()
                        {
                            shown.push(Shown::ToolCall {
                                name: call.name.clone(),
                                summary: summary.clone(),
                            });
                        }
                    }
                    Io::TurnEnded(end) => {
                        shown.push(Shown::TurnEnded(describe_end(end)));
                        return end.clone();
                    }
                    _ => {}
                }
                io.run(i, report.clone());
            }
            // A step-up on screen: the person answers it.
            if tab.step_up.is_some() {
                meanwhile();
                let yes = answers.next().unwrap_or(false);
                pending = tab.answer(yes, now);
                continue;
            }
            let Some(ev) = rx.recv().await else {
                return TurnEnd::Failed("the IO stopped reporting".into());
            };
            now = dealflow::wall::now_ms();
            let name = |id: &str| names.get(id).cloned().unwrap_or_default();
            match &ev {
                Event::TextDelta(t) => shown.push(Shown::Text(t.clone())),
                Event::Gate { call_id, outcome } => match outcome {
                    GateOutcome::StepUp { prompt, reason } => shown.push(Shown::Confirm {
                        call_id: call_id.clone(),
                        prompt: prompt.clone(),
                        reason: reason.clone(),
                    }),
                    GateOutcome::Ciba {
                        binding_message,
                        deadline,
                        ..
                    } => shown.push(Shown::Device {
                        call_id: call_id.clone(),
                        binding_message: binding_message.clone(),
                        deadline: *deadline,
                    }),
                    GateOutcome::Refused { reason } => shown.push(Shown::ToolResult {
                        name: name(call_id),
                        ok: false,
                        text: reason.clone(),
                    }),
                    GateOutcome::Allow => {}
                },
                Event::CibaResolved {
                    call_id,
                    approved,
                    detail,
                } => shown.push(Shown::DeviceDone {
                    call_id: call_id.clone(),
                    approved: *approved,
                    detail: detail.clone(),
                }),
                Event::ToolResult { call_id, result } => shown.push(Shown::ToolResult {
                    name: name(call_id),
                    ok: result.is_ok(),
                    text: match result {
                        Ok(t) | Err(t) => t.chars().take(400).collect(),
                    },
                }),
                _ => {}
            }
            pending = tab.on_event(ev, now);
        }
    })
    .await
    .expect("the turn did not end within 30 s");
    io.settled().await;
    (shown, end)
}
