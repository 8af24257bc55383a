//! Gate facts from the store: the deal an action names as the store holds it, which of
//! its counterparties are known, the recent amounts per account, and what ran without
//! review within the budgets' windows. Every surface
//! decides through [`FactSource`] (or [`decision_at`] for one action), so the gate sees
//! the same facts in the TUI queue, `actions show`, approval, execution and the batch.

use crate::core::budget::{Unreviewed, longest_window};
use crate::core::consent::facts::{DealFacts, account_key, account_of, amount_at_stake};
use crate::core::consent::{Decision, GateFacts, decide};
use crate::core::domain::{Action, ActionParams, ActionState, Cents, Deal, Millis};
use crate::core::permissions::{Permissions, address_key, normalize_pin};
use crate::store::{ActionFilter, Store, StoreError};
use std::collections::{HashMap, HashSet};

/// The audit event of a rep's device yes that awaits the lead's (two approvers).
pub const FIRST_APPROVAL: &str = "action.first_approval";

/// An amount-bearing action the split guard counts: (action id, account, cents, at).
type Recent = (String, String, Cents, Millis);

/// Facts loaded once and shared by many decisions (a queue reload); each part is read
/// from the store only when a decision first needs it.
pub struct FactSource<'a> {
    store: &'a dyn Store,
    perms: Permissions,
    deals: Option<HashMap<String, Deal>>,
    contacts: Option<HashSet<String>>,
    /// Amount-bearing actions that count for the split guard, by account key:
    /// (action id, account, cents, at).
    recent: Option<HashMap<String, Vec<Recent>>>,
    /// Consents granted without review within the longest budget window, with the
    /// action each was for (so an action does not count against itself).
    unreviewed: Option<Vec<(Option<String>, Unreviewed)>>,
}

