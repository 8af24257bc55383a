//! The chat agent's IO: what the pure machine (`core::agent::Agent`, held by whoever
//! shows the conversation — the TUI's Chat tab) asks of the world. A model turn streams
//! as events (cancelling the stream drops it); every tool call is filed with the one
//! pipeline as surface `chat` and its gate reported back; `Allow`, an inline yes or the
//! device's yes runs it; a decline withdraws what was filed. Everything learnt comes back
//! as [`Event`]s through the caller's `report`, exactly as the model and the pipeline
//! said it: turning results into data for the model (`tools::as_data`) is the machine
//! holder's job, because it also shows them.

use super::batch::{BatchOptions, DeviceConsent, run_actions};
use super::credentials::Subject;
use super::pipeline::{Pipeline, Proposal};
use super::review::Reviewer;
use crate::agent::{self, tools};
use crate::core::agent::{ConsentGiven, Event, GateOutcome, Io, ToolCall};
use crate::core::consent::Gate;
use crate::core::domain::{ActionState, Surface};
use crate::llm::{LanguageModel, TurnRequest};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Where the IO's findings go (the TUI sends them to the app as messages).
pub type Report = Arc<dyn Fn(Event) + Send + Sync>;

/// The model the chat streams from: a configured one, or the offline planner, which
/// reads a snapshot of the pipeline taken at the start of each turn.
#[derive(Clone)]
pub enum ChatModel {
    Remote(Arc<dyn LanguageModel>),
    Offline,
}

/// A device wait: the call it is for, how to stop it, the run itself, and the signal
/// that lets it report (only once its gate was reported: an answer must not overtake
/// the question).
struct Ciba {
    call_id: String,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    go: Option<tokio::sync::oneshot::Sender<()>>,
}

