//! Trust calibration in the TUI: the replayed track record (shown beside each action's
//! confidence), the nudges calibration raises, and the ledger of auto-approve rules with
//! their hits. Calibration only suggests: accepting a nudge is the person's own,
//! audited permission change, made from the Trust popup.

use crate::core::calibration::{Calibration, Nudge};
use crate::core::consent::confidence_band;
use crate::core::domain::ActionKind;
use crate::core::permissions::{AutoApproveRule, Permissions};
use std::collections::BTreeSet;

/// A fresh replay of the audit log.
#[derive(Debug, Clone)]
pub struct Calibrated {
    /// The audit head it was replayed up to.
    pub head: i64,
    pub calibration: Calibration,
    pub nudges: Vec<Nudge>,
}

#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub latest: Option<Calibrated>,
    /// A replay is running: no second one is asked for meanwhile.
    pub loading: bool,
    /// Nudges dismissed this session, by kind and target.
    pub dismissed: BTreeSet<(ActionKind, String)>,
}

impl Trust {
    /// The audit head of the last replay, so an unchanged log is not replayed again.
    pub fn head(&self) -> Option<i64> {
        self.latest.as_ref().map(|c| c.head)
    }

    /// Nudges not dismissed this session.
    pub fn nudges(&self) -> Vec<&Nudge> {
        self.latest.as_ref().map_or_else(Vec::new, |c| {
            c.nudges
                .iter()
                .filter(|n| !self.dismissed.contains(&(n.kind, n.target.clone())))
                .collect()
        })
    }

    /// "send_email ≥ 0.90: 47/50 approved unedited" for an action of `kind` at
    /// `confidence`, once there is any history for that kind and band.
    pub fn track_record(&self, kind: ActionKind, confidence: f64) -> Option<String> {
        let band = confidence_band(confidence);
        let f = self
            .latest
            .as_ref()?
            .calibration
            .figures
            .get(&(kind, band))?;
        Some(format!("{kind} at {band}: you {}", f.summary()))
    }

    pub fn hits(&self, rule: &str) -> u64 {
        self.latest
            .as_ref()
            .and_then(|c| c.calibration.rule_hits.get(rule).copied())
            .unwrap_or(0)
    }
}

/// One row of the Trust popup: nudges first, then the rule ledger.
#[derive(Debug, Clone, Copy)]
pub enum TrustItem<'a> {
    Nudge(&'a Nudge),
    Rule(&'a AutoApproveRule),
}

impl Trust {
    pub fn items<'a>(&'a self, perms: Option<&'a Permissions>) -> Vec<TrustItem<'a>> {
        let mut v: Vec<TrustItem> = self.nudges().into_iter().map(TrustItem::Nudge).collect();
        if let Some(p) = perms {
            v.extend(p.auto_rules.iter().map(TrustItem::Rule));
        }
        v
    }
}

impl TrustItem<'_> {
    /// What the row is, independent of where it sits in the list.
    pub fn key(&self) -> String {
        match self {
            TrustItem::Nudge(n) => format!("nudge:{}:{}", n.kind, n.target),
            TrustItem::Rule(r) => format!("rule:{}", r.id),
        }
    }
}

/// The kinds the popup cycles through: every write (reads need no consent).
pub fn calibration_kinds() -> Vec<crate::core::domain::ActionKind> {
    crate::core::domain::ActionKind::ALL
        .into_iter()
        .filter(|k| k.is_write())
        .collect()
}
