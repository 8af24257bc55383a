//! Trust calibration: what the user's own decisions say about how much review each kind
//! of action still needs. Pure: it replays audit entries and *suggests*; it never
//! changes permissions. Accepting a [`Nudge`] yields a [`PermissionChange`] that the
//! user's own command applies and the store audits (invariant 3).
//!
//! Audit details it reads (written by `src/cli/actions.rs` and the sandbox):
//! `action.proposed` {kind, target?, confidence, amount_cents?};
//! `action.approved` / `action.rejected` {kind, target, confidence, edit_size, auto_rule?};
//! `action.edited` {edit_size}; `action.expired` or outcome "timeout" counts as a timeout.
//! Entries from before those fields existed fall back to what `action.proposed` said.

use super::audit::AuditEntry;
use super::consent::confidence_band;
use super::domain::{ActionKind, ActionParams, Cents, Millis};
use super::permissions::{
    AutoApproveRule, PermissionChange, Permissions, auto_rule_eligible, normalize_pin,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Moved to `domain`, where the consent rules read it too (so `consent` need not depend
/// on calibration); kept here under its old name for calibration's callers.
pub use crate::core::domain::target_pattern;

/// Levenshtein distance over chars.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.is_empty() {
        return b.len();
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn text_fields(v: &serde_json::Value, path: String, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::String(s) => {
            out.insert(path, s.clone());
        }
        serde_json::Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                text_fields(x, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                text_fields(x, format!("{path}.{k}"), out);
            }
        }
        other => {
            out.insert(path, other.to_string());
        }
    }
}

/// How much of the payload an edit changed, 0 (nothing) to 1 (everything): the summed
/// edit distance over its text fields, divided by the longer total length.
pub fn edit_size(original: &ActionParams, edited: &ActionParams) -> f64 {
    if original == edited {
        return 0.0;
    }
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    text_fields(
        &serde_json::to_value(original).unwrap_or_default(),
        String::new(),
        &mut a,
    );
    text_fields(
        &serde_json::to_value(edited).unwrap_or_default(),
        String::new(),
        &mut b,
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let (mut dist, mut len_a, mut len_b) = (0usize, 0usize, 0usize);
    for k in keys {
        let x = a.get(k).map_or("", String::as_str);
        let y = b.get(k).map_or("", String::as_str);
        dist += levenshtein(x, y);
        len_a += x.chars().count();
        len_b += y.chars().count();
    }
    let longest = len_a.max(len_b);
    if longest == 0 {
        // Equal texts but different non-text values.
        return 1.0;
    }
    // Different payloads are never "no edit", however long the text.
    (dist as f64 / longest as f64).clamp(f64::MIN_POSITIVE, 1.0)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationConfig {
    /// Unedited high-confidence approvals in a row before a nudge (default 5).
    pub streak: usize,
    /// The confidence a streak counts at and a suggested rule applies from (0.90).
    pub high_confidence: f64,
    /// Edits up to this size are trivial (a typo); above, substantial (0.10).
    pub trivial_edit_max: f64,
    /// Actions above this amount are never suggested for auto-approval.
    pub step_up_amount_cents: Cents,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            streak: 5,
            high_confidence: 0.9,
            trivial_edit_max: 0.1,
            step_up_amount_cents: 5_000_000,
        }
    }
}

/// What the user did with one action.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approved {
        edit_size: f64,
    },
    Rejected,
    Timeout,
    /// Approved, then taken back before it ran.
    Withdrawn,
}

/// One decision, normalised from the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub action_id: String,
    pub kind: ActionKind,
    pub target: String,
    pub confidence: f64,
    pub amount_cents: Option<Cents>,
    pub verdict: Verdict,
    pub at: Millis,
    /// Set when an auto-approve rule allowed it (a hit, not a user decision).
    pub auto_rule: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Proposed {
    kind: Option<ActionKind>,
    target: Option<String>,
    confidence: Option<f64>,
    amount_cents: Option<Cents>,
    edit_size: f64,
}

/// Turns audit entries, fed in sequence order, into observations. It remembers what each
/// action was (kind, target, confidence) from earlier entries, so a log can be fed a page
/// at a time, or only its new entries since the last feed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observer {
    known: BTreeMap<String, Proposed>,
}

