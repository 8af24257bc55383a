//! The Chat tab: the conversation, the input line, folded tool calls, the step-up prompt
//! and the CIBA countdown — and the chat machine itself (`core::agent::Agent`). Every
//! event the runtime reports (`runtime::chat::ChatIo`: model text, a gate's answer, a
//! device's answer, a tool's result) is shown here and fed to the machine; what the
//! machine asks for in return ([`Io`]) goes back out as `Effect::Chat`. Keys answer the
//! machine directly (y / n / Esc), and the clock ends a device wait at its deadline.

use crate::agent::tools;
use crate::core::agent::{Agent, Event, GateOutcome, Io, Phase, TurnEnd};
use crate::core::domain::Millis;

#[derive(Debug, Clone, PartialEq)]
pub enum ChatLine {
    User(String),
    Assistant(String),
    Tool {
        name: String,
        summary: String,
        detail: String,
    },
    System(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepUpPrompt {
    /// The tool call the machine waits on.
    pub call_id: String,
    /// The whole payload being confirmed, newlines and all.
    pub summary: String,
    pub opened_at: Millis,
    /// Rows scrolled past; `y` waits until its last row has been shown.
    pub scroll: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CibaWait {
    pub binding_message: String,
    pub expires_at: Millis,
}

/// How many model calls one turn may make when nothing is configured.
pub const DEFAULT_MAX_ITERATIONS: u32 = 8;

#[derive(Debug, Clone)]
pub struct ChatTab {
    pub lines: Vec<ChatLine>,
    pub input: String,
    pub composing: bool,
    pub unfolded: bool,
    pub running: bool,
    pub step_up: Option<StepUpPrompt>,
    pub ciba: Option<CibaWait>,
    /// Rows scrolled back from the newest (0: the newest reply stays in view).
    pub scroll_back: usize,
    /// The offline planner answers (no API key): each turn says so.
    pub offline: bool,
    agent: Agent,
}

impl Default for ChatTab {
    fn default() -> ChatTab {
        ChatTab::new(DEFAULT_MAX_ITERATIONS)
    }
}

impl ChatTab {
    pub fn new(max_iterations: u32) -> ChatTab {
        ChatTab {
            lines: vec![],
            input: String::new(),
            composing: false,
            unfolded: false,
            running: false,
            step_up: None,
            ciba: None,
            scroll_back: 0,
            offline: false,
            agent: Agent::new(max_iterations),
        }
    }

    /// The machine, for what it says about the turn (its phase, how it last ended).
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The person sent `text`: a new turn (ignored while one runs).
    pub fn send(&mut self, text: String, now: Millis) -> Vec<Io> {
        if !self.agent.is_idle() {
            return vec![];
        }
        self.lines.push(ChatLine::User(text.clone()));
        // A new question: follow the conversation to its newest line again.
        self.scroll_back = 0;
        self.running = true;
        if self.offline {
            self.lines.push(ChatLine::Tool {
                name: "offline".into(),
                summary: "offline planner (no ANTHROPIC_API_KEY): simple intents only".into(),
                detail: "Try: show deal acme · check calendar · draft follow-up to bill · create deal Wayne for $20000 · close deal acme as won".into(),
            });
        }
        let io = self.agent.handle(Event::UserMessage(text));
        self.follow(io, now)
    }

    /// The person's answer to the step-up prompt (the prompt's guards are the app's).
    pub fn answer(&mut self, confirmed: bool, now: Millis) -> Vec<Io> {
        let Some(p) = self.step_up.take() else {
            return vec![];
        };
        self.record_step_up(&p, confirmed);
        let io = self.agent.handle(Event::Confirm {
            call_id: p.call_id,
            approve: confirmed,
        });
        self.follow(io, now)
    }

    /// ctrl-c: the turn and any wait end; a call waiting on its gate or on the person's
    /// answer is withdrawn, a device wait is cancelled.
    pub fn cancel(&mut self, now: Millis) -> Vec<Io> {
        let io = self.agent.handle(Event::Cancel);
        self.follow(io, now)
    }

    /// The turn cannot go on (nothing to stream with): it ends, saying exactly `why`.
    pub fn abandon(&mut self, why: String, now: Millis) -> Vec<Io> {
        let io = self.agent.handle(Event::StreamFailed(why.clone()));
        let io = self.follow(io, now);
        if let Some(ChatLine::System(line)) = self.lines.last_mut() {
            *line = why;
        }
        io
    }

    /// The clock: a device wait past its deadline ends.
    pub fn tick(&mut self, now: Millis) -> Vec<Io> {
        if !matches!(self.agent.phase(), Phase::AwaitingDevice { .. }) {
            return vec![];
        }
        let io = self.agent.handle(Event::Tick(now));
        self.follow(io, now)
    }

    /// What the runtime reports: shown as it was said, fed to the machine as data (a
    /// result, a refusal, a device's detail can echo what a counterparty wrote).
    pub fn on_event(&mut self, ev: Event, now: Millis) -> Vec<Io> {
        let ev = match ev {
            Event::TextDelta(t) => {
                if matches!(self.agent.phase(), Phase::Streaming) {
                    match self.lines.last_mut() {
                        Some(ChatLine::Assistant(s)) => s.push_str(&t),
                        _ => self.lines.push(ChatLine::Assistant(t.clone())),
                    }
                }
                Event::TextDelta(t)
            }
            Event::Gate { call_id, outcome } => {
                let Some(name) =
                    self.waiting_call(&call_id, |p| matches!(p, Phase::AwaitingGate { .. }))
                else {
                    return vec![];
                };
                let outcome = match outcome {
                    GateOutcome::StepUp { prompt, reason } => {
                        self.step_up = Some(StepUpPrompt {
                            call_id: call_id.clone(),
                            summary: format!("{prompt}\n— {reason}"),
                            opened_at: now,
                            scroll: 0,
                        });
                        GateOutcome::StepUp { prompt, reason }
                    }
                    GateOutcome::Ciba {
                        prompt,
                        reason,
                        approver,
                        binding_message,
                        deadline,
                    } => {
                        self.ciba = Some(CibaWait {
                            binding_message: binding_message.clone(),
                            expires_at: deadline,
                        });
                        GateOutcome::Ciba {
                            prompt,
                            reason,
                            approver,
                            binding_message,
                            deadline,
                        }
                    }
                    GateOutcome::Refused { reason } => {
                        self.lines.push(ChatLine::Tool {
                            name: format!("{name} ✗"),
                            summary: first_line(&reason),
                            detail: reason.clone(),
                        });
                        GateOutcome::Refused {
                            reason: tools::as_data(&reason),
                        }
                    }
                    GateOutcome::Allow => GateOutcome::Allow,
                };
                Event::Gate { call_id, outcome }
            }
            Event::CibaResolved {
                call_id,
                approved,
                detail,
            } => {
                if self
                    .waiting_call(&call_id, |p| matches!(p, Phase::AwaitingDevice { .. }))
                    .is_none()
                {
                    return vec![];
                }
                self.ciba = None;
                let mark = if approved { "✓" } else { "✗" };
                self.lines
                    .push(ChatLine::System(format!("{mark} {detail}")));
                Event::CibaResolved {
                    call_id,
                    approved,
                    detail: tools::as_data(&detail),
                }
            }
            Event::ToolResult { call_id, result } => {
                let Some(name) =
                    self.waiting_call(&call_id, |p| matches!(p, Phase::Executing { .. }))
                else {
                    return vec![];
                };
                let (mark, text) = match &result {
                    Ok(t) => ("✓", t),
                    Err(t) => ("✗", t),
                };
                let text: String = text.chars().take(400).collect();
                self.lines.push(ChatLine::Tool {
                    name: format!("{name} {mark}"),
                    summary: first_line(&text),
                    detail: text,
                });
                Event::ToolResult {
                    call_id,
                    result: result
                        .map(|t| tools::as_data(&t))
                        .map_err(|e| tools::as_data(&e)),
                }
            }
            other => other,
        };
        let io = self.agent.handle(ev);
        self.follow(io, now)
    }

    /// The name of the call the machine waits on, if it is `call_id` in a phase `fits`
    /// (a late or stale report changes nothing on screen either).
    fn waiting_call(&self, call_id: &str, fits: impl Fn(&Phase) -> bool) -> Option<String> {
        let phase = self.agent.phase();
        if !fits(phase) {
            return None;
        }
        match phase {
            Phase::AwaitingGate { call }
            | Phase::AwaitingConfirm { call, .. }
            | Phase::AwaitingDevice { call, .. }
            | Phase::Executing { call }
                if call.id == call_id =>
            {
                Some(call.name.clone())
            }
            _ => None,
        }
    }

    /// Shows what the machine's requests mean on screen, and passes them on.
    fn follow(&mut self, io: Vec<Io>, _now: Millis) -> Vec<Io> {
        for i in &io {
            match i {
                Io::SubmitTool { call } => {
                    let summary = tools::parse_call(&call.name, &call.input)
                        .map(|p| tools::describe(&p))
                        .unwrap_or_else(|e| e.to_string());
                    self.lines.push(ChatLine::Tool {
                        name: call.name.clone(),
                        detail: summary.clone(),
                        summary,
                    });
                }
                Io::CancelCiba { .. } => self.ciba = None,
                Io::TurnEnded(end) => {
                    self.running = false;
                    // A turn that ended waits on nothing: no panel may keep counting,
                    // and no prompt may take a yes for a call that is gone.
                    self.ciba = None;
                    self.step_up = None;
                    if *end != TurnEnd::Completed {
                        self.lines
                            .push(ChatLine::System(crate::core::agent::describe_end(end)));
                    }
                }
                Io::StartStream { .. }
                | Io::AbortStream
                | Io::Execute { .. }
                | Io::Decline { .. } => {}
            }
        }
        io
    }

    /// The transcript keeps what a step-up decided: a refusal is as much a part of the
    /// conversation as a yes.
    pub fn record_step_up(&mut self, p: &StepUpPrompt, confirmed: bool) {
        let first = p.summary.lines().next().unwrap_or_default();
        let verb = if confirmed { "confirmed" } else { "declined" };
        self.lines
            .push(ChatLine::System(format!("{verb} ({}): {first}", p.call_id)));
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}
