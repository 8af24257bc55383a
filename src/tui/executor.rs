//! Runs the effects the store, the consent engine and the Reviewer serve
//! ([`StoreEffect`]) and answers with messages. Synchronous on purpose: the driver runs
//! it behind its one `spawn_blocking` boundary, and headless tests call it directly.

use super::clock::Clock;
use super::msg::{Msg, StoreEffect, Verb};
use crate::core::audit::NewAuditEntry;
use crate::core::domain::Millis;
use crate::runtime::review::Reviewer;
use crate::store::{ActionFilter, ActionPage, Store};
use crate::tui::actions::{FINISHED_PAGE, FIRST_PAGE, finished_states, pending_states};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Actions with their gates, and the permissions they were decided under.
type Gated = (
    Vec<(crate::core::domain::Action, crate::core::consent::Decision)>,
    crate::core::permissions::Permissions,
);

#[derive(Clone)]
pub struct Executor {
    pub store: Arc<dyn Store>,
    pub reviewer: Reviewer,
    pub clock: Arc<dyn Clock>,
    /// Where `ExportAudit` writes.
    pub export_dir: PathBuf,
    /// The background service's status file, read with each queue reload.
    pub service_status: Option<PathBuf>,
    /// What waits on this user as team lead (a team store only).
    pub lead_waiting: Option<super::LeadWaiting>,
    /// Calibration fed incrementally from the audit log (`LoadCalibration`).
    pub replay: Arc<std::sync::Mutex<Option<crate::runtime::trust::Replay>>>,
}

impl Executor {
    /// A permission change by the person at the keyboard, audited with `detail`.
    fn save_permissions(
        &self,
        change: &crate::core::permissions::PermissionChange,
        detail: serde_json::Value,
    ) -> Msg {
        let audit = NewAuditEntry {
            ts: self.clock.now_ms(),
            actor: self.reviewer.actor.clone(),
            surface: None,
            event: "permissions.changed".into(),
            action_id: None,
            outcome: "ok".into(),
            detail,
        };
        Msg::PermissionsSaved(
            self.store
                .change_permissions(change, audit)
                .map(|(p, _)| Box::new(p))
                .map_err(|e| e.to_string()),
        )
    }

    /// Replays the audit log unless its head is still `known_head`.
    fn calibrate(
        &self,
        known_head: Option<i64>,
    ) -> Result<Option<Box<super::trust::Calibrated>>, String> {
        let s = self.store.as_ref();
        let fail = |e: crate::store::StoreError| format!("calibration: {e}");
        let head = s.audit_head().map_err(fail)?.0;
        if known_head == Some(head) {
            return Ok(None);
        }
        let perms = s.load_permissions().map_err(fail)?;
        // One replay at a time; each only reads what was appended since the last.
        let mut slot = self
            .replay
            .lock()
            .map_err(|_| "calibration: an earlier replay failed".to_string())?;
        // Start-up reads the store's snapshot (if this user's key made it and it still
        // matches the chain) and the tail after it, not the whole log.
        let key = crate::runtime::seal::key().ok();
        let r =
            crate::runtime::trust::Replay::catch_up_cached(&mut slot, s, &perms, key.as_deref())
                .map_err(fail)?;
        let calibration = r.calibration().clone();
        let nudges = calibration.nudges(&perms, self.clock.now_ms());
        Ok(Some(Box::new(super::trust::Calibrated {
            head: r.head().max(head),
            calibration,
            nudges,
        })))
    }

