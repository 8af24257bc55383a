//! The CRM lives in our own store: deals and contacts. Writes are idempotent by
//! construction (a created deal's id derives from the action id).

use super::{ConnectorError, Outcome, derived_id};
use crate::core::domain::{ActionParams, Deal, Millis, Stage, format_money};
use crate::store::Store;
use serde_json::json;

fn err(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Crm(e.to_string())
}

fn deal(store: &dyn Store, id: &str) -> Result<Deal, ConnectorError> {
    store
        .get_deal(id)
        .map_err(err)?
        .ok_or_else(|| ConnectorError::Crm(format!("no deal {id:?}")))
}

/// Runs a CRM action or a store read. `None` if the kind is not the CRM's.
pub fn execute(
    store: &dyn Store,
    action_id: &str,
    params: &ActionParams,
    owner: &str,
    now: Millis,
) -> Option<Result<Outcome, ConnectorError>> {
    Some(match params {
        ActionParams::ListDeals { stage } => store.list_deals().map_err(err).map(|ds| {
            let ds: Vec<_> = ds
                .into_iter()
                .filter(|d| stage.is_none_or(|s| d.stage == s))
                .collect();
            Outcome {
                summary: format!("{} deals", ds.len()),
                provider_id: None,
                data: json!({ "deals": ds }),
            }
        }),
        ActionParams::GetDeal { deal_id } => deal(store, deal_id).map(|d| Outcome {
            summary: format!(
                "{} — {} ({})",
                d.name,
                format_money(d.amount_cents),
                d.stage.as_str()
            ),
            provider_id: Some(d.id.clone()),
            data: json!({ "deal": d }),
        }),
        ActionParams::SearchContacts { query } => store.list_contacts().map_err(err).map(|cs| {
            let q = query.to_lowercase();
            let hits: Vec<_> = cs
                .into_iter()
                .filter(|c| {
                    [&c.name, &c.email, &c.account, &c.title]
                        .iter()
                        .any(|f| f.to_lowercase().contains(&q))
                })
                .collect();
            Outcome {
                summary: format!("{} contacts match {query:?}", hits.len()),
                provider_id: None,
                data: json!({ "contacts": hits }),
            }
        }),
        ActionParams::CreateDeal {
            name,
            account,
            amount_cents,
            stage,
        } => {
            let d = Deal {
                id: format!("deal-{}", &derived_id(action_id)[..12]),
                name: name.clone(),
                account: account.clone(),
                amount_cents: *amount_cents,
                stage: *stage,
                owner: owner.to_string(),
                last_touch: now,
                notes: String::new(),
                crm: None,
            };
            store.upsert_deal(&d).map_err(err).map(|_| Outcome {
                summary: format!("created deal {} ({})", d.name, format_money(d.amount_cents)),
                provider_id: Some(d.id.clone()),
                data: json!({ "deal": d }),
            })
        }
        ActionParams::UpdateDeal {
            deal_id,
            stage,
            amount_cents,
            notes,
            ..
        } => deal(store, deal_id).and_then(|mut d| {
            if let Some(s) = stage {
                d.stage = *s;
            }
            if let Some(a) = amount_cents {
                d.amount_cents = *a;
            }
            if let Some(n) = notes {
                d.notes = n.clone();
            }
            d.last_touch = now;
            store.upsert_deal(&d).map_err(err).map(|_| Outcome {
                summary: format!("updated {}", d.name),
                provider_id: Some(d.id.clone()),
                data: json!({ "deal": d }),
            })
        }),
        ActionParams::CloseDeal { deal_id, won, .. } => deal(store, deal_id).and_then(|mut d| {
            d.stage = Stage::closed(*won);
            d.last_touch = now;
            store.upsert_deal(&d).map_err(err).map(|_| Outcome {
                summary: format!("closed {} as {}", d.name, if *won { "won" } else { "lost" }),
                provider_id: Some(d.id.clone()),
                data: json!({ "deal": d }),
            })
        }),
        _ => return None,
    })
}
