//! `dealflow status`: the pipeline and the queue, with the gate each action faces.

use super::Ctx;
use crate::core::domain::{ActionState, format_money};
use crate::core::text::line;
use crate::store::ActionFilter;
use crate::wall::now_ms;
use anyhow::Result;
use std::process::ExitCode;

pub fn run(ctx: &Ctx, interactive: bool) -> Result<ExitCode> {
    let mode = if ctx.sandbox { "SANDBOX" } else { "tenant" };
    println!("dealflow · {mode} · {}", ctx.store.describe());
    if ctx.config.crm == crate::core::domain::CrmProvider::Salesforce {
        // The deals are Salesforce's: read them into the mirror before showing them.
        let rt = super::exec::runtime()?;
        let synced = rt.block_on(async {
            let w = super::exec::wire(ctx).await?;
            anyhow::Ok(w.pipeline.sync_crm().await?)
        })?;
        match &synced.skipped {
            Some(why) => println!("Salesforce not read: {why}; the deals below are as last read"),
            None => println!(
                "Salesforce: {} open opportunities read ({} changed since the last read)",
                synced.deals, synced.changed
            ),
        }
    }
    println!();
    let deals = ctx.store.list_deals()?;
    println!("Deals ({})", deals.len());
    for d in &deals {
        // Within 80 columns whatever the CRM's names and ids (Salesforce's are 18).
        println!(
            "  {:<18} {} {:>12}  {}",
            crate::tui::view::fit(&line(&d.id), 18).trim_end(),
            crate::tui::view::fit(&line(&d.name), 30),
            format_money(d.amount_cents),
            d.stage.as_str()
        );
    }
    let mut facts = crate::runtime::facts::FactSource::new(ctx.store.as_ref())?;
    let queue = ctx.store.list_actions(&ActionFilter {
        states: vec![
            ActionState::Proposed,
            ActionState::AwaitingConsent,
            ActionState::Approved,
            ActionState::NeedsReconciliation,
        ],
        limit: None,
    })?;
    println!();
    println!("Queue ({})", queue.len());
    for a in &queue {
        let d = facts.decide(a, now_ms())?;
        println!(
            "  {:<28} {:<17} {:<16} conf {:.2}  gate: {}",
            a.id,
            a.kind().as_str(),
            a.state.as_str(),
            a.confidence,
            line(&d.gate().to_string())
        );
    }
    if interactive {
        println!();
        println!("(The terminal UI starts when stdin and stdout are a terminal.) Try:");
        println!("  dealflow actions show <id>     the payload and why the gate is what it is");
        println!("  dealflow actions approve <id>  approve a reviewed suggestion");
        println!("  dealflow audit verify          check the tamper-evident log");
    }
    Ok(ExitCode::SUCCESS)
}
