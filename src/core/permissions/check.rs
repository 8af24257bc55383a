//! Whether a whole permission set (a team policy read from a file) keeps the rules
//! [`Permissions::apply`] enforces change by change.

use super::{Approver, Autonomy, Permissions};
use crate::core::budget;

impl Permissions {
    /// Checks a whole set (a team policy read from a file) against the same rules
    /// [`Permissions::apply`] enforces change by change.
    pub fn check(&self) -> Result<(), String> {
        for (k, l) in &self.autonomy {
            if k.is_read() && *l != Autonomy::Auto && *l != Autonomy::Deny {
                return Err(format!(
                    "{k} is a read: it is either allowed (auto) or denied"
                ));
            }
        }
        if self.step_up_amount_cents < 0 {
            return Err("the step-up threshold must not be negative".into());
        }
        if self.close_won.level < Autonomy::StepUp {
            return Err("closing a deal as won needs at least step_up: it is irreversible".into());
        }
        if let Approver::TeamLead(sub) = &self.close_won.approver
            && self.close_won.level < Autonomy::Ciba
        {
            return Err(format!(
                "team lead {sub} approves on their own device: close_won needs ciba"
            ));
        }
        let c = &self.confidence;
        if !(0.0..=1.0).contains(&c.force_review_below) {
            return Err("force_review_below must be between 0 and 1".into());
        }
        if let Some(at) = c.auto_approve_at
            && (!(0.0..=1.0).contains(&at) || at < c.force_review_below)
        {
            return Err(format!(
                "auto_approve_at {at:.2} must be between force_review_below {:.2} and 1",
                c.force_review_below
            ));
        }
        if !self.auto_rules.is_empty() {
            return Err(
                "a team policy carries no auto-approve rules: each person accepts their own".into(),
            );
        }
        for b in &self.budgets {
            budget::check(b)?;
        }
        Ok(())
    }
}
