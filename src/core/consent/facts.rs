//! What the gate may believe: facts the runtime derives from the store for an action as
//! it now stands. A proposer's or an editor's fields choose *what* happens; these decide
//! *how much consent* it needs, so an edit that points a close at a bigger deal, zeroes
//! an amount or turns an update into a close cannot lower the gate.

use crate::core::budget::Unreviewed;
use crate::core::domain::{ActionParams, Cents, Millis, Stage};

/// Amounts for one account approved (or queued, running, done) within this window count
/// together against the step-up threshold: splitting a deal does not dodge it.
pub const SPLIT_WINDOW_MS: Millis = 24 * 3600 * 1000;

/// A deal as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct DealFacts {
    pub account: String,
    pub amount_cents: Cents,
    pub stage: Stage,
}

/// Everything the rules know beyond the payload and the permissions. `Default` is "the
/// store knows nothing" (the pure `gate`, and the policy simulator replaying history).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateFacts {
    /// When the decision is made; time-boxed auto-approve rules need it.
    pub now: Option<Millis>,
    /// The deal the action is filed under or changes, from the store.
    pub deal: Option<DealFacts>,
    /// Recipients and channels the store does not know (not a contact, not a known
    /// domain or channel), lower case.
    pub unknown_counterparties: Vec<String>,
    /// Other amounts recently approved, queued, running or done: (account, cents, at).
    pub recent_amounts: Vec<(String, Cents, Millis)>,
    /// Other actions of this kind consented without review within the longest budget
    /// window (this action itself left out), for the blast-radius budgets.
    pub unreviewed: Vec<Unreviewed>,
    /// Since when the action has waited for a device answer (`awaiting_consent`), for
    /// escalation; `None` when it is not waiting.
    pub waiting_since: Option<Millis>,
    /// The rep already said yes on their device to exactly this payload, and the second
    /// approver (the lead) is what remains.
    pub first_approval: bool,
}

impl GateFacts {
    pub fn at(now: Millis) -> GateFacts {
        GateFacts {
            now: Some(now),
            ..GateFacts::default()
        }
    }
}

/// Whether `action` closes a deal, and as won: a `close_deal`, or an `update_deal` whose
/// stage is a closed one (gated as the close it is).
pub fn closes(action: &ActionParams) -> Option<bool> {
    match action {
        ActionParams::CloseDeal { won, .. } => Some(*won),
        ActionParams::UpdateDeal {
            stage: Some(s @ (Stage::ClosedWon | Stage::ClosedLost)),
            ..
        } => Some(*s == Stage::ClosedWon),
        _ => None,
    }
}

/// The amount at stake: never less than what the store holds for the deal when the
/// action closes it or changes its amount (an edit to `amount_cents = 0` does not make a
/// $250K close cheap).
pub fn amount_at_stake(action: &ActionParams, facts: &GateFacts) -> Option<Cents> {
    let stored = facts.deal.as_ref().map(|d| d.amount_cents);
    let larger = |a: Cents| Some(stored.map_or(a, |s| s.max(a)));
    match action {
        ActionParams::CreateDeal { amount_cents, .. } => Some(*amount_cents),
        ActionParams::CloseDeal { amount_cents, .. } => larger(*amount_cents),
        ActionParams::UpdateDeal { .. } if closes(action).is_some() => {
            larger(action.amount_cents().unwrap_or(0))
        }
        ActionParams::UpdateDeal {
            amount_cents: Some(a),
            ..
        } => larger(*a),
        _ => None,
    }
}

/// The account an amount-bearing action concerns: the store's account of its deal, or a
/// new deal's own.
pub fn account_of(action: &ActionParams, facts: &GateFacts) -> Option<String> {
    match action {
        ActionParams::CreateDeal { account, .. } => Some(account.clone()),
        ActionParams::UpdateDeal { deal_id, .. } | ActionParams::CloseDeal { deal_id, .. } => Some(
            facts
                .deal
                .as_ref()
                .map_or_else(|| deal_id.clone(), |d| d.account.clone()),
        ),
        _ => None,
    }
}

/// An account name as the split guard compares it: "Wayne", "wayne " and "W.A.Y.N.E."
/// are one account.
pub fn account_key(account: &str) -> String {
    account
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}