impl Observer {
    pub fn observe(&mut self, e: &AuditEntry) -> Option<Observation> {
        let id = e.action_id.clone()?;
        let d = &e.detail;
        let p = self.known.entry(id.clone()).or_default();
        if let Some(k) = d
            .get("kind")
            .and_then(|v| v.as_str())
            .and_then(ActionKind::parse)
        {
            p.kind = Some(k);
        }
        if let Some(t) = d.get("target").and_then(|v| v.as_str()) {
            p.target = Some(t.to_string());
        }
        if let Some(c) = d.get("confidence").and_then(|v| v.as_f64()) {
            p.confidence = Some(c);
        }
        if let Some(a) = d.get("amount_cents").and_then(|v| v.as_i64()) {
            p.amount_cents = Some(a);
        }
        let size = d.get("edit_size").and_then(|v| v.as_f64());
        let verdict = match e.event.as_str() {
            "action.edited" => {
                if let Some(s) = size {
                    p.edit_size = p.edit_size.max(s);
                }
                return None;
            }
            "action.approved" => Verdict::Approved {
                edit_size: size.unwrap_or(p.edit_size),
            },
            "action.rejected" => Verdict::Rejected,
            "action.withdrawn" => Verdict::Withdrawn,
            "action.expired" => Verdict::Timeout,
            ev if ev.starts_with("action.") && e.outcome == "timeout" => Verdict::Timeout,
            _ => return None,
        };
        let (Some(kind), Some(confidence)) = (p.kind, p.confidence) else {
            return None;
        };
        Some(Observation {
            action_id: id,
            kind,
            target: p.target.clone().unwrap_or_default(),
            confidence,
            amount_cents: p.amount_cents,
            verdict,
            at: e.ts,
            auto_rule: d
                .get("auto_rule")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        })
    }
}

/// Normalises audit entries (in sequence order) into observations.
pub fn observations(entries: &[AuditEntry]) -> Vec<Observation> {
    let mut o = Observer::default();
    entries.iter().filter_map(|e| o.observe(e)).collect()
}

/// Counts for one kind and confidence band.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub total: u64,
    pub approved_unedited: u64,
    pub approved_trivial_edit: u64,
    pub approved_substantial_edit: u64,
    pub rejected: u64,
    pub timeouts: u64,
    /// Approvals taken back before they ran (counted in `total` once, as approvals).
    #[serde(default)]
    pub withdrawn: u64,
}

impl Figures {
    /// "47/50 approved unedited".
    pub fn summary(&self) -> String {
        let back = if self.withdrawn > 0 {
            format!(" ({} taken back)", self.withdrawn)
        } else {
            String::new()
        };
        format!(
            "{}/{} approved unedited{back}",
            self.approved_unedited, self.total
        )
    }
}

/// "Auto-approve follow-up emails to @initech.example at ≥ 0.90?"
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nudge {
    pub kind: ActionKind,
    pub target: String,
    pub min_confidence: f64,
    /// The unedited approvals that make the case, oldest first.
    pub evidence: Vec<String>,
    pub text: String,
}

impl Nudge {
    /// The permission change that accepting this nudge means: a rule that lives
    /// `ttl_ms` from `now`. The caller applies it through the store (audited).
    pub fn accept(&self, now: Millis, ttl_ms: Millis) -> PermissionChange {
        PermissionChange::AddAutoRule {
            rule: AutoApproveRule {
                id: format!("auto-{}-{}-{now}", self.kind, self.target),
                kind: self.kind,
                target: self.target.clone(),
                min_confidence: self.min_confidence,
                created_at: now,
                expires_at: now.saturating_add(ttl_ms),
                paused: None,
            },
        }
    }
}

/// How many of a streak's actions a nudge cites as its evidence (the newest): a streak
/// is a count, so a log of a million approvals does not keep a million ids in memory.
pub const EVIDENCE_IDS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Streak {
    /// Approved unedited at high confidence, in a row. (Named anew so a snapshot from
    /// before it was counted does not deserialize, and calibration replays instead.)
    run: usize,
    /// The newest of them, at most [`EVIDENCE_IDS`].
    ids: std::collections::VecDeque<String>,
    over_threshold: bool,
}

/// The replayed state: figures per kind and band, streaks per kind and target.
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    pub figures: BTreeMap<(ActionKind, &'static str), Figures>,
    streaks: BTreeMap<(ActionKind, String), Streak>,
    /// Hits per auto-approve rule id.
    pub rule_hits: BTreeMap<String, u64>,
    config: CalibrationConfig,
}