    /// Runs one store effect.
    pub fn run(&self, effect: StoreEffect) -> Vec<Msg> {
        let s = self.store.as_ref();
        match effect {
            StoreEffect::LoadActions => vec![
                self.load(),
                self.finished_total(),
                self.service(),
                self.lead(),
            ],
            StoreEffect::LoadFirstActions => vec![self.load_first()],
            StoreEffect::LoadOlderActions { before } => vec![self.load_older(before)],
            StoreEffect::Approve {
                ids,
                stepped_up,
                seen,
            } => {
                let mut out: Vec<Msg> = ids
                    .into_iter()
                    .map(|id| {
                        let result = self
                            .reviewer
                            .approve_seen(
                                s,
                                &id,
                                seen.get(&id).copied(),
                                stepped_up.contains(&id),
                                self.clock.now_ms(),
                            )
                            .map(Box::new)
                            .map_err(|e| e.to_string());
                        Msg::Reviewed {
                            id,
                            verb: Verb::Approve,
                            result,
                        }
                    })
                    .collect();
                summarize(&mut out, Verb::Approve);
                out.push(self.load());
                out
            }
            StoreEffect::Reject { ids, reason } => {
                let mut out: Vec<Msg> = ids
                    .into_iter()
                    .map(|id| {
                        let result = self
                            .reviewer
                            .reject(s, &id, reason.clone(), self.clock.now_ms())
                            .map(Box::new)
                            .map_err(|e| e.to_string());
                        Msg::Reviewed {
                            id,
                            verb: Verb::Reject,
                            result,
                        }
                    })
                    .collect();
                summarize(&mut out, Verb::Reject);
                out.push(self.load());
                out
            }
            StoreEffect::Withdraw(id) => {
                let result = self
                    .reviewer
                    .withdraw(s, &id, "undo send", self.clock.now_ms())
                    .map(Box::new)
                    .map_err(|e| e.to_string());
                vec![
                    Msg::Reviewed {
                        id,
                        verb: Verb::Withdraw,
                        result,
                    },
                    self.load(),
                ]
            }
            StoreEffect::Edit {
                id,
                version,
                params,
            } => {
                let result = self
                    .reviewer
                    .edit_seen(s, &id, Some(version), &params, self.clock.now_ms())
                    .map(Box::new)
                    .map_err(|e| e.to_string());
                vec![
                    Msg::Reviewed {
                        id,
                        verb: Verb::Edit,
                        result,
                    },
                    self.load(),
                ]
            }
            StoreEffect::ChangePermissions(change) => {
                vec![self.save_permissions(&change, serde_json::json!({ "via": "tui" }))]
            }
            StoreEffect::LoadAudit(fetch) => vec![Msg::AuditPage(
                fetch_audit(s, &fetch)
                    .map(Box::new)
                    .map_err(|e| format!("audit: {e}")),
            )],
            StoreEffect::LoadCalibration { known_head } => {
                vec![Msg::Calibrated(self.calibrate(known_head))]
            }
            StoreEffect::AcceptNudge(nudge) => {
                let ttl = crate::runtime::trust::DEFAULT_RULE_DAYS * 24 * 3600 * 1000;
                vec![self.save_permissions(
                    &nudge.accept(self.clock.now_ms(), ttl),
                    serde_json::json!({
                        "via": "tui", "nudge": nudge.text, "evidence": nudge.evidence,
                    }),
                )]
            }
            StoreEffect::VerifyAudit => vec![Msg::AuditVerified(verify_anchored(s))],
            StoreEffect::ExportAudit => vec![Msg::Exported(self.export())],
            StoreEffect::AuditSession {
                event,
                outcome,
                mut detail,
            } => {
                if let serde_json::Value::Object(m) = &mut detail {
                    m.insert("origin".into(), crate::runtime::review::origin());
                }
                match s.append_audit(NewAuditEntry {
                    ts: self.clock.now_ms(),
                    actor: self.reviewer.actor.clone(),
                    surface: Some(self.reviewer.surface),
                    event,
                    action_id: None,
                    outcome,
                    detail,
                }) {
                    Ok(_) => vec![],
                    Err(e) => vec![Msg::LoadFailed(format!("audit: {e}"))],
                }
            }
        }
    }

    /// The service as its status file says, when it runs or died without stopping (a
    /// service that stopped cleanly is not news).
    fn service(&self) -> Msg {
        use crate::runtime::service::{Liveness, ServiceStatus};
        let seen = self
            .service_status
            .as_deref()
            .and_then(ServiceStatus::read)
            .and_then(|s| match s.liveness() {
                Liveness::Running => Some((true, s.last_proposed)),
                Liveness::Died => Some((false, s.last_proposed)),
                Liveness::Stopped => None,
            });
        Msg::ServiceSeen(seen)
    }

