//! The MCP server: external agents read freely and write only with the user's device.
//!
//! Tools come from the action kinds. Reads run through the pipeline at once and are
//! audited with the calling client's name. Writes are submitted with surface `mcp`,
//! whose gate is never below CIBA: the server pushes a request to the device and waits,
//! with progress notifications, up to a bound shorter than the ~60 s at which popular
//! clients cut tool calls; past it, it answers "pending" with the action id and keeps
//! waiting in the background, and `get_action_status` tells the agent how it ended.
//! Refusals are tool results with `isError` (the model can read them); protocol errors
//! are kept for protocol faults. Every write's answer also carries structured content
//! (`status`, `action_id`, and `reason` when it did not run), so a calling agent can act
//! on a rejection without parsing prose.
//!
//! A client that declares the tasks extension (SEP-2663) gets a task for each write
//! instead of a held call: `tools/call` answers at once with the task, `tasks/get`
//! reports `working` with what the phone is showing and then the same final result,
//! and `tasks/cancel` withdraws the wait (the action stays queued, audited). Clients
//! without it keep the bounded wait and `get_action_status`; one that supports URL-mode
//! elicitation is also shown a link to a loopback page saying what the phone is asked
//! and how it stands; declining that prompt takes the write back (rejected, audited),
//! dismissing it leaves the answer to the phone.

pub mod status_page;
pub mod stdio;
pub mod tools;

use crate::core::consent::Gate;
use crate::core::domain::{ActionParams, ActionState, Surface};
use crate::core::permissions::Approver;
use crate::runtime::batch::{BatchOptions, DeviceConsent, run_actions};
use crate::runtime::pipeline::{Pipeline, Proposal};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
    ContentBlock as Content, CreateTaskResult, GetTaskParams, GetTaskResult, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct McpServer {
    pipeline: Arc<Pipeline>,
    device: Arc<dyn DeviceConsent>,
    /// How long a write waits for the device before answering "pending".
    pub wait_bound: Duration,
    /// How often progress is reported while waiting.
    pub progress_every: Duration,
    /// Batch window for the approved write.
    pub window: Duration,
    /// Writes waiting for the device as tasks, for clients that declared them.
    tasks: Arc<TaskManager>,
    /// The loopback status pages URL-mode elicitation links to, started on first use.
    pages: Arc<tokio::sync::OnceCell<Arc<status_page::StatusPages>>>,
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![Content::text(s.into())])
}

fn refusal(s: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![Content::text(s.into())])
}

/// How a write ended, for the calling agent: the sentence a model reads, and the same
/// facts as structured content (`status`, `action_id`, `reason`) a program can branch on.
fn outcome(status: &str, id: &str, sentence: String, result: Option<String>) -> CallToolResult {
    let ran = status == "succeeded";
    let mut facts = json!({ "status": status, "action_id": id });
    if ran {
        facts["result"] = result.unwrap_or_default().into();
    } else {
        facts["reason"] = sentence.clone().into();
    }
    let mut r = if ran {
        CallToolResult::success(vec![Content::text(facts.to_string())])
    } else {
        CallToolResult::error(vec![Content::text(sentence)])
    };
    r.structured_content = Some(facts);
    r
}

use crate::wall::now_ms;