impl<'a> FactSource<'a> {
    pub fn new(store: &'a dyn Store) -> Result<FactSource<'a>, StoreError> {
        let perms = store.load_permissions()?;
        Ok(FactSource::with_permissions(store, perms))
    }

    pub fn with_permissions(store: &'a dyn Store, perms: Permissions) -> FactSource<'a> {
        FactSource {
            store,
            perms,
            deals: None,
            contacts: None,
            recent: None,
            unreviewed: None,
        }
    }

    pub fn permissions(&self) -> &Permissions {
        &self.perms
    }

    fn deals(&mut self) -> Result<&HashMap<String, Deal>, StoreError> {
        if self.deals.is_none() {
            let all = self.store.list_deals()?;
            self.deals = Some(all.into_iter().map(|d| (d.id.clone(), d)).collect());
        }
        Ok(self.deals.get_or_insert_with(HashMap::new))
    }

    fn contacts(&mut self) -> Result<&HashSet<String>, StoreError> {
        if self.contacts.is_none() {
            let all = self.store.list_contacts()?;
            self.contacts = Some(all.iter().map(|c| address_key(&c.email)).collect());
        }
        Ok(self.contacts.get_or_insert_with(HashSet::new))
    }

    fn recent(&mut self, account: &str) -> Result<&[(String, String, Cents, Millis)], StoreError> {
        if self.recent.is_none() {
            let others = self.store.list_actions(&ActionFilter {
                states: vec![
                    ActionState::Approved,
                    ActionState::AwaitingConsent,
                    ActionState::Executing,
                    ActionState::Succeeded,
                ],
                limit: None,
            })?;
            let mut out: HashMap<String, Vec<_>> = HashMap::new();
            for o in others {
                let facts = GateFacts {
                    deal: self.deal_facts(&o.params)?,
                    ..GateFacts::default()
                };
                if let (Some(cents), Some(acc)) = (
                    amount_at_stake(&o.params, &facts),
                    account_of(&o.params, &facts),
                ) {
                    out.entry(account_key(&acc)).or_default().push((
                        o.id,
                        acc,
                        cents,
                        o.updated_at,
                    ));
                }
            }
            self.recent = Some(out);
        }
        Ok(self
            .recent
            .as_ref()
            .and_then(|m| m.get(&account_key(account)))
            .map_or(&[], Vec::as_slice))
    }

    /// Every autonomous approval (`action.approved` with `autonomous` evidence) in the
    /// longest budget window before `now`: one indexed read of the window, not the log.
    /// Counted at the consent, not at the send, so what was let through and has not run
    /// yet spends the budget too (a budget errs on the side of asking).
    fn unreviewed(&mut self, now: Millis) -> Result<&[(Option<String>, Unreviewed)], StoreError> {
        if self.unreviewed.is_none() {
            let mut out = Vec::new();
            if let Some(window) = longest_window(&self.perms.budgets) {
                let since = now.saturating_sub(window);
                for e in self.store.audit_events_since("action.approved", since)? {
                    if let Some(u) = unreviewed_run(&e) {
                        out.push((e.action_id, u));
                    }
                }
            }
            self.unreviewed = Some(out);
        }
        Ok(self.unreviewed.as_deref().unwrap_or_default())
    }

    fn deal_facts(&mut self, p: &ActionParams) -> Result<Option<DealFacts>, StoreError> {
        let Some(id) = crate::core::permissions::deal_of(p) else {
            return Ok(None);
        };
        Ok(self.deals()?.get(id).map(|d| DealFacts {
            account: d.account.clone(),
            amount_cents: d.amount_cents,
            stage: d.stage,
        }))
    }

    /// Recipients and channels of `p` that are neither a contact nor in the known set.
    fn unknown(&mut self, p: &ActionParams) -> Result<Vec<String>, StoreError> {
        let addresses: Vec<String> = match p {
            // A draft stays in the user's mailbox; what leaves is checked.
            ActionParams::SendEmail(e) => {
                e.to.iter().chain(&e.cc).map(|a| address_key(a)).collect()
            }
            ActionParams::ScheduleMeeting { attendees, .. } => {
                attendees.iter().map(|a| address_key(a)).collect()
            }
            ActionParams::PostSlack { channel, .. } => {
                let ch = format!("#{}", normalize_pin(channel).trim_start_matches('#'));
                return Ok(if self.perms.known.contains(&ch) {
                    Vec::new()
                } else {
                    vec![ch]
                });
            }
            _ => return Ok(Vec::new()),
        };
        let known = self.perms.known.clone();
        let contacts = self.contacts()?;
        Ok(addresses
            .into_iter()
            .filter(|a| !contacts.contains(a) && !known_address(&known, a))
            .collect())
    }

    /// Whether the rep's device already said yes to exactly this payload while it waits
    /// for a second approver (recorded by the batch as `action.first_approval`).
    fn first_approval(&self, a: &Action) -> Result<bool, StoreError> {
        use crate::core::domain::ActionState as S;
        // Waiting for the second device, or approved by it and about to run.
        let past_first = matches!(a.state, S::AwaitingConsent | S::Approved | S::Executing);
        // Only a close as won ever needs two approvers: nothing else reads the log here
        // (a queue reload decides every row).
        let closes_won = crate::core::consent::facts::closes(&a.params) == Some(true);
        if !past_first || !closes_won || self.perms.two_approvers_above.is_none() {
            return Ok(false);
        }
        // The digest binds the rep's yes to this payload; an edit changes it.
        let digest = crate::core::consent::payload_digest(&a.params);
        Ok(self
            .store
            .audit_about(&a.id, a.created_at)?
            .iter()
            .any(|e| e.event == FIRST_APPROVAL && e.detail["digest"] == digest.as_str()))
    }

    /// The facts for `a` as it stands now.
    pub fn facts(&mut self, a: &Action, now: Millis) -> Result<GateFacts, StoreError> {
        let deal = self.deal_facts(&a.params)?;
        let unknown_counterparties = self.unknown(&a.params)?;
        let partial = GateFacts {
            now: Some(now),
            deal,
            unknown_counterparties,
            recent_amounts: Vec::new(),
            unreviewed: Vec::new(),
            // Queued for the device: it has waited since it was queued (a round whose
            // push expired leaves it as it was).
            waiting_since: (a.state == crate::core::domain::ActionState::AwaitingConsent)
                .then_some(a.updated_at),
            first_approval: self.first_approval(a)?,
        };
        let account =
            amount_at_stake(&a.params, &partial).and_then(|_| account_of(&a.params, &partial));
        let recent_amounts = if let Some(account) = account {
            self.recent(&account)?
                .iter()
                .filter(|(id, ..)| *id != a.id)
                .map(|(_, acc, cents, at)| (acc.clone(), *cents, *at))
                .collect()
        } else {
            Vec::new()
        };
        let kind = a.kind();
        let unreviewed = if kind.is_write() && self.perms.budgets.iter().any(|b| b.kind == kind) {
            self.unreviewed(now)?
                .iter()
                .filter(|(id, u)| u.kind == kind && id.as_deref() != Some(a.id.as_str()))
                .map(|(_, u)| u.clone())
                .collect()
        } else {
            Vec::new()
        };
        Ok(GateFacts {
            recent_amounts,
            unreviewed,
            ..partial
        })
    }

    /// The gate `a` faces at `now`.
    pub fn decide(&mut self, a: &Action, now: Millis) -> Result<Decision, StoreError> {
        let facts = self.facts(a, now)?;
        Ok(decide(
            a.surface,
            &a.params,
            &self.perms,
            a.confidence,
            &facts,
        ))
    }
}

/// The gate one action faces at `now`, from the store's facts and permissions.
pub fn decision_at(store: &dyn Store, a: &Action, now: Millis) -> Result<Decision, StoreError> {
    FactSource::new(store)?.decide(a, now)
}

/// The budget fact an audit entry records, if it is a consent granted without review:
/// its kind, and the counterparties it went to (`budget_keys`, written with the approval;
/// an entry from before budgets has only its calibration target, which names the same
/// domains and channel).
fn unreviewed_run(e: &crate::core::audit::AuditEntry) -> Option<Unreviewed> {
    let d = &e.detail;
    if d.pointer("/evidence/by").and_then(|v| v.as_str()) != Some("autonomous") {
        return None;
    }
    let kind = crate::core::domain::ActionKind::parse(d.get("kind")?.as_str()?)?;
    let counterparties = match d.get("budget_keys").and_then(|v| v.as_array()) {
        Some(keys) => keys
            .iter()
            .filter_map(|k| k.as_str().map(String::from))
            .collect(),
        None => d
            .get("target")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| match kind {
                crate::core::domain::ActionKind::PostSlack => {
                    format!("#{}", normalize_pin(t).trim_start_matches('#'))
                }
                _ => normalize_pin(t),
            })
            .collect(),
    };
    Some(Unreviewed {
        kind,
        counterparties,
        at: e.ts,
    })
}

/// Whether `addr` (normalised) is in the known set by itself or by its domain or a
/// parent domain ("@acme.example" covers eu.acme.example).
fn known_address(known: &std::collections::BTreeSet<String>, addr: &str) -> bool {
    if known.contains(addr) {
        return true;
    }
    let Some((_, mut domain)) = addr.rsplit_once('@') else {
        return false;
    };
    loop {
        if known.contains(&format!("@{domain}")) {
            return true;
        }
        match domain.split_once('.') {
            Some((_, parent)) if parent.contains('.') => domain = parent,
            _ => return false,
        }
    }
}
