//! `dealflow permissions show|set`: the user's own hand on the leash. Audited.

use super::{Ctx, local_actor};
use crate::core::audit::NewAuditEntry;
use crate::core::domain::{ActionKind, Surface, format_money};
use crate::core::permissions::{Approver, Autonomy, PermissionChange};
use crate::core::text::line;
use crate::wall::now_ms;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PermissionsCmd {
    /// Print the permission set.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Set the autonomy of an action kind: auto, review, step_up, ciba, deny.
    Autonomy { kind: String, level: String },
    /// Deal amounts above this (in dollars) need step-up.
    Threshold { dollars: i64 },
    /// Auto-approve suggestions at or above this confidence ("off" to disable).
    AutoApprove { at: String },
    /// Always review suggestions below this confidence.
    ForceReview { below: f64 },
    /// Who approves closing a deal as won, and how: `close-won ciba self` or `close-won ciba lead:<sub>`.
    CloseWon { level: String, approver: String },
    /// Allow or block MCP write tools: on | off.
    McpWrites { state: String },
    /// Always review anything to this counterparty, whatever else allows it: a domain
    /// (@acme.example), an address, a #channel, a deal id or an account name.
    Pin { pattern: String },
    /// Remove a pin.
    Unpin { pattern: String },
    /// Treat a domain (@acme.example), an address or a #channel as known: writes to
    /// anyone else (not a contact in the store) are always reviewed.
    Know { pattern: String },
    /// Remove a domain, address or #channel from the known list.
    Forget { pattern: String },
    /// A blast-radius budget: at most N of a kind may run without review per hour, day
    /// or week (`budget send_email 20/day`, `budget post_slack 5/hour`); past it a person
    /// reviews. `--each` (or "3/day each") counts per counterparty (a recipient's domain,
    /// a channel, a deal). `off` removes the kind's budgets of that scope, `off/day` only
    /// the daily one.
    Budget {
        kind: String,
        spec: String,
        #[arg(long)]
        each: bool,
    },
    /// Send a device request the rep has not answered within AFTER (e.g. 4h) to a team
    /// lead's phone: `escalate 4h lead:<sub>`; `escalate off` stops it.
    Escalate { after: String, to: Option<String> },
    /// Closing a deal as won above this many dollars needs two device approvals, yours
    /// and then the team lead's (the close-won rule must name the lead); `off` to stop.
    TwoApprovers { dollars: String },
}

