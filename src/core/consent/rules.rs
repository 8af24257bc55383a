//! The consent rules as a table: each rule is a small named function that may raise the
//! level (or, for the two opt-in confidence rules, lower a review to allow), naming
//! itself in the reason chain. [`RULES`] runs them in order; [`super::decide`] is the
//! one path every surface asks.
//!
//! Rules read the payload only to learn *what* happens (its kind, recipients, the deal it
//! names); *how much* is at stake comes from [`GateFacts`], which the runtime derives
//! from the store.

use super::facts::{GateFacts, SPLIT_WINDOW_MS, account_key, account_of, amount_at_stake, closes};
use crate::core::domain::{ActionKind, ActionParams, Cents, Millis, Surface, format_money};
use crate::core::permissions::{self, Approver, Autonomy, Permissions};

/// What a rule sees.
pub struct Input<'a> {
    pub surface: Surface,
    pub action: &'a ActionParams,
    pub kind: ActionKind,
    pub perms: &'a Permissions,
    /// 0..=1; anything else has already been made 0.
    pub confidence: f64,
    pub facts: &'a GateFacts,
}

/// The verdict as the rules build it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub level: Autonomy,
    pub approver: Approver,
    /// The reason that set the current level, shown with the gate.
    pub why: String,
    pub reasons: Vec<String>,
    pub auto_rule: Option<String>,
    /// A rule decided for good (a read, a deny): later rules do not run.
    pub settled: bool,
    /// Which device step the gate is on, when it is one the batch must treat apart.
    pub step: Option<super::DeviceStep>,
}

impl Verdict {
    /// Raises the level to `to` for `reason` (a rule never lowers, except the two opt-in
    /// confidence rules, which set the level themselves).
    fn raise(&mut self, to: Autonomy, reason: String) {
        if self.level < to {
            self.level = to;
            self.why = reason.clone();
            if to > Autonomy::Auto {
                self.auto_rule = None;
            }
        }
        self.reasons.push(reason);
    }

    fn settle(&mut self, level: Autonomy, reason: String) {
        self.level = level;
        self.why = reason.clone();
        self.reasons.push(reason);
        self.settled = true;
    }
}

pub struct Rule {
    pub name: &'static str,
    /// One line for `dealflow policy rules` and the docs.
    pub doc: &'static str,
    check: fn(&Input, &mut Verdict),
}

/// The rules, in the order they are applied.
pub const RULES: &[Rule] = &[
    Rule {
        name: "reads",
        doc: "a read has no side effects: allowed, unless its kind is denied",
        check: reads,
    },
    Rule {
        name: "denied_kind",
        doc: "a kind whose autonomy is deny never runs",
        check: denied_kind,
    },
    Rule {
        name: "mcp_writes_off",
        doc: "MCP write tools switched off in Permissions deny every MCP write",
        check: mcp_writes_off,
    },
    Rule {
        name: "auto_approve_at",
        doc: "opt-in: an Action Center suggestion at or above auto_approve_at skips review",
        check: auto_approve_at,
    },
    Rule {
        name: "auto_rule",
        doc: "an accepted calibration rule skips review of matching Action Center suggestions",
        check: auto_rule,
    },
    Rule {
        name: "budget",
        doc: "past a blast-radius budget (N of a kind, or to one counterparty, run without review per hour/day/week) a person reviews it",
        check: budget,
    },
    Rule {
        name: "pinned",
        doc: "a pinned counterparty (address, domain, channel, deal or the deal's account) is always reviewed",
        check: pinned,
    },
    Rule {
        name: "unknown_counterparty",
        doc: "an address that is no contact, or a channel not known, is always reviewed (prompt-injection guard)",
        check: unknown_counterparty,
    },
    Rule {
        name: "force_review_below",
        doc: "low confidence is always reviewed",
        check: force_review_below,
    },
    Rule {
        name: "amount_threshold",
        doc: "an amount at stake (the store's, for an existing deal) over the threshold needs step-up",
        check: amount_threshold,
    },
    Rule {
        name: "split_amounts",
        doc: "amounts for one account within 24 h that together pass the threshold need step-up",
        check: split_amounts,
    },
    Rule {
        name: "close_won",
        doc: "closing a deal as won (close_deal, or update_deal to closed_won) needs the close-won rule's level and approver",
        check: close_won,
    },
    Rule {
        name: "lead_on_device",
        doc: "a rule that names a team lead is satisfied only on the lead's own device (CIBA)",
        check: lead_on_device,
    },
    Rule {
        name: "surface_floor",
        doc: "MCP writes and batches need the device; in Chat and the CLI a review is an inline confirmation",
        check: surface_floor,
    },
    Rule {
        name: "escalation",
        doc: "a device request the rep has not answered within escalate_after goes to the named team lead's device",
        check: escalation,
    },
];

