//! The suggestion engine as a worker: reads the pipeline from the store, asks the model
//! (Claude with an API key, the offline planner without) for proposals, and files each
//! through [`Pipeline::submit`], so the gate routes it like anything else: allowed ones
//! run (audited with the rule that allowed them), reviewed ones land in the Action
//! Center, device-gated ones wait for the next CIBA batch. Runs never overlap.

use super::credentials::Subject;
use super::pipeline::{Pipeline, PipelineError, Proposal};
use crate::agent::suggest::{Snapshot, Suggestions};
use crate::core::audit::NewAuditEntry;
use crate::core::domain::{Action, ActionKind, ActionState, Millis};
use crate::llm::LanguageModel;
use crate::store::{ActionFilter, lease};
use serde::Serialize;
use std::sync::Arc;

mod feeds;
mod watch;

use feeds::{calendar_entries, inbox_entries};

pub use watch::{CHANGE_POLL, FINGERPRINT_EVERY};
const DAY: Millis = 86_400_000;
/// A rejected suggestion is not proposed again unchanged within this long.
const REJECTED_MEMORY: Millis = 30 * DAY;
/// Nor is one like a suggestion that just ran (same kind and target).
const DONE_MEMORY: Millis = 7 * DAY;

/// One filed proposal and where the gate sent it.
#[derive(Debug, Clone, Serialize)]
pub struct Filed {
    pub id: String,
    pub kind: ActionKind,
    pub target: String,
    pub title: String,
    pub confidence: f64,
    /// The gate it faced ("review", "ciba", "allow", …).
    pub gate: String,
    /// Its state after routing (and, for an allowed one, after running).
    pub state: ActionState,
}

/// What one run did.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// "offline planner" or the model's name.
    pub source: String,
    /// Model tokens this run cost (0 for the offline planner).
    pub tokens: u64,
    pub filed: Vec<Filed>,
    /// Proposals not filed, with why (invalid, duplicate, rejected before).
    pub skipped: Vec<String>,
}

