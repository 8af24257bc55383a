//! The model checks: the Messages API asked only to count tokens (free), and the
//! suggestion engine's last run, today's spend and its lease, from the audit log.

use super::{Doctor, NETWORK_TIMEOUT, outer_and_root, when};
use crate::config::Config;
use crate::core::text::line;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::time::Instant;

impl Doctor {
    pub(super) fn model(&mut self, config: &Config, rt: &tokio::runtime::Runtime) {
        let llm = &config.raw.llm;
        let Some(key) = crate::llm::ApiKey::from_env().and(std::env::var("ANTHROPIC_API_KEY").ok())
        else {
            self.todo(
                "model",
                "no ANTHROPIC_API_KEY: Chat and the suggester use the offline planner (simple intents, rules over the pipeline)",
            );
            return;
        };
        let started = Instant::now();
        match rt.block_on(count_tokens(llm, key.trim())) {
            Ok(()) => self.ok(
                "model",
                format!(
                    "Claude {} at {} answered in {} ms; the key is accepted",
                    line(&llm.model),
                    line(&llm.base_url),
                    started.elapsed().as_millis()
                ),
            ),
            Err(e) => self.fail(
                "model",
                format!(
                    "{} — Chat and the suggester cannot reach Claude",
                    line(&outer_and_root(&e))
                ),
            ),
        }
    }

    /// The suggestion engine's last run and today's spend, from the audit log.
    pub(super) fn suggester(&mut self, config: &Config, store: &dyn Store) {
        use crate::runtime::suggester::{RUNS_SUBJECT, tokens_today};
        let now = crate::wall::now_ms();
        let budget = config.raw.agent.daily_token_budget;
        let used = tokens_today(store, now).unwrap_or(0);
        let spend = if budget > 0 {
            format!("{used} of {budget} tokens today")
        } else {
            format!("{used} tokens today")
        };
        let last = match store.audit_about(RUNS_SUBJECT, now - 30 * 86_400_000) {
            Ok(runs) => runs.into_iter().next(),
            Err(e) => return self.fail("suggest", e),
        };
        match last {
            None => self.ok("suggest", format!("no run yet; {spend}")),
            Some(e) if e.event == "agent.suggest_failed" => self.fail(
                "suggest",
                format!(
                    "last run {} failed: {}; {spend}",
                    when(e.ts),
                    line(e.detail["error"].as_str().unwrap_or("?"))
                ),
            ),
            Some(e) => self.ok(
                "suggest",
                format!(
                    "last run {}: {} filed; {spend}",
                    when(e.ts),
                    e.detail["filed"].as_array().map_or(0, Vec::len)
                ),
            ),
        }
        // Who is working right now: one engine and one gatherer at a time per user.
        match store.leases(now) {
            Ok(held) if held.is_empty() => self.ok("leases", "none held (no run in progress)"),
            Ok(held) => self.ok(
                "leases",
                held.iter()
                    .map(|l| {
                        let gone = if crate::runtime::holder_is_gone(&l.holder) {
                            " (that process is gone: the next run takes it over)"
                        } else {
                            ""
                        };
                        format!(
                            "{} held by {} until {}{gone}",
                            l.name,
                            l.holder,
                            when(l.until)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(e) => self.fail("leases", e),
        }
    }
}

/// Asks the Messages API to count the tokens of a one-word message: it proves the base
/// URL answers, the key is accepted and the model exists, and costs nothing.
async fn count_tokens(llm: &crate::config::LlmSection, key: &str) -> Result<()> {
    let url = format!(
        "{}/v1/messages/count_tokens",
        llm.base_url.trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .timeout(NETWORK_TIMEOUT)
        .build()?;
    let resp = http
        .post(&url)
        .header("x-api-key", key)
        .header(
            "anthropic-version",
            crate::llm::anthropic::ANTHROPIC_VERSION,
        )
        .json(&serde_json::json!({
            "model": llm.model,
            "messages": [{"role": "user", "content": "ping"}],
        }))
        .send()
        .await
        .with_context(|| format!("{url}: no answer"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let kind = body["error"]["type"].as_str().unwrap_or("");
    let said = match body["error"]["message"].as_str() {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    };
    match status.as_u16() {
        401 => bail!("{url}: HTTP 401: the API key was refused (ANTHROPIC_API_KEY)"),
        404 if kind == "not_found_error" => {
            bail!(
                "{url}: HTTP 404{said} (is llm.model {:?} right?)",
                llm.model
            )
        }
        404 => bail!("{url}: HTTP 404: no Messages API there (is llm.base_url right?)"),
        code => bail!("{url}: HTTP {code} {kind}{said}"),
    }
}
