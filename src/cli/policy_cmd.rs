//! `dealflow policy simulate|calibration|accept|revoke`: trust calibration from the
//! command line. Calibration only suggests; `accept` is the user's own permission
//! change, audited with the evidence that led to it.

use super::{Ctx, local_actor, now_ms, origin};
use crate::core::audit::{AuditEntry, NewAuditEntry};
use crate::core::calibration::{Calibration, Verdict, observations};
use crate::core::consent::{Gate, gate_at};
use crate::core::domain::Surface;
use crate::core::permissions::{PermissionChange, Permissions};
use crate::core::text::line;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Replay the audit history against a proposed permission set: what would have run
    /// without asking, and how many of those you had edited or rejected.
    Simulate {
        /// Permissions as TOML or JSON; keys left out keep their current values.
        #[arg(long = "with", value_name = "FILE")]
        with: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Approval figures per kind and confidence band, current nudges and rule hits.
    Calibration {
        #[arg(long)]
        json: bool,
    },
    /// Accept nudge N (from `policy calibration`) as a time-boxed auto-approve rule.
    Accept {
        n: usize,
        /// How long the rule lives.
        #[arg(long, default_value_t = crate::runtime::trust::DEFAULT_RULE_DAYS)]
        days: i64,
    },
    /// Revoke an auto-approve rule by id.
    Revoke { id: String },
    /// The consent rules, in the order the gate applies them.
    Rules,
}

