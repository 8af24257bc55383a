//! Where the rep's deals live, and the store's mirror of a remote CRM.
//!
//! With Salesforce, the store keeps a mirror of the Opportunities and Contacts: every
//! surface (the queue, the gate's facts, the suggestion engine) reads deals from the
//! store, so a fresh read of the CRM lands there. Reads through the pipeline ask
//! Salesforce and refresh the mirror with what they got; the suggestion engine and
//! `dealflow status` sync it first; a write re-reads its Opportunity before the gate
//! decides, so the amount and stage it is judged on are the CRM's as it runs, and the
//! connector refuses the write when the record moved past the revision the rep
//! approved.

use super::pipeline::{Pipeline, PipelineError};
use crate::connectors::salesforce::{Changes, Salesforce};
use crate::connectors::{ConnectorError, Outcome};
use crate::core::domain::{
    Action, ActionKind, ActionParams, Connection, CrmProvider, Deal, format_money,
};
use crate::runtime::credentials::Subject;
use serde_json::json;
use std::sync::Arc;

/// The CRM behind the deal and contact kinds.
#[derive(Debug, Clone, Default)]
pub enum Crm {
    /// dealflow's own store.
    #[default]
    Local,
    Salesforce(Arc<Salesforce>),
}

impl Crm {
    pub fn provider(&self) -> CrmProvider {
        match self {
            Crm::Local => CrmProvider::Local,
            Crm::Salesforce(_) => CrmProvider::Salesforce,
        }
    }
}

/// What a sync of the mirror did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Synced {
    pub deals: usize,
    pub changed: usize,
    /// Why nothing was read: the account is off in dealflow, not connected, or reads
    /// of deals are denied. The mirror stays as it was.
    pub skipped: Option<String>,
}

fn err(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Crm(e.to_string())
}

impl Pipeline {
    /// The connection `kind` needs with this pipeline's CRM.
    pub fn connection_of(&self, kind: ActionKind) -> Option<Connection> {
        kind.connection_with(self.crm.provider())
    }

    fn salesforce(&self) -> Option<&Arc<Salesforce>> {
        match &self.crm {
            Crm::Salesforce(sf) => Some(sf),
            Crm::Local => None,
        }
    }

    /// A refused session may be a token for another org now (the rep reconnected):
    /// the instance is learnt again with the next token.
    pub(super) fn forget_crm_instance(&self, conn: Connection) {
        if let (Connection::Salesforce, Some(sf)) = (conn, self.salesforce()) {
            sf.forget_instance();
        }
    }