impl Run {
    /// One line for a status bar.
    pub fn summary(&self) -> String {
        let n = self.filed.len();
        let by = |g: &str| self.filed.iter().filter(|f| f.gate == g).count();
        if n == 0 {
            return format!("suggestions ({}): nothing new", self.source);
        }
        let mut parts = Vec::new();
        for (gate, word) in [
            ("review", "to review"),
            ("step_up", "to confirm"),
            ("ciba", "for your device"),
            ("allow", "ran on your rules"),
            ("deny", "denied"),
        ] {
            if by(gate) > 0 {
                parts.push(format!("{} {word}", by(gate)));
            }
        }
        let cost = if self.tokens > 0 {
            format!(" · {} tokens", self.tokens)
        } else {
            String::new()
        };
        format!(
            "{n} new suggestion(s) ({}): {}{cost}",
            self.source,
            parts.join(", ")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error("a suggestion run is already in progress")]
    Busy,
    #[error(
        "another dealflow is running suggestions ({holder}); this one waits its turn rather than file the same work twice"
    )]
    Elsewhere { holder: String },
    #[error("stopped: dealflow is closing")]
    Stopped,
    #[error(
        "paused: today's token budget is spent ({used} of {budget}); it resumes at 00:00 UTC (agent.daily_token_budget)"
    )]
    Budget { used: u64, budget: u64 },
    #[error("the model ({model}) failed: {source}")]
    Model {
        model: String,
        #[source]
        source: crate::llm::LlmError,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub struct Suggester {
    pub pipeline: Arc<Pipeline>,
    /// Claude, when `ANTHROPIC_API_KEY` is set; otherwise the offline planner.
    pub model: Option<Arc<dyn LanguageModel>>,
    pub model_name: String,
    /// Model tokens per UTC day (0: no limit).
    pub daily_token_budget: u64,
    running: tokio::sync::Mutex<()>,
    /// Who this engine is in the store's `suggest` lease.
    holder: String,
}

/// How long a run may hold the lease: past it, a crashed run blocks no one. Longer than
/// a model call can take (the Messages client times out well before).
const LEASE_FOR: Millis = 10 * 60_000;

/// The subject the engine's run records are filed under in the audit log, so a day's
/// runs are found without reading the whole log.
pub const RUNS_SUBJECT: &str = "agent-suggester";

/// Tokens the engine spent on the model since 00:00 UTC of `now`'s day, from the runs
/// the audit log records (every process's).
pub fn tokens_today(
    store: &dyn crate::store::Store,
    now: Millis,
) -> Result<u64, crate::store::StoreError> {
    let midnight = now - now.rem_euclid(DAY);
    Ok(store
        .audit_about(RUNS_SUBJECT, midnight)?
        .iter()
        .filter_map(|e| e.detail["tokens"].as_u64())
        .sum())
}

impl Suggester {
    pub fn new(
        pipeline: Arc<Pipeline>,
        model: Option<Arc<dyn LanguageModel>>,
        model_name: String,
    ) -> Suggester {
        Suggester {
            pipeline,
            model,
            model_name,
            daily_token_budget: 0,
            running: tokio::sync::Mutex::new(()),
            holder: super::lease_holder(),
        }
    }

    pub fn source(&self) -> String {
        if self.model.is_some() {
            self.model_name.clone()
        } else {
            "offline planner".into()
        }
    }

    fn snapshot(&self, now: Millis) -> Result<Snapshot, crate::store::StoreError> {
        let s = self.pipeline.store.as_ref();
        Ok(Snapshot {
            now,
            deals: s.list_deals()?,
            contacts: {
                let mut all = s.list_contacts()?;
                for c in self.pipeline.crm_contacts() {
                    if !all.iter().any(|k| k.id == c.id) {
                        all.push(c);
                    }
                }
                all
            },
            calendar: None,
            inbox: None,
            utc_offset_s: 0,
            existing: self.queue()?,
        })
    }

    /// The queue as the engine compares proposals with it (the newest 5,000).
    fn queue(&self) -> Result<Vec<Action>, crate::store::StoreError> {
        self.pipeline.store.list_actions(&ActionFilter {
            states: vec![],
            limit: Some(5_000),
        })
    }

    /// A read through the pipeline like any other (the gate decides; one `action.read`
    /// audit entry). `None` when it cannot be read (not connected, a scope taken back, a
    /// read denied): the run goes on without it.
    async fn read(
        &self,
        params: crate::core::domain::ActionParams,
        title: &str,
        why: &str,
        now: Millis,
    ) -> Option<serde_json::Value> {
        let read = self
            .pipeline
            .run_read(
                Proposal {
                    params,
                    surface: crate::core::domain::Surface::ActionCenter,
                    confidence: 1.0,
                    title: title.into(),
                    justification: why.into(),
                    proposer: "agent-suggester".into(),
                },
                now,
            )
            .await;
        let outcome = match read {
            Ok(done) => done.outcome.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(o) => Some(o.data),
            Err(why) => {
                tracing::info!(%why, read = title, "suggestion run without it");
                None
            }
        }
    }

    /// The next two weeks of the calendar.
    async fn upcoming(&self, now: Millis) -> Option<Vec<crate::agent::suggest::CalendarEntry>> {
        const FORTNIGHT: Millis = 14 * 86_400_000;
        let data = self
            .read(
                crate::core::domain::ActionParams::CheckCalendar {
                    from: now,
                    to: now + FORTNIGHT,
                },
                "upcoming meetings (suggestion engine)",
                "what is already booked, so nothing is proposed twice",
                now,
            )
            .await?;
        Some(calendar_entries(&data))
    }

    /// The last week's inbound mail: who wrote back, about what (subjects only).
    async fn recent_mail(&self, now: Millis) -> Option<Vec<crate::agent::suggest::InboxEntry>> {
        const WEEK: Millis = 7 * 86_400_000;
        let data = self
            .read(
                crate::core::domain::ActionParams::ReadInbox { since: now - WEEK },
                "recent inbound mail (suggestion engine)",
                "who wrote back, so replies get answered",
                now,
            )
            .await?;
        Some(inbox_entries(&data))
    }

    /// One run: snapshot, proposals, filing, and running what the gate allows. A failed
    /// run is audited (`agent.suggest_failed`) and returned as the error.
    pub async fn run_once(&self, now: Millis) -> Result<Run, SuggestError> {
        self.run_until(now, &tokio_util::sync::CancellationToken::new())
            .await
    }

    /// [`Self::run_once`], stopping early when `stop` fires: a model call is abandoned
    /// (nothing filed), filing stops before the next proposal, and an allowed action that
    /// already started running finishes, so quitting never leaves one half-executed.
    pub async fn run_until(
        &self,
        now: Millis,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Run, SuggestError> {
        let _one = self.running.try_lock().map_err(|_| SuggestError::Busy)?;
        // Every engine on this store (another TUI, `dealflow suggest`, the service)
        // takes the same lease, so two never read the same snapshot and file its work
        // twice.
        let store = self.pipeline.store.clone();
        if let Err(other) = super::take_lease(
            store.as_ref(),
            lease::SUGGEST,
            &self.holder,
            now,
            now + LEASE_FOR,
        )? {
            return Err(SuggestError::Elsewhere {
                holder: other.holder,
            });
        }
        let outcome = self.run(now, stop).await;
        if let Err(e) = store.release_lease(lease::SUGGEST, &self.holder) {
            tracing::warn!(error = %e, "the suggest lease was not released; it lapses on its own");
        }
        match outcome {
            Ok(run) => Ok(run),
            // Closing is not a failure; nothing was filed.
            Err(SuggestError::Stopped) => Err(SuggestError::Stopped),
            Err(e) => {
                let _ = self.audit(
                    now,
                    "agent.suggest_failed",
                    "failed",
                    serde_json::json!({ "source": self.source(), "error": e.to_string() }),
                );
                Err(e)
            }
        }
    }

    async fn run(
        &self,
        now: Millis,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Run, SuggestError> {
        if self.model.is_some() && self.daily_token_budget > 0 {
            let used = tokens_today(self.pipeline.store.as_ref(), now)?;
            if used >= self.daily_token_budget {
                return Err(SuggestError::Budget {
                    used,
                    budget: self.daily_token_budget,
                });
            }
        }
        // A remote CRM is read into the store's mirror first: the engine proposes about
        // the pipeline as it is there now. A CRM that cannot be read fails the run,
        // naming what it answered, rather than propose about a stale copy unsaid.
        self.pipeline.sync_crm().await?;
        let mut snapshot = self.snapshot(now)?;
        // Both reads at once: each is a provider round trip the model then waits on.
        (snapshot.calendar, snapshot.inbox) =
            tokio::join!(self.upcoming(now), self.recent_mail(now));
        let mut n = 0u32;
        let mut next_id = || {
            n += 1;
            format!("suggestion-{n}")
        };
        let suggestions: Suggestions = match &self.model {
            Some(m) => tokio::select! {
                r = crate::agent::suggest::suggest(m.as_ref(), &snapshot, &mut next_id) => {
                    r.map_err(|source| SuggestError::Model {
                        model: self.model_name.clone(),
                        source,
                    })?
                }
                _ = stop.cancelled() => return Err(SuggestError::Stopped),
            },
            None => crate::agent::offline::suggest_offline(&snapshot, &mut next_id),
        };
        let mut run = Run {
            source: self.source(),
            tokens: suggestions.tokens,
            filed: Vec::new(),
            skipped: suggestions
                .rejected
                .iter()
                .map(|r| r.reason.clone())
                .collect(),
        };
        let proposer = if self.model.is_some() {
            "agent:claude".to_string()
        } else {
            "agent:offline-planner".to_string()
        };
        // Read again now: the model took its time, and Chat or an MCP client may have
        // queued the same work meanwhile (other engines wait on the lease).
        let mut existing = self.queue()?;
        for mut a in suggestions.actions {
            if stop.is_cancelled() {
                run.skipped
                    .push(format!("{}: not filed (dealflow was closing)", a.title));
                continue;
            }
            // Compared as it would be filed (a close carries the store's amount), so a
            // rejected close is recognised when proposed again.
            if let Ok(p) = super::review::ground(self.pipeline.store.as_ref(), a.params.clone()) {
                a.params = p;
            }
            if let Some(why) = seen_before(&a, &existing, now) {
                run.skipped.push(why);
                continue;
            }
            let submitted = self.pipeline.submit(
                Proposal {
                    params: a.params.clone(),
                    surface: a.surface,
                    confidence: a.confidence,
                    title: a.title.clone(),
                    justification: a.justification.clone(),
                    proposer: proposer.clone(),
                },
                now,
            );
            let s = match submitted {
                Ok(s) => s,
                Err(PipelineError::Invalid { reason, .. }) => {
                    run.skipped.push(format!("{}: {reason}", a.title));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let mut state = s.action.state;
            if state == ActionState::Approved {
                // Allowed by the user's rules: it runs now, audited as such.
                state = match self
                    .pipeline
                    .execute(&s.action.id, &Subject::User, now)
                    .await
                {
                    Ok(done) => done.action.state,
                    Err(e) => {
                        tracing::warn!(action = %s.action.id, error = %e, "an allowed suggestion did not run");
                        self.pipeline.store.get_action(&s.action.id)?.state
                    }
                };
            }
            existing.push(s.action.clone());
            run.filed.push(Filed {
                id: s.action.id.clone(),
                kind: s.action.kind(),
                target: s.action.params.target(),
                title: s.action.title.clone(),
                confidence: s.action.confidence,
                gate: s.decision.gate().name().to_string(),
                state,
            });
        }
        self.audit(
            now,
            "agent.suggest_run",
            "ok",
            serde_json::json!({
                "source": run.source,
                "filed": run.filed.iter().map(|f| &f.id).collect::<Vec<_>>(),
                "skipped": run.skipped.len(),
                "tokens": run.tokens,
            }),
        )?;
        Ok(run)
    }

    fn audit(
        &self,
        at: Millis,
        event: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<(), crate::store::StoreError> {
        self.pipeline.store.append_audit(NewAuditEntry {
            ts: at,
            actor: "agent:suggester".into(),
            surface: Some(crate::core::domain::Surface::ActionCenter),
            event: event.into(),
            action_id: Some(RUNS_SUBJECT.into()),
            outcome: outcome.into(),
            detail,
        })?;
        Ok(())
    }
}

/// Why `a` should not be filed again: the same work is pending, the same proposal was
/// rejected (unchanged) in the last 30 days, or one of its kind to the same target ran
/// in the last 7.
fn seen_before(a: &Action, existing: &[Action], now: Millis) -> Option<String> {
    use crate::agent::suggest::{dedupe_key, is_pending};
    let key = |x: &Action| dedupe_key(&x.params);
    existing.iter().find_map(|e| {
        let age = now - e.updated_at;
        match e.state {
            s if is_pending(s) && key(e) == key(a) => Some(format!(
                "{}: a {} to {} is already queued ({})",
                a.title,
                e.kind(),
                e.params.target(),
                e.id
            )),
            ActionState::Rejected | ActionState::Expired
                if age < REJECTED_MEMORY && {
                    let ask = a.params.without_revision();
                    e.original.without_revision() == ask || e.params.without_revision() == ask
                } =>
            {
                Some(format!(
                    "{}: you rejected it on {} (not proposed again unchanged)",
                    a.title,
                    chrono::DateTime::from_timestamp_millis(e.updated_at)
                        .map_or_else(|| "?".into(), |d| d.format("%Y-%m-%d").to_string())
                ))
            }
            ActionState::Succeeded | ActionState::Failed | ActionState::NeedsReconciliation
                if age < DONE_MEMORY && key(e) == key(a) =>
            {
                Some(format!(
                    "{}: a {} to {} already ran {} day(s) ago",
                    a.title,
                    e.kind(),
                    e.params.target(),
                    age / DAY
                ))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{ActionParams, ActionState, Surface};

    fn close(id: &str, revision: &str, state: ActionState) -> Action {
        let params = ActionParams::CloseDeal {
            deal_id: "006SBX".into(),
            won: false,
            amount_cents: 100,
            revision: Some(revision.into()),
        };
        Action {
            id: id.into(),
            original: params.clone(),
            params,
            state,
            version: 1,
            surface: Surface::ActionCenter,
            confidence: 0.8,
            justification: String::new(),
            title: "Close as lost".into(),
            created_at: 1,
            updated_at: 1,
            outcome: None,
            evidence: None,
        }
    }

    /// A close the rep rejected stays rejected after someone edits the Opportunity in
    /// Salesforce (its revision moves): the ask is the same.
    #[test]
    fn a_rejected_close_is_not_proposed_again_because_the_record_moved() {
        let rejected = close("a1", "2026-11-01T00:00:00.000+0000", ActionState::Rejected);
        let again = close("a2", "2026-11-02T00:00:00.000+0000", ActionState::Proposed);
        let why = seen_before(&again, &[rejected], 2).unwrap();
        assert!(why.contains("you rejected it"), "{why}");
    }
}
