//! `dealflow policy simulate|calibration|accept|revoke`: trust calibration from the
//! command line. Calibration only suggests; `accept` is the user's own permission
//! change, audited with the evidence that led to it.

use super::{Ctx, local_actor, origin};
use crate::core::audit::{AuditEntry, NewAuditEntry};
use crate::core::calibration::{Calibration, Verdict, observations};
use crate::core::consent::{Gate, gate_at};
use crate::core::domain::Surface;
use crate::core::domain::{ActionKind, Connection};
use crate::core::permissions::{
    Approver, AutoApproveRule, Autonomy, PermissionChange, Permissions, normalize_pin,
};
use crate::core::text::line;
use crate::wall::now_ms;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Replay the audit history against a proposed permission set: what would have run
    /// without asking (and how many of those you had edited or rejected), and what would
    /// have asked, or been refused, that did not.
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
    /// Resume an auto-approve rule that a rejection paused (see `permissions show`).
    Resume { id: String },
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
        PolicyCmd::Resume { id } => change(
            ctx,
            &PermissionChange::ResumeAutoRule { id },
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

/// Reads a (possibly partial) permission set over `current`: unknown keys are errors
/// naming the file, line and key, and pins and known counterparties are stored as
/// `permissions pin` / `permissions know` would store them.
pub fn read_permissions(path: &Path, current: &Permissions) -> Result<Permissions> {
    let text = read_bounded(path)?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let patch: serde_json::Value = if is_json {
        check_json_shape(path, &text)?;
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?
    } else {
        check_toml_shape(path, &text)?;
        let t: toml::Value =
            toml::from_str(&text).with_context(|| format!("{}: invalid TOML", path.display()))?;
        serde_json::to_value(t)?
    };
    let mut base = serde_json::to_value(current)?;
    merge(&mut base, patch);
    let mut p: Permissions = serde_json::from_value(base)
        .with_context(|| format!("{}: not a permission set", path.display()))?;
    normalize_counterparties(&mut p).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(p)
}

fn read_bounded(path: &Path) -> Result<String> {
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
        bail!(
            "{}: larger than 1 MiB; a permission set is a few lines",
            path.display()
        );
    }
    Ok(text)
}