impl McpServer {
    pub fn new(
        pipeline: Arc<Pipeline>,
        device: Arc<dyn DeviceConsent>,
        wait_bound: Duration,
    ) -> Self {
        McpServer {
            pipeline,
            device,
            wait_bound,
            progress_every: Duration::from_secs(5),
            window: Duration::from_secs(600),
            tasks: Arc::new(TaskManager::new()),
            pages: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// Asks the client to show the person where the write stands, if it can show a
    /// link (URL-mode elicitation). `None` when it cannot, or the page cannot be served.
    async fn point_at_phone(
        &self,
        id: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> Option<
        std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<
                            rmcp::model::ElicitationAction,
                            rmcp::service::ElicitationError,
                        >,
                    > + Send,
            >,
        >,
    > {
        use rmcp::service::ElicitationMode;
        if !ctx
            .peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Url)
        {
            return None;
        }
        let store = self.pipeline.store.clone();
        let pages = self
            .pages
            .get_or_try_init(|| status_page::StatusPages::start(store))
            .await
            .map_err(|e| tracing::warn!(error = %e, "no status page for URL elicitation"))
            .ok()?;
        let url = url::Url::parse(&pages.url_for(id)).ok()?;
        let what = self.asked(id);
        let peer = ctx.peer.clone();
        let message = format!(
            "Approve or deny on your phone: \"{what}\". The link shows how it stands; decline to take the request back."
        );
        let elicitation_id = format!("dealflow-{id}");
        Some(Box::pin(async move {
            peer.elicit_url(message, url, elicitation_id).await
        }))
    }

    fn batch_options(&self) -> BatchOptions {
        BatchOptions {
            window: self.window,
            concurrency: 1,
            max_actions: 1,
            actor: "system:mcp".into(),
        }
    }

    fn audit_cancel(&self, client: &str, id: &str, why: &str) {
        let _ = self
            .pipeline
            .store
            .append_audit(crate::core::audit::NewAuditEntry {
                ts: now_ms(),
                actor: format!("mcp:{client}"),
                surface: Some(Surface::Mcp),
                event: "mcp.cancelled".into(),
                action_id: Some(id.into()),
                outcome: "cancelled".into(),
                detail: json!({ "why": why }),
            });
    }

    /// What the phone is asked about `id`, as its binding message says it.
    fn asked(&self, id: &str) -> String {
        self.pipeline
            .store
            .get_action(id)
            .map(|a| crate::runtime::batch::binding_message(std::slice::from_ref(&a)))
            .unwrap_or_default()
    }

    /// The write as a task: the call answers at once, and `tasks/get` follows the
    /// device until the same final answer a held call would give.
    fn spawn_task(&self, id: String, approver: Approver, client: String) -> CreateTaskResult {
        let server = self.clone();
        let what = self.asked(&id);
        let opts = TaskOptions::new()
            .with_poll_interval_ms(2_000)
            .with_status_message(format!("waiting for approval on the device: {what}"));
        let task = self.tasks.spawn(opts, move |tctx| {
            Box::pin(async move {
                let cancel = CancellationToken::new();
                let action =
                    server.pipeline.store.get_action(&id).map_err(|e| {
                        TaskExit::Error(McpError::internal_error(e.to_string(), None))
                    })?;
                let opts = server.batch_options();
                let run = run_actions(
                    &server.pipeline,
                    server.device.as_ref(),
                    &opts,
                    &cancel,
                    approver,
                    vec![action],
                );
                tokio::select! {
                    r = run => Ok(match r {
                        Ok(_) => server.final_answer(&id),
                        Err(e) => outcome("failed", &id, e.to_string(), None),
                    }),
                    _ = tctx.cancelled() => {
                        cancel.cancel();
                        server.audit_cancel(&client, &id, "the client cancelled the task");
                        Err(TaskExit::Cancelled)
                    }
                }
            })
        });
        CreateTaskResult::new(task)
    }

    fn client_name(ctx: &RequestContext<RoleServer>) -> String {
        ctx.peer
            .peer_info()
            .map(|i| i.client_info.name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "unknown".into())
    }

    fn status(&self, args: &serde_json::Map<String, Value>) -> CallToolResult {
        let Some(id) = args.get("action_id").and_then(Value::as_str) else {
            return refusal("get_action_status needs {\"action_id\": \"act-…\"}");
        };
        match self.pipeline.store.get_action(id) {
            Ok(a) if a.surface == Surface::Mcp => text(
                json!({
                    "action_id": a.id,
                    "state": a.state,
                    "outcome": a.outcome,
                    "done": a.state.is_terminal(),
                })
                .to_string(),
            ),
            // External agents only see what they asked for.
            Ok(_) | Err(_) => refusal(format!("no action {id} from an MCP client")),
        }
    }

    async fn call(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = req.arguments.clone().unwrap_or_default();
        if req.name == tools::STATUS_TOOL {
            return Ok(self.status(&args).into());
        }
        let Some(kind) = tools::kind_of(&req.name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool {}", req.name),
                None,
            ));
        };
        let params: ActionParams =
            match crate::agent::tools::params_for(kind, &Value::Object(args.clone())) {
                Ok(p) => p,
                Err(e) => {
                    return Ok(refusal(format!("invalid arguments for {}: {e}", req.name)).into());
                }
            };
        let client = Self::client_name(&ctx);
        let proposal = Proposal {
            title: format!("{} via MCP ({client})", kind.as_str()),
            params,
            surface: Surface::Mcp,
            confidence: 1.0,
            justification: format!("requested by the external agent {client}"),
            proposer: format!("mcp:{client}"),
        };
        if kind.is_read() {
            return Ok(match self.pipeline.run_read(proposal, now_ms()).await {
                Ok(done) => match done.outcome {
                    Ok(o) => text(o.data.to_string()),
                    Err(e) => refusal(e.to_string()),
                },
                Err(e) => refusal(e.to_string()),
            }
            .into());
        }
        // No push reaches the phone for something its account could not run.
        if let Err(why) = self.pipeline.account_ready(kind).await {
            return Ok(refusal(why).into());
        }
        let submitted = match self.pipeline.submit(proposal, now_ms()) {
            Ok(s) => s,
            Err(e) => return Ok(refusal(e.to_string()).into()),
        };
        let action = submitted.action;
        let approver = match submitted.decision.gate() {
            Gate::Deny { reason } => {
                return Ok(outcome("denied", &action.id, format!("denied: {reason}"), None).into());
            }
            Gate::Ciba { approver, .. } => approver.clone(),
            // The surface floor makes this unreachable; refuse rather than run unasked.
            other => {
                return Ok(refusal(format!(
                    "refused: an MCP write must be approved on the device, but the gate is {other}"
                ))
                .into());
            }
        };
        let tasks = ctx
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks());
        if tasks {
            return Ok(CallToolResponse::Task(
                self.spawn_task(action.id, approver, client),
            ));
        }
        Ok(self.wait_for_device(action.id, approver, &ctx).await.into())
    }

    async fn wait_for_device(
        &self,
        id: String,
        approver: Approver,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let cancel = CancellationToken::new();
        let task = {
            let (p, device, cancel) = (self.pipeline.clone(), self.device.clone(), cancel.clone());
            let opts = self.batch_options();
            let id = id.clone();
            tokio::spawn(async move {
                let action = p.store.get_action(&id)?;
                run_actions(&p, device.as_ref(), &opts, &cancel, approver, vec![action]).await
            })
        };
        let mut elicitation = self.point_at_phone(&id, ctx).await;
        let progress_token = ctx.meta.get_progress_token();
        let deadline = tokio::time::Instant::now() + self.wait_bound;
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(self.progress_every);
        tick.tick().await;
        let mut task = task;
        loop {
            tokio::select! {
                joined = &mut task => {
                    return match joined {
                        Ok(Ok(_report)) => self.final_answer(&id),
                        Ok(Err(e)) => outcome("failed", &id, e.to_string(), None),
                        Err(e) => refusal(format!("internal error while waiting: {e}")),
                    };
                }
                answer = async { elicitation.as_mut().expect("guarded").await }, if elicitation.is_some() => {
                    elicitation = None;
                    // Decline is the person's explicit no: the request is taken back.
                    // Accept (they saw the link) and cancel (dismissed without a
                    // choice) leave it to the phone.
                    if let Ok(rmcp::model::ElicitationAction::Decline) = answer {
                        cancel.cancel();
                        let _ = (&mut task).await;
                        let client = Self::client_name(ctx);
                        let me = crate::runtime::review::Reviewer {
                            actor: format!("mcp:{client}"),
                            surface: Surface::Mcp,
                        };
                        let why = format!("taken back in {client} while waiting for the phone");
                        return match me.reject(self.pipeline.store.as_ref(), &id, Some(why.clone()), now_ms()) {
                            Ok(_) => outcome("rejected", &id, format!("{why}: {id} was not run"), None),
                            Err(_) => self.final_answer(&id),
                        };
                    }
                }
                _ = ctx.ct.cancelled() => {
                    cancel.cancel();
                    let _ = (&mut task).await;
                    self.audit_cancel(&Self::client_name(ctx), &id, "the client cancelled the tool call");
                    return outcome(
                        "cancelled",
                        &id,
                        format!("cancelled; {id} stays queued for device approval"),
                        None,
                    );
                }
                _ = tokio::time::sleep_until(deadline) => {
                    // Dropping the handle detaches the task: it keeps waiting for the
                    // device in the background while the agent polls get_action_status.
                    drop(task);
                    return text(json!({
                        "status": "pending",
                        "action_id": id,
                        "message": format!(
                            "waiting for approval on your device; call {} with this action_id",
                            tools::STATUS_TOOL
                        ),
                    }).to_string());
                }
                _ = tick.tick() => {
                    if let Some(token) = progress_token.clone() {
                        let waited = started.elapsed().as_secs_f64();
                        let mut p = ProgressNotificationParam::new(token, waited)
                            .with_total(self.wait_bound.as_secs_f64());
                        p.message = Some("waiting for approval on your device".into());
                        let _ = ctx.peer.notify_progress(p).await;
                    }
                }
            }
        }
    }

    fn final_answer(&self, id: &str) -> CallToolResult {
        let a = match self.pipeline.store.get_action(id) {
            Ok(a) => a,
            Err(e) => return refusal(e.to_string()),
        };
        let said = a.outcome.clone().unwrap_or_default();
        match a.state {
            ActionState::Succeeded => outcome("succeeded", id, String::new(), Some(said)),
            ActionState::Rejected => outcome(
                "rejected",
                id,
                format!("denied on the device: {id} was not run"),
                None,
            ),
            // Still queued: either the device never answered, or what it approved can no
            // longer run (MCP writes switched off, a denied kind) — say which.
            ActionState::AwaitingConsent => {
                match crate::runtime::review::decision_for(
                    self.pipeline.store.as_ref(),
                    &a,
                    now_ms(),
                ) {
                    Ok(d) if matches!(d.gate(), Gate::Deny { .. }) => outcome(
                        "denied",
                        id,
                        format!("denied: {}; {id} was not run", d.gate()),
                        None,
                    ),
                    _ => outcome(
                        "expired",
                        id,
                        format!(
                            "expired: no answer on the device in time; {id} stays queued for device approval"
                        ),
                        None,
                    ),
                }
            }
            ActionState::Proposed => outcome(
                "needs_approval",
                id,
                format!("{id} changed while waiting and needs approval again: {said}"),
                None,
            ),
            other => outcome(
                &other.to_string(),
                id,
                format!("{id} is {other}: {said}"),
                None,
            ),
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
            .with_server_info(Implementation::new("dealflow", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "dealflow: read the rep's pipeline freely; every write asks the user's phone \
                 (CIBA) first. A write may answer {\"status\":\"pending\"}: poll get_action_status.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let writes = self
            .pipeline
            .store
            .load_permissions()
            .map(|p| p.mcp_writes_enabled)
            .unwrap_or(false);
        Ok(ListToolsResult::with_all_items(tools::list(writes)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(request, ctx).await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        self.tasks
            .get_task(&request.task_id)
            .map(GetTaskResult::new)
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.tasks.cancel_task(&request.task_id)
    }
}
