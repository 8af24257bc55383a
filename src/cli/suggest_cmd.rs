//! `dealflow suggest`: one run of the suggestion engine, from the command line.

use super::{Ctx, exec};
use crate::runtime::suggester::Suggester;
use crate::wall::now_ms;
use anyhow::Result;
use std::process::ExitCode;
use std::sync::Arc;

/// The engine for this configuration: Claude when `ANTHROPIC_API_KEY` is set, the
/// offline planner otherwise.
pub fn suggester(ctx: &Ctx, pipeline: Arc<crate::runtime::pipeline::Pipeline>) -> Suggester {
    let model = crate::llm::AnthropicClient::from_env(&ctx.config.raw.llm)
        .ok()
        .map(|m| Arc::new(m) as Arc<dyn crate::llm::LanguageModel>);
    let mut s = Suggester::new(pipeline, model, ctx.config.raw.llm.model.clone());
    s.daily_token_budget = ctx.config.raw.agent.daily_token_budget;
    s
}

pub fn run(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    let rt = exec::runtime()?;
    rt.block_on(async {
        let wired = exec::wire(ctx).await?;
        let engine = suggester(ctx, wired.pipeline.clone());
        let run = engine.run_once(now_ms()).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&run)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("{}", run.summary());
        for f in &run.filed {
            println!(
                "  {:<24} {:<16} {:<28} {:<8} {}",
                f.id,
                f.kind.as_str(),
                crate::tui::view::fit(&f.target, 28),
                f.gate,
                f.state
            );
        }
        for s in &run.skipped {
            println!("  skipped: {s}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