    /// The CRM's Contacts as last synced (for the suggestion engine's picture of the
    /// pipeline; never the gate's known counterparties).
    pub fn crm_contacts(&self) -> Vec<crate::core::domain::Contact> {
        self.crm_contacts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts what the CRM said about a deal into the mirror; counts it when it moved.
    fn mirror(&self, d: &Deal) -> Result<bool, ConnectorError> {
        self.mirror_all(std::slice::from_ref(d)).map(|n| n > 0)
    }

    /// The mirror updated with `deals` in one batch: one read of what it holds, one
    /// write of what moved. How many moved.
    fn mirror_all(&self, deals: &[Deal]) -> Result<usize, ConnectorError> {
        let held: std::collections::HashMap<String, Deal> = self
            .store
            .list_deals()
            .map_err(err)?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        let moved: Vec<Deal> = deals
            .iter()
            .filter(|d| held.get(&d.id) != Some(*d))
            .cloned()
            .collect();
        if !moved.is_empty() {
            self.store.upsert_many(&moved, &[]).map_err(err)?;
        }
        Ok(moved.len())
    }

    /// Why the Salesforce account may not be used now, if it may not: off in dealflow,
    /// not connected (or without `api`) at the vault. Nothing is exchanged.
    async fn salesforce_unusable(&self) -> Result<Option<String>, PipelineError> {
        if self
            .store
            .load_permissions()?
            .disconnected
            .contains(&Connection::Salesforce)
        {
            return Ok(Some(
                "salesforce is off in dealflow (`dealflow accounts connect salesforce` turns it on)"
                    .into(),
            ));
        }
        match self.creds.granted_scopes(Connection::Salesforce).await {
            Ok(None) => Ok(Some(
                "salesforce is not connected (`dealflow accounts connect salesforce`)".into(),
            )),
            Ok(Some(g)) if !g.iter().any(|s| s == "api") => Ok(Some(
                "salesforce does not grant api (`dealflow accounts connect salesforce` adds it)"
                    .into(),
            )),
            Ok(Some(_)) => Ok(None),
            Err(source) => Err(PipelineError::Credentials {
                id: "crm-sync".into(),
                source,
            }),
        }
    }

    /// Refreshes the mirror from the CRM: every open Opportunity and the Contacts.
    /// Nothing to do with the CRM in the store.
    pub async fn sync_crm(&self) -> Result<Synced, PipelineError> {
        let Some(sf) = self.salesforce() else {
            return Ok(Synced::default());
        };
        // The same leash as any read of deals: the account's switch, the grant, and the
        // rep's permission for list_deals.
        let denied = self
            .store
            .load_permissions()?
            .autonomy_for(ActionKind::ListDeals)
            == crate::core::permissions::Autonomy::Deny;
        let skipped = if denied {
            Some("reading deals is denied in your permissions".to_string())
        } else {
            self.salesforce_unusable().await?
        };
        if let Some(why) = skipped {
            return Ok(Synced {
                skipped: Some(why),
                ..Synced::default()
            });
        }
        // Deals the mirror holds open that the org no longer lists as open (closed or
        // deleted there since) are read by id, so the mirror follows them.
        let held_open: Vec<String> = self
            .store
            .list_deals()?
            .into_iter()
            .filter(|d| d.crm.is_some() && !d.stage.is_closed())
            .map(|d| d.id)
            .collect();
        let held_open = &held_open;
        let read = |token: String| async move {
            let mut deals = sf.list_deals(&self.http, &token, None, &self.retry).await?;
            let listed: std::collections::HashSet<&str> =
                deals.iter().map(|d| d.id.as_str()).collect();
            let gone: Vec<String> = held_open
                .iter()
                .filter(|id| !listed.contains(id.as_str()))
                .cloned()
                .collect();
            if !gone.is_empty() {
                deals.extend(sf.get_deals(&self.http, &token, &gone, &self.retry).await?);
            }
            let contacts = sf
                .list_contacts(&self.http, &token, 5_000, &self.retry)
                .await?;
            Ok::<_, ConnectorError>((deals, contacts))
        };
        let token = |fresh: bool| async move {
            if fresh {
                self.creds.invalidate(Connection::Salesforce);
                self.forget_crm_instance(Connection::Salesforce);
            }
            self.creds
                .token(Connection::Salesforce, &Subject::User)
                .await
                .map(|t| t.expose().to_string())
                .map_err(|source| PipelineError::Credentials {
                    id: "crm-sync".into(),
                    source,
                })
        };
        // A stale token (INVALID_SESSION_ID) is exchanged again once, as for any call.
        let (deals, contacts) = match read(token(false).await?).await {
            Err(ConnectorError::Unauthorized { .. }) => read(token(true).await?).await,
            other => other,
        }
        .map_err(|source| PipelineError::Crm { source })?;
        let contacts_read = contacts.len();
        *self.crm_contacts.lock().unwrap_or_else(|p| p.into_inner()) = contacts;
        let open = deals.iter().filter(|d| !d.stage.is_closed()).count();
        let changed = self
            .mirror_all(&deals)
            .map_err(|source| PipelineError::Crm { source })?;
        // A read of the rep's CRM, in the log like every other read.
        self.store.append_audit(crate::core::audit::NewAuditEntry {
            ts: crate::wall::now_ms(),
            actor: "system".into(),
            surface: None,
            event: "crm.synced".into(),
            action_id: None,
            outcome: "ok".into(),
            detail: json!({
                "provider": "salesforce",
                "deals": open,
                "changed": changed,
                "contacts": contacts_read,
            }),
        })?;
        Ok(Synced {
            deals: open,
            changed,
            skipped: None,
        })
    }

    /// Before the gate judges a write to an Opportunity: the record as it is now, into
    /// the mirror, when it is still at the revision the rep approved. A record that
    /// moved on is left for the write to refuse (naming what changed against the copy
    /// the rep saw); a CRM that cannot be asked leaves the mirror as it was, and the
    /// write's own read says why.
    pub(super) async fn refresh_for_gate(&self, a: &Action, subject: &Subject) {
        let Some(sf) = self.salesforce() else {
            return;
        };
        let (ActionParams::UpdateDeal {
            deal_id, revision, ..
        }
        | ActionParams::CloseDeal {
            deal_id, revision, ..
        }) = &a.params
        else {
            return;
        };
        if !matches!(self.salesforce_unusable().await, Ok(None)) {
            return;
        }
        let Ok(token) = self.creds.token(Connection::Salesforce, subject).await else {
            return;
        };
        match sf
            .get_deal(&self.http, token.expose(), deal_id, &self.retry)
            .await
        {
            Ok(Some(d))
                if revision.is_none()
                    || d.crm.as_ref().map(|c| &c.revision) == revision.as_ref() =>
            {
                if let Err(e) = self.mirror(&d) {
                    tracing::warn!(error = %e, "cannot refresh the CRM mirror");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::info!(error = %e, deal = %deal_id, "CRM read before the gate"),
        }
    }

    /// Runs a deal or contact kind against Salesforce; `None` when the CRM is the store's.
    pub(super) async fn dispatch_crm(
        &self,
        a: &Action,
        token: &str,
    ) -> Option<Result<Outcome, ConnectorError>> {
        let sf = self.salesforce()?;
        let (c, r) = (&self.http, &self.retry);
        Some(match &a.params {
            ActionParams::ListDeals { stage } => match sf.list_deals(c, token, *stage, r).await {
                Ok(ds) => {
                    self.mirror_all(&ds).ok();
                    Ok(Outcome {
                        summary: format!("{} deals in Salesforce", ds.len()),
                        provider_id: None,
                        data: json!({ "deals": ds }),
                    })
                }
                Err(e) => Err(e),
            },
            ActionParams::GetDeal { deal_id } => match sf.get_deal(c, token, deal_id, r).await {
                Ok(Some(d)) => {
                    self.mirror(&d).ok();
                    Ok(Outcome {
                        summary: format!(
                            "{} — {} ({})",
                            d.name,
                            format_money(d.amount_cents),
                            d.stage.as_str()
                        ),
                        provider_id: Some(d.id.clone()),
                        data: json!({ "deal": d }),
                    })
                }
                Ok(None) => Err(ConnectorError::Rejected {
                    endpoint: "salesforce.query".into(),
                    status: 404,
                    detail: format!("no Opportunity {deal_id:?} visible to you"),
                }),
                Err(e) => Err(e),
            },
            ActionParams::SearchContacts { query } => sf
                .search_contacts(c, token, query, r)
                .await
                .map(|hits| Outcome {
                    summary: format!("{} Salesforce contacts match {query:?}", hits.len()),
                    provider_id: None,
                    data: json!({ "contacts": hits }),
                }),
            ActionParams::CreateDeal {
                name,
                account,
                amount_cents,
                stage,
            } => sf
                .create_deal(
                    c,
                    token,
                    &a.id,
                    name,
                    account,
                    *amount_cents,
                    *stage,
                    a.updated_at,
                    r,
                )
                .await
                .and_then(|d| {
                    self.mirror(&d)?;
                    Ok(Outcome {
                        summary: format!(
                            "created Opportunity {} ({}) in Salesforce",
                            d.name,
                            format_money(d.amount_cents)
                        ),
                        provider_id: Some(d.id.clone()),
                        data: json!({ "deal": d }),
                    })
                }),
            ActionParams::UpdateDeal {
                deal_id,
                stage,
                amount_cents,
                notes,
                revision,
            } => {
                let changes = Changes {
                    stage: *stage,
                    amount_cents: *amount_cents,
                    notes: notes.clone(),
                    expect_amount_cents: None,
                };
                self.write(
                    sf,
                    a,
                    token,
                    deal_id,
                    revision.as_deref(),
                    &changes,
                    "updated",
                )
                .await
            }
            ActionParams::CloseDeal {
                deal_id,
                won,
                revision,
                amount_cents,
            } => {
                let changes = Changes {
                    stage: Some(crate::core::domain::Stage::closed(*won)),
                    expect_amount_cents: Some(*amount_cents),
                    ..Changes::default()
                };
                let verb = if *won {
                    "closed as won"
                } else {
                    "closed as lost"
                };
                self.write(sf, a, token, deal_id, revision.as_deref(), &changes, verb)
                    .await
            }
            _ => return None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        sf: &Salesforce,
        _a: &Action,
        token: &str,
        deal_id: &str,
        revision: Option<&str>,
        changes: &Changes,
        verb: &str,
    ) -> Result<Outcome, ConnectorError> {
        // A write without the revision it was proposed against cannot show that the
        // record is as the rep saw it: proposed before the deal was read from Salesforce.
        let Some(revision) = revision else {
            return Err(ConnectorError::Conflict {
                endpoint: "salesforce.update".into(),
                detail: format!(
                    "{deal_id} was proposed without the Salesforce revision it was read at; propose it again"
                ),
            });
        };
        let revision = Some(revision);
        let seen = self.store.get_deal(deal_id).map_err(err)?;
        let result = sf
            .update_deal(
                &self.http,
                token,
                deal_id,
                revision,
                seen.as_ref(),
                changes,
                &self.retry,
            )
            .await;
        if let Err(ConnectorError::Conflict { .. }) = &result {
            // Show the rep the record as it is now.
            if let Ok(Some(now)) = sf.get_deal(&self.http, token, deal_id, &self.retry).await {
                self.mirror(&now).ok();
            }
        }
        let d = result?;
        self.mirror(&d)?;
        Ok(Outcome {
            summary: format!("{verb}: {} in Salesforce", d.name),
            provider_id: Some(d.id.clone()),
            data: json!({ "deal": d }),
        })
    }

    /// Reconciliation against Salesforce: a create is found by its external id; an
    /// update or close counts as done when the record shows what it asked for.
    pub(super) async fn find_in_crm(&self, a: &Action) -> Option<Result<Option<String>, String>> {
        let sf = self.salesforce()?;
        if !a.kind().is_crm() || a.kind().is_read() {
            return None;
        }
        let token = match self
            .creds
            .token(Connection::Salesforce, &Subject::User)
            .await
        {
            Ok(t) => t,
            Err(e) => return Some(Err(e.to_string())),
        };
        let (c, t, r) = (&self.http, token.expose(), &self.retry);
        Some(match &a.params {
            ActionParams::CreateDeal { .. } => sf
                .find_created(c, t, &a.id, r)
                .await
                .map_err(|e| e.to_string()),
            ActionParams::UpdateDeal {
                deal_id,
                stage,
                amount_cents,
                notes,
                revision,
            } => sf
                .get_deal(c, t, deal_id, r)
                .await
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    settled(d, revision.as_deref(), |d| {
                        stage.is_none_or(|s| d.stage == s)
                            && amount_cents.is_none_or(|x| d.amount_cents == x)
                            && notes.as_ref().is_none_or(|n| &d.notes == n)
                    })
                }),
            ActionParams::CloseDeal {
                deal_id,
                won,
                revision,
                ..
            } => sf
                .get_deal(c, t, deal_id, r)
                .await
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    let want = crate::core::domain::Stage::closed(*won);
                    settled(d, revision.as_deref(), |d| d.stage == want)
                }),
            _ => return None,
        })
    }
}

/// Whether an interrupted write to an Opportunity landed: still at the revision it was
/// made against means it did not (safe to retry); moved on and showing what the write
/// asked means it did; moved on otherwise means someone else changed it too, and only a
/// person can tell (left for reconciliation, with why).
fn settled(
    now: Option<Deal>,
    revision: Option<&str>,
    shows: impl Fn(&Deal) -> bool,
) -> Result<Option<String>, String> {
    let Some(d) = now else {
        return Err("the Opportunity is gone (deleted, or no longer visible to you)".into());
    };
    let at = d.crm.as_ref().map(|c| c.revision.as_str());
    if revision.is_some() && at == revision {
        return Ok(None);
    }
    if shows(&d) {
        return Ok(Some(d.id));
    }
    Err(format!(
        "Opportunity {} changed since, and not as this action asked: check it in Salesforce",
        d.id
    ))
}
