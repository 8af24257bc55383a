//! Reads, which run at once with one audit entry, and whether the account an action
//! kind needs is ready to use.

use super::execute::{missing_scopes, short_scopes};
use super::{Executed, Pipeline, PipelineError, Proposal, evidence_json};
use crate::core::consent::{Consent, Evidence, Gate, Recorded};
use crate::core::domain::{Action, ActionKind, ActionState, Millis};
use crate::runtime::credentials::Subject;
use crate::runtime::review::decision_for;
use serde_json::json;

impl Pipeline {
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
        let params = crate::runtime::review::ground(self.store.as_ref(), p.params.clone())
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
}
