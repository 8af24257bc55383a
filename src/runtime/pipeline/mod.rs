//! The one execution pipeline: propose → gate → consent → execute → audit.
//!
//! Every surface submits here. `execute` re-checks the gate against the permissions in
//! force, rebuilds the consent proof from the recorded evidence (an edit or a tightened
//! permission voids it), checks the app-level disconnect flag and the connection's
//! granted scopes, obtains the provider token, claims the action by compare-and-set
//! (so it runs at most once across processes), calls the connector, and records the
//! provider's answer with the consent evidence in the audit log.

use super::credentials::{CredentialError, Credentials};
use crate::connectors::http::RetryPolicy;
use crate::connectors::{self, ConnectorError, Endpoints, Outcome};
use crate::core::audit::NewAuditEntry;
use crate::core::consent::{
    Consent, ConsentError, Decision, Evidence, Gate, Recorded, payload_digest,
};
use crate::core::domain::{Action, ActionKind, ActionParams, ActionState, Millis, Surface};
use crate::store::{Store, StoreError, Transition};
use serde_json::json;
use std::sync::Arc;

mod execute;
mod reads;

use execute::short_scopes;
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
}
