//! `dealflow actions list|show|approve|reject|edit`: the queue, scriptable.

use super::{Ctx, exec, local_actor};
use crate::core::consent::Gate;
use crate::core::domain::{Action, ActionParams, ActionState, Surface};
use crate::core::text::line;
use crate::runtime::review::{self, ReviewError, Reviewer};
use crate::store::ActionFilter;
use crate::wall::now_ms;
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
        /// What waits on you as the team lead: pushed to your phone from a rep's batch
        /// and not answered yet, read from the team's audit stream (a team store only).
        /// Read-only: you answer on your phone.
        #[arg(long, conflicts_with = "state")]
        for_team: bool,
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
        /// Record the approval but do not execute now.
        #[arg(long)]
        hold: bool,
        /// Approve only if the action is still at this version (`actions show --json`
        /// prints it): an edit made after you read it is refused, not approved unseen.
        #[arg(long, value_name = "N")]
        expect_version: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Execute an approved action (e.g. one held, or blocked until an account was connected).
    Execute {
        id: String,
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
        ActionsCmd::List {
            for_team: true,
            json,
            ..
        } => list_for_team(ctx, json),
        ActionsCmd::List { state, json, .. } => list(ctx, &state, json),
        ActionsCmd::Show { id, json } => show(ctx, &id, json),
        ActionsCmd::Approve {
            id,
            confirm,
            hold,
            expect_version,
            json,
        } => approve(ctx, &id, confirm.as_deref(), hold, expect_version, json),
        ActionsCmd::Execute { id, json } => execute(ctx, &id, json, false),
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
                line(&a.title)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the team's stream says waits on `lead`: each push to them (`lead.pushed`) with
/// no answer recorded (`lead.answered`) and not past its expiry at `now`, oldest first.
pub fn waiting_on_lead(
    stream: &[crate::core::audit::AuditEntry],
    lead: &str,
    now: i64,
) -> Vec<serde_json::Value> {
    use crate::runtime::batch::{LEAD_ANSWERED, LEAD_PUSHED};
    let answered: std::collections::HashSet<&str> = stream
        .iter()
        .filter(|e| e.event == LEAD_ANSWERED)
        .filter_map(|e| e.detail["auth_req_id"].as_str())
        .collect();
    stream
        .iter()
        .filter(|e| e.event == LEAD_PUSHED && e.detail["lead"] == lead)
        .filter(|e| {
            e.detail["auth_req_id"]
                .as_str()
                .is_some_and(|id| !answered.contains(id))
        })
        .filter(|e| e.detail["expires_at"].as_i64().is_none_or(|t| t > now))
        .map(|e| {
            serde_json::json!({
                "auth_req_id": e.detail["auth_req_id"],
                "pushed_at": e.ts,
                "expires_at": e.detail["expires_at"],
                "rep": e.detail["rep"],
                "rep_name": e.detail["rep_name"],
                "binding_message": e.detail["binding_message"],
                "actions": e.detail["actions"],
            })
        })
        .collect()
}

fn list_for_team(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    let store = super::team_cmd::team_store(&ctx.config)
        .context("`actions list --for-team` needs a team store (store.url and store.team)")?;
    let Some(me) = crate::runtime::identity::current().signed_in.clone() else {
        bail!("not signed in: run `dealflow login` first");
    };
    let mut stream = Vec::new();
    let mut after = 0;
    loop {
        let page = store.team_audit_page(after, 5000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        stream.extend(page);
    }
    let waiting = waiting_on_lead(&stream, &me.sub, now_ms());
    if json {
        println!("{}", serde_json::to_string_pretty(&waiting)?);
        return Ok(ExitCode::SUCCESS);
    }
    if waiting.is_empty() {
        println!("nothing waits on you ({}) as team lead", me.sub);
        return Ok(ExitCode::SUCCESS);
    }
    for w in &waiting {
        let rep = match (w["rep_name"].as_str(), w["rep"].as_str()) {
            (Some(n), Some(s)) if !n.is_empty() => format!("{n} ({s})"),
            (_, Some(s)) => s.to_string(),
            _ => "unknown rep".to_string(),
        };
        for a in w["actions"].as_array().into_iter().flatten() {
            println!(
                "{:<28} {:<17} {:<32} from {}  {}",
                a["id"].as_str().unwrap_or(""),
                a["kind"].as_str().unwrap_or(""),
                line(a["target"].as_str().unwrap_or("")),
                line(&rep),
                line(a["title"].as_str().unwrap_or("")),
            );
        }
    }
    eprintln!(
        "{} request(s) on your phone; answer them there (`dealflow sandbox phone` in the sandbox)",
        waiting.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, id: &str, json: bool) -> Result<ExitCode> {
    let a = ctx.store.get_action(id)?;
    // The decision approving would meet: rules, pins and the split guard included.
    let d = crate::runtime::review::decision_for(ctx.store.as_ref(), &a, crate::wall::now_ms())?;
    if json {
        let v = serde_json::json!({ "action": a, "decision": d });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}  [{}]", line(&a.title), a.state);
    println!("id          {}", a.id);
    println!("kind        {}   risk: {}", a.kind(), a.kind().risk());
    println!("target      {}", line(&a.params.target()));
    println!("confidence  {:.2} ({})", a.confidence, d.band());
    println!("gate        {}", line(&d.gate().to_string()));
    println!("because     {}", line(&d.explain()));
    println!("why         {}", line(&a.justification));
    if a.is_edited() {
        println!("edited      yes (original kept for comparison)");
    }
    if let Some(o) = &a.outcome {
        println!("outcome     {}", line(o));
    }
    println!("payload");
    println!("{}", serde_json::to_string_pretty(&a.params)?);
    Ok(ExitCode::SUCCESS)
}

fn print_action(a: &Action, json: bool, verb: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(a)?);
    } else {
        println!("{verb} {} ({}) — now {}", a.id, line(&a.title), a.state);
    }
    Ok(())
}

fn reviewer() -> Reviewer {
    Reviewer {
        actor: local_actor(),
        surface: Surface::Cli,
    }
}

fn typed_confirmation(a: &Action, reason: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(false);
    }
    eprintln!("step-up: {}", line(reason));
    eprintln!("This will {} → {}", a.kind(), line(&a.params.target()));
    eprint!("Type the action id ({}) to confirm: ", a.id);
    std::io::stderr().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim() == a.id)
}