/// The keys a permission file may hold. `Permissions` itself ignores keys it does not
/// know, which would make a typo (`autonomi`) a silent no-op: parsing into this first
/// names it, with its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Only parsed, never read.
struct Shape {
    autonomy: Option<BTreeMap<ActionKind, Autonomy>>,
    step_up_amount_cents: Option<i64>,
    close_won: Option<CloseWonShape>,
    confidence: Option<ConfidenceShape>,
    mcp_writes_enabled: Option<bool>,
    disconnected: Option<BTreeSet<Connection>>,
    auto_rules: Option<Vec<AutoApproveRule>>,
    always_review: Option<Vec<String>>,
    known: Option<Vec<String>>,
    budgets: Option<Vec<crate::core::budget::Budget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Only parsed, never read.
struct CloseWonShape {
    level: Option<Autonomy>,
    approver: Option<Approver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Only parsed, never read.
struct ConfidenceShape {
    auto_approve_at: Option<f64>,
    force_review_below: Option<f64>,
}

fn check_json_shape(path: &Path, text: &str) -> Result<()> {
    let Err(e) = serde_json::from_str::<Shape>(text) else {
        return Ok(());
    };
    let at = format!(" at line {} column {}", e.line(), e.column());
    let message = e.to_string();
    let message = message.strip_suffix(&at).unwrap_or(&message);
    bail!(
        "{}:{}:{}: {}",
        path.display(),
        e.line(),
        e.column(),
        key_message(message, None)
    )
}

fn check_toml_shape(path: &Path, text: &str) -> Result<()> {
    let Err(e) = toml::from_str::<Shape>(text) else {
        return Ok(());
    };
    let start = e.span().map_or(0, |s| s.start);
    let (line, col) = crate::config::line_col(text, start);
    let section = toml_parent(text, start);
    bail!(
        "{}:{line}:{col}: {}",
        path.display(),
        key_message(e.message().trim(), section.as_deref())
    )
}

/// The table the key at `offset` sits in. A key in a `[header]` line is not inside that
/// header's own table but in its parent (none, for `[autonomi]`).
fn toml_parent(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    match line.strip_prefix('[') {
        Some(header) => header
            .trim_end_matches(']')
            .rsplit_once('.')
            .map(|(parent, _)| parent.trim().to_string()),
        None => crate::config::section_at(text, offset),
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as "unknown key `section.x`
/// (did you mean `a`?), expected one of `a`, `b`"; other messages as they are.
fn key_message(message: &str, section: Option<&str>) -> String {
    let Some((field, rest)) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
    else {
        return message.to_string();
    };
    let key = section.map_or_else(|| field.to_string(), |s| format!("{s}.{field}"));
    let expected: Vec<String> = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect();
    let guess = crate::config::closest(field, &expected)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    format!("unknown key `{key}`{guess}{rest}")
}

/// Pins and known counterparties exactly as `permissions pin` and `permissions know`
/// store them (trimmed, lower case, checked): a pin written "Acme" would otherwise never
/// match, and the simulation would show a pinned action running unasked.
fn normalize_counterparties(p: &mut Permissions) -> Result<(), String> {
    for pin in std::mem::take(&mut p.always_review) {
        if !p.always_review.contains(&normalize_pin(&pin)) {
            p.apply(&PermissionChange::PinReview { pattern: pin })?;
        }
    }
    for known in std::mem::take(&mut p.known) {
        if !p.known.contains(&normalize_pin(&known)) {
            p.apply(&PermissionChange::Know { pattern: known })?;
        }
    }
    for b in &p.budgets {
        crate::core::budget::check(b)?;
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct SimRow {
    id: String,
    kind: String,
    target: String,
    confidence: f64,
    gate_now: String,
    gate_proposed: String,
    /// approved_unedited | edited | rejected | withdrawn | timeout
    you: String,
    edit_size: f64,
}

#[derive(Debug, Default, Serialize)]
struct SimReport {
    replayed: usize,
    /// Looser: what would run without asking under the proposed set.
    would_auto_execute: usize,
    newly_auto: usize,
    approved_unedited: usize,
    edited: usize,
    rejected: usize,
    timeouts: usize,
    /// Tighter: what would need more consent than today (any step up the ladder
    /// allow < review < step_up < ciba < deny).
    tightened: usize,
    /// Of those, what runs without asking today and would ask.
    would_now_ask: usize,
    /// Of those, what would be refused outright.
    would_now_refuse: usize,
    /// Looser short of running unasked: less consent than today, but still some
    /// (deny → step_up, ciba → review, …).
    eased: usize,
    /// Decisions whose action is no longer in the store (not simulated).
    unknown: usize,
    actions: Vec<SimRow>,
    tightened_actions: Vec<SimRow>,
    eased_actions: Vec<SimRow>,
}

/// How much consent a gate asks for, from none to never.
fn strictness(g: &Gate) -> u8 {
    match g {
        Gate::Allow => 0,
        Gate::Review => 1,
        Gate::StepUp { .. } => 2,
        Gate::Ciba { .. } => 3,
        Gate::Deny { .. } => 4,
    }
}

/// When each action was first seen (rules are judged at that time), and the user's last
/// word on each.
fn decisions(entries: &[AuditEntry]) -> (BTreeMap<String, i64>, BTreeMap<String, Verdict>) {
    let mut first_seen: BTreeMap<String, i64> = BTreeMap::new();
    for e in entries {
        if let Some(id) = &e.action_id {
            first_seen.entry(id.clone()).or_insert(e.ts);
        }
    }
    let mut last: BTreeMap<String, Verdict> = BTreeMap::new();
    for o in observations(entries) {
        if o.auto_rule.is_none() {
            last.insert(o.action_id, o.verdict);
        }
    }
    (first_seen, last)
}

/// The "you" column, counted into the report's verdict totals.
fn tally(r: &mut SimReport, verdict: &Verdict) -> (&'static str, f64) {
    match verdict {
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
    }
}

fn simulate(ctx: &Ctx, file: &Path, json: bool) -> Result<ExitCode> {
    let current = ctx.store.load_permissions()?;
    let proposed = read_permissions(file, &current)?;
    // As `permissions` would refuse it (a read on review, close-won on auto…). Rules
    // are checked when accepted; a team policy may not carry them, a person's set may.
    let mut checked = proposed.clone();
    checked.auto_rules.clear();
    if let Err(e) = checked.check() {
        bail!("{}: {e}", file.display());
    }
    let entries = all_entries(ctx)?;
    let (first_seen, last) = decisions(&entries);
    let mut r = SimReport {
        replayed: last.len(),
        ..SimReport::default()
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
        let now = gate_at(a.surface, &a.original, &current, a.confidence, at);
        let (prop, now) = (prop.gate(), now.gate());
        let looser = prop == &Gate::Allow;
        let tighter = strictness(prop) > strictness(now);
        let eased = !looser && strictness(prop) < strictness(now);
        if !looser && !tighter && !eased {
            continue;
        }
        if looser {
            r.would_auto_execute += 1;
            r.newly_auto += usize::from(now != &Gate::Allow);
        } else if eased {
            r.eased += 1;
        } else {
            r.tightened += 1;
            r.would_now_refuse += usize::from(matches!(prop, Gate::Deny { .. }));
            r.would_now_ask +=
                usize::from(now == &Gate::Allow && !matches!(prop, Gate::Deny { .. }));
        }
        let (you, edit_size) = tally(&mut r, verdict);
        let row = SimRow {
            id: id.clone(),
            kind: a.kind().as_str().into(),
            target: crate::core::calibration::target_pattern(&a.original),
            confidence: a.confidence,
            gate_now: now.name().into(),
            gate_proposed: prop.name().into(),
            you: you.into(),
            edit_size,
        };
        if looser {
            r.actions.push(row);
        } else if eased {
            r.eased_actions.push(row);
        } else {
            r.tightened_actions.push(row);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_simulation(&r, file);
    Ok(ExitCode::SUCCESS)
}

fn print_simulation(r: &SimReport, file: &Path) {
    println!(
        "replayed {} decided actions against {}",
        r.replayed,
        file.display()
    );
    println!(
        "looser:  would auto-execute {} ({} not auto today); of those you edited {} and rejected {}",
        r.would_auto_execute, r.newly_auto, r.edited, r.rejected
    );
    println!(
        "tighter: {} would need more consent: {} that run without asking today would ask, {} would be refused",
        r.tightened, r.would_now_ask, r.would_now_refuse
    );
    if r.eased > 0 {
        println!(
            "easier:  {} would need less consent than today, but still some",
            r.eased
        );
    }
    if r.unknown > 0 {
        println!(
            "{} decisions refer to actions no longer in the store",
            r.unknown
        );
    }
    if !r.actions.is_empty() {
        println!("\nwould run without asking");
        print_rows(&r.actions, "YOU", |row| &row.you);
    }
    if !r.tightened_actions.is_empty() {
        println!("\nwould ask (or be refused)");
        print_rows(&r.tightened_actions, "PROPOSED", |row| &row.gate_proposed);
    }
    if !r.eased_actions.is_empty() {
        println!("\nwould ask for less");
        print_rows(&r.eased_actions, "PROPOSED", |row| &row.gate_proposed);
    }
}

fn print_rows(rows: &[SimRow], last: &str, value: impl Fn(&SimRow) -> &str) {
    println!(
        "{:<28} {:<17} {:<24} {:>5}  {:<8} {last}",
        "ACTION", "KIND", "TARGET", "CONF", "TODAY"
    );
    for row in rows {
        println!(
            "{:<28} {:<17} {:<24} {:>5.2}  {:<8} {}",
            line(&row.id),
            row.kind,
            line(&row.target),
            row.confidence,
            row.gate_now,
            line(value(row))
        );
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A key added to `Permissions` must be added to `Shape`, or files holding it would
    /// be refused.
    #[test]
    fn every_key_a_permission_set_writes_is_one_a_file_may_hold() {
        let mut p = Permissions::default();
        p.always_review.insert("acme".into());
        p.known.insert("@acme.example".into());
        p.disconnected.insert(Connection::Google);
        p.confidence.auto_approve_at = Some(0.9);
        p.auto_rules.push(AutoApproveRule {
            id: "r1".into(),
            kind: ActionKind::SendEmail,
            target: "@acme.example".into(),
            min_confidence: 0.9,
            created_at: 1,
            expires_at: 2,
            paused: None,
        });
        serde_json::from_str::<Shape>(&serde_json::to_string(&p).unwrap()).unwrap();
        toml::from_str::<Shape>(&toml::to_string(&p).unwrap()).unwrap();
    }

    #[test]
    fn an_unknown_key_is_named_with_its_section_and_a_guess() {
        let m = key_message(
            "unknown field `auto_aprove_at`, expected `auto_approve_at` or `force_review_below`",
            Some("confidence"),
        );
        assert!(
            m.starts_with(
                "unknown key `confidence.auto_aprove_at` (did you mean `auto_approve_at`?)"
            ),
            "{m}"
        );
        assert_eq!(key_message("invalid type", None), "invalid type");
    }
}
