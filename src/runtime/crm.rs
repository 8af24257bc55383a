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

    /// Puts what the CRM said about a deal into the mirror; counts it when it moved.
    fn mirror(&self, d: &Deal) -> Result<bool, ConnectorError> {
        let before = self.store.get_deal(&d.id).map_err(err)?;
        if before.as_ref() == Some(d) {
            return Ok(false);
        }
        self.store.upsert_deal(d).map_err(err)?;
        Ok(true)
    }

    /// Refreshes the mirror from the CRM: every open Opportunity and the Contacts.
    /// Nothing to do with the CRM in the store.
    pub async fn sync_crm(&self) -> Result<Synced, PipelineError> {
        let Some(sf) = self.salesforce() else {
            return Ok(Synced::default());
        };
        let read = |token: String| async move {
            let deals = sf.list_deals(&self.http, &token, None, &self.retry).await?;
            let contacts = sf
                .list_contacts(&self.http, &token, 5_000, &self.retry)
                .await?;
            Ok::<_, ConnectorError>((deals, contacts))
        };
        let token = |fresh: bool| async move {
            if fresh {
                self.creds.invalidate(Connection::Salesforce);
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
        let known = self.store.list_contacts()?;
        for c in contacts.iter().filter(|c| !known.contains(c)) {
            self.store.upsert_contact(c)?;
        }
        let mut changed = 0;
        for d in &deals {
            if self
                .mirror(d)
                .map_err(|source| PipelineError::Crm { source })?
            {
                changed += 1;
            }
        }
        Ok(Synced {
            deals: deals.len(),
            changed,
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
                    for d in &ds {
                        self.mirror(d).ok();
                    }
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
                ..
            } => {
                let changes = Changes {
                    stage: Some(if *won {
                        crate::core::domain::Stage::ClosedWon
                    } else {
                        crate::core::domain::Stage::ClosedLost
                    }),
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
                ..
            } => sf
                .get_deal(c, t, deal_id, r)
                .await
                .map_err(|e| e.to_string())
                .map(|d| {
                    d.filter(|d| {
                        stage.is_none_or(|s| d.stage == s)
                            && amount_cents.is_none_or(|x| d.amount_cents == x)
                    })
                    .map(|d| d.id)
                }),
            ActionParams::CloseDeal { deal_id, won, .. } => sf
                .get_deal(c, t, deal_id, r)
                .await
                .map_err(|e| e.to_string())
                .map(|d| {
                    d.filter(|d| {
                        d.stage
                            == if *won {
                                crate::core::domain::Stage::ClosedWon
                            } else {
                                crate::core::domain::Stage::ClosedLost
                            }
                    })
                    .map(|d| d.id)
                }),
            _ => return None,
        })
    }
}