pub fn run(ctx: &Ctx, cmd: PermissionsCmd) -> Result<ExitCode> {
    let change = match cmd {
        PermissionsCmd::Show { json } => return show(ctx, json),
        PermissionsCmd::Autonomy { kind, level } => PermissionChange::SetAutonomy {
            kind: ActionKind::parse(&kind).with_context(|| {
                let all: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown action kind {kind:?}; kinds: {}", all.join(", "))
            })?,
            level: parse_level(&level)?,
        },
        PermissionsCmd::Threshold { dollars } => PermissionChange::SetStepUpThreshold {
            cents: dollars.checked_mul(100).context("threshold too large")?,
        },
        PermissionsCmd::AutoApprove { at } => PermissionChange::SetAutoApproveAt {
            at: if at == "off" {
                None
            } else {
                Some(
                    at.parse()
                        .with_context(|| format!("{at:?} is not a number or \"off\""))?,
                )
            },
        },
        PermissionsCmd::ForceReview { below } => PermissionChange::SetForceReviewBelow { below },
        PermissionsCmd::CloseWon { level, approver } => PermissionChange::SetCloseWon {
            level: parse_level(&level)?,
            approver: match approver.as_str() {
                "self" | "me" => Approver::User,
                other => match other.strip_prefix("lead:") {
                    Some(sub) if !sub.is_empty() => Approver::TeamLead(sub.to_string()),
                    _ => bail!("approver {other:?}: use \"self\" or \"lead:<auth0 sub>\""),
                },
            },
        },
        PermissionsCmd::Pin { pattern } => PermissionChange::PinReview { pattern },
        PermissionsCmd::Unpin { pattern } => PermissionChange::UnpinReview { pattern },
        PermissionsCmd::Know { pattern } => PermissionChange::Know { pattern },
        PermissionsCmd::Forget { pattern } => PermissionChange::Forget { pattern },
        PermissionsCmd::Budget { kind, spec, each } => {
            crate::core::permissions::budget_change(&kind, &spec, each)
                .map_err(anyhow::Error::msg)?
        }
        PermissionsCmd::TwoApprovers { dollars } => PermissionChange::SetTwoApprovers {
            above: if dollars == "off" {
                None
            } else {
                let d: i64 = dollars
                    .parse()
                    .with_context(|| format!("{dollars:?} is not a dollar amount or \"off\""))?;
                Some(d.checked_mul(100).context("amount too large")?)
            },
        },
        PermissionsCmd::Escalate { after, to } => PermissionChange::SetEscalation {
            escalation: if after == "off" {
                None
            } else {
                let after_ms = crate::config::parse_duration(&after)
                    .with_context(|| format!("{after:?} is not a duration such as 30m or 4h"))?
                    .as_millis()
                    .min(i64::MAX as u128) as i64;
                let to = match to.as_deref().and_then(|t| t.strip_prefix("lead:")) {
                    Some(sub) if !sub.is_empty() => sub.to_string(),
                    _ => bail!("escalate {after}: name the lead, as lead:<auth0 sub>"),
                };
                Some(crate::core::permissions::Escalation { after_ms, to })
            },
        },
        PermissionsCmd::McpWrites { state } => PermissionChange::SetMcpWrites {
            enabled: match state.as_str() {
                "on" => true,
                "off" => false,
                other => bail!("{other:?}: use on or off"),
            },
        },
    };
    let (effective, entry) = ctx.store.change_permissions(
        &change,
        NewAuditEntry {
            ts: now_ms(),
            actor: local_actor(),
            surface: Some(Surface::Cli),
            event: "permissions.changed".into(),
            action_id: None,
            outcome: "ok".into(),
            detail: serde_json::json!({ "origin": super::origin() }),
        },
    )?;
    let summary = entry
        .detail
        .get("summary")
        .and_then(|s| s.as_str())
        .unwrap_or("");
    println!("{summary} (audit #{})", entry.seq);
    // On a team store the saved value is the member's own; the team may hold it tighter.
    if let PermissionChange::SetAutonomy { kind, level } = &change {
        let held = effective.autonomy_for(*kind);
        if held != *level {
            println!("in effect: {kind} stays {held} (the team policy holds it there)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_level(s: &str) -> Result<Autonomy> {
    Autonomy::parse(s)
        .with_context(|| format!("unknown level {s:?}; levels: auto, review, step_up, ciba, deny"))
}

fn show(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    print(&ctx.store.load_permissions()?, json)?;
    Ok(ExitCode::SUCCESS)
}

/// A permission set as `permissions show` prints it (also `team show`).
pub fn print(p: &crate::core::permissions::Permissions, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(p)?);
        return Ok(());
    }
    println!("autonomy per action kind");
    for k in ActionKind::ALL {
        println!("  {:<20} {}", k.as_str(), p.autonomy_for(k));
    }
    println!(
        "step-up above        {}",
        format_money(p.step_up_amount_cents)
    );
    println!(
        "close-won            {} by {}",
        p.close_won.level, p.close_won.approver
    );
    match p.confidence.auto_approve_at {
        Some(v) => println!("auto-approve at      ≥ {v:.2}"),
        None => println!("auto-approve at      off"),
    }
    println!(
        "force review below   {:.2}",
        p.confidence.force_review_below
    );
    println!(
        "MCP write tools      {}",
        if p.mcp_writes_enabled {
            "on (always CIBA)"
        } else {
            "off"
        }
    );
    if !p.always_review.is_empty() {
        let pins: Vec<&str> = p.always_review.iter().map(String::as_str).collect();
        println!("always review        {}", line(&pins.join(", ")));
    }
    let known: Vec<&str> = p.known.iter().map(String::as_str).collect();
    println!(
        "known                contacts in the store{}{}",
        if known.is_empty() { "" } else { ", " },
        line(&known.join(", "))
    );
    if let Some(c) = p.two_approvers_above {
        println!(
            "two approvers        closing as won above {}: your device, then the lead's",
            format_money(c)
        );
    }
    match &p.escalation {
        Some(e) => println!(
            "escalate             unanswered device requests to team lead {} after {}",
            line(&e.to),
            crate::core::text::span(e.after_ms)
        ),
        None => println!("escalate             off"),
    }
    if p.budgets.is_empty() {
        println!("budgets              none (no limit on what runs without review)");
    }
    for b in &p.budgets {
        println!("budget               {} without review", b.describe());
    }
    for r in &p.auto_rules {
        println!(
            "auto-approve rule    {}: {} to {} at ≥ {:.2}, until {} (revoke: dealflow policy revoke {})",
            line(&r.id),
            r.kind,
            line(&r.target),
            r.min_confidence,
            r.expires_at,
            line(&r.id)
        );
        if let Some(pause) = &r.paused {
            println!(
                "  paused: {} (resume: dealflow policy resume {})",
                line(&pause.describe()),
                line(&r.id)
            );
        }
    }
    Ok(())
}