/// How the escalation rule's reason begins.
pub const ESCALATED: &str = "escalated:";

// Only who approves changes, and it stays a device: an action waiting for the rep's
// device (their rule's, or one they sent there) goes to the lead's device instead. A
// lead's own rule is already the lead's; nothing here lowers a level.
fn escalation(i: &Input, v: &mut Verdict) {
    let (Some(e), Some(since), Some(now)) =
        (&i.perms.escalation, i.facts.waiting_since, i.facts.now)
    else {
        return;
    };
    // The rep's own step of a two-approver close is not the rep's to skip.
    let waiting_on_rep = v.approver == Approver::User
        && v.step != Some(super::DeviceStep::FirstOfTwo)
        && (Autonomy::Review..=Autonomy::Ciba).contains(&v.level);
    if !waiting_on_rep || now - since < e.after_ms {
        return;
    }
    v.level = Autonomy::Ciba;
    v.approver = Approver::TeamLead(e.to.clone());
    v.auto_rule = None;
    v.step = Some(super::DeviceStep::Escalated);
    v.why = format!(
        "{ESCALATED} unanswered on your device for {}, so it goes to team lead {} (escalate_after {})",
        crate::core::text::span(now - since),
        e.to,
        crate::core::text::span(e.after_ms)
    );
    v.reasons.push(v.why.clone());
}

/// Runs the table over `input`.
pub fn evaluate(input: &Input) -> Verdict {
    let level = input.perms.autonomy_for(input.kind);
    let why = format!("autonomy for {}: {level}", input.kind);
    let mut v = Verdict {
        level,
        approver: Approver::User,
        why: why.clone(),
        reasons: vec![why],
        auto_rule: None,
        settled: false,
        step: None,
    };
    for rule in RULES {
        (rule.check)(input, &mut v);
        if v.settled {
            break;
        }
    }
    v
}

fn reads(i: &Input, v: &mut Verdict) {
    if !i.kind.is_read() {
        return;
    }
    if v.level == Autonomy::Deny {
        v.settled = true;
    } else {
        v.settle(
            Autonomy::Auto,
            "read: no side effects, no consent needed".into(),
        );
    }
}

fn denied_kind(_: &Input, v: &mut Verdict) {
    if v.level == Autonomy::Deny {
        v.settled = true;
    }
}

fn mcp_writes_off(i: &Input, v: &mut Verdict) {
    if i.surface == Surface::Mcp && !i.perms.mcp_writes_enabled {
        v.settle(
            Autonomy::Deny,
            "MCP write tools are disabled in Permissions".into(),
        );
    }
}

// Confidence is the suggester's; a person directing the agent (chat, CLI) or an external
// agent has no such figure, so the two opt-in skips apply to suggestions only (and a
// user's rule must not lift a team's review floor on the CLI, where confidence is 1.0).
fn auto_approve_at(i: &Input, v: &mut Verdict) {
    if i.surface == Surface::ActionCenter
        && let Some(at) = i.perms.confidence.auto_approve_at
        && v.level == Autonomy::Review
        && i.confidence >= at
    {
        v.level = Autonomy::Auto;
        v.why = format!("confidence {:.2} ≥ auto-approve {at:.2}", i.confidence);
        v.reasons.push(v.why.clone());
    }
}

