//! The one execution pipeline: propose → gate → consent → execute → audit.
//!
//! Every surface submits here. `execute` re-checks the gate against the permissions in
//! force, rebuilds the consent proof from the recorded evidence (an edit or a tightened
//! permission voids it), checks the app-level disconnect flag and the connection's
//! granted scopes, obtains the provider token, claims the action by compare-and-set
//! (so it runs at most once across processes), calls the connector, and records the
//! provider's answer with the consent evidence in the audit log.

use super::credentials::{CredentialError, Credentials, Subject};
use super::review::decision_for;
use crate::connectors::http::RetryPolicy;
use crate::connectors::{self, ConnectorError, Endpoints, Outcome, calendar, crm, gmail, slack};
use crate::core::audit::NewAuditEntry;
use crate::core::consent::{
    Consent, ConsentError, Decision, Evidence, Gate, Recorded, payload_digest,
};
use crate::core::domain::{
    Action, ActionKind, ActionParams, ActionState, Connection, CrmProvider, Millis, Surface,
};
use crate::store::{Store, StoreError, Transition};
use serde_json::json;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The rep's CRM (Salesforce) could not be read into the mirror.
    #[error("{source}")]
    Crm { source: ConnectorError },
    #[error("invalid {kind}: {reason}")]
    Invalid { kind: ActionKind, reason: String },
    #[error("{kind}: denied by permissions: {reason}")]
    Denied { kind: ActionKind, reason: String },
    #[error("{id} is {state}, not approved")]
    NotApproved { id: String, state: ActionState },
    #[error("{id}: consent no longer holds ({0}); it is back in the queue for review", .source)]
    ConsentVoid {
        id: String,
        #[source]
        source: ConsentError,
    },
    #[error(
        "{id}: {connection} is disconnected in dealflow; reconnect it (`c` on its row in the TUI's Permissions tab, or `dealflow accounts connect {connection}`) to run this"
    )]
    Disconnected { id: String, connection: String },
    #[error(
        "{id}: {connection} lacks {}: an incremental connect adds it and keeps the rest (`c` on the account in the TUI's Permissions tab, or `dealflow accounts connect {connection}`)",
        short_scopes(scopes)
    )]
    NeedsConnect {
        id: String,
        connection: String,
        scopes: Vec<String>,
    },
    #[error("{id}: {source}")]
    Credentials {
        id: String,
        #[source]
        source: CredentialError,
    },
    /// Another process claimed it first; it will run there, once.
    #[error("{id} is already being executed elsewhere")]
    AlreadyClaimed { id: String },
    #[error("{id}: needs a CIBA-issued token: approve it on your device")]
    NeedsDeviceToken { id: String },
    #[error(transparent)]
    NoConsentKey(#[from] super::seal::SealError),
    #[error("{id}: {source}")]
    Connector {
        id: String,
        #[source]
        source: ConnectorError,
    },
}

/// A new proposal from any surface.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub params: ActionParams,
    pub surface: Surface,
    pub confidence: f64,
    pub title: String,
    pub justification: String,
    /// Who proposes: "agent:claude", "mcp:<client>", "user:<name>".
    pub proposer: String,
}

#[derive(Debug)]
pub struct Submitted {
    pub action: Action,
    pub decision: Decision,
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Executed {
    pub action: Action,
    pub outcome: Result<Outcome, ConnectorError>,
}

pub struct Pipeline {
    pub store: Arc<dyn Store>,
    pub creds: Arc<dyn Credentials>,
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
    pub retry: RetryPolicy,
    /// Owner recorded on deals the CRM creates.
    pub owner: String,
    /// An action `executing` for longer than this is presumed orphaned by a dead
    /// process. Longer than any provider call with its retries, so a live process is
    /// never swept from under its own feet.
    pub executing_lease: std::time::Duration,
    /// Where deals and contacts live (`[crm] provider`).
    pub crm: super::crm::Crm,
    /// The CRM's Contacts as last synced. Kept out of the store on purpose: the store's
    /// contacts are the rep's known counterparties, and anyone (or an automation filing
    /// Contacts from inbound mail) can add a Contact to an org.
    pub crm_contacts: std::sync::Arc<std::sync::Mutex<Vec<crate::core::domain::Contact>>>,
}

fn new_action_id() -> String {
    crate::wall::random_token("act-").to_lowercase()
}

/// One line describing a consent for the audit log.
fn evidence_json(e: &Evidence) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or_default()
}

