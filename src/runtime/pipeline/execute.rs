//! Running an approved action: the gate re-checked, consent rebuilt, the provider
//! token obtained, the action claimed, the connector called and the answer audited.

use super::{Executed, Pipeline, PipelineError, evidence_json};
use crate::connectors::{ConnectorError, Outcome, calendar, crm, gmail, slack};
use crate::core::consent::{Consent, ConsentError, Evidence, payload_digest};
use crate::core::domain::{
    Action, ActionKind, ActionParams, ActionState, Connection, CrmProvider, Millis,
};
use crate::runtime::credentials::Subject;
use crate::store::{StoreError, Transition};
use serde_json::json;

impl Pipeline {
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
        let decision = crate::runtime::facts::decision_at(self.store.as_ref(), &a, at)?;
        // The store is not trusted for consent: only evidence sealed under this user's
        // key for exactly this action and payload counts.
        let key = crate::runtime::seal::key()?;
        let seal = a.evidence.as_ref().and_then(|r| r.seal.clone());
        let used = match &seal {
            Some(seal) => crate::runtime::seal::already_used(self.store.as_ref(), &a.id, seal)?,
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
                "seal": seal.as_ref().map(crate::runtime::seal::seal_id),
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
    pub(super) async fn provider_token(
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
    pub(super) async fn dispatch_fresh(
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
    pub(super) async fn dispatch(
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
pub(super) fn missing_scopes(kind: ActionKind, granted: Option<&[String]>) -> Vec<String> {
    kind.scopes()
        .iter()
        .filter(|s| granted.is_none_or(|g| !g.iter().any(|x| x == *s)))
        .map(|s| s.to_string())
        .collect()
}

pub(super) fn short_scopes(scopes: &[String]) -> String {
    let short: Vec<&str> = scopes
        .iter()
        .map(|s| crate::auth::connect::short_scope(s))
        .collect();
    short.join(", ")
}
