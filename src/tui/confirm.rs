//! The words a confirmation shows: what approving an action will do, line by line
//! (the step-up prompt and the bulk summary print exactly these), and the plan a bulk
//! approval confirms. Pure: no IO.

use super::actions::Row;
use crate::core::consent::{Gate, payload_digest};
use crate::core::domain::{Action, ActionKind, ActionParams, format_money};
use std::collections::BTreeMap;

fn noun_key(k: ActionKind) -> &'static str {
    match k {
        ActionKind::SendEmail | ActionKind::DraftEmail => "email",
        ActionKind::ScheduleMeeting => "meeting",
        ActionKind::PostSlack => "slack",
        ActionKind::CreateDeal | ActionKind::UpdateDeal => "crm",
        ActionKind::CloseDeal => "close",
        _ => "read",
    }
}

fn kind_noun(k: ActionKind, n: usize) -> String {
    let (one, many) = match k {
        ActionKind::SendEmail | ActionKind::DraftEmail => ("email", "email"),
        ActionKind::ScheduleMeeting => ("meeting", "meetings"),
        ActionKind::PostSlack => ("Slack post", "Slack posts"),
        ActionKind::CreateDeal | ActionKind::UpdateDeal => ("CRM change", "CRM changes"),
        ActionKind::CloseDeal => ("deal close", "deal closes"),
        _ => ("read", "reads"),
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The bulk-approval plan: what `A` would approve, and what it must skip.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPlan {
    pub approvable: Vec<String>,
    pub step_up: usize,
    /// The ids the summary counted as step-up: the typed count confirms exactly these.
    pub step_up_ids: Vec<String>,
    /// The version of each approvable action when the summary was made.
    pub seen: BTreeMap<String, i64>,
    pub skipped: Vec<(String, String)>,
    pub summary: String,
}

pub fn bulk_plan(rows: &[&Row]) -> BulkPlan {
    let mut approvable = Vec::new();
    let mut skipped = Vec::new();
    let mut by_kind: BTreeMap<&'static str, (ActionKind, usize)> = BTreeMap::new();
    let mut step_up = 0;
    let mut step_up_ids = Vec::new();
    let mut seen = BTreeMap::new();
    let mut amount = 0i64;
    for r in rows {
        let a = &r.action;
        match r.decision.gate() {
            Gate::Ciba { approver, .. } => {
                skipped.push((
                    a.id.clone(),
                    format!("needs {} device (use b)", approver.whose()),
                ));
                continue;
            }
            Gate::Deny { reason } => {
                skipped.push((a.id.clone(), format!("denied: {reason}")));
                continue;
            }
            Gate::StepUp { .. } => {
                step_up += 1;
                step_up_ids.push(a.id.clone());
            }
            Gate::Allow | Gate::Review => {}
        }
        let e = by_kind.entry(noun_key(a.kind())).or_insert((a.kind(), 0));
        e.1 += 1;
        amount += a.params.amount_cents().unwrap_or(0);
        approvable.push(a.id.clone());
        seen.insert(a.id.clone(), a.version);
    }
    let kinds: Vec<String> = by_kind.values().map(|(k, n)| kind_noun(*k, *n)).collect();
    let mut summary = format!(
        "{} action{}: {}",
        approvable.len(),
        if approvable.len() == 1 { "" } else { "s" },
        if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(", ")
        }
    );
    if amount > 0 {
        summary.push_str(&format!("; {} in deals", format_money(amount)));
    }
    if step_up > 0 {
        summary.push_str(&format!("; {step_up} needs step-up"));
    }
    if !skipped.is_empty() {
        summary.push_str(&format!("; {} skipped", skipped.len()));
    }
    BulkPlan {
        approvable,
        step_up,
        step_up_ids,
        seen,
        skipped,
        summary,
    }
}

/// Exactly what approving will do, in words, for the step-up prompt.
pub fn what_will_happen(a: &Action) -> Vec<String> {
    let mut out = Vec::new();
    let irreversible = !a.kind().risk().reversible;
    match &a.params {
        ActionParams::SendEmail(e) => {
            out.push(format!("Send an email to {}", e.to.join(", ")));
            if !e.cc.is_empty() {
                out.push(format!("  cc {}", e.cc.join(", ")));
            }
            out.push(format!("  subject: {}", e.subject));
            body_lines(&mut out, &e.body);
        }
        ActionParams::DraftEmail(e) => {
            out.push(format!("Save a Gmail draft to {}", e.to.join(", ")));
            if !e.cc.is_empty() {
                out.push(format!("  cc {}", e.cc.join(", ")));
            }
            out.push(format!("  subject: {}", e.subject));
            body_lines(&mut out, &e.body);
        }
        ActionParams::ScheduleMeeting {
            title,
            attendees,
            description,
            start,
            end,
        } => {
            out.push(format!("Book \"{title}\" with {}", attendees.join(", ")));
            out.push(format!(
                "  {} – {}",
                crate::agent::tools::utc_minute(*start),
                crate::agent::tools::utc_minute(*end)
            ));
            out.push("  invitations are sent to every attendee".into());
            body_lines(&mut out, description);
        }
        ActionParams::PostSlack { channel, text } => {
            out.push(format!("Post to {channel}:"));
            body_lines(&mut out, text);
        }
        ActionParams::CloseDeal {
            deal_id,
            won,
            amount_cents,
            ..
        } => out.push(format!(
            "Close {deal_id} as {} ({})",
            if *won { "WON" } else { "lost" },
            format_money(*amount_cents)
        )),
        ActionParams::CreateDeal {
            name,
            amount_cents,
            account,
            stage,
        } => out.push(format!(
            "Create deal \"{name}\" for {account} ({}, {})",
            format_money(*amount_cents),
            stage.as_str()
        )),
        ActionParams::UpdateDeal {
            deal_id,
            stage,
            amount_cents,
            notes,
            ..
        } => {
            out.push(format!("Update {deal_id}:"));
            if let Some(s) = stage {
                out.push(format!("  stage → {}", s.as_str()));
            }
            if let Some(c) = amount_cents {
                out.push(format!("  amount → {}", format_money(*c)));
            }
            if let Some(n) = notes {
                out.push("  notes replaced with:".into());
                body_lines(&mut out, n);
            }
        }
        other => out.push(format!("{} {}", other.kind(), other.target())),
    }
    out.push(if irreversible {
        "This cannot be undone.".into()
    } else {
        "This can be reverted later.".into()
    });
    let digest = payload_digest(&a.params);
    out.push(format!(
        "payload sha256 {}…",
        &digest[..12.min(digest.len())]
    ));
    out
}

/// Every line of a body the confirmation covers, marked as quoted text.
fn body_lines(out: &mut Vec<String>, body: &str) {
    out.extend(body.split('\n').map(|l| format!("  │ {l}")));
}

/// A five-cell confidence bar, e.g. "▰▰▰▰▱".
pub fn confidence_bar(c: f64) -> String {
    let filled = ((c.clamp(0.0, 1.0) * 5.0).round()) as usize;
    let mut s = "▰".repeat(filled);
    s.push_str(&"▱".repeat(5 - filled));
    s
}