pub struct ChatIo {
    model: ChatModel,
    pub pipeline: Arc<Pipeline>,
    device: Arc<dyn DeviceConsent>,
    /// The person at the keyboard, as audit rows name them.
    actor: String,
    /// Tool call id → the action filed for it, at the version the prompt described.
    filed: Mutex<HashMap<String, (String, i64)>>,
    /// Calls declined (or cancelled) before or after they were filed.
    declined: Mutex<HashSet<String>>,
    /// The device wait of the call waiting on it: how to stop it, and the run itself.
    ciba: Mutex<Option<Ciba>>,
    /// The model stream running, and how to drop it.
    stream: Mutex<Option<CancellationToken>>,
    /// The model of the current turn (the offline planner's snapshot is per turn).
    current: Mutex<Option<Arc<dyn LanguageModel>>>,
    /// Declines being written (store writes off the caller's task).
    declining: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

use crate::wall::now_ms;

/// The offline planner over a snapshot of the store's pipeline (an empty one if the
/// store could not be read).
fn offline_model(store: Option<&dyn crate::store::Store>) -> Arc<dyn LanguageModel> {
    use crate::store::ActionFilter;
    let snapshot = crate::agent::suggest::Snapshot {
        now: now_ms(),
        deals: store.and_then(|s| s.list_deals().ok()).unwrap_or_default(),
        contacts: store
            .and_then(|s| s.list_contacts().ok())
            .unwrap_or_default(),
        calendar: None,
        inbox: None,
        utc_offset_s: crate::wall::utc_offset_s(),
        existing: store
            .and_then(|s| {
                s.list_actions(&ActionFilter {
                    states: vec![],
                    limit: Some(500),
                })
                .ok()
            })
            .unwrap_or_default(),
    };
    Arc::new(crate::agent::offline::OfflineModel::new(snapshot))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChatIo {
    pub fn new(
        model: ChatModel,
        pipeline: Arc<Pipeline>,
        device: Arc<dyn DeviceConsent>,
        actor: String,
    ) -> Arc<ChatIo> {
        Arc::new(ChatIo {
            model,
            pipeline,
            device,
            actor,
            filed: Mutex::new(HashMap::new()),
            declined: Mutex::new(HashSet::new()),
            ciba: Mutex::new(None),
            stream: Mutex::new(None),
            current: Mutex::new(None),
            declining: Mutex::new(Vec::new()),
        })
    }

    /// Whether the offline planner answers (no API key).
    pub fn is_offline(&self) -> bool {
        matches!(self.model, ChatModel::Offline)
    }

    /// Performs one request of the machine on the runtime; what it learns comes back
    /// through `report`. Never blocks the caller.
    pub fn run(self: &Arc<Self>, io: Io, report: Report) {
        match io {
            Io::StartStream {
                messages,
                iteration,
            } => {
                let token = CancellationToken::new();
                if let Some(old) = lock(&self.stream).replace(token.clone()) {
                    old.cancel();
                }
                let me = self.clone();
                tokio::spawn(async move { me.stream(messages, iteration, token, report).await });
            }
            Io::AbortStream => {
                if let Some(t) = lock(&self.stream).take() {
                    t.cancel();
                }
            }
            Io::SubmitTool { call } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let ev = me.submit(&call, &report).await;
                    report(ev);
                    // The gate is out: a device wait may now report its answer.
                    if let Some(c) = lock(&me.ciba).as_mut()
                        && c.call_id == call.id
                        && let Some(go) = c.go.take()
                    {
                        let _ = go.send(());
                    }
                });
            }
            Io::Execute { call, consent } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let result = me.execute(&call, consent).await;
                    report(Event::ToolResult {
                        call_id: call.id,
                        result,
                    });
                });
            }
            Io::CancelCiba { .. } => {
                if let Some(c) = lock(&self.ciba).as_ref() {
                    c.cancel.cancel();
                }
            }
            Io::Decline { call_id } => {
                let me = self.clone();
                let task = tokio::task::spawn_blocking(move || me.decline(&call_id));
                let mut declining = lock(&self.declining);
                declining.retain(|t| !t.is_finished());
                declining.push(task);
            }
            Io::TurnEnded(_) => {}
        }
    }

    /// Waits until every decline asked for so far is written (before quitting, or
    /// before reading the store after a turn).
    pub async fn settled(&self) {
        let tasks = std::mem::take(&mut *lock(&self.declining));
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn model_for(&self, iteration: u32) -> Arc<dyn LanguageModel> {
        match &self.model {
            ChatModel::Remote(m) => m.clone(),
            ChatModel::Offline => {
                let cached = lock(&self.current).clone();
                match cached {
                    Some(m) if iteration > 1 => m,
                    // The offline planner reads a snapshot: a fresh one every turn.
                    _ => {
                        let store = self.pipeline.store.clone();
                        let m = tokio::task::spawn_blocking(move || {
                            offline_model(Some(store.as_ref()))
                        })
                        .await
                        .unwrap_or_else(|_| offline_model(None));
                        *lock(&self.current) = Some(m.clone());
                        m
                    }
                }
            }
        }
    }

    async fn stream(
        &self,
        messages: Vec<crate::core::agent::ChatMessage>,
        iteration: u32,
        token: CancellationToken,
        report: Report,
    ) {
        let model = self.model_for(iteration).await;
        let mut s = model.stream_turn(TurnRequest {
            system: Some(agent::CHAT_SYSTEM.into()),
            messages: agent::to_llm_messages(&messages),
            tools: tools::chat_tools(),
            tool_choice: None,
        });
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => {
                    s.cancel();
                    break;
                }
                item = s.next() => {
                    let Some(item) = item else { break };
                    // Dropped means dropped: nothing more of it reaches the machine.
                    if token.is_cancelled() {
                        break;
                    }
                    if let Some(ev) = agent::to_event(item) {
                        report(ev);
                    }
                }
            }
        }
    }

    /// Rejects what was filed for a declined call; one filed later is refused on filing.
    fn decline(&self, call_id: &str) {
        lock(&self.declined).insert(call_id.to_string());
        // A push already on its way to the phone for it is withdrawn too.
        if let Some(c) = lock(&self.ciba).as_ref()
            && c.call_id == call_id
        {
            c.cancel.cancel();
        }
        let filed = lock(&self.filed).get(call_id).cloned();
        if let Some((id, _)) = filed {
            self.reject(&id);
        }
    }

    fn reject(&self, id: &str) {
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

    /// Files the call with the pipeline and turns its decision into the machine's event.
    async fn submit(self: &Arc<Self>, call: &ToolCall, report: &Report) -> Event {
        let refused = |reason: String| Event::Gate {
            call_id: call.id.clone(),
            outcome: GateOutcome::Refused { reason },
        };
        let params = match tools::parse_call(&call.name, &call.input) {
            Ok(p) => p,
            Err(e) => return refused(e.to_string()),
        };
        // Nobody is asked to confirm (or pushed to the phone for) a write that could not
        // run: its account comes first. A read needs no such look ahead: it runs at once
        // and its own token check says the same.
        if params.kind().is_write()
            && let Err(why) = self.pipeline.account_ready(params.kind()).await
        {
            return refused(why);
        }
        let proposer = format!("agent:{}", self.model_for(2).await.name());
        let me = self.clone();
        let proposal = Proposal {
            title: format!("{} (chat)", params.kind()),
            params,
            surface: Surface::Chat,
            confidence: 1.0,
            justification: "asked in chat".into(),
            proposer,
        };
        let submitted =
            tokio::task::spawn_blocking(move || me.pipeline.submit(proposal, now_ms())).await;
        let submitted = match submitted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return refused(e.to_string()),
            Err(_) => return refused("filing the action failed".into()),
        };
        let action = submitted.action;
        lock(&self.filed).insert(call.id.clone(), (action.id.clone(), action.version));
        // Declined (the turn cancelled) while it was being filed: it does not wait.
        if lock(&self.declined).contains(&call.id) {
            self.reject(&action.id);
            return refused("cancelled before it was filed".into());
        }
        let prompt = tools::describe(&action.params);
        let outcome = match submitted.decision.gate() {
            Gate::Allow => GateOutcome::Allow,
            Gate::Review | Gate::StepUp { .. } => GateOutcome::StepUp {
                prompt,
                reason: submitted.decision.gate().to_string(),
            },
            Gate::Deny { reason } => GateOutcome::Refused {
                reason: format!("denied by permissions: {reason}"),
            },
            Gate::Ciba { approver, reason } => {
                let binding = super::batch::binding_message(std::slice::from_ref(&action));
                let deadline = now_ms() + 300_000;
                let cancel = CancellationToken::new();
                let (p, device, c) = (self.pipeline.clone(), self.device.clone(), cancel.clone());
                let (report, call_id, id, approver2) = (
                    report.clone(),
                    call.id.clone(),
                    action.id.clone(),
                    approver.clone(),
                );
                let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
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
                        _ if c.is_cancelled() => (false, "cancelled".to_string()),
                        _ => (
                            false,
                            "no answer on the device in time; it stays queued".to_string(),
                        ),
                    };
                    // Not before the gate that asked for it was reported.
                    let _ = go_rx.await;
                    report(Event::CibaResolved {
                        call_id,
                        approved,
                        detail,
                    });
                });
                let now = Ciba {
                    call_id: call.id.clone(),
                    cancel: cancel.clone(),
                    task,
                    go: Some(go_tx),
                };
                if let Some(old) = lock(&self.ciba).replace(now) {
                    old.cancel.cancel();
                }
                // Declined while the push was being sent: withdraw it now.
                if lock(&self.declined).contains(&call.id) {
                    cancel.cancel();
                }
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

    async fn execute(&self, call: &ToolCall, consent: ConsentGiven) -> Result<String, String> {
        let Some((id, version)) = lock(&self.filed).get(&call.id).cloned() else {
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
                let (s, i) = (store.clone(), id.clone());
                // Exactly what the prompt showed: an action edited since (in the Action
                // Center, from another terminal) is refused, not approved unseen.
                tokio::task::spawn_blocking(move || {
                    me.approve_seen(s.as_ref(), &i, Some(version), true, now_ms())
                })
                .await
                .map_err(|_| "approving failed".to_string())?
                .map_err(|e| e.to_string())?;
            }
            // The device path ran it already (with the CIBA-issued token); report how.
            ConsentGiven::Device => {
                let task = lock(&self.ciba).take();
                if let Some(c) = task {
                    let _ = c.task.await;
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
