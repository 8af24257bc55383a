//! The effective permission set under a team policy: a user may tighten the team's
//! policy, never loosen it.

use super::{Approver, AutoApproveRule, ConfidenceRouting, Permissions};
use crate::core::budget;
use crate::core::domain::ActionKind;

impl Permissions {
    /// The effective set when a team policy applies: every setting takes whichever of
    /// the two has more friction, so a user can tighten the team's policy but never
    /// loosen it. Auto-approve (global or per rule) survives only where the team allows
    /// confidence-based auto-approval at all, and then never below the team's bar.
    pub fn tighten_with(&self, team: &Permissions) -> Permissions {
        let autonomy = ActionKind::ALL
            .into_iter()
            .map(|k| (k, self.autonomy_for(k).max(team.autonomy_for(k))))
            .collect();
        let close_won = if team.close_won.level > self.close_won.level
            || (team.close_won.level == self.close_won.level
                && matches!(team.close_won.approver, Approver::TeamLead(_)))
        {
            team.close_won.clone()
        } else {
            self.close_won.clone()
        };
        let team_at = team.confidence.auto_approve_at;
        let auto_approve_at = match (self.confidence.auto_approve_at, team_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        let auto_rules = match team_at {
            None => Vec::new(),
            Some(bar) => self
                .auto_rules
                .iter()
                .map(|r| AutoApproveRule {
                    min_confidence: r.min_confidence.max(bar),
                    ..r.clone()
                })
                .collect(),
        };
        Permissions {
            autonomy,
            step_up_amount_cents: self.step_up_amount_cents.min(team.step_up_amount_cents),
            close_won,
            confidence: ConfidenceRouting {
                auto_approve_at,
                force_review_below: self
                    .confidence
                    .force_review_below
                    .max(team.confidence.force_review_below),
            },
            mcp_writes_enabled: self.mcp_writes_enabled && team.mcp_writes_enabled,
            disconnected: self
                .disconnected
                .union(&team.disconnected)
                .copied()
                .collect(),
            auto_rules,
            always_review: self
                .always_review
                .union(&team.always_review)
                .cloned()
                .collect(),
            // Only what both know is known: a member cannot widen the team's list.
            known: self.known.intersection(&team.known).cloned().collect(),
            // Every budget of either applies, the lower limit where both set one.
            budgets: budget::tightest(&self.budgets, &team.budgets),
            // The team's routing to its lead, where it set one; else the member's own.
            escalation: team.escalation.clone().or_else(|| self.escalation.clone()),
            // Two approvers from the lower amount of either.
            two_approvers_above: match (self.two_approvers_above, team.two_approvers_above) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}
