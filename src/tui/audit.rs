//! Audit tab state: the log (newest first), a filter over surface, kind, outcome and
//! actor, and the chain verification status reported by a background job.

use crate::core::audit::{AuditEntry, ChainBreak};
use crate::core::domain::Millis;

#[derive(Debug, Clone, PartialEq)]
pub enum VerifyState {
    NotRun,
    Running,
    Verified { entries: i64, at: Millis },
    Broken(ChainBreak),
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct AuditTab {
    /// Oldest first, as the store pages them.
    pub entries: Vec<AuditEntry>,
    /// Indices into `entries`, newest first, that pass the filter.
    pub visible: Vec<usize>,
    pub cursor: usize,
    pub filter: String,
    pub verify: VerifyState,
    pub loaded: bool,
    /// The evidence pane's scroll (J/K).
    pub evidence: super::pane_scroll::PaneScroll,
}

impl Default for AuditTab {
    fn default() -> Self {
        AuditTab {
            entries: Vec::new(),
            visible: Vec::new(),
            cursor: 0,
            filter: String::new(),
            verify: VerifyState::NotRun,
            loaded: false,
            evidence: Default::default(),
        }
    }
}

impl AuditTab {
    pub fn load(&mut self, entries: Vec<AuditEntry>) {
        self.entries = entries;
        self.loaded = true;
        self.refilter();
    }

    /// Filter syntax: `surface:chat kind:send_email outcome:denied actor:user:ann` plus
    /// free words matched anywhere in the row.
    pub fn refilter(&mut self) {
        let terms: Vec<String> = self
            .filter
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        self.visible = (0..self.entries.len())
            .rev()
            .filter(|&i| terms.iter().all(|t| matches(&self.entries[i], t)))
            .collect();
        if self.cursor >= self.visible.len() {
            self.cursor = self.visible.len().saturating_sub(1);
        }
    }

    /// Scrolls the evidence pane by `by` lines (negative: up), within what it holds.
    pub fn scroll_evidence(&mut self, by: i32) {
        if let Some(seq) = self.current().map(|e| e.seq.to_string()) {
            self.evidence.scroll(&seq, by);
        }
    }

    pub fn current(&self) -> Option<&AuditEntry> {
        self.visible
            .get(self.cursor)
            .and_then(|&i| self.entries.get(i))
    }
}

fn matches(e: &AuditEntry, term: &str) -> bool {
    let surface = e
        .surface
        .map_or("-".to_string(), |s| s.as_str().to_string());
    let kind = e
        .detail
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_lowercase();
    if let Some((field, want)) = term.split_once(':') {
        match field {
            "surface" => return surface.contains(want),
            "kind" => return kind.contains(want) || e.event.to_lowercase().contains(want),
            "outcome" => return e.outcome.to_lowercase().contains(want),
            "actor" => return e.actor.to_lowercase().contains(want),
            "event" => return e.event.to_lowercase().contains(want),
            _ => {}
        }
    }
    let hay = format!(
        "{} {} {} {} {} {}",
        e.actor,
        surface,
        e.event,
        e.action_id.as_deref().unwrap_or(""),
        e.outcome,
        kind
    )
    .to_lowercase();
    hay.contains(term)
}