impl Pipeline {
    pub fn new(
        store: Arc<dyn Store>,
        creds: Arc<dyn Credentials>,
        endpoints: Endpoints,
        owner: String,
    ) -> Pipeline {
        let http = connectors::http::shared_client(std::time::Duration::from_secs(30));
        Pipeline {
            store,
            creds,
            http,
            endpoints,
            retry: RetryPolicy::default(),
            owner,
            executing_lease: std::time::Duration::from_secs(120),
            crm: super::crm::Crm::Local,
            crm_contacts: Default::default(),
        }
    }

    /// The same pipeline with deals and contacts in `crm`.
    pub fn with_crm(mut self, crm: super::crm::Crm) -> Pipeline {
        self.crm = crm;
        self
    }

    pub(super) fn audit(
        &self,
        actor: &str,
        a: &Action,
        event: &str,
        outcome: &str,
        at: Millis,
        mut detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        super::review::audit_facts(a, &mut detail);
        self.store.append_audit(NewAuditEntry {
            ts: at,
            actor: actor.to_string(),
            surface: Some(a.surface),
            event: event.into(),
            action_id: Some(a.id.clone()),
            outcome: outcome.into(),
            detail,
        })?;
        Ok(())
    }

    /// Files a proposal and routes it by its gate: `Allow` is consented autonomously,
    /// `Deny` is rejected, `Ciba` waits for the device, the rest wait for a person.
    pub fn submit(&self, p: Proposal, at: Millis) -> Result<Submitted, PipelineError> {
        let kind = p.params.kind();
        let params = super::review::ground(self.store.as_ref(), p.params)
            .map_err(|reason| PipelineError::Invalid { kind, reason })?;
        params
            .validate()
            .map_err(|reason| PipelineError::Invalid { kind, reason })?;
        let action = Action {
            id: new_action_id(),
            original: params.clone(),
            params,
            state: ActionState::Proposed,
            version: 1,
            surface: p.surface,
            confidence: p.confidence,
            justification: p.justification,
            title: p.title,
            created_at: at,
            updated_at: at,
            outcome: None,
            evidence: None,
        };
        self.store.insert_action(&action)?;
        let decision = super::facts::decision_at(self.store.as_ref(), &action, at)?;
        self.audit(
            &p.proposer,
            &action,
            "action.proposed",
            "ok",
            at,
            json!({
                "kind": kind,
                "target": action.params.target(),
                "title": action.title,
                "confidence": action.confidence,
                "justification": action.justification,
                "gate": decision.gate(),
                "reasons": decision.reasons(),
                "band": decision.band(),
            }),
        )?;
        let to = |state: ActionState, evidence: Option<Recorded>, outcome: Option<String>| {
            self.store.transition(
                &action.id,
                &Transition {
                    from: ActionState::Proposed,
                    version: action.version,
                    to: state,
                    outcome,
                    evidence,
                    at,
                },
            )
        };
        let action = match decision.gate() {
            Gate::Allow => {
                let consent = Consent::grant(&decision, &action.params, Evidence::Autonomous)
                    .map_err(|source| PipelineError::ConsentVoid {
                        id: action.id.clone(),
                        source,
                    })?;
                let sealed = super::seal::key()?.seal(
                    &action,
                    decision.gate().name(),
                    consent.evidence().clone(),
                    at,
                );
                let now = to(ActionState::Approved, Some(sealed), None)?;
                self.audit(
                    "system",
                    &now,
                    "action.approved",
                    "ok",
                    at,
                    json!({
                        "kind": kind, "gate": decision.gate(), "reasons": decision.reasons(),
                        "band": decision.band(), "evidence": evidence_json(consent.evidence()),
                        "payload_digest": payload_digest(&now.params),
                        // What a per-counterparty budget counts this run against.
                        "budget_keys": crate::core::budget::budget_keys(&now.params),
                    }),
                )?;
                now
            }
            Gate::Deny { reason } => {
                let now = to(
                    ActionState::Rejected,
                    None,
                    Some(format!("denied by permissions: {reason}")),
                )?;
                self.audit(
                    "system",
                    &now,
                    "action.denied",
                    "denied",
                    at,
                    json!({ "kind": kind, "gate": decision.gate(), "reasons": decision.reasons() }),
                )?;
                now
            }
            Gate::Ciba { .. } => to(ActionState::AwaitingConsent, None, None)?,
            Gate::Review | Gate::StepUp { .. } => action,
        };
        Ok(Submitted { action, decision })
    }