    /// What waits on this user as team lead, when the store is a team's.
    fn lead(&self) -> Msg {
        Msg::LeadWaiting(self.lead_waiting.as_ref().and_then(|count| count()))
    }

    /// Every pending action and the newest page of finished ones, newest first (the
    /// order `list_actions` gives), each with its gate. A store with years of history
    /// costs a page here, not its whole table.
    fn load(&self) -> Msg {
        let s = self.store.as_ref();
        let now = self.clock.now_ms();
        let loaded = s
            .list_actions(&ActionFilter {
                states: pending_states(),
                limit: None,
            })
            .and_then(|mut actions| {
                actions.extend(s.action_page(&ActionPage {
                    states: finished_states(),
                    before: None,
                    limit: FINISHED_PAGE,
                })?);
                actions.sort_by(|a, b| {
                    (b.created_at, b.id.as_str()).cmp(&(a.created_at, a.id.as_str()))
                });
                self.gate(actions, now)
            });
        match loaded {
            Ok((gated, permissions)) => Msg::ActionsLoaded {
                gated,
                permissions: Box::new(permissions),
            },
            Err(e) => Msg::LoadFailed(format!("store: {e}")),
        }
    }

    /// Each action with the gate it faces, decided from the store's facts, and the
    /// permissions they were decided under.
    fn gate(
        &self,
        actions: Vec<crate::core::domain::Action>,
        now: Millis,
    ) -> crate::store::Result<Gated> {
        let mut facts = crate::runtime::facts::FactSource::new(self.store.as_ref())?;
        let gated = actions
            .into_iter()
            .map(|a| facts.decide(&a, now).map(|d| (a, d)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((gated, facts.permissions().clone()))
    }

    /// The newest [`FIRST_PAGE`] pending actions, each with its gate.
    fn load_first(&self) -> Msg {
        let s = self.store.as_ref();
        let now = self.clock.now_ms();
        let loaded = s
            .list_actions(&ActionFilter {
                states: pending_states(),
                limit: Some(FIRST_PAGE),
            })
            .and_then(|actions| self.gate(actions, now));
        crate::wall::startup_mark("first page read");
        match loaded {
            Ok((gated, permissions)) => Msg::FirstActions {
                gated,
                permissions: Box::new(permissions),
            },
            Err(e) => Msg::LoadFailed(format!("store: {e}")),
        }
    }

    fn finished_total(&self) -> Msg {
        match self.store.count_actions(&finished_states()) {
            Ok(n) => Msg::FinishedTotal(n),
            Err(e) => Msg::LoadFailed(format!("store: {e}")),
        }
    }

    fn load_older(&self, before: (Millis, String)) -> Msg {
        let s = self.store.as_ref();
        let now = self.clock.now_ms();
        let loaded = s
            .action_page(&ActionPage {
                states: finished_states(),
                before: Some(before.clone()),
                limit: FINISHED_PAGE,
            })
            .and_then(|page| self.gate(page, now).map(|(gated, _)| gated));
        match loaded {
            Ok(gated) => Msg::OlderActionsLoaded {
                gated,
                asked: before,
            },
            Err(e) => Msg::LoadFailed(format!("store: {e}")),
        }
    }

    fn export(&self) -> Result<String, String> {
        let path = self
            .export_dir
            .join(format!("audit-export-{}.jsonl", self.clock.now_ms()));
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
        }
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut w = std::io::BufWriter::new(file);
        let mut after = 0;
        let mut n = 0;
        loop {
            let page = self
                .store
                .audit_page(after, 5000)
                .map_err(|e| e.to_string())?;
            if page.is_empty() {
                break;
            }
            for e in &page {
                let line = serde_json::to_string(e).map_err(|e| e.to_string())?;
                writeln!(w, "{line}").map_err(|e| e.to_string())?;
                n += 1;
            }
            after = page.last().map_or(after, |e| e.seq);
        }
        w.flush().map_err(|e| e.to_string())?;
        Ok(format!("exported {n} audit entries to {}", path.display()))
    }
}

/// One page for the Audit tab: the store's keyset page with the kinds pushed down,
/// then the terms matched here over at most `SEARCH_BUDGET` entries; what is beyond the
/// last row read is `More` (a full page), `Searched` (the budget ran out first) or `End`.
pub fn fetch_audit(
    s: &dyn crate::store::Store,
    f: &super::audit::AuditFetch,
) -> Result<super::audit::AuditPage, crate::store::StoreError> {
    use super::audit::{AuditPage, Edge, PAGE, SEARCH_BUDGET, Side, matches};
    let total = s.audit_head()?.0;
    let mut q = crate::store::AuditQuery {
        kinds: f.kinds.clone(),
        ..Default::default()
    };
    match f.side {
        Side::Newest => q.newest_first = true,
        Side::Oldest => {}
        Side::Older(b) => (q.newest_first, q.before) = (true, Some(b)),
        Side::Newer(b) => q.after = b,
    }
    // Terms the store does not apply make this a search, read in larger stretches.
    let searching = f
        .terms
        .iter()
        .any(|t| f.kinds.is_empty() || !t.starts_with("kind:"));
    let budget = if searching { SEARCH_BUDGET } else { PAGE };
    let (mut rows, mut read) = (Vec::new(), 0);
    let beyond = loop {
        q.limit = if searching { 1000 } else { PAGE }.min(budget - read);
        let page = s.audit_query(&q)?;
        let full = page.len() == q.limit;
        read += page.len();
        let Some(last) = page.last().map(|e| e.seq) else {
            break Edge::End;
        };
        if q.newest_first {
            q.before = Some(last);
        } else {
            q.after = last;
        }
        for e in page {
            if f.terms.iter().all(|t| matches(&e, t)) {
                rows.push(e);
                if rows.len() == PAGE {
                    // Beyond the last row kept; whatever the page held after it is
                    // read again with the next page.
                    let seq = e_seq(&rows, last);
                    return Ok(AuditPage {
                        generation: f.generation,
                        side: f.side,
                        rows,
                        beyond: if seq == last && !full {
                            Edge::End
                        } else {
                            Edge::More(seq)
                        },
                        total,
                    });
                }
            }
        }
        if !full {
            break Edge::End;
        }
        if read >= budget {
            break Edge::Searched(last);
        }
    };
    Ok(AuditPage {
        generation: f.generation,
        side: f.side,
        rows,
        beyond,
        total,
    })
}

fn e_seq(rows: &[crate::core::audit::AuditEntry], or: i64) -> i64 {
    rows.last().map_or(or, |e| e.seq)
}

/// Appends a `Msg::ReviewSummary` when a decision covered more than one action, so the
/// status line reports every failure, not just the last result.
fn summarize(out: &mut Vec<Msg>, verb: Verb) {
    if out.len() < 2 {
        return;
    }
    let mut ok = 0;
    let mut failed = Vec::new();
    for m in out.iter() {
        if let Msg::Reviewed { id, result, .. } = m {
            match result {
                Ok(_) => ok += 1,
                Err(e) => failed.push((id.clone(), e.clone())),
            }
        }
    }
    out.push(Msg::ReviewSummary { verb, ok, failed });
}

/// The chain, then the keyring checkpoint: a log cut, wiped or rewritten with its chain
/// recomputed verifies as a chain but not against the checkpoint.
fn verify_anchored(
    s: &dyn crate::store::Store,
) -> Result<Result<i64, crate::core::audit::ChainBreak>, String> {
    use crate::runtime::seal::{Anchor, KeyringAnchor};
    let n = match s.verify_audit().map_err(|e| e.to_string())? {
        Ok(n) => n,
        broken => return Ok(broken),
    };
    let Ok(anchor) = KeyringAnchor::open() else {
        return Ok(Ok(n));
    };
    Ok(match anchor.check(s).map_err(|e| e.to_string())? {
        Anchor::Holds { .. } | Anchor::Missing => Ok(n),
        bad @ (Anchor::Truncated { seen: seq, .. } | Anchor::Rewritten { seq }) => {
            Err(crate::core::audit::ChainBreak {
                seq,
                problem: bad.to_string(),
            })
        }
        bad @ Anchor::Forged => Err(crate::core::audit::ChainBreak {
            seq: n,
            problem: bad.to_string(),
        }),
    })
}
