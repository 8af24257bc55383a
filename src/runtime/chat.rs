//! The chat loop: the pure agent FSM (`core::agent`) driven against the real model and
//! the one pipeline. Every tool call the model makes is submitted with surface `chat`;
//! `Allow` runs it, `StepUp` waits for the person's inline answer, `Ciba` waits for the
//! device (the same device path batches use), and the result or refusal goes back to the
//! model. Updates stream to the UI over a channel; the UI answers over another.

use super::batch::{BatchOptions, DeviceConsent, run_actions};
use super::credentials::Subject;
use super::pipeline::{Pipeline, Proposal};
use super::review::Reviewer;
use crate::agent::{self, tools};
use crate::core::agent::{
    Agent, ConsentGiven, Effect, Event, GateOutcome, Phase, ToolCall, TurnEnd,
};
use crate::core::consent::Gate;
use crate::core::domain::{ActionState, Surface};
use crate::llm::{LanguageModel, TurnRequest};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the UI shows, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatUpdate {
    /// Streamed assistant text.
    Text(String),
    /// The model called a tool; folded inline in the conversation.
    ToolCall {
        name: String,
        summary: String,
    },
    /// Step-up: exactly what will happen, and why it needs a yes.
    Confirm {
        call_id: String,
        prompt: String,
        reason: String,
    },
    /// Waiting for the device until `deadline` (ms since the epoch).
    Device {
        call_id: String,
        binding_message: String,
        deadline: i64,
    },
    /// The device wait ended: approved, denied, expired or cancelled.
    DeviceDone {
        call_id: String,
        approved: bool,
        detail: String,
    },
    /// A tool finished (or was refused).
    ToolResult {
        name: String,
        ok: bool,
        text: String,
    },
    TurnEnded(String),
}

/// What the person does while a turn runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatInput {
    Confirm {
        call_id: String,
        approve: bool,
    },
    /// Esc: cancel the turn and any wait.
    Cancel,
}

pub struct ChatRuntime {
    pub model: Arc<dyn LanguageModel>,
    pub pipeline: Arc<Pipeline>,
    pub device: Arc<dyn DeviceConsent>,
    pub agent: Agent,
    /// The person at the keyboard, as audit rows name them.
    pub actor: String,
    /// Tool call id → the action filed for it.
    filed: HashMap<String, String>,
    ciba: Option<(String, CancellationToken, tokio::task::JoinHandle<()>)>,
}

use crate::wall::now_ms;

fn end_text(end: &TurnEnd) -> String {
    match end {
        TurnEnd::Completed => "done".into(),
        TurnEnd::ModelStopped(k) => format!("the model stopped ({k:?})"),
        TurnEnd::IterationLimit(n) => format!("stopped after {n} model calls"),
        TurnEnd::Cancelled => "cancelled".into(),
        TurnEnd::Failed(e) => format!("failed: {e}"),
    }
}

impl ChatRuntime {
    pub fn new(
        model: Arc<dyn LanguageModel>,
        pipeline: Arc<Pipeline>,
        device: Arc<dyn DeviceConsent>,
        max_iterations: u32,
        actor: String,
    ) -> ChatRuntime {
        ChatRuntime {
            model,
            pipeline,
            device,
            agent: Agent::new(max_iterations),
            actor,
            filed: HashMap::new(),
            ciba: None,
        }
    }