    /// Reads run at once and leave one audit entry (`action.read`): no side effect, so
    /// nothing to review, claim or reconcile, and no action row in the queue. The gate
    /// still decides: a read the permissions deny is refused (and audited); one they send
    /// to a person takes the full path (filed, reviewed, then run).
    /// Whether the account `kind` needs is there to use: connected in dealflow, connected
    /// at the vault, and granting the scopes. Asked before a person is asked to confirm
    /// something that could not run; `Err` says what to do, in words. A vault that cannot
    /// be asked right now is not a refusal here (execution says what it answered).
    pub async fn account_ready(&self, kind: ActionKind) -> Result<(), String> {
        let Some(conn) = self.connection_of(kind) else {
            return Ok(());
        };
        let name = conn.as_str();
        let how =
            format!("`c` on its row in the Permissions tab, or `dealflow accounts connect {name}`");
        if self
            .store
            .load_permissions()
            .map_err(|e| e.to_string())?
            .disconnected
            .contains(&conn)
        {
            return Err(format!(
                "{kind} needs {name}, which is disconnected in dealflow: reconnect it ({how}), then ask again"
            ));
        }
        match self.creds.granted_scopes(conn).await {
            Ok(None) => Err(format!(
                "{kind} needs {name}, which is not connected: connect it ({how}), then ask again"
            )),
            Ok(Some(granted)) => {
                let missing = missing_scopes(kind, Some(&granted));
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{kind} needs {name} to grant {}: an incremental connect adds it and keeps the rest ({how}), then ask again",
                        short_scopes(&missing)
                    ))
                }
            }
            Err(_) => Ok(()),
        }
    }

    pub async fn run_read(&self, p: Proposal, at: Millis) -> Result<Executed, PipelineError> {
        let kind = p.params.kind();
        if !kind.is_read() {
            return Err(PipelineError::Invalid {
                kind,
                reason: "not a read: submit it for consent".into(),
            });
        }
        let params = super::review::ground(self.store.as_ref(), p.params.clone())
            .map_err(|reason| PipelineError::Invalid { kind, reason })?;
        params
            .validate()
            .map_err(|reason| PipelineError::Invalid { kind, reason })?;
        let read = Action {
            // Not a row in the queue: the id only ties this read's audit entries together.
            id: crate::wall::random_token("read-").to_lowercase(),
            original: params.clone(),
            params,
            state: ActionState::Approved,
            version: 1,
            surface: p.surface,
            confidence: p.confidence,
            justification: p.justification.clone(),
            title: p.title.clone(),
            created_at: at,
            updated_at: at,
            outcome: None,
            evidence: Some(Recorded {
                evidence: Evidence::Autonomous,
                seal: None,
            }),
        };
        let decision = decision_for(self.store.as_ref(), &read, at)?;
        match decision.gate() {
            Gate::Allow => {}
            Gate::Deny { reason } => {
                self.audit(
                    &p.proposer,
                    &read,
                    "action.denied",
                    "denied",
                    at,
                    json!({ "gate": decision.gate(), "reasons": decision.reasons() }),
                )?;
                return Err(PipelineError::Denied {
                    kind,
                    reason: reason.clone(),
                });
            }
            Gate::Review | Gate::StepUp { .. } | Gate::Ciba { .. } => {
                let s = self.submit(p, at)?;
                return self.execute(&s.action.id, &Subject::User, at).await;
            }
        }
        let consent =
            Consent::grant(&decision, &read.params, Evidence::Autonomous).map_err(|source| {
                PipelineError::ConsentVoid {
                    id: read.id.clone(),
                    source,
                }
            })?;
        let token = match self.connection_of(kind) {
            None => None,
            Some(conn) => Some(self.provider_token(&read, conn, &Subject::User, at).await?),
        };
        let result = self
            .dispatch_fresh(&consent, &read, token.as_ref(), &Subject::User)
            .await;
        // What was read is the caller's; the log keeps who read what, and how it went.
        let (state, outcome_word, summary) = match &result {
            Ok(o) => (ActionState::Succeeded, "ok", o.summary.clone()),
            Err(e) => (ActionState::Failed, "failed", e.to_string()),
        };
        self.audit(
            &p.proposer,
            &read,
            "action.read",
            outcome_word,
            at,
            json!({
                "summary": summary,
                "gate": decision.gate(),
                "reasons": decision.reasons(),
                "evidence": evidence_json(consent.evidence()),
            }),
        )?;
        Ok(Executed {
            action: Action {
                state,
                outcome: Some(summary),
                ..read
            },
            outcome: result,
        })
    }

    /// Runs an approved action. See the module doc for the order of checks.
    pub async fn execute(
        &self,
        id: &str,
        subject: &Subject,
        at: Millis,
    ) -> Result<Executed, PipelineError> {
        let a = self.store.get_action(id)?;
        if a.state != ActionState::Approved {
            return Err(PipelineError::NotApproved {
                id: id.into(),
                state: a.state,
            });
        }
        // A write to the rep's CRM is judged on the record as it is now.
        self.refresh_for_gate(&a, &Subject::User).await;
        let decision = super::facts::decision_at(self.store.as_ref(), &a, at)?;
        // The store is not trusted for consent: only evidence sealed under this user's
        // key for exactly this action and payload counts.
        let key = super::seal::key()?;
        let seal = a.evidence.as_ref().and_then(|r| r.seal.clone());
        let used = match &seal {
            Some(seal) => super::seal::already_used(self.store.as_ref(), &a.id, seal)?,
            None => false,
        };
        let consent = match key.open(&a).map_err(ConsentError::Unsealed).and_then(|ev| {
            if used {
                Err(ConsentError::Unsealed(
                    "it was already used: consent runs an action once".into(),
                ))
            } else {
                Consent::grant(&decision, &a.params, ev.clone())
            }
        }) {
            Ok(c) => c,
            Err(source) => {
                // Permissions tightened (or evidence lost) since approval: back to review.
                match self.store.transition(
                    id,
                    &Transition {
                        from: ActionState::Approved,
                        version: a.version,
                        to: ActionState::Proposed,
                        outcome: Some(format!("consent no longer holds: {source}")),
                        evidence: None,
                        at,
                    },
                ) {
                    Ok(_) => {}
                    // Another process moved it since we read it (it ran it, and so its
                    // seal reads as used here): theirs, nothing to undo.
                    Err(StoreError::Conflict { .. }) => {
                        return Err(PipelineError::AlreadyClaimed { id: id.into() });
                    }
                    Err(e) => return Err(e.into()),
                }
                self.audit(
                    "system",
                    &a,
                    "action.consent_void",
                    "denied",
                    at,
                    json!({ "gate": decision.gate(), "reasons": decision.reasons(), "why": source.to_string() }),
                )?;
                return Err(PipelineError::ConsentVoid {
                    id: id.into(),
                    source,
                });
            }
        };
        if matches!(consent.evidence(), Evidence::Ciba { .. }) && matches!(subject, Subject::User) {
            return Err(PipelineError::NeedsDeviceToken { id: id.into() });
        }

        // Provider checks come before the claim, so a blocked action stays approved.
        // A team lead's yes is consent, not access to the rep's accounts: their token
        // would exchange for the lead's own mailbox, so the rep's session opens the
        // rep's vault (the lead's token has already proven the lead said yes).
        let exchange_as = match consent.evidence() {
            Evidence::Ciba {
                approver: crate::core::permissions::Approver::TeamLead(_),
                ..
            } => &Subject::User,
            _ => subject,
        };
        let kind = a.kind();
        let token = match self.connection_of(kind) {
            None => None,
            Some(conn) => Some(self.provider_token(&a, conn, exchange_as, at).await?),
        };

        let claimed = match self.store.transition(
            id,
            &Transition {
                from: ActionState::Approved,
                version: a.version,
                to: ActionState::Executing,
                outcome: None,
                evidence: None,
                at,
            },
        ) {
            Ok(c) => c,
            Err(StoreError::Conflict { .. }) => {
                return Err(PipelineError::AlreadyClaimed { id: id.into() });
            }
            Err(e) => return Err(e.into()),
        };

        let result = self
            .dispatch_fresh(&consent, &claimed, token.as_ref(), subject)
            .await;
        let (state, outcome_text) = match &result {
            Ok(o) => (ActionState::Succeeded, o.summary.clone()),
            // A read that may or may not have been served leaves nothing to reconcile.
            Err(e) if e.is_ambiguous() && kind.is_write() => (
                ActionState::NeedsReconciliation,
                format!("{e}; it may have happened: reconcile before retrying"),
            ),
            Err(ConnectorError::NeedsScopes { scopes, .. }) => (
                ActionState::Failed,
                format!("incremental connect needed: grant {}", short_scopes(scopes)),
            ),
            Err(ConnectorError::Unauthorized { endpoint, detail }) => (
                ActionState::Failed,
                format!("{endpoint}: not authorized ({detail}); reconnect the account"),
            ),
            Err(e) => (ActionState::Failed, e.to_string()),
        };
        // The provider's answer is audited before the state records it: a crash in
        // between leaves the action `executing` (reconciled later, by its derived id),
        // never a finished action whose side effect the audit log does not mention.
        let (outcome_word, provider) = match &result {
            Ok(o) => ("ok", o.data.clone()),
            Err(e) => (
                if e.is_ambiguous() && kind.is_write() {
                    "unknown"
                } else {
                    "failed"
                },
                json!({ "error": e.to_string() }),
            ),
        };
        self.audit(
            &match consent.evidence() {
                Evidence::Autonomous => "system".to_string(),
                Evidence::Reviewed { actor, .. } | Evidence::SteppedUp { actor, .. } => {
                    actor.clone()
                }
                // Who said yes: the verified subject of the device's token.
                Evidence::Ciba { sub, .. } => format!("device:{sub}"),
            },
            &a,
            "action.executed",
            outcome_word,
            at,
            json!({
                "kind": kind,
                "target": claimed.params.target(),
                "state": state,
                "summary": outcome_text,
                "provider": provider,
                "gate": decision.gate(),
                "reasons": decision.reasons(),
                "band": decision.band(),
                "evidence": evidence_json(consent.evidence()),
                "payload_digest": payload_digest(&claimed.params),
                // The consent this used up (single-use: see seal::already_used).
                "seal": seal.as_ref().map(super::seal::seal_id),
            }),
        )?;
        let done = self.store.transition(
            id,
            &Transition {
                from: ActionState::Executing,
                version: claimed.version,
                to: state,
                outcome: Some(outcome_text.clone()),
                evidence: None,
                at,
            },
        )?;
        Ok(Executed {
            action: done,
            outcome: result,
        })
    }

    /// Disconnect flag, granted scopes, then the token; each refusal is audited.
    async fn provider_token(
        &self,
        a: &Action,
        conn: Connection,
        subject: &Subject,
        at: Millis,
    ) -> Result<(String, Vec<String>), PipelineError> {
        let kind = a.kind();
        let blocked = |why: &str, detail: serde_json::Value| {
            self.audit(
                "system",
                a,
                "action.blocked",
                "blocked",
                at,
                json!({ "kind": kind, "connection": conn.as_str(), "why": why, "detail": detail }),
            )
        };
        if self.store.load_permissions()?.disconnected.contains(&conn) {
            blocked("disconnected", json!(null))?;
            return Err(PipelineError::Disconnected {
                id: a.id.clone(),
                connection: conn.as_str().into(),
            });
        }
        let granted = match self.creds.granted_scopes(conn).await {
            Ok(g) => g,
            Err(source) => {
                blocked("credentials", json!(source.to_string()))?;
                return Err(PipelineError::Credentials {
                    id: a.id.clone(),
                    source,
                });
            }
        };
        let missing = missing_scopes(kind, granted.as_deref());
        if granted.is_none() || !missing.is_empty() {
            blocked("needs_connect", json!({ "scopes": missing }))?;
            return Err(PipelineError::NeedsConnect {
                id: a.id.clone(),
                connection: conn.as_str().into(),
                scopes: missing,
            });
        }
        match self.creds.token(conn, subject).await {
            Ok(t) => Ok((t.expose().to_string(), t.scopes.clone())),
            Err(source) => {
                blocked("token_exchange", json!(source.to_string()))?;
                Err(PipelineError::Credentials {
                    id: a.id.clone(),
                    source,
                })
            }
        }
    }

    /// [`Pipeline::dispatch`], and on a 401 (a stale provider token) one more Token Vault
    /// exchange and one more try; a second 401 means reconnect.
    async fn dispatch_fresh(
        &self,
        consent: &Consent,
        a: &Action,
        token: Option<&(String, Vec<String>)>,
        subject: &Subject,
    ) -> Result<Outcome, ConnectorError> {
        let result = self.dispatch(consent, a, token.map(|t| t.0.as_str())).await;
        let (Err(ConnectorError::Unauthorized { .. }), Some(conn)) =
            (&result, self.connection_of(a.kind()))
        else {
            return result;
        };
        self.creds.invalidate(conn);
        self.forget_crm_instance(conn);
        match self.creds.token(conn, subject).await {
            Ok(t) => self.dispatch(consent, a, Some(t.expose())).await,
            Err(e) => Err(ConnectorError::Unauthorized {
                endpoint: "token-vault".into(),
                detail: e.to_string(),
            }),
        }
    }

    /// The only place connectors are called, and only with a consent for exactly this payload.
    async fn dispatch(
        &self,
        consent: &Consent,
        a: &Action,
        token: Option<&str>,
    ) -> Result<Outcome, ConnectorError> {
        if !consent.covers(&a.params) {
            return Err(ConnectorError::Rejected {
                endpoint: "pipeline".into(),
                status: 0,
                detail: "consent does not cover this payload".into(),
            });
        }
        let (c, ep, r) = (&self.http, &self.endpoints, &self.retry);
        let token = token.unwrap_or("");
        match &a.params {
            ActionParams::SendEmail(e) => gmail::send_email(c, ep, token, &a.id, e, r).await,
            ActionParams::DraftEmail(e) => gmail::create_draft(c, ep, token, &a.id, e, r).await,
            ActionParams::ScheduleMeeting {
                title,
                attendees,
                start,
                end,
                description,
            } => {
                let m = calendar::Meeting {
                    title,
                    attendees,
                    start: *start,
                    end: *end,
                    description,
                };
                calendar::insert(c, ep, token, &a.id, &m, r).await
            }
            ActionParams::CheckCalendar { from, to } => {
                calendar::list(c, ep, token, *from, *to, r).await
            }
            ActionParams::PostSlack { channel, text } => {
                slack::post(c, ep, token, channel, text, r).await
            }
            ActionParams::ListSlackChannels {} => slack::list(c, ep, token, r).await,
            ActionParams::ReadInbox { since } => gmail::inbox(c, ep, token, *since, r).await,
            other if self.crm.provider() == CrmProvider::Salesforce => {
                match self.dispatch_crm(a, token).await {
                    Some(r) => r,
                    None => Err(ConnectorError::Crm(format!(
                        "no connector for {}",
                        other.kind()
                    ))),
                }
            }
            other => crm::execute(self.store.as_ref(), &a.id, other, &self.owner, a.updated_at)
                .unwrap_or_else(|| {
                    Err(ConnectorError::Crm(format!(
                        "no connector for {}",
                        other.kind()
                    )))
                }),
        }
    }
}

/// `gmail.send, calendar.events` for a person reading an error.
/// The scopes `kind` needs that `granted` lacks (all of them when nothing is granted).
fn missing_scopes(kind: ActionKind, granted: Option<&[String]>) -> Vec<String> {
    kind.scopes()
        .iter()
        .filter(|s| granted.is_none_or(|g| !g.iter().any(|x| x == *s)))
        .map(|s| s.to_string())
        .collect()
}

fn short_scopes(scopes: &[String]) -> String {
    let short: Vec<&str> = scopes
        .iter()
        .map(|s| crate::auth::connect::short_scope(s))
        .collect();
    short.join(", ")
}