fn auto_rule(i: &Input, v: &mut Verdict) {
    let Some(now) = i.facts.now else { return };
    if i.surface != Surface::ActionCenter
        || v.level != Autonomy::Review
        || !permissions::auto_rule_eligible(i.kind)
    {
        return;
    }
    let target = crate::core::domain::target_pattern(i.action);
    let covering = || {
        i.perms
            .auto_rules
            .iter()
            .filter(|r| r.covers(i.kind, &target, i.confidence, now))
    };
    if let Some(rule) = covering().find(|r| r.paused.is_none()) {
        v.level = Autonomy::Auto;
        v.auto_rule = Some(rule.id.clone());
        v.why = format!(
            "auto-approve rule {}: {} to {target} at confidence {:.2} ≥ {:.2}",
            rule.id, i.kind, i.confidence, rule.min_confidence
        );
        v.reasons.push(v.why.clone());
    } else if let Some((rule, pause)) = covering().find_map(|r| Some((r, r.paused.as_ref()?))) {
        // Said in the chain, so the person sees why a rule they accepted did not apply.
        v.reasons.push(format!(
            "auto-approve rule {} is paused: {}; resume or revoke it in Trust",
            rule.id,
            pause.describe()
        ));
    }
}

// A budget caps what runs *without review*: it turns an allow back into a review and
// leaves every other level alone (it never lowers one). Reads need no consent and are
// not budgeted.
fn budget(i: &Input, v: &mut Verdict) {
    let Some(now) = i.facts.now else { return };
    if v.level != Autonomy::Auto || i.kind.is_read() {
        return;
    }
    let keys = crate::core::budget::budget_keys(i.action);
    if let Some(reason) =
        i.perms.budgets.iter().find_map(|b| {
            crate::core::budget::over_budget(b, i.kind, &keys, now, &i.facts.unreviewed)
        })
    {
        v.raise(Autonomy::Review, reason);
    }
}

// The chain names the pin even when the level was already a review or more, so the person
// can see every rule that applied.
fn pinned(i: &Input, v: &mut Verdict) {
    let pins = &i.perms.always_review;
    if pins.is_empty() {
        return;
    }
    let mut keys = permissions::counterparties(i.action);
    if permissions::deal_of(i.action).is_some()
        && let Some(deal) = &i.facts.deal
    {
        keys.push(permissions::normalize_pin(&deal.account));
    }
    if let Some(pin) = permissions::pinned(pins, &keys) {
        v.raise(
            Autonomy::Review,
            format!("{pin} is pinned: always reviewed"),
        );
    }
}

fn unknown_counterparty(i: &Input, v: &mut Verdict) {
    if i.kind.is_read() || i.facts.unknown_counterparties.is_empty() {
        return;
    }
    let who = i.facts.unknown_counterparties.join(", ");
    v.raise(
        Autonomy::Review,
        format!("{who}: not a known contact or channel, always reviewed"),
    );
}

fn force_review_below(i: &Input, v: &mut Verdict) {
    let below = i.perms.confidence.force_review_below;
    if i.confidence < below && v.level < Autonomy::Review {
        v.raise(
            Autonomy::Review,
            format!(
                "confidence {:.2} < {below:.2}: always reviewed",
                i.confidence
            ),
        );
    }
}

fn amount_threshold(i: &Input, v: &mut Verdict) {
    let threshold = i.perms.step_up_amount_cents;
    if let Some(amount) = amount_at_stake(i.action, i.facts)
        && amount > threshold
        && v.level < Autonomy::StepUp
    {
        v.raise(
            Autonomy::StepUp,
            format!(
                "amount {} > threshold {}",
                format_money(amount),
                format_money(threshold)
            ),
        );
    }
}

fn split_amounts(i: &Input, v: &mut Verdict) {
    let (Some(now), Some(amount), Some(account)) = (
        i.facts.now,
        amount_at_stake(i.action, i.facts),
        account_of(i.action, i.facts),
    ) else {
        return;
    };
    if let Some(reason) = split_reason(
        amount,
        &account,
        now,
        &i.facts.recent_amounts,
        SPLIT_WINDOW_MS,
        i.perms.step_up_amount_cents,
    ) {
        v.raise(Autonomy::StepUp, reason);
    }
}

