//! Auto-approve rules: what accepting a calibration nudge adds, when one is active or
//! paused, and which action kinds a rule may ever cover.

use crate::core::domain::{ActionKind, Millis};
use serde::{Deserialize, Serialize};

/// "Auto-approve `kind` to `target` at confidence ≥ `min_confidence` until `expires_at`":
/// what accepting a calibration nudge adds. It only ever turns a *review* into *allow*;
/// thresholds, close-won, surface floors and force-review still apply on top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoApproveRule {
    pub id: String,
    pub kind: ActionKind,
    /// The calibration target pattern it covers ("@initech.example", "#deals").
    pub target: String,
    pub min_confidence: f64,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// Set when the person said no to an action this rule would have approved: a "no"
    /// beats an earlier "always", so the rule approves nothing until they look at it
    /// (resume or revoke, in the Trust popup or `dealflow policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<RulePause>,
}

/// Why a rule is paused: the action the person turned down, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulePause {
    pub action_id: String,
    /// What the person did: "rejected" or "withdrew".
    pub by: String,
    /// The action's target as the person saw it ("bill@initech.example").
    pub target: String,
    pub at: Millis,
    /// The reason they gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RulePause {
    /// "you rejected act-1 (bill@initech.example) at 2025-01-02 09:00 UTC: wrong tone".
    pub fn describe(&self) -> String {
        format!(
            "you {} {} ({}) at {}{}",
            self.by,
            self.action_id,
            self.target,
            crate::core::text::utc_minute(self.at),
            self.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    }
}

/// The longest an auto-approve rule may live before it has to be accepted again.
pub const MAX_RULE_MS: Millis = 90 * 24 * 3600 * 1000;

impl AutoApproveRule {
    /// Within its lifetime (paused or not: a paused rule still holds its place, so
    /// calibration does not nudge for the same pattern again meanwhile).
    pub fn active_at(&self, now: Millis) -> bool {
        self.created_at <= now && now < self.expires_at
    }

    /// Whether the rule covers an Action Center suggestion of `kind` to `target` (its
    /// calibration pattern) at `confidence` and `now`, paused or not. The gate lets a
    /// match through only when the rule is not paused; a rejection pauses what matches.
    pub fn covers(&self, kind: ActionKind, target: &str, confidence: f64, now: Millis) -> bool {
        self.kind == kind
            && self.target == target
            && self.active_at(now)
            && confidence >= self.min_confidence
    }
}

/// Whether calibration may ever suggest (and a rule ever cover) auto-approving `kind`.
/// Reads need no rule; closing a deal is irreversible and always needs its own rule.
pub fn auto_rule_eligible(kind: ActionKind) -> bool {
    kind.is_write() && kind != ActionKind::CloseDeal
}