/// A [`Calibration`] as data (its maps keyed by plain strings), for a snapshot that
/// start-up reads instead of replaying the log (issue 18).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationState {
    /// (kind, band, figures).
    figures: Vec<(ActionKind, String, Figures)>,
    /// (kind, target pattern, streak).
    streaks: Vec<(ActionKind, String, Streak)>,
    rule_hits: BTreeMap<String, u64>,
    config: CalibrationConfig,
}

/// The bands [`confidence_band`] names.
const BANDS: [&str; 5] = ["≥ 0.90", "0.75–0.90", "0.60–0.75", "< 0.60", "invalid"];

impl Calibration {
    /// The state as data.
    pub fn state(&self) -> CalibrationState {
        CalibrationState {
            figures: (self.figures.iter())
                .map(|((k, b), f)| (*k, b.to_string(), f.clone()))
                .collect(),
            streaks: (self.streaks.iter())
                .map(|((k, t), s)| (*k, t.clone(), s.clone()))
                .collect(),
            rule_hits: self.rule_hits.clone(),
            config: self.config.clone(),
        }
    }

    /// Back from data; `None` when it names a band this build does not know.
    pub fn from_state(s: CalibrationState) -> Option<Calibration> {
        let mut figures = BTreeMap::new();
        for (k, b, f) in s.figures {
            figures.insert((k, *BANDS.iter().find(|x| **x == b)?), f);
        }
        Some(Calibration {
            figures,
            streaks: s.streaks.into_iter().map(|(k, t, s)| ((k, t), s)).collect(),
            rule_hits: s.rule_hits,
            config: s.config,
        })
    }

    pub fn new(config: CalibrationConfig) -> Calibration {
        Calibration {
            config,
            ..Calibration::default()
        }
    }

    /// Replays audit entries (in sequence order).
    pub fn replay(config: CalibrationConfig, entries: &[AuditEntry]) -> Calibration {
        let mut c = Calibration::new(config);
        for o in observations(entries) {
            c.observe(&o);
        }
        c
    }

    pub fn observe(&mut self, o: &Observation) {
        if let Some(rule) = &o.auto_rule {
            // Allowed by a rule: a hit, not evidence from the user.
            *self.rule_hits.entry(rule.clone()).or_default() += 1;
            return;
        }
        let band = confidence_band(o.confidence);
        let f = self.figures.entry((o.kind, band)).or_default();
        // A withdrawal is a second thought about a decision already counted.
        if o.verdict != Verdict::Withdrawn {
            f.total += 1;
        }
        let cfg = &self.config;
        let streak = self.streaks.entry((o.kind, o.target.clone())).or_default();
        match o.verdict {
            Verdict::Approved { edit_size } if edit_size <= 0.0 => {
                f.approved_unedited += 1;
                if o.confidence >= cfg.high_confidence {
                    streak.run += 1;
                    streak.ids.push_back(o.action_id.clone());
                    if streak.ids.len() > EVIDENCE_IDS {
                        streak.ids.pop_front();
                    }
                    streak.over_threshold |=
                        o.amount_cents.is_some_and(|a| a > cfg.step_up_amount_cents);
                }
            }
            Verdict::Approved { edit_size } if edit_size <= cfg.trivial_edit_max => {
                // A typo fix neither builds nor breaks the case.
                f.approved_trivial_edit += 1;
            }
            Verdict::Approved { .. } => {
                f.approved_substantial_edit += 1;
                *streak = Streak::default();
            }
            Verdict::Rejected => {
                f.rejected += 1;
                *streak = Streak::default();
            }
            Verdict::Timeout => f.timeouts += 1,
            // Taking an approval back before it ran (the outbox's undo) is a "no" after
            // all: it resets the streak like a rejection, so calibration errs toward
            // asking.
            Verdict::Withdrawn => {
                f.withdrawn += 1;
                *streak = Streak::default();
            }
        }
    }

