//! Start-up reconciliation: what a crashed run left `executing` (or approved on a device
//! whose token died with it) is checked against the provider by the id the action
//! derived for it, and settled; nothing is re-run.

use super::credentials::Subject;
use super::pipeline::{Pipeline, PipelineError};
use crate::connectors::{self, calendar, gmail};
use crate::core::consent::{Evidence, Recorded};
use crate::core::domain::{Action, ActionParams, ActionState, Connection, Millis};

use crate::store::{ActionFilter, StoreError, Transition};
use serde_json::json;

impl Pipeline {
    /// Start-up sweep: actions left `executing` by a crash become
    /// `needs_reconciliation`; then each is checked against the provider by its derived
    /// id where the provider allows it. Nothing is re-run.
    pub async fn reconcile(&self, at: Millis) -> Result<Vec<Action>, PipelineError> {
        let stale_before = at - self.executing_lease.as_millis() as i64;
        let stuck = self.store.list_actions(&ActionFilter {
            states: vec![ActionState::Executing, ActionState::Approved],
            limit: None,
        })?;
        for a in stuck.into_iter().filter(|a| a.updated_at <= stale_before) {
            let (to, event, why) = match (&a.state, &a.evidence) {
                (ActionState::Executing, _) => (
                    ActionState::NeedsReconciliation,
                    "action.interrupted",
                    "found executing after its lease: the process running it died",
                ),
                // A device approval's token died with the process that held it.
                (
                    ActionState::Approved,
                    Some(Recorded {
                        evidence: Evidence::Ciba { .. },
                        ..
                    }),
                ) => (
                    ActionState::AwaitingConsent,
                    "action.requeued",
                    "approved on the device but not run before the process ended",
                ),
                _ => continue,
            };
            let moved = self.store.transition(
                &a.id,
                &Transition {
                    from: a.state,
                    version: a.version,
                    to,
                    outcome: Some(why.to_string()),
                    evidence: None,
                    at,
                },
            );
            match moved {
                Ok(_) => self.audit(
                    "system",
                    &a,
                    event,
                    "unknown",
                    at,
                    json!({ "kind": a.kind(), "why": why }),
                )?,
                // It moved on in its own process meanwhile: not orphaned after all.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let pending = self.store.list_actions(&ActionFilter {
            states: vec![ActionState::NeedsReconciliation],
            limit: None,
        })?;
        let mut out = Vec::new();
        for a in pending {
            let found = self.find_at_provider(&a).await;
            let (to, text) = match found {
                Some(Ok(Some(pid))) => (
                    ActionState::Succeeded,
                    format!("reconciled: found at the provider ({pid})"),
                ),
                Some(Ok(None)) => (
                    ActionState::Failed,
                    "reconciled: not found at the provider; safe to retry".to_string(),
                ),
                Some(Err(e)) => {
                    tracing::warn!(action = %a.id, error = %e, "reconciliation check failed");
                    out.push(a);
                    continue;
                }
                None => {
                    out.push(a);
                    continue;
                }
            };
            let now = self.store.transition(
                &a.id,
                &Transition {
                    from: ActionState::NeedsReconciliation,
                    version: a.version,
                    to,
                    outcome: Some(text.clone()),
                    evidence: None,
                    at,
                },
            )?;
            self.audit(
                "system",
                &a,
                "action.reconciled",
                if to == ActionState::Succeeded {
                    "ok"
                } else {
                    "failed"
                },
                at,
                json!({ "kind": a.kind(), "state": to, "summary": text }),
            )?;
            out.push(now);
        }
        Ok(out)
    }

    /// `None` when the provider offers no way to look (Slack posts, drafts).
    async fn find_at_provider(&self, a: &Action) -> Option<Result<Option<String>, String>> {
        if let Some(found) = self.find_in_crm(a).await {
            return Some(found);
        }
        let lookup = |conn: Connection| async move {
            self.creds
                .token(conn, &Subject::User)
                .await
                .map_err(|e| e.to_string())
        };
        match &a.params {
            ActionParams::SendEmail(_) => Some(match lookup(Connection::Google).await {
                Ok(t) => gmail::find_sent(&self.http, &self.endpoints, t.expose(), &a.id)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            }),
            ActionParams::ScheduleMeeting { .. } => Some(match lookup(Connection::Google).await {
                Ok(t) => calendar::find(&self.http, &self.endpoints, t.expose(), &a.id)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            }),
            ActionParams::CreateDeal { .. } => {
                let id = format!("deal-{}", &connectors::derived_id(&a.id)[..12]);
                Some(
                    self.store
                        .get_deal(&id)
                        .map(|d| d.map(|d| d.id))
                        .map_err(|e| e.to_string()),
                )
            }
            _ => None,
        }
    }
}
