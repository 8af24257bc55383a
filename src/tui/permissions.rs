//! Permissions tab state: one row per setting, and the [`PermissionChange`] a key on a
//! row asks for. Nothing is applied here: changes go out as an effect, through
//! `Store::change_permissions` (validated and audited), and the saved result comes back.

use crate::core::domain::{ActionKind, Connection, format_money};
use crate::core::permissions::{Approver, Autonomy, PermissionChange, Permissions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermRow {
    Autonomy(ActionKind),
    StepUpThreshold,
    AutoApproveAt,
    ForceReviewBelow,
    CloseWonLevel,
    CloseWonApprover,
    McpWrites,
    /// Counterparties pinned to "always review".
    Pins,
    /// Blast-radius budgets: how many of a kind may run without review per window.
    Budgets,
    /// Close-won above an amount takes the rep's device and then the lead's.
    TwoApprovers,
    /// Where an unanswered device request goes, and after how long.
    Escalation,
    /// dealflow's own flag for a connected account (checked before every exchange).
    Account(Connection),
}

pub fn rows() -> Vec<PermRow> {
    let mut v: Vec<PermRow> = ActionKind::ALL
        .into_iter()
        .filter(|k| k.is_write())
        .chain(ActionKind::ALL.into_iter().filter(|k| k.is_read()))
        .map(PermRow::Autonomy)
        .collect();
    v.extend([
        PermRow::Pins,
        PermRow::Budgets,
        PermRow::StepUpThreshold,
        PermRow::AutoApproveAt,
        PermRow::ForceReviewBelow,
        PermRow::CloseWonLevel,
        PermRow::CloseWonApprover,
        PermRow::TwoApprovers,
        PermRow::Escalation,
        PermRow::McpWrites,
        PermRow::Account(Connection::Google),
        PermRow::Account(Connection::Slack),
    ]);
    v
}

impl PermRow {
    pub fn label(self) -> String {
        match self {
            PermRow::Autonomy(k) => format!("autonomy · {k}"),
            PermRow::StepUpThreshold => "step-up above amount".into(),
            PermRow::AutoApproveAt => "auto-approve at confidence".into(),
            PermRow::ForceReviewBelow => "always review below confidence".into(),
            PermRow::CloseWonLevel => "close-won needs".into(),
            PermRow::CloseWonApprover => "close-won approver".into(),
            PermRow::McpWrites => "MCP write tools exposed".into(),
            PermRow::Pins => "always review (pinned)".into(),
            PermRow::Budgets => "budgets (without review)".into(),
            PermRow::TwoApprovers => "close-won by two, above".into(),
            PermRow::Escalation => "escalate unanswered".into(),
            PermRow::Account(c) => format!("account · {}", c.as_str()),
        }
    }

    pub fn value(self, p: &Permissions) -> String {
        match self {
            PermRow::Autonomy(k) => p.autonomy_for(k).to_string(),
            PermRow::StepUpThreshold => format_money(p.step_up_amount_cents),
            PermRow::AutoApproveAt => p
                .confidence
                .auto_approve_at
                .map_or("off".into(), |v| format!("{v:.2}")),
            PermRow::ForceReviewBelow => format!("{:.2}", p.confidence.force_review_below),
            PermRow::CloseWonLevel => p.close_won.level.to_string(),
            PermRow::CloseWonApprover => match &p.close_won.approver {
                Approver::User => "self".into(),
                Approver::TeamLead(s) => format!("team lead {s}"),
            },
            PermRow::McpWrites => if p.mcp_writes_enabled { "on" } else { "off" }.into(),
            PermRow::Pins if p.always_review.is_empty() => "none".into(),
            PermRow::Pins => p
                .always_review
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            PermRow::Budgets if p.budgets.is_empty() => "none".into(),
            PermRow::Budgets => p
                .budgets
                .iter()
                .map(|b| format!("{} {}", b.kind, b.spec()))
                .collect::<Vec<_>>()
                .join(", "),
            PermRow::TwoApprovers => p
                .two_approvers_above
                .map_or_else(|| "off".into(), format_money),
            PermRow::Escalation => match &p.escalation {
                Some(e) => format!("{} → {}", crate::core::text::span(e.after_ms), e.to),
                None => "off".into(),
            },
            // dealflow's own switch: whether Token Vault holds a connected account for it
            // is only known by asking (`c`), so the row does not claim it.
            PermRow::Account(c) => if p.disconnected.contains(&c) {
                "off in dealflow"
            } else {
                "on in dealflow"
            }
            .into(),
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            PermRow::Autonomy(k) if k.is_read() => "reads are either auto or deny",
            PermRow::Autonomy(_) => "auto · review · step_up · ciba · deny (h/l)",
            PermRow::StepUpThreshold => "enter a dollar amount",
            PermRow::AutoApproveAt => "off · 0.80 · 0.85 · 0.90 · 0.95 · 0.99",
            PermRow::ForceReviewBelow => "± 0.05",
            PermRow::CloseWonLevel => "at least step_up (irreversible)",
            PermRow::CloseWonApprover => "\"self\" or a team lead's Auth0 sub",
            PermRow::McpWrites => "on · off",
            PermRow::Pins => {
                "type a domain (@acme.example), address, #channel, deal id or account to pin it; -name unpins"
            }
            PermRow::Budgets => {
                "type kind N/hour|day|week (each: per counterparty), e.g. send_email 20/day; -send_email removes"
            }
            PermRow::TwoApprovers => "an amount or off: above it, yours then the lead's device",
            PermRow::Escalation => "e.g. 4h auth0|team-lead (after, to the lead), or off",
            PermRow::Account(_) => {
                "on · off in dealflow (off: no token exchange); c connects it in Token Vault or adds scopes"
            }
        }
    }

    /// Rows whose value is typed rather than cycled.
    pub fn typed(self) -> bool {
        matches!(
            self,
            PermRow::StepUpThreshold
                | PermRow::CloseWonApprover
                | PermRow::Pins
                | PermRow::Budgets
                | PermRow::TwoApprovers
                | PermRow::Escalation
        )
    }

    /// The change `h` (up = false) or `l` (up = true) asks for.
    pub fn step(self, p: &Permissions, up: bool) -> Option<PermissionChange> {
        fn cycle<T: Copy + PartialEq>(all: &[T], cur: T, up: bool) -> T {
            let i = all.iter().position(|x| *x == cur).unwrap_or(0);
            let n = all.len();
            all[if up { (i + 1) % n } else { (i + n - 1) % n }]
        }
        Some(match self {
            PermRow::Autonomy(kind) => {
                let levels: &[Autonomy] = if kind.is_read() {
                    &[Autonomy::Auto, Autonomy::Deny]
                } else {
                    &Autonomy::ALL
                };
                PermissionChange::SetAutonomy {
                    kind,
                    level: cycle(levels, p.autonomy_for(kind), up),
                }
            }
            PermRow::AutoApproveAt => {
                const STEPS: [Option<f64>; 6] = [
                    None,
                    Some(0.8),
                    Some(0.85),
                    Some(0.9),
                    Some(0.95),
                    Some(0.99),
                ];
                let cur = p.confidence.auto_approve_at;
                let i = STEPS
                    .iter()
                    .position(|s| match (s, cur) {
                        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                        (None, None) => true,
                        _ => false,
                    })
                    .unwrap_or(0);
                let n = STEPS.len();
                PermissionChange::SetAutoApproveAt {
                    at: STEPS[if up { (i + 1) % n } else { (i + n - 1) % n }],
                }
            }
            PermRow::ForceReviewBelow => {
                let cur = p.confidence.force_review_below;
                let v = if up { cur + 0.05 } else { cur - 0.05 };
                PermissionChange::SetForceReviewBelow {
                    below: (v.clamp(0.0, 1.0) * 100.0).round() / 100.0,
                }
            }
            PermRow::CloseWonLevel => PermissionChange::SetCloseWon {
                level: cycle(&Autonomy::ALL, p.close_won.level, up),
                approver: p.close_won.approver.clone(),
            },
            PermRow::McpWrites => PermissionChange::SetMcpWrites {
                enabled: !p.mcp_writes_enabled,
            },
            PermRow::Account(connection) => PermissionChange::SetConnected {
                connection,
                connected: p.disconnected.contains(&connection),
            },
            PermRow::StepUpThreshold
            | PermRow::CloseWonApprover
            | PermRow::Pins
            | PermRow::Budgets
            | PermRow::TwoApprovers
            | PermRow::Escalation => return None,
        })
    }

    /// The change a typed value asks for.
    pub fn typed_change(self, p: &Permissions, text: &str) -> Result<PermissionChange, String> {
        let t = text.trim();
        match self {
            PermRow::StepUpThreshold => {
                let clean: String = t.chars().filter(|c| *c != '$' && *c != ',').collect();
                let dollars: f64 = clean
                    .parse()
                    .map_err(|_| format!("{t:?} is not an amount (e.g. 50000 or $50,000)"))?;
                if !dollars.is_finite() {
                    return Err(format!("{t:?} is not an amount"));
                }
                Ok(PermissionChange::SetStepUpThreshold {
                    cents: (dollars * 100.0).round() as i64,
                })
            }
            PermRow::CloseWonApprover => {
                let approver = match t {
                    "" => return Err("type \"self\" or a team lead's sub".into()),
                    "self" | "you" => Approver::User,
                    sub => Approver::TeamLead(sub.to_string()),
                };
                Ok(PermissionChange::SetCloseWon {
                    level: p.close_won.level,
                    approver,
                })
            }
            PermRow::Pins => {
                if t.is_empty() {
                    return Err("type what to pin (or a pinned one to unpin)".into());
                }
                // Unpinning is spelled out: typing a pin again to be sure must not drop it.
                if let Some(rest) = t.strip_prefix('-') {
                    return Ok(PermissionChange::UnpinReview {
                        pattern: rest.trim().to_string(),
                    });
                }
                let pin = crate::core::permissions::normalize_pin(t);
                if p.always_review.contains(&pin) {
                    return Err(format!("{pin} is already pinned (-{pin} unpins it)"));
                }
                Ok(PermissionChange::PinReview {
                    pattern: t.to_string(),
                })
            }
            PermRow::TwoApprovers => {
                if t == "off" {
                    return Ok(PermissionChange::SetTwoApprovers { above: None });
                }
                let clean: String = t.chars().filter(|c| *c != '$' && *c != ',').collect();
                let dollars: i64 = clean
                    .parse()
                    .map_err(|_| format!("{t:?} is not an amount (e.g. 250000) or off"))?;
                Ok(PermissionChange::SetTwoApprovers {
                    above: Some(dollars.saturating_mul(100)),
                })
            }
            PermRow::Escalation => {
                if t == "off" {
                    return Ok(PermissionChange::SetEscalation { escalation: None });
                }
                let (after, to) = t
                    .split_once(' ')
                    .ok_or("type how long and the lead's sub, e.g. 4h auth0|team-lead")?;
                let after_ms = crate::config::parse_duration(after)
                    .ok_or_else(|| format!("{after:?} is not a duration such as 30m or 4h"))?
                    .as_millis()
                    .min(i64::MAX as u128) as i64;
                let to = to.trim().trim_start_matches("lead:").to_string();
                Ok(PermissionChange::SetEscalation {
                    escalation: Some(crate::core::permissions::Escalation { after_ms, to }),
                })
            }
            // "send_email 20/day", "send_email 3/day each"; "-send_email" (or "send_email
            // off") removes the kind's budgets, "-send_email each" its per-counterparty ones.
            PermRow::Budgets => {
                let (kind, spec) = match t.strip_prefix('-') {
                    Some(rest) => {
                        let rest = rest.trim();
                        let (kind, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                        (kind, format!("off {tail}"))
                    }
                    None => {
                        let (kind, spec) = t
                            .split_once(' ')
                            .ok_or("type a kind and a budget, e.g. send_email 20/day")?;
                        (kind, spec.to_string())
                    }
                };
                crate::core::permissions::budget_change(kind, spec.trim(), false)
            }
            _ => Err("this setting is not typed".into()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PermissionsTab {
    pub perms: Option<Permissions>,
    pub cursor: usize,
}