/// The split guard's reason, if `amount` for `account` is under `threshold` but with the
/// other amounts for the same account (compared by [`account_key`]) in the window before
/// `at` it is over.
pub fn split_reason(
    amount: Cents,
    account: &str,
    at: Millis,
    recent: &[(String, Cents, Millis)],
    window_ms: Millis,
    threshold: Cents,
) -> Option<String> {
    if amount <= 0 || amount > threshold {
        // Nothing at stake, or the gate already steps up on the amount alone.
        return None;
    }
    let key = account_key(account);
    let from = at.saturating_sub(window_ms.max(0));
    let (earlier, n) = recent
        .iter()
        .filter(|(acc, cents, t)| account_key(acc) == key && *cents > 0 && *t > from && *t <= at)
        .fold((0i64, 0usize), |(sum, n), (_, cents, _)| {
            (sum.saturating_add(*cents), n + 1)
        });
    let total = earlier.saturating_add(amount);
    (n > 0 && total > threshold).then(|| {
        format!(
            "split amounts: {} for {account} with {n} other action(s) in the last {} min totals {} > threshold {}",
            format_money(amount),
            window_ms / 60_000,
            format_money(total),
            format_money(threshold)
        )
    })
}

fn close_won(i: &Input, v: &mut Verdict) {
    if closes(i.action) != Some(true) {
        return;
    }
    let rule = &i.perms.close_won;
    // The rule names the approver even when it does not raise the level.
    if rule.level >= v.level {
        v.level = rule.level;
        v.approver = rule.approver.clone();
        v.auto_rule = None;
        v.why = format!("closing as won needs {} by {}", rule.level, rule.approver);
        v.reasons.push(v.why.clone());
    }
    // Above the second threshold it takes both devices: the rep's first, then the lead's.
    let (Some(above), Approver::TeamLead(lead)) = (i.perms.two_approvers_above, &v.approver) else {
        return;
    };
    let Some(cents) = amount_at_stake(i.action, i.facts).filter(|c| *c > above) else {
        return;
    };
    let lead = lead.clone();
    v.level = Autonomy::Ciba;
    v.why = if i.facts.first_approval {
        format!(
            "{TWO_APPROVERS} {} > {}: you said yes on your device; now team lead {lead}",
            format_money(cents),
            format_money(above)
        )
    } else {
        v.approver = Approver::User;
        v.step = Some(super::DeviceStep::FirstOfTwo);
        format!(
            "{TWO_APPROVERS} {} > {}: your device first, then team lead {lead}'s",
            format_money(cents),
            format_money(above)
        )
    };
    v.reasons.push(v.why.clone());
}

/// How the two-approver reason begins.
pub const TWO_APPROVERS: &str = "two approvers:";

// A lead cannot type into the rep's terminal: whatever level the rule names, the only
// proof that the lead said yes is a device approval whose token's subject is the lead.
fn lead_on_device(_: &Input, v: &mut Verdict) {
    if let Approver::TeamLead(sub) = &v.approver
        && v.level < Autonomy::Ciba
    {
        let reason = format!("team lead {sub} approves on their own device");
        v.raise(Autonomy::Ciba, reason);
    }
}

fn surface_floor(i: &Input, v: &mut Verdict) {
    match i.surface {
        Surface::Mcp if v.level < Autonomy::Ciba => v.raise(
            Autonomy::Ciba,
            "external agent write over MCP: the user's device must approve".into(),
        ),
        Surface::Batch if v.level < Autonomy::Ciba => v.raise(
            Autonomy::Ciba,
            "batch consent is one push to the user's device".into(),
        ),
        // The user is present and directing: review becomes an inline confirmation.
        Surface::Chat | Surface::Cli if v.level == Autonomy::Review => v.raise(
            Autonomy::StepUp,
            format!("{}: confirm inline what will happen", i.surface),
        ),
        _ => {}
    }
}
