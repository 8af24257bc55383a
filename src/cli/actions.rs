//! `dealflow actions list|show|approve|reject|edit`: the queue, scriptable.

use super::{Ctx, local_actor, now_ms};
use crate::core::audit::NewAuditEntry;
use crate::core::calibration::{edit_size, target_pattern};
use crate::core::consent::{Consent, Evidence, Gate, gate, split_guard};
use crate::core::domain::{Action, ActionParams, ActionState};
use crate::store::{ActionFilter, Transition};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ActionsCmd {
    /// List actions, newest first.
    List {
        /// Only these states (repeatable): proposed, approved, executing, succeeded…
        #[arg(long)]
        state: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one action: payload, justification, and the gate with its reasons.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a proposed action (a step-up gate also needs --confirm <ID> or a typed confirmation).
    Approve {
        id: String,
        /// Repeat the action id to confirm a step-up gate without a prompt.
        #[arg(long, value_name = "ID")]
        confirm: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Reject a proposed action.
    Reject {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change fields of a proposed action's payload: --set subject="New subject".
    /// Values are JSON when they parse as JSON, strings otherwise. Voids any consent.
    Edit {
        id: String,
        #[arg(long = "set", value_name = "FIELD=VALUE", required = true)]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: ActionsCmd) -> Result<ExitCode> {
    match cmd {
        ActionsCmd::List { state, json } => list(ctx, &state, json),
        ActionsCmd::Show { id, json } => show(ctx, &id, json),
        ActionsCmd::Approve { id, confirm, json } => approve(ctx, &id, confirm.as_deref(), json),
        ActionsCmd::Reject { id, reason, json } => reject(ctx, &id, reason, json),
        ActionsCmd::Edit { id, set, json } => edit(ctx, &id, &set, json),
    }
}

fn list(ctx: &Ctx, states: &[String], json: bool) -> Result<ExitCode> {
    let states = states
        .iter()
        .map(|s| {
            ActionState::parse(s).with_context(|| {
                let all: Vec<&str> = ActionState::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state {s:?}; states: {}", all.join(", "))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let actions = ctx.store.list_actions(&ActionFilter {
        states,
        limit: None,
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&actions)?);
    } else {
        for a in &actions {
            println!(
                "{:<28} {:<17} {:<20} {:.2}  {}",
                a.id,
                a.kind().as_str(),
                a.state.as_str(),
                a.confidence,
                a.title
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, id: &str, json: bool) -> Result<ExitCode> {
    let a = ctx.store.get_action(id)?;
    let perms = ctx.store.load_permissions()?;
    let d = gate(a.surface, &a.params, &perms, a.confidence);
    if json {
        let v = serde_json::json!({ "action": a, "decision": d });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}  [{}]", a.title, a.state);
    println!("id          {}", a.id);
    println!("kind        {}   risk: {}", a.kind(), a.kind().risk());
    println!("target      {}", a.params.target());
    println!("confidence  {:.2} ({})", a.confidence, d.band());
    println!("gate        {}", d.gate());
    println!("because     {}", d.explain());
    println!("why         {}", a.justification);
    if a.is_edited() {
        println!("edited      yes (original kept for comparison)");
    }
    if let Some(o) = &a.outcome {
        println!("outcome     {o}");
    }
    println!("payload");
    println!("{}", serde_json::to_string_pretty(&a.params)?);
    Ok(ExitCode::SUCCESS)
}

fn print_action(a: &Action, json: bool, verb: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(a)?);
    } else {
        println!("{verb} {} ({}) — now {}", a.id, a.title, a.state);
    }
    Ok(())
}

fn audit(
    ctx: &Ctx,
    a: &Action,
    event: &str,
    outcome: &str,
    mut detail: serde_json::Value,
) -> Result<()> {
    // What calibration replays (kind, target pattern, confidence, amount, edit size),
    // and where the command came from (Unix user, SSH origin) for a shared box.
    if let serde_json::Value::Object(m) = &mut detail {
        m.insert("kind".into(), a.kind().as_str().into());
        m.insert("target".into(), target_pattern(&a.params).into());
        m.insert("confidence".into(), a.confidence.into());
        if let Some(cents) = a.params.amount_cents() {
            m.insert("amount_cents".into(), cents.into());
        }
        m.entry("edit_size")
            .or_insert_with(|| edit_size(&a.original, &a.params).into());
        m.insert("origin".into(), super::origin());
    }
    ctx.store.append_audit(NewAuditEntry {
        ts: now_ms(),
        actor: local_actor(),
        surface: Some(crate::core::domain::Surface::Cli),
        event: event.into(),
        action_id: Some(a.id.clone()),
        outcome: outcome.into(),
        detail,
    })?;
    Ok(())
}

fn typed_confirmation(a: &Action, reason: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(false);
    }
    eprintln!("step-up: {reason}");
    eprintln!("This will {} → {}", a.kind(), a.params.target());
    eprint!("Type the action id ({}) to confirm: ", a.id);
    std::io::stderr().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim() == a.id)
}

fn approve(ctx: &Ctx, id: &str, confirm: Option<&str>, json: bool) -> Result<ExitCode> {
    let a = ctx.store.get_action(id)?;
    if !matches!(
        a.state,
        ActionState::Proposed | ActionState::AwaitingConsent
    ) {
        bail!("{id} is {}: only proposed actions can be approved", a.state);
    }
    let perms = ctx.store.load_permissions()?;
    let at = now_ms();
    let d = gate(a.surface, &a.params, &perms, a.confidence);
    let d = match split_amounts(ctx, &a, at, perms.step_up_amount_cents)? {
        Some(reason) => d.raise_to_step_up(&reason),
        None => d,
    };
    let actor = local_actor();
    let evidence = match d.gate() {
        Gate::Allow | Gate::Review => Evidence::Reviewed { actor, at },
        Gate::StepUp { reason } => {
            let confirmed = match confirm {
                Some(c) => c == a.id,
                None => typed_confirmation(&a, reason)?,
            };
            if !confirmed {
                audit(
                    ctx,
                    &a,
                    "action.approve_refused",
                    "denied",
                    serde_json::json!({
                        "gate": d.gate(), "reasons": d.reasons(), "why": "step-up not confirmed",
                    }),
                )?;
                bail!(
                    "{id} needs step-up ({reason}); read `dealflow actions show {id}`, then run `dealflow actions approve {id} --confirm {id}`"
                );
            }
            Evidence::SteppedUp { actor, at }
        }
        Gate::Ciba { approver, reason } => {
            bail!(
                "{id} needs approval on {approver}'s device ({reason}); device approval from the CLI is not built yet"
            )
        }
        Gate::Deny { reason } => {
            audit(
                ctx,
                &a,
                "action.approve_refused",
                "denied",
                serde_json::json!({
                    "gate": d.gate(), "reasons": d.reasons(),
                }),
            )?;
            bail!("{id} is denied by your permissions: {reason}")
        }
    };
    let consent = Consent::grant(&d, &a.params, evidence)?;
    let now = ctx.store.transition(
        id,
        &Transition {
            from: a.state,
            version: a.version,
            to: ActionState::Approved,
            outcome: None,
            evidence: Some(consent.evidence().clone()),
            at,
        },
    )?;
    audit(
        ctx,
        &now,
        "action.approved",
        "ok",
        serde_json::json!({
            "gate": d.gate(),
            "reasons": d.reasons(),
            "band": d.band(),
            "evidence": consent.evidence(),
            "payload_digest": crate::core::consent::payload_digest(&now.params),
        }),
    )?;
    print_action(&now, json, "approved")?;
    Ok(ExitCode::SUCCESS)
}

/// How far back the threshold-gaming guard looks for amounts on the same account.
pub const SPLIT_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The account an amount-bearing action concerns (a deal's account, via the store).
fn account_of(ctx: &Ctx, p: &ActionParams) -> Result<Option<String>> {
    Ok(match p {
        ActionParams::CreateDeal { account, .. } => Some(account.clone()),
        ActionParams::UpdateDeal { deal_id, .. } | ActionParams::CloseDeal { deal_id, .. } => Some(
            ctx.store
                .get_deal(deal_id)?
                .map_or_else(|| deal_id.clone(), |d| d.account),
        ),
        _ => None,
    })
}

/// Threshold-gaming guard: amounts for the same account approved (or running, or done)
/// in the last [`SPLIT_WINDOW_MS`] count together against the step-up threshold.
fn split_amounts(ctx: &Ctx, a: &Action, at: i64, threshold: i64) -> Result<Option<String>> {
    let Some(account) = account_of(ctx, &a.params)? else {
        return Ok(None);
    };
    if a.params.amount_cents().is_none() {
        return Ok(None);
    }
    let others = ctx.store.list_actions(&ActionFilter {
        states: vec![
            ActionState::Approved,
            ActionState::AwaitingConsent,
            ActionState::Executing,
            ActionState::Succeeded,
        ],
        limit: None,
    })?;
    let mut recent = Vec::new();
    for o in others.iter().filter(|o| o.id != a.id) {
        if let (Some(cents), Some(acc)) = (o.params.amount_cents(), account_of(ctx, &o.params)?) {
            recent.push((acc, cents, o.updated_at));
        }
    }
    Ok(split_guard(
        &a.params,
        &account,
        at,
        &recent,
        SPLIT_WINDOW_MS,
        threshold,
    ))
}

fn reject(ctx: &Ctx, id: &str, reason: Option<String>, json: bool) -> Result<ExitCode> {
    let a = ctx.store.get_action(id)?;
    let now = ctx.store.transition(
        id,
        &Transition {
            from: a.state,
            version: a.version,
            to: ActionState::Rejected,
            outcome: Some(reason.clone().unwrap_or_else(|| "rejected".into())),
            evidence: None,
            at: now_ms(),
        },
    )?;
    audit(
        ctx,
        &now,
        "action.rejected",
        "rejected",
        serde_json::json!({ "reason": reason }),
    )?;
    print_action(&now, json, "rejected")?;
    Ok(ExitCode::SUCCESS)
}

/// Applies `field=value` settings to the payload's JSON form and re-types it.
pub fn apply_sets(params: &ActionParams, sets: &[String]) -> Result<ActionParams> {
    let mut v = serde_json::to_value(params)?;
    let obj = v.as_object_mut().context("payload is not an object")?;
    for s in sets {
        let (field, value) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected FIELD=VALUE"))?;
        if field == "kind" {
            bail!("--set kind: an edit cannot change what kind of action this is");
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        // `to` and friends are lists; accept a bare address for them.
        let value = match (obj.get(field), value) {
            (Some(serde_json::Value::Array(_)), serde_json::Value::String(s)) => {
                serde_json::Value::Array(s.split(',').map(|x| x.trim().into()).collect())
            }
            (_, v) => v,
        };
        obj.insert(field.to_string(), value);
    }
    let typed: ActionParams =
        serde_json::from_value(v).map_err(|e| anyhow::anyhow!("invalid edit: {e}"))?;
    typed
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid edit: {e}"))?;
    Ok(typed)
}

fn edit(ctx: &Ctx, id: &str, sets: &[String], json: bool) -> Result<ExitCode> {
    let a = ctx.store.get_action(id)?;
    let params = apply_sets(&a.params, sets)?;
    let now = ctx.store.edit_action(id, a.version, &params, now_ms())?;
    audit(
        ctx,
        &now,
        "action.edited",
        "ok",
        serde_json::json!({
            "fields": sets.iter().filter_map(|s| s.split_once('=').map(|(f, _)| f)).collect::<Vec<_>>(),
            "voided_consent": a.evidence.is_some() || a.state != ActionState::Proposed,
        }),
    )?;
    print_action(&now, json, "edited")?;
    Ok(ExitCode::SUCCESS)
}
