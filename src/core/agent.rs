//! The chat agent as a pure state machine: [`Agent::handle`] takes an [`Event`] and
//! returns the [`Io`]s the runtime must perform. It never executes anything: every
//! `tool_use` becomes [`Io::SubmitTool`] (the runtime files it with the pipeline as
//! surface `chat` and reports the gate back), and only after the gate is satisfied —
//! `Allow`, an inline yes, or the device's yes — does it ask for [`Io::Execute`].
//! Refusals go back to the model as `is_error` tool results.
//!
//! Driving it: on `StartStream` stream a model turn with `messages` and feed
//! `TextDelta`/`ToolUse`/`StreamEnd` (or `StreamFailed`); on `SubmitTool` gate the call
//! and send `Gate`; on `Execute` run it and send `ToolResult`; on `AbortStream` drop the
//! stream; on `CancelCiba` cancel the device request; on `Decline` withdraw what was
//! filed for the call (the person said no, or cancelled before it ran). Keys map to `Confirm` and `Cancel`,
//! a timer to `Tick`. Events that do not fit the current phase (late, stale ids) are
//! ignored, so a slow background task can never act on a cancelled turn.

use super::domain::Millis;
use serde_json::Value;
use std::collections::VecDeque;

/// A tool call as the model made it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    ToolUse(ToolCall),
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
}

/// One message of the conversation, in the model's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub blocks: Vec<Block>,
}

/// Why a model turn stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopKind {
    EndTurn,
    ToolUse,
    MaxTokens,
    Refusal,
    Other(String),
}

/// What the pipeline's gate said about a submitted call.
#[derive(Debug, Clone, PartialEq)]
pub enum GateOutcome {
    /// Runs without asking (reads, or kinds the user set to auto).
    Allow,
    /// Ask the user inline. `prompt` is exactly what will happen; `reason` the gate's.
    StepUp { prompt: String, reason: String },
    /// A device request was sent; wait for it until `deadline`.
    Ciba {
        prompt: String,
        reason: String,
        approver: String,
        binding_message: String,
        deadline: Millis,
    },
    /// Will not run: denied by permissions, unknown tool, invalid input, not connected…
    Refused { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The user sent a message (starts a turn; ignored unless idle).
    UserMessage(String),
    TextDelta(String),
    /// A complete tool_use block.
    ToolUse(ToolCall),
    /// The model's message ended.
    StreamEnd(StopKind),
    /// The stream failed after the client's retries.
    StreamFailed(String),
    Gate {
        call_id: String,
        outcome: GateOutcome,
    },
    /// The user's answer to the inline step-up prompt.
    Confirm {
        call_id: String,
        approve: bool,
    },
    /// The device approved or denied (or the request expired/failed).
    CibaResolved {
        call_id: String,
        approved: bool,
        detail: String,
    },
    /// The execution's outcome: `Ok(result)` or `Err(failure)`.
    ToolResult {
        call_id: String,
        result: Result<String, String>,
    },
    /// Clock tick, for the CIBA deadline.
    Tick(Millis),
    /// Esc.
    Cancel,
}

/// What consent the FSM saw before asking for execution. The pipeline still checks its
/// own `Consent` proof; this only says which evidence to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentGiven {
    /// The gate was `Allow`.
    Autonomous,
    /// The user said yes to the inline prompt.
    SteppedUp,
    /// The device said yes.
    Device,
}