fn approve(
    ctx: &Ctx,
    id: &str,
    confirm: Option<&str>,
    hold: bool,
    expect_version: Option<i64>,
    json: bool,
) -> Result<ExitCode> {
    let store = ctx.store.as_ref();
    let a = store.get_action(id)?;
    // Ask for the typed confirmation only when the gate is step-up; what it showed is
    // what gets approved (an edit landing while the prompt waits is refused).
    let (confirmed, seen) = match confirm {
        Some(c) => (c == a.id, expect_version),
        None => match review::decision_for(store, &a, crate::wall::now_ms())?.gate() {
            Gate::StepUp { reason } => (
                typed_confirmation(&a, reason)?,
                expect_version.or(Some(a.version)),
            ),
            _ => (false, expect_version),
        },
    };
    match reviewer().approve_seen(store, id, seen, confirmed, now_ms()) {
        Ok(now) if hold => {
            print_action(&now, json, "approved (held)")?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(now) => {
            if !json {
                print_action(&now, false, "approved")?;
            }
            execute(ctx, id, json, true)
        }
        Err(ReviewError::NeedsStepUp { reason, .. }) => bail!(
            "{id} needs step-up ({reason}); read `dealflow actions show {id}`, then run `dealflow actions approve {id} --confirm {id}`"
        ),
        Err(ReviewError::NeedsDevice {
            approver, reason, ..
        }) => {
            // Nothing at this keyboard can stand in for that device: queue it for the
            // next push and say so (exit 3: not approved, waiting on the device).
            let queued = if a.state == ActionState::AwaitingConsent {
                a
            } else {
                reviewer().queue_for_device(store, id, now_ms())?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&queued)?);
            }
            eprintln!(
                "{id} needs approval on {} device ({reason}): queued for it; `dealflow batch` sends the push{}",
                approver.whose(),
                if ctx.sandbox {
                    ", `dealflow sandbox phone` answers it in the sandbox"
                } else {
                    ""
                }
            );
            Ok(ExitCode::from(3))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs an approved action. Right after an approval (`after_approve`), a dealflow that
/// cannot sign in keeps the approval and says how to run it later, instead of failing.
fn execute(ctx: &Ctx, id: &str, json: bool, after_approve: bool) -> Result<ExitCode> {
    let rt = exec::runtime()?;
    rt.block_on(async {
        let wired = match exec::wire(ctx).await {
            Ok(w) => w,
            Err(e) if after_approve => {
                eprintln!(
                    "approved, not executed: {e:#}; run `dealflow actions execute {id}` once signed in"
                );
                if json {
                    println!("{}", serde_json::to_string_pretty(&ctx.store.get_action(id)?)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e),
        };
        let done = exec::execute_one(&wired, id).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&done.action)?);
        } else {
            println!(
                "executed {}: {} — {}",
                done.action.id,
                done.action.state,
                line(&done.action.outcome.clone().unwrap_or_default())
            );
        }
        Ok(if done.outcome.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

fn reject(ctx: &Ctx, id: &str, reason: Option<String>, json: bool) -> Result<ExitCode> {
    let now = reviewer().reject(ctx.store.as_ref(), id, reason, now_ms())?;
    print_action(&now, json, "rejected")?;
    // A rule this "no" paused is said on stderr, so `--json` stays one document.
    for r in ctx.store.load_permissions()?.auto_rules {
        if r.paused.as_ref().is_some_and(|p| p.action_id == now.id) {
            eprintln!(
                "auto-approve rule {} ({} to {}) is paused until you resume it (dealflow policy resume {}) or revoke it",
                crate::core::text::line(&r.id),
                r.kind,
                crate::core::text::line(&r.target),
                crate::core::text::line(&r.id)
            );
        }
    }
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
    // The fields not set come from the version read here: refuse if it moved meanwhile.
    let now = reviewer().edit_seen(ctx.store.as_ref(), id, Some(a.version), &params, now_ms())?;
    print_action(&now, json, "edited")?;
    Ok(ExitCode::SUCCESS)
}