    /// Runs one user turn to its end, streaming updates; answers come on `inputs`.
    pub async fn turn(
        &mut self,
        text: &str,
        updates: &mpsc::UnboundedSender<ChatUpdate>,
        inputs: &mut mpsc::UnboundedReceiver<ChatInput>,
    ) -> TurnEnd {
        let (dev_tx, mut dev_rx) = mpsc::unbounded_channel::<(String, bool, String)>();
        let mut fx: VecDeque<Effect> = self.agent.handle(Event::UserMessage(text.into())).into();
        loop {
            while let Some(effect) = fx.pop_front() {
                match effect {
                    Effect::StartStream { messages, .. } => {
                        let mut s = self.model.stream_turn(TurnRequest {
                            system: Some(agent::CHAT_SYSTEM.into()),
                            messages: agent::to_llm_messages(&messages),
                            tools: tools::chat_tools(),
                            tool_choice: None,
                        });
                        loop {
                            tokio::select! {
                                item = s.next() => {
                                    let Some(item) = item else { break };
                                    if let Ok(crate::llm::LlmEvent::TextDelta(t)) = &item {
                                        let _ = updates.send(ChatUpdate::Text(t.clone()));
                                    }
                                    if let Some(ev) = agent::to_event(item) {
                                        fx.extend(self.agent.handle(ev));
                                    }
                                }
                                Some(ChatInput::Cancel) = inputs.recv() => {
                                    s.cancel();
                                    fx.extend(self.agent.handle(Event::Cancel));
                                    break;
                                }
                            }
                        }
                    }
                    Effect::SubmitTool { call } => {
                        let mut ev = self.submit(&call, updates, &dev_tx).await;
                        if let Event::Gate {
                            outcome: GateOutcome::Refused { reason },
                            ..
                        } = &mut ev
                        {
                            let _ = updates.send(ChatUpdate::ToolResult {
                                name: call.name.clone(),
                                ok: false,
                                text: reason.clone(),
                            });
                            // A refusal can echo the call's own input (a parse error, a
                            // deal name): data to the model, like every result.
                            *reason = tools::as_data(reason);
                        }
                        fx.extend(self.agent.handle(ev));
                    }
                    Effect::Execute { call, consent } => {
                        let result = self.execute(&call, consent).await;
                        let _ = updates.send(ChatUpdate::ToolResult {
                            name: call.name.clone(),
                            ok: result.is_ok(),
                            text: match &result {
                                Ok(t) | Err(t) => t.chars().take(400).collect(),
                            },
                        });
                        fx.extend(
                            self.agent.handle(Event::ToolResult {
                                call_id: call.id,
                                result: result
                                    .map(|t| tools::as_data(&t))
                                    .map_err(|e| tools::as_data(&e)),
                            }),
                        );
                    }
                    Effect::CancelCiba { .. } => {
                        if let Some((_, cancel, _)) = &self.ciba {
                            cancel.cancel();
                        }
                    }
                    Effect::AbortStream => {}
                    Effect::TurnEnded(end) => {
                        let _ = updates.send(ChatUpdate::TurnEnded(end_text(&end)));
                        return end;
                    }
                }
            }
            match self.agent.phase().clone() {
                Phase::Idle => return self.agent.last_end().cloned().unwrap_or(TurnEnd::Completed),
                Phase::AwaitingConfirm { call, .. } => match inputs.recv().await {
                    Some(ChatInput::Confirm { call_id, approve }) => {
                        if !approve && call_id == call.id {
                            self.decline(&call.id);
                        }
                        fx.extend(self.agent.handle(Event::Confirm { call_id, approve }));
                    }
                    Some(ChatInput::Cancel) | None => {
                        self.decline(&call.id);
                        fx.extend(self.agent.handle(Event::Cancel));
                    }
                },
                Phase::AwaitingDevice { .. } => {
                    tokio::select! {
                        Some((call_id, approved, detail)) = dev_rx.recv() => {
                            // The device answered: whoever shows the wait can take it down.
                            let _ = updates.send(ChatUpdate::DeviceDone {
                                call_id: call_id.clone(),
                                approved,
                                detail: detail.clone(),
                            });
                            fx.extend(self.agent.handle(Event::CibaResolved { call_id, approved, detail: tools::as_data(&detail) }));
                        }
                        input = inputs.recv() => {
                            if matches!(input, Some(ChatInput::Cancel) | None) {
                                let _ = updates.send(ChatUpdate::DeviceDone {
                                    call_id: String::new(),
                                    approved: false,
                                    detail: "cancelled".into(),
                                });
                                fx.extend(self.agent.handle(Event::Cancel));
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {
                            fx.extend(self.agent.handle(Event::Tick(now_ms())));
                        }
                    }
                }
                // Streaming, gating and executing are driven by the effects above.
                _ => {
                    if fx.is_empty() {
                        fx.extend(self.agent.handle(Event::Cancel));
                    }
                }
            }
        }
    }

    fn decline(&self, call_id: &str) {
        if let Some(id) = self.filed.get(call_id) {
            let me = Reviewer {
                actor: self.actor.clone(),
                surface: Surface::Chat,
            };
            let _ = me.reject(
                self.pipeline.store.as_ref(),
                id,
                Some("declined in chat".into()),
                now_ms(),
            );
        }
    }

    /// Files the call with the pipeline and turns its decision into the FSM's event.
    async fn submit(
        &mut self,
        call: &ToolCall,
        updates: &mpsc::UnboundedSender<ChatUpdate>,
        dev_tx: &mpsc::UnboundedSender<(String, bool, String)>,
    ) -> Event {
        let refused = |reason: String| Event::Gate {
            call_id: call.id.clone(),
            outcome: GateOutcome::Refused { reason },
        };
        let params = match tools::parse_call(&call.name, &call.input) {
            Ok(p) => p,
            Err(e) => return refused(e.to_string()),
        };
        let _ = updates.send(ChatUpdate::ToolCall {
            name: call.name.clone(),
            summary: tools::describe(&params),
        });
        // Nobody is asked to confirm (or pushed to the phone for) a write that could not
        // run: its account comes first. A read needs no such look ahead: it runs at once
        // and its own token check says the same.
        if params.kind().is_write()
            && let Err(why) = self.pipeline.account_ready(params.kind()).await
        {
            return refused(why);
        }
        let submitted = match self.pipeline.submit(
            Proposal {
                title: format!("{} (chat)", params.kind()),
                params,
                surface: Surface::Chat,
                confidence: 1.0,
                justification: "asked in chat".into(),
                proposer: format!("agent:{}", self.model.name()),
            },
            now_ms(),
        ) {
            Ok(s) => s,
            Err(e) => return refused(e.to_string()),
        };
        let action = submitted.action;
        self.filed.insert(call.id.clone(), action.id.clone());
        let prompt = tools::describe(&action.params);
        let outcome = match submitted.decision.gate() {
            Gate::Allow => GateOutcome::Allow,
            Gate::Review | Gate::StepUp { .. } => {
                let reason = submitted.decision.gate().to_string();
                let _ = updates.send(ChatUpdate::Confirm {
                    call_id: call.id.clone(),
                    prompt: prompt.clone(),
                    reason: reason.clone(),
                });
                GateOutcome::StepUp { prompt, reason }
            }
            Gate::Deny { reason } => GateOutcome::Refused {
                reason: format!("denied by permissions: {reason}"),
            },
            Gate::Ciba { approver, reason } => {
                let binding = super::batch::binding_message(std::slice::from_ref(&action));
                let deadline = now_ms() + 300_000;
                let cancel = CancellationToken::new();
                let (p, device, c) = (self.pipeline.clone(), self.device.clone(), cancel.clone());
                let (tx, call_id, id, approver2) = (
                    dev_tx.clone(),
                    call.id.clone(),
                    action.id.clone(),
                    approver.clone(),
                );
                let task = tokio::spawn(async move {
                    let opts = BatchOptions {
                        concurrency: 1,
                        max_actions: 1,
                        actor: "system:chat".into(),
                        ..Default::default()
                    };
                    let res =
                        run_actions(&p, device.as_ref(), &opts, &c, approver2, vec![action]).await;
                    let state = p.store.get_action(&id).map(|a| a.state);
                    let (approved, detail) = match (&res, state) {
                        (_, Ok(ActionState::Succeeded | ActionState::Failed)) => {
                            (true, "approved on the device".to_string())
                        }
                        (_, Ok(ActionState::Rejected)) => {
                            (false, "denied on the device".to_string())
                        }
                        (Err(e), _) => (false, e.to_string()),
                        _ => (
                            false,
                            "no answer on the device in time; it stays queued".to_string(),
                        ),
                    };
                    let _ = tx.send((call_id, approved, detail));
                });
                self.ciba = Some((call.id.clone(), cancel, task));
                let _ = updates.send(ChatUpdate::Device {
                    call_id: call.id.clone(),
                    binding_message: binding.clone(),
                    deadline,
                });
                GateOutcome::Ciba {
                    prompt,
                    reason: reason.clone(),
                    approver: approver.to_string(),
                    binding_message: binding,
                    deadline,
                }
            }
        };
        Event::Gate {
            call_id: call.id.clone(),
            outcome,
        }
    }

    async fn execute(&mut self, call: &ToolCall, consent: ConsentGiven) -> Result<String, String> {
        let Some(id) = self.filed.get(&call.id).cloned() else {
            return Err("no action was filed for this call".into());
        };
        let store = self.pipeline.store.clone();
        match consent {
            ConsentGiven::Autonomous => {}
            ConsentGiven::SteppedUp => {
                let me = Reviewer {
                    actor: self.actor.clone(),
                    surface: Surface::Chat,
                };
                me.approve(store.as_ref(), &id, true, now_ms())
                    .map_err(|e| e.to_string())?;
            }
            // The device path ran it already (with the CIBA-issued token); report how.
            ConsentGiven::Device => {
                if let Some((_, _, task)) = self.ciba.take() {
                    let _ = task.await;
                }
                let a = store.get_action(&id).map_err(|e| e.to_string())?;
                return match a.state {
                    ActionState::Succeeded => Ok(a.outcome.unwrap_or_default()),
                    other => Err(format!("{other}: {}", a.outcome.unwrap_or_default())),
                };
            }
        }
        match self.pipeline.execute(&id, &Subject::User, now_ms()).await {
            Ok(done) => match done.outcome {
                Ok(o) => Ok(if o.data.is_null() {
                    o.summary
                } else {
                    format!("{}\n{}", o.summary, o.data)
                }),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        }
    }
}