pub fn run(ctx: &Ctx, cmd: PolicyCmd) -> Result<ExitCode> {
    match cmd {
        PolicyCmd::Simulate { with, json } => simulate(ctx, &with, json),
        PolicyCmd::Calibration { json } => calibration(ctx, json),
        PolicyCmd::Rules => {
            for (i, r) in crate::core::consent::rules::RULES.iter().enumerate() {
                println!("{:>2}. {:<22} {}", i + 1, r.name, r.doc);
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Accept { n, days } => accept(ctx, n, days),
        PolicyCmd::Revoke { id } => change(
            ctx,
            &PermissionChange::RevokeAutoRule { id },
            serde_json::json!({}),
        ),
    }
}

fn all_entries(ctx: &Ctx) -> Result<Vec<AuditEntry>> {
    Ok(crate::runtime::trust::audit_log(ctx.store.as_ref())?)
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// Reads a (possibly partial) permission set over `current`.
pub fn read_permissions(path: &Path, current: &Permissions) -> Result<Permissions> {
    // A permission set is a few KB: reading is bounded, so `--with /dev/zero` (or a
    // fifo that never ends) is an error, not a hang.
    const MAX: u64 = 1024 * 1024;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
            MAX + 1,
        ),
        &mut text,
    )
    .with_context(|| format!("cannot read {} (is it UTF-8 text?)", path.display()))?;
    if text.len() as u64 > MAX {
        anyhow::bail!(
            "{}: larger than 1 MiB; a permission set is a few lines",
            path.display()
        );
    }
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let patch: serde_json::Value = if is_json {
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?
    } else {
        let t: toml::Value =
            toml::from_str(&text).with_context(|| format!("{}: invalid TOML", path.display()))?;
        serde_json::to_value(t)?
    };
    let mut base = serde_json::to_value(current)?;
    merge(&mut base, patch);
    serde_json::from_value(base)
        .with_context(|| format!("{}: not a permission set", path.display()))
}

#[derive(Debug, Serialize)]
struct SimRow {
    id: String,
    kind: String,
    target: String,
    confidence: f64,
    gate_now: String,
    gate_proposed: String,
    /// approved_unedited | edited | rejected | timeout
    you: String,
    edit_size: f64,
}

#[derive(Debug, Serialize)]
struct SimReport {
    replayed: usize,
    would_auto_execute: usize,
    newly_auto: usize,
    approved_unedited: usize,
    edited: usize,
    rejected: usize,
    timeouts: usize,
    /// Decisions whose action is no longer in the store (not simulated).
    unknown: usize,
    actions: Vec<SimRow>,
}

fn simulate(ctx: &Ctx, file: &Path, json: bool) -> Result<ExitCode> {
    let current = ctx.store.load_permissions()?;
    let proposed = read_permissions(file, &current)?;
    let entries = all_entries(ctx)?;
    // When each action was first seen: rules are judged at that time.
    let mut first_seen: BTreeMap<String, i64> = BTreeMap::new();
    for e in &entries {
        if let Some(id) = &e.action_id {
            first_seen.entry(id.clone()).or_insert(e.ts);
        }
    }
    // The user's last word on each action.
    let mut last: BTreeMap<String, Verdict> = BTreeMap::new();
    for o in observations(&entries) {
        if o.auto_rule.is_none() {
            last.insert(o.action_id, o.verdict);
        }
    }
    let mut r = SimReport {
        replayed: last.len(),
        would_auto_execute: 0,
        newly_auto: 0,
        approved_unedited: 0,
        edited: 0,
        rejected: 0,
        timeouts: 0,
        unknown: 0,
        actions: Vec::new(),
    };
    for (id, verdict) in &last {
        let a = match ctx.store.get_action(id) {
            Ok(a) => a,
            Err(crate::store::StoreError::NotFound { .. }) => {
                r.unknown += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let at = first_seen.get(id).copied().unwrap_or(a.created_at);
        // What the AI proposed is what would have run unasked.
        let prop = gate_at(a.surface, &a.original, &proposed, a.confidence, at);
        if prop.gate() != &Gate::Allow {
            continue;
        }
        let now = gate_at(a.surface, &a.original, &current, a.confidence, at);
        r.would_auto_execute += 1;
        if now.gate() != &Gate::Allow {
            r.newly_auto += 1;
        }
        let (you, edit_size) = match verdict {
            Verdict::Approved { edit_size } if *edit_size <= 0.0 => {
                r.approved_unedited += 1;
                ("approved_unedited", 0.0)
            }
            Verdict::Approved { edit_size } => {
                r.edited += 1;
                ("edited", *edit_size)
            }
            Verdict::Rejected => {
                r.rejected += 1;
                ("rejected", 0.0)
            }
            Verdict::Withdrawn => {
                r.rejected += 1;
                ("withdrawn", 0.0)
            }
            Verdict::Timeout => {
                r.timeouts += 1;
                ("timeout", 0.0)
            }
        };
        r.actions.push(SimRow {
            id: id.clone(),
            kind: a.kind().as_str().into(),
            target: crate::core::calibration::target_pattern(&a.original),
            confidence: a.confidence,
            gate_now: now.gate().name().into(),
            gate_proposed: prop.gate().name().into(),
            you: you.into(),
            edit_size,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "replayed {} decided actions against {}",
        r.replayed,
        file.display()
    );
    println!(
        "would auto-execute {} ({} not auto today); of those you edited {} and rejected {}",
        r.would_auto_execute, r.newly_auto, r.edited, r.rejected
    );
    if r.unknown > 0 {
        println!(
            "{} decisions refer to actions no longer in the store",
            r.unknown
        );
    }
    if !r.actions.is_empty() {
        println!();
        println!(
            "{:<28} {:<17} {:<24} {:>5}  {:<8} YOU",
            "ACTION", "KIND", "TARGET", "CONF", "TODAY"
        );
        for row in &r.actions {
            println!(
                "{:<28} {:<17} {:<24} {:>5.2}  {:<8} {}",
                line(&row.id),
                row.kind,
                line(&row.target),
                row.confidence,
                row.gate_now,
                line(&row.you)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn replay(ctx: &Ctx) -> Result<(Calibration, Permissions)> {
    Ok(crate::runtime::trust::replay(ctx.store.as_ref())?)
}

fn calibration(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    let (cal, perms) = replay(ctx)?;
    let now = now_ms();
    let nudges = cal.nudges(&perms, now);
    if json {
        let figures: Vec<_> = cal
            .figures
            .iter()
            .map(|((k, band), f)| serde_json::json!({"kind": k, "band": band, "figures": f}))
            .collect();
        let rules: Vec<_> = perms
            .auto_rules
            .iter()
            .map(|r| {
                serde_json::json!({
                    "rule": r, "active": r.active_at(now),
                    "hits": cal.rule_hits.get(&r.id).copied().unwrap_or(0),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"figures": figures, "nudges": nudges, "rules": rules})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("calibration");
    for l in cal.report() {
        println!("  {}", line(&l));
    }
    println!("nudges");
    for (i, n) in nudges.iter().enumerate() {
        println!(
            "  [{}] {}  (dealflow policy accept {})",
            i + 1,
            line(&n.text),
            i + 1
        );
    }
    println!("auto-approve rules");
    for r in &perms.auto_rules {
        println!(
            "  {}  {} to {} at ≥ {:.2}  {}  {} hits",
            line(&r.id),
            r.kind,
            line(&r.target),
            r.min_confidence,
            if r.active_at(now) {
                "active"
            } else {
                "expired"
            },
            cal.rule_hits.get(&r.id).copied().unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn accept(ctx: &Ctx, n: usize, days: i64) -> Result<ExitCode> {
    let (cal, perms) = replay(ctx)?;
    let now = now_ms();
    let nudges = cal.nudges(&perms, now);
    let Some(nudge) = n.checked_sub(1).and_then(|i| nudges.get(i)) else {
        bail!(
            "no nudge {n}: there are {} (see `dealflow policy calibration`)",
            nudges.len()
        );
    };
    let ttl = days
        .checked_mul(24 * 3600 * 1000)
        .context("--days is too large")?;
    let rule_change = nudge.accept(now, ttl);
    change(
        ctx,
        &rule_change,
        serde_json::json!({ "nudge": nudge.text, "evidence": nudge.evidence }),
    )
}

fn change(ctx: &Ctx, change: &PermissionChange, mut detail: serde_json::Value) -> Result<ExitCode> {
    if let serde_json::Value::Object(m) = &mut detail {
        m.insert("origin".into(), origin());
    }
    let (_, entry) = ctx.store.change_permissions(
        change,
        NewAuditEntry {
            ts: now_ms(),
            actor: local_actor(),
            surface: Some(Surface::Cli),
            event: "permissions.changed".into(),
            action_id: None,
            outcome: "ok".into(),
            detail,
        },
    )?;
    let summary = entry
        .detail
        .get("summary")
        .and_then(|s| s.as_str())
        .unwrap_or("");
    println!("{summary} (audit #{})", entry.seq);
    Ok(ExitCode::SUCCESS)
}