    /// Current nudges, skipping what `permissions` already covers with an active rule.
    /// Never suggests reads, closing deals, or a pattern that saw an amount over the
    /// step-up threshold.
    pub fn nudges(&self, permissions: &Permissions, now: Millis) -> Vec<Nudge> {
        let cfg = &self.config;
        self.streaks
            .iter()
            .filter(|((kind, target), s)| {
                s.run >= cfg.streak
                    && !s.over_threshold
                    && auto_rule_eligible(*kind)
                    && !target.is_empty()
                    // A pinned counterparty is always reviewed: no rule can cover it.
                    && super::permissions::pinned(
                        &permissions.always_review,
                        &target.split(',').map(normalize_pin).collect::<Vec<_>>(),
                    )
                    .is_none()
                    && !permissions
                        .auto_rules
                        .iter()
                        .any(|r| r.kind == *kind && &r.target == target && r.active_at(now))
            })
            .map(|((kind, target), s)| Nudge {
                kind: *kind,
                target: target.clone(),
                min_confidence: cfg.high_confidence,
                evidence: s.ids.iter().cloned().collect(),
                text: format!(
                    "auto-approve {} to {target} at ≥ {:.2}? ({} approved unedited in a row)",
                    kind.as_str().replace('_', " "),
                    cfg.high_confidence,
                    s.run
                ),
            })
            .collect()
    }

    /// "send_email ≥ 0.90: 47/50 approved unedited", one line per kind and band.
    pub fn report(&self) -> Vec<String> {
        self.figures
            .iter()
            .map(|((k, band), f)| format!("{k} {band}: {}", f.summary()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::Email;

    fn email(to: &str, body: &str) -> ActionParams {
        ActionParams::SendEmail(Email {
            to: vec![to.into()],
            cc: vec![],
            subject: "Follow-up".into(),
            body: body.into(),
            deal_id: None,
        })
    }

    #[test]
    fn patterns_group_by_domain_and_channel() {
        assert_eq!(
            target_pattern(&email("Bill@Initech.example", "x")),
            "@initech.example"
        );
        let slack = ActionParams::PostSlack {
            channel: "#Deals".into(),
            text: "t".into(),
        };
        assert_eq!(target_pattern(&slack), "#deals");
    }

    #[test]
    fn edit_size_separates_typos_from_rewrites() {
        let a = email("a@b.example", "Thanks for the call today, talk soon.");
        assert_eq!(edit_size(&a, &a), 0.0);
        let typo = edit_size(
            &a,
            &email("a@b.example", "Thanks for the call today, talk son."),
        );
        assert!(typo > 0.0 && typo < 0.1, "{typo}");
        let rewrite = edit_size(
            &a,
            &email("a@b.example", "Please find our revised pricing."),
        );
        assert!(rewrite > 0.3, "{rewrite}");
    }

    /// A streak is a count and a bounded window of its newest ids: a long run of
    /// approvals costs the same memory as a short one, and its nudge still says how
    /// long the run is and cites the newest.
    #[test]
    fn a_long_streak_is_counted_not_kept() {
        let mut c = Calibration::new(CalibrationConfig::default());
        for i in 0..1000 {
            c.observe(&Observation {
                action_id: format!("act-{i:04}"),
                kind: ActionKind::SendEmail,
                target: "@initech.example".into(),
                confidence: 0.95,
                amount_cents: None,
                verdict: Verdict::Approved { edit_size: 0.0 },
                at: i,
                auto_rule: None,
            });
        }
        let s = &c.streaks[&(ActionKind::SendEmail, "@initech.example".to_string())];
        assert_eq!(s.run, 1000);
        assert_eq!(s.ids.len(), EVIDENCE_IDS);
        let nudges = c.nudges(&Permissions::default(), 0);
        assert_eq!(nudges.len(), 1);
        assert!(
            nudges[0].text.contains("(1000 approved unedited"),
            "{}",
            nudges[0].text
        );
        assert_eq!(
            nudges[0].evidence.first().map(String::as_str),
            Some("act-0980")
        );
        assert_eq!(
            nudges[0].evidence.last().map(String::as_str),
            Some("act-0999")
        );
        // A rejection still ends it.
        c.observe(&Observation {
            action_id: "act-no".into(),
            kind: ActionKind::SendEmail,
            target: "@initech.example".into(),
            confidence: 0.95,
            amount_cents: None,
            verdict: Verdict::Rejected,
            at: 1001,
            auto_rule: None,
        });
        assert!(c.nudges(&Permissions::default(), 0).is_empty());
    }
}