/// A turn's end as a line for the transcript ("done" when it completed).
pub fn describe_end(end: &TurnEnd) -> String {
    match end {
        TurnEnd::Completed => "done".into(),
        TurnEnd::ModelStopped(k) => format!("the model stopped ({k:?})"),
        TurnEnd::IterationLimit(n) => format!("stopped after {n} model calls"),
        TurnEnd::Cancelled => "cancelled".into(),
        TurnEnd::Failed(e) => format!("failed: {e}"),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TurnEnd {
    /// The model finished its answer.
    Completed,
    /// The model stopped for another reason (max_tokens, refusal…).
    ModelStopped(StopKind),
    /// `max_iterations` model calls were made; tool results are kept for the next turn.
    IterationLimit(u32),
    Cancelled,
    Failed(String),
}

/// What the machine asks of the world: IO to perform (the runtime's part), and the end
/// of a turn to report.
#[derive(Debug, Clone, PartialEq)]
pub enum Io {
    /// Stream a model turn over exactly these messages.
    StartStream {
        messages: Vec<ChatMessage>,
        iteration: u32,
    },
    AbortStream,
    /// File this call with the pipeline (surface `chat`) and report `Event::Gate`.
    SubmitTool {
        call: ToolCall,
    },
    /// The gate is satisfied: run the call, report `Event::ToolResult`.
    Execute {
        call: ToolCall,
        consent: ConsentGiven,
    },
    /// Withdraw the pending device request.
    CancelCiba {
        call_id: String,
    },
    /// The person declined the call at the prompt, or cancelled the turn before it ran:
    /// what was filed for it is rejected, and one filed later is refused.
    Decline {
        call_id: String,
    },
    /// The turn is over (for the UI and the audit log).
    TurnEnded(TurnEnd),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Idle,
    Streaming,
    AwaitingGate {
        call: ToolCall,
    },
    AwaitingConfirm {
        call: ToolCall,
        prompt: String,
        reason: String,
    },
    AwaitingDevice {
        call: ToolCall,
        prompt: String,
        approver: String,
        binding_message: String,
        deadline: Millis,
    },
    Executing {
        call: ToolCall,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    max_iterations: u32,
    history: Vec<ChatMessage>,
    phase: Phase,
    iteration: u32,
    /// The assistant message being streamed.
    current: Vec<Block>,
    /// Calls of the last assistant message not yet submitted.
    queue: VecDeque<ToolCall>,
    /// Tool results gathered for the next user message.
    results: Vec<Block>,
    last_end: Option<TurnEnd>,
}

const DECLINED: &str = "The user declined this action at the confirmation prompt. It was not executed. Do not retry it unless the user asks.";
const CANCELLED: &str = "The user cancelled the turn before this action ran. It was not executed.";

impl Agent {
    pub fn new(max_iterations: u32) -> Agent {
        Agent {
            max_iterations: max_iterations.max(1),
            history: Vec::new(),
            phase: Phase::Idle,
            iteration: 0,
            current: Vec::new(),
            queue: VecDeque::new(),
            results: Vec::new(),
            last_end: None,
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn history(&self) -> &[ChatMessage] {
        &self.history
    }

    /// Model calls made in the current (or last) turn.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    pub fn last_end(&self) -> Option<&TurnEnd> {
        self.last_end.as_ref()
    }

    /// Text streamed so far in the current model message.
    pub fn streaming_text(&self) -> String {
        self.current
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The inline question on screen: exactly what will happen, and the gate's reason.
    pub fn pending_prompt(&self) -> Option<(&str, &str)> {
        match &self.phase {
            Phase::AwaitingConfirm { prompt, reason, .. } => Some((prompt, reason)),
            _ => None,
        }
    }

    /// When the device wait ends (the countdown target).
    pub fn ciba_deadline(&self) -> Option<Millis> {
        match &self.phase {
            Phase::AwaitingDevice { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    pub fn handle(&mut self, event: Event) -> Vec<Io> {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        match (phase, event) {
            (Phase::Idle, Event::UserMessage(text)) => {
                self.history.push(ChatMessage {
                    role: Role::User,
                    blocks: vec![Block::Text(text)],
                });
                self.iteration = 0;
                self.last_end = None;
                self.start_stream()
            }
            (Phase::Streaming, Event::TextDelta(t)) => {
                self.phase = Phase::Streaming;
                match self.current.last_mut() {
                    Some(Block::Text(s)) => s.push_str(&t),
                    _ => self.current.push(Block::Text(t)),
                }
                vec![]
            }
            (Phase::Streaming, Event::ToolUse(call)) => {
                self.phase = Phase::Streaming;
                self.current.push(Block::ToolUse(call.clone()));
                self.queue.push_back(call);
                vec![]
            }
            (Phase::Streaming, Event::StreamEnd(stop)) => {
                let blocks = std::mem::take(&mut self.current);
                if !blocks.is_empty() {
                    self.history.push(ChatMessage {
                        role: Role::Assistant,
                        blocks,
                    });
                }
                if self.queue.is_empty() {
                    let end = match stop {
                        StopKind::EndTurn | StopKind::ToolUse => TurnEnd::Completed,
                        other => TurnEnd::ModelStopped(other),
                    };
                    return self.end(end);
                }
                self.next_call()
            }
            (Phase::Streaming, Event::StreamFailed(e)) => {
                // A partial message is dropped whole: its tool calls never ran.
                self.current.clear();
                self.queue.clear();
                self.end(TurnEnd::Failed(e))
            }
            (Phase::AwaitingGate { call }, Event::Gate { call_id, outcome })
                if call.id == call_id =>
            {
                match outcome {
                    GateOutcome::Allow => self.execute(call, ConsentGiven::Autonomous),
                    GateOutcome::StepUp { prompt, reason } => {
                        self.phase = Phase::AwaitingConfirm {
                            call,
                            prompt,
                            reason,
                        };
                        vec![]
                    }
                    GateOutcome::Ciba {
                        prompt,
                        approver,
                        binding_message,
                        deadline,
                        ..
                    } => {
                        self.phase = Phase::AwaitingDevice {
                            call,
                            prompt,
                            approver,
                            binding_message,
                            deadline,
                        };
                        vec![]
                    }
                    GateOutcome::Refused { reason } => {
                        self.answer(&call.id, format!("Refused, not executed: {reason}"), true);
                        self.next_call()
                    }
                }
            }
            (Phase::AwaitingConfirm { call, .. }, Event::Confirm { call_id, approve })
                if call.id == call_id =>
            {
                if approve {
                    self.execute(call, ConsentGiven::SteppedUp)
                } else {
                    self.answer(&call.id, DECLINED.into(), true);
                    let mut fx = vec![Io::Decline {
                        call_id: call.id.clone(),
                    }];
                    fx.extend(self.next_call());
                    fx
                }
            }
            (
                Phase::AwaitingDevice { call, .. },
                Event::CibaResolved {
                    call_id,
                    approved,
                    detail,
                },
            ) if call.id == call_id => {
                if approved {
                    self.execute(call, ConsentGiven::Device)
                } else {
                    self.answer(
                        &call.id,
                        format!(
                            "The approver's device did not approve ({detail}). It was not executed."
                        ),
                        true,
                    );
                    self.next_call()
                }
            }
            (phase @ Phase::AwaitingDevice { .. }, Event::Tick(now)) => {
                let Phase::AwaitingDevice { call, deadline, .. } = &phase else {
                    return vec![];
                };
                if now < *deadline {
                    self.phase = phase;
                    return vec![];
                }
                let call = call.clone();
                self.answer(
                    &call.id,
                    "The device approval request expired. It was not executed.".into(),
                    true,
                );
                let mut fx = vec![Io::CancelCiba { call_id: call.id }];
                fx.extend(self.next_call());
                fx
            }
            (Phase::Executing { call }, Event::ToolResult { call_id, result })
                if call.id == call_id =>
            {
                match result {
                    Ok(out) => self.answer(&call.id, out, false),
                    Err(e) => self.answer(&call.id, format!("Execution failed: {e}"), true),
                }
                self.next_call()
            }
            (phase, Event::Cancel) => self.cancel(phase),
            (phase, _) => {
                // Stale or out-of-phase: nothing happens.
                self.phase = phase;
                vec![]
            }
        }
    }

    fn start_stream(&mut self) -> Vec<Io> {
        self.iteration += 1;
        self.phase = Phase::Streaming;
        vec![Io::StartStream {
            messages: self.history.clone(),
            iteration: self.iteration,
        }]
    }

    fn execute(&mut self, call: ToolCall, consent: ConsentGiven) -> Vec<Io> {
        self.phase = Phase::Executing { call: call.clone() };
        vec![Io::Execute { call, consent }]
    }

    fn answer(&mut self, id: &str, content: String, is_error: bool) {
        self.results.push(Block::ToolResult {
            tool_use_id: id.to_string(),
            content,
            is_error,
        });
    }

    fn flush_results(&mut self) {
        if !self.results.is_empty() {
            let blocks = std::mem::take(&mut self.results);
            self.history.push(ChatMessage {
                role: Role::User,
                blocks,
            });
        }
    }

    /// Submits the next queued call, or, when all are answered, sends the results back.
    fn next_call(&mut self) -> Vec<Io> {
        if let Some(call) = self.queue.pop_front() {
            self.phase = Phase::AwaitingGate { call: call.clone() };
            return vec![Io::SubmitTool { call }];
        }
        self.flush_results();
        if self.iteration >= self.max_iterations {
            return self.end(TurnEnd::IterationLimit(self.iteration));
        }
        self.start_stream()
    }

    fn end(&mut self, end: TurnEnd) -> Vec<Io> {
        self.phase = Phase::Idle;
        self.last_end = Some(end.clone());
        vec![Io::TurnEnded(end)]
    }

    fn cancel(&mut self, phase: Phase) -> Vec<Io> {
        let mut fx = Vec::new();
        let in_flight = match phase {
            Phase::Idle => return vec![],
            Phase::Streaming => {
                fx.push(Io::AbortStream);
                // Keep what was said; drop unanswerable tool calls of the partial message.
                let text: Vec<Block> = std::mem::take(&mut self.current)
                    .into_iter()
                    .filter(|b| matches!(b, Block::Text(_)))
                    .collect();
                if !text.is_empty() {
                    self.history.push(ChatMessage {
                        role: Role::Assistant,
                        blocks: text,
                    });
                }
                self.queue.clear();
                None
            }
            Phase::AwaitingGate { call } | Phase::AwaitingConfirm { call, .. } => {
                fx.push(Io::Decline {
                    call_id: call.id.clone(),
                });
                Some((call, CANCELLED.to_string()))
            }
            Phase::AwaitingDevice { call, .. } => {
                fx.push(Io::CancelCiba {
                    call_id: call.id.clone(),
                });
                Some((call, CANCELLED.to_string()))
            }
            Phase::Executing { call } => Some((
                call,
                "The user cancelled while this action was already executing; its outcome is in the audit log, not here.".to_string(),
            )),
        };
        if let Some((call, msg)) = in_flight {
            // Every tool_use must be answered in the next user message.
            self.answer(&call.id, msg, true);
            while let Some(c) = self.queue.pop_front() {
                self.answer(&c.id, CANCELLED.into(), true);
            }
            self.flush_results();
        }
        fx.extend(self.end(TurnEnd::Cancelled));
        fx
    }
}

#[cfg(test)]
mod tests;
